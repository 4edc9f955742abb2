//! FEAT_S1POE (permission overlays) and FEAT_TCR2 from EL1.
//!
//! QEMU's CPUs lack both; porwatch's exception-entry tap advertises S1POE
//! (ID_AA64MMFR3_EL1.S1POE = 1) and emulates `POR_EL1`, `POR_EL0` and
//! `TCR2_EL1` ("virtual POE"). Without it these registers do not exist and
//! every access UNDEFs, so callers must check [`s1poe_present`] first.
//! Registers are named by their encodings (the assembler may not know them).
use core::arch::asm;

/// ID_AA64MMFR3_EL1.S1POE, bits [19:16].
pub const ID_AA64MMFR3_S1POE_SHIFT: u32 = 16;
/// TCR2_EL1.POE: enable permission overlays for EL1 accesses.
pub const TCR2_POE: u64 = 1 << 3;
/// TCR2_EL1.E0POE: enable permission overlays for EL0 accesses.
pub const TCR2_E0POE: u64 = 1 << 2;

/// ID_AA64MMFR3_EL1 (S3_0_C0_C7_3).
pub fn id_aa64mmfr3() -> u64 {
    let v: u64;
    unsafe { asm!("mrs {}, s3_0_c0_c7_3", out(reg) v, options(nomem, nostack)) };
    v
}

/// True if the CPU (or porwatch's virtual POE) advertises FEAT_S1POE.
pub fn s1poe_present() -> bool {
    (id_aa64mmfr3() >> ID_AA64MMFR3_S1POE_SHIFT) & 0xf != 0
}

/// Reads POR_EL1 (S3_0_C10_C2_4).
///
/// # Safety
/// Only when [`s1poe_present`]; otherwise the instruction UNDEFs.
pub unsafe fn read_por_el1() -> u64 {
    let v: u64;
    unsafe { asm!("mrs {}, s3_0_c10_c2_4", out(reg) v, options(nomem, nostack)) };
    v
}

/// Writes POR_EL1 (S3_0_C10_C2_4) followed by an ISB, as Linux does.
///
/// # Safety
/// Only when [`s1poe_present`]; otherwise the instruction UNDEFs.
pub unsafe fn write_por_el1(v: u64) {
    unsafe { asm!("msr s3_0_c10_c2_4, {}", "isb", in(reg) v, options(nostack)) };
}

/// Reads POR_EL0 (S3_3_C10_C2_4).
///
/// # Safety
/// Only when [`s1poe_present`]; otherwise the instruction UNDEFs.
pub unsafe fn read_por_el0() -> u64 {
    let v: u64;
    unsafe { asm!("mrs {}, s3_3_c10_c2_4", out(reg) v, options(nomem, nostack)) };
    v
}

/// Writes POR_EL0 (S3_3_C10_C2_4) followed by an ISB.
///
/// # Safety
/// Only when [`s1poe_present`]; otherwise the instruction UNDEFs.
pub unsafe fn write_por_el0(v: u64) {
    unsafe { asm!("msr s3_3_c10_c2_4, {}", "isb", in(reg) v, options(nostack)) };
}

/// Reads TCR2_EL1 (S3_0_C2_C0_3).
///
/// # Safety
/// Only if FEAT_TCR2 exists, which FEAT_S1POE implies (and virtual POE
/// emulates); otherwise the instruction UNDEFs.
pub unsafe fn read_tcr2_el1() -> u64 {
    let v: u64;
    unsafe { asm!("mrs {}, s3_0_c2_c0_3", out(reg) v, options(nomem, nostack)) };
    v
}

/// Writes TCR2_EL1 (S3_0_C2_C0_3) followed by an ISB.
///
/// # Safety
/// As [`read_tcr2_el1`].
pub unsafe fn write_tcr2_el1(v: u64) {
    unsafe { asm!("msr s3_0_c2_c0_3, {}", "isb", in(reg) v, options(nostack)) };
}
