//! Completing a guest data access to a page stage 2 maps to one of
//! porwatch's execute-only shadows (the tap's vector page, a patched code
//! page: por_sites.rs): the guest never sees the shadow, so its access is
//! performed on its own page, as the CPU would have, and the guest resumes
//! after it.
use crate::arch::frame::GuestRegs;
use aarch64_cpu::registers::{Readable, SCTLR_EL1};
use porwatch_monitor::esr::DataAbort;

/// SCTLR_EL1.EE (bit 25): EL1 data accesses are big-endian.
const SCTLR_EE: u64 = 1 << 25;

/// What [`complete`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Completed {
    Read,
    /// The guest's page changed: a shadow built from it is stale.
    Wrote,
    /// Cache maintenance by VA, done on the guest's page.
    CacheMaintenance,
}

/// Completes the access `da` to `pa` (the guest's own page, identity mapped
/// at EL2) and moves the guest past it. None: the CPU did not describe it
/// (ISV = 0: pairs, writeback forms, SIMD), it is misaligned, or the guest
/// runs big-endian; the caller must let it run on the guest's page itself.
pub fn complete(regs: &mut GuestRegs, da: &DataAbort, pa: u64) -> Option<Completed> {
    if da.cm() {
        // Clean and invalidate, whatever was asked: no data is lost;
        // porwatch keeps its shadows' caches itself.
        unsafe { core::arch::asm!("dc civac, {}", "dsb ish", in(reg) pa, options(nostack)) };
        regs.elr += 4;
        return Some(Completed::CacheMaintenance);
    }
    let little = SCTLR_EL1.get() & SCTLR_EE == 0;
    let acc = da.access().filter(|a| little && pa.is_multiple_of(u64::from(a.size)))?;
    if da.wnr() {
        let v = if acc.srt == 31 { 0 } else { regs.get(acc.srt) };
        if acc.acquire_release {
            unsafe { core::arch::asm!("dmb ish", options(nostack)) };
        }
        // SAFETY: guest RAM, identity mapped at EL2, aligned.
        unsafe {
            match acc.size {
                1 => core::ptr::write_volatile(pa as *mut u8, v as u8),
                2 => core::ptr::write_volatile(pa as *mut u16, v as u16),
                4 => core::ptr::write_volatile(pa as *mut u32, v as u32),
                _ => core::ptr::write_volatile(pa as *mut u64, v),
            }
        }
        regs.elr += 4;
        return Some(Completed::Wrote);
    }
    // SAFETY: as above.
    let raw = unsafe {
        match acc.size {
            1 => core::ptr::read_volatile(pa as *const u8) as u64,
            2 => core::ptr::read_volatile(pa as *const u16) as u64,
            4 => core::ptr::read_volatile(pa as *const u32) as u64,
            _ => core::ptr::read_volatile(pa as *const u64),
        }
    };
    if acc.acquire_release {
        unsafe { core::arch::asm!("dmb ish", options(nostack)) };
    }
    let bits = 8 * u32::from(acc.size);
    let mut v = if acc.sign_extend && bits < 64 {
        (((raw << (64 - bits)) as i64) >> (64 - bits)) as u64
    } else {
        raw
    };
    if !acc.sixty_four {
        v &= u64::from(u32::MAX);
    }
    if acc.srt != 31 {
        regs.set(acc.srt, v);
    }
    regs.elr += 4;
    Some(Completed::Read)
}
