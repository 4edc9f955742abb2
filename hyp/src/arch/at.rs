//! Reading guest memory by guest virtual address: AT S1E1R gives the IPA
//! (stage 1 only, as KVM does: HPFAR_EL2 is not reliable for permission
//! faults), stage 2 says whether it is guest RAM. The guest's PAR_EL1 is
//! saved and restored around the AT.
use super::stage2;
use aarch64_cpu::registers::*;

/// PAR_EL1.F (bit 0): the translation faulted.
const PAR_F: u64 = 1 << 0;
/// PAR_EL1.PA, bits [51:12] (52-bit PA layout; bits [51:48] are RES0 below).
const PAR_PA_MASK: u64 = 0x000f_ffff_ffff_f000;
const PAGE_OFFSET_MASK: u64 = 0xfff;

/// The IPA a guest EL1 read of `va` would use, if stage 1 maps it.
pub fn va_to_ipa(va: u64) -> Option<u64> {
    let saved = PAR_EL1.get();
    unsafe { core::arch::asm!("at s1e1r, {}", "isb", in(reg) va, options(nostack)) };
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    (par & PAR_F == 0).then_some((par & PAR_PA_MASK) | (va & PAGE_OFFSET_MASK))
}

/// Reads the 32-bit instruction at guest VA `va` (None if it is not in
/// guest RAM or not mapped).
pub fn read_insn(va: u64) -> Option<u32> {
    if !va.is_multiple_of(4) {
        return None;
    }
    let ipa = va_to_ipa(va)?;
    let pa = stage2::ram_pa(ipa, 4)?;
    // hyp's EL2 map is the identity on RAM.
    Some(unsafe { core::ptr::read_volatile(pa as *const u32) })
}
