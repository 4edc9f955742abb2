//! System registers that aarch64-cpu 11.2 does not provide, declared with
//! tock-registers (`register_bitfields!`) like the crate's own.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;

/// Declares a system register accessor struct and static, read/write as asked.
macro_rules! sysreg {
    ($(#[$m:meta])* $name:ident, $ty:ident, $enc:literal, $fields:path, r) => {
        $(#[$m])*
        pub struct $ty;
        impl Readable for $ty {
            type T = u64;
            type R = $fields;
            #[inline]
            fn get(&self) -> u64 {
                let v;
                unsafe { core::arch::asm!(concat!("mrs {}, ", $enc), out(reg) v, options(nomem, nostack)) };
                v
            }
        }
        pub static $name: $ty = $ty;
    };
    ($(#[$m:meta])* $name:ident, $ty:ident, $enc:literal, $fields:path, rw) => {
        sysreg!($(#[$m])* $name, $ty, $enc, $fields, r);
        impl Writeable for $ty {
            type T = u64;
            type R = $fields;
            #[inline]
            fn set(&self, v: u64) {
                unsafe { core::arch::asm!(concat!("msr ", $enc, ", {}"), in(reg) v, options(nomem, nostack)) };
            }
        }
    };
}

register_bitfields! {u64,
    /// Arm ARM D24.2 (ID_AA64MMFR3_EL1); Linux arch/arm64/tools/sysreg.
    pub ID_AA64MMFR3_EL1 [
        TCRX OFFSET(0) NUMBITS(4) [],
        SCTLRX OFFSET(4) NUMBITS(4) [],
        S1PIE OFFSET(8) NUMBITS(4) [],
        S2PIE OFFSET(12) NUMBITS(4) [],
        S1POE OFFSET(16) NUMBITS(4) [],
        S2POE OFFSET(20) NUMBITS(4) [],
    ],
    /// HCRX_EL2 (FEAT_HCX): written whole, from the ID-register table
    /// (porwatch_monitor::idregs::controls names the bits).
    pub HCRX_EL2 [
        VALUE OFFSET(0) NUMBITS(64) [],
    ],
    /// TCR2_EL1 (FEAT_TCR2): PIE, POE, E0POE, ... (porwatch_monitor::idregs::controls).
    pub TCR2_EL1 [
        VALUE OFFSET(0) NUMBITS(64) [],
    ],
    /// PIR_EL1 / PIRE0_EL1 (FEAT_S1PIE): sixteen 4-bit permissions, by PIIndex.
    pub PIR_EL1 [
        VALUE OFFSET(0) NUMBITS(64) [],
    ],
    /// ICC_SRE_EL2 (GICv3): SRE = system-register interface, Enable = lets
    /// EL1 use ICC_SRE_EL1.
    pub ICC_SRE_EL2 [
        SRE OFFSET(0) NUMBITS(1) [],
        DFB OFFSET(1) NUMBITS(1) [],
        DIB OFFSET(2) NUMBITS(1) [],
        Enable OFFSET(3) NUMBITS(1) [],
    ],
    /// CTR_EL0: cache geometry.
    pub CTR_EL0 [
        /// log2 of the smallest data cache line, in 4-byte words.
        DminLine OFFSET(16) NUMBITS(4) [],
    ],
    /// POR_EL1 (FEAT_S1POE): sixteen 4-bit overlay permissions.
    pub POR_EL1 [
        VALUE OFFSET(0) NUMBITS(64) [],
    ],
    /// SCXTNUM_EL1 (FEAT_CSV2_2): porwatch's POR_EL1 carrier at patched
    /// sites (monitor por_sites.rs); holds the virtual POR_EL1.
    pub SCXTNUM_EL1 [
        VALUE OFFSET(0) NUMBITS(64) [],
    ],
    /// CNTFRQ_EL0: the counter frequency in Hz (writable at the highest EL
    /// only; aarch64-cpu declares it read-only).
    pub CNTFRQ_EL0 [
        VALUE OFFSET(0) NUMBITS(32) [],
    ],
    /// VPIDR_EL2: the MIDR_EL1 value EL1 reads.
    pub VPIDR_EL2 [
        VALUE OFFSET(0) NUMBITS(32) [],
    ],
}

sysreg!(
    /// CTR_EL0: op0=3 op1=3 CRn=0 CRm=0 op2=1.
    CTR_EL0_REG, CtrEl0, "ctr_el0", CTR_EL0::Register, r
);
sysreg!(
    /// VPIDR_EL2: op0=3 op1=4 CRn=0 CRm=0 op2=0.
    VPIDR_EL2_REG, VpidrEl2, "vpidr_el2", VPIDR_EL2::Register, rw
);
sysreg!(
    /// ID_AA64MMFR3_EL1: op0=3 op1=0 CRn=0 CRm=7 op2=3.
    ID_AA64MMFR3_EL1_REG, IdAa64Mmfr3El1, "s3_0_c0_c7_3", ID_AA64MMFR3_EL1::Register, r
);
sysreg!(
    /// HCRX_EL2: op0=3 op1=4 CRn=1 CRm=2 op2=2 (only where ID_AA64MMFR1_EL1.HCX != 0).
    HCRX_EL2_REG, HcrxEl2, "s3_4_c1_c2_2", HCRX_EL2::Register, rw
);
sysreg!(
    /// ICC_SRE_EL2: op0=3 op1=4 CRn=12 CRm=9 op2=5.
    ICC_SRE_EL2_REG, IccSreEl2, "s3_4_c12_c9_5", ICC_SRE_EL2::Register, rw
);
sysreg!(
    /// POR_EL1: op0=3 op1=0 CRn=10 CRm=2 op2=4 (only with FEAT_S1POE: native mode).
    POR_EL1_REG, PorEl1, "s3_0_c10_c2_4", POR_EL1::Register, rw
);
sysreg!(
    /// SCXTNUM_EL1: op0=3 op1=0 CRn=13 CRm=0 op2=7 (only with FEAT_CSV2_2 /
    /// CSV2_1p2: the POR_EL1 carrier).
    SCXTNUM_EL1_REG, ScxtnumEl1, "s3_0_c13_c0_7", SCXTNUM_EL1::Register, rw
);
sysreg!(
    /// SCXTNUM_EL0: op0=3 op1=3 CRn=13 CRm=0 op2=7 (the POR_EL0 carrier).
    SCXTNUM_EL0_REG, ScxtnumEl0, "s3_3_c13_c0_7", SCXTNUM_EL1::Register, rw
);
sysreg!(
    /// TCR2_EL1: op0=3 op1=0 CRn=2 CRm=0 op2=3 (only with FEAT_TCR2).
    TCR2_EL1_REG, Tcr2El1, "s3_0_c2_c0_3", TCR2_EL1::Register, rw
);
sysreg!(
    /// PIR_EL1: op0=3 op1=0 CRn=10 CRm=2 op2=3 (only with FEAT_S1PIE).
    PIR_EL1_REG, PirEl1, "s3_0_c10_c2_3", PIR_EL1::Register, r
);
sysreg!(
    /// PIRE0_EL1: op0=3 op1=0 CRn=10 CRm=2 op2=2 (only with FEAT_S1PIE).
    PIRE0_EL1_REG, Pire0El1, "s3_0_c10_c2_2", PIR_EL1::Register, r
);
sysreg!(
    /// CNTFRQ_EL0: op0=3 op1=3 CRn=14 CRm=0 op2=0 (written at EL3 only).
    CNTFRQ_EL0_REG, CntfrqEl0, "cntfrq_el0", CNTFRQ_EL0::Register, rw
);
