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

/// PAR_EL1 fault format: FST [6:1], PTW [8] (stage 2 faulted on the stage-1
/// walk), S [9] (the fault was at stage 2).
const PAR_FST_SHIFT: u32 = 1;
const PAR_FST_MASK: u64 = 0x3f;
const PAR_S: u64 = 1 << 9;

/// Why a guest write to a VA does not translate (PAR_EL1 after AT).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteFault {
    /// A stage-1 fault: the FSC the CPU would report (translation, access
    /// flag, permission, ... with its level).
    Stage1 { fsc: u8 },
    /// Stage 2 faulted on the stage-1 walk (a table outside guest RAM).
    Walk,
}

/// The IPA a guest write of `va` would use: `AT S1E1W` (privileged) or
/// `AT S1E0W` (unprivileged: STTR), which check stage-1 write permission as
/// the store would (PAN is not considered). The guest's PAR_EL1 is kept.
pub fn va_to_ipa_write(va: u64, unprivileged: bool) -> Result<u64, WriteFault> {
    let saved = PAR_EL1.get();
    if unprivileged {
        unsafe { core::arch::asm!("at s1e0w, {}", "isb", in(reg) va, options(nostack)) };
    } else {
        unsafe { core::arch::asm!("at s1e1w, {}", "isb", in(reg) va, options(nostack)) };
    }
    let par = PAR_EL1.get();
    PAR_EL1.set(saved);
    if par & PAR_F == 0 {
        return Ok((par & PAR_PA_MASK) | (va & PAGE_OFFSET_MASK));
    }
    if par & PAR_S != 0 {
        return Err(WriteFault::Walk);
    }
    Err(WriteFault::Stage1 { fsc: ((par >> PAR_FST_SHIFT) & PAR_FST_MASK) as u8 })
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
