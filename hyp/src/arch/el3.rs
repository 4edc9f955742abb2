//! EL3 set-up before the drop to EL2 (FVP direct start, QEMU `secure=on`):
//! SCR_EL3, CPTR_EL3 and the EL3 vector-length registers, from the
//! ID-register table (porwatch_monitor::idregs::controls::el3_controls):
//! NS | HCE | RW, what porwatch itself uses (FGT, HCX, TCR2_ELx, PIR/POR)
//! and the EL3 side of every control the guest's features need (e.g.
//! SCR_EL3.EnFPM with FPMR, ATA with MTE2, EZ/ESM and ZCR/SMCR_EL3 with
//! SVE/SME). A feature porwatch hides gets no EL3 enable either.
//!
//! Called from boot.S at EL3, still Secure, MMU off (the image is relocated
//! and has a stack); everything else at EL3 stays in boot.S.
use porwatch_monitor::idregs::controls::el3_controls;

#[unsafe(no_mangle)]
extern "C" fn el3_enable_features() {
    let e = el3_controls(&super::idregs::read_all());
    // SAFETY: executed at EL3 only (boot.S), before the ERET to EL2.
    unsafe {
        core::arch::asm!("msr scr_el3, {}", in(reg) e.scr, options(nomem, nostack));
        core::arch::asm!("msr cptr_el3, {}", "isb", in(reg) e.cptr, options(nomem, nostack));
        if let Some(zcr) = e.zcr {
            // ZCR_EL3 (s3_6_c1_c2_0): EL3 does not limit the vector length.
            core::arch::asm!("msr s3_6_c1_c2_0, {}", in(reg) zcr, options(nomem, nostack));
        }
        if let Some(smcr) = e.smcr {
            // SMCR_EL3 (s3_6_c1_c2_6): likewise, with ZT0 / FA64 as passed.
            core::arch::asm!("msr s3_6_c1_c2_6, {}", in(reg) smcr, options(nomem, nostack));
        }
    }
}
