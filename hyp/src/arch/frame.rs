//! The guest's registers as vectors.S saves them on every trap.

/// Layout shared with vectors.S (x0..x30 at 0, ELR_EL2 at 248, SPSR_EL2 at 256).
#[repr(C)]
#[derive(Default)]
pub struct GuestRegs {
    pub x: [u64; 31],
    /// Guest PC to return to.
    pub elr: u64,
    /// Guest PSTATE to return with.
    pub spsr: u64,
    /// Padding to 16 bytes; vectors.S's fast paths use it as a scratch
    /// slot (`FRAME_SCRATCH`).
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 34 * 8);

impl GuestRegs {
    /// Reads Xn, where n = 31 is XZR (as in the Rt field of a trapped MSR/MRS).
    #[inline]
    pub fn get(&self, n: u8) -> u64 {
        self.x.get(n as usize).copied().unwrap_or(0)
    }

    /// Writes Xn; writes to XZR (n = 31) are discarded.
    #[inline]
    pub fn set(&mut self, n: u8, v: u64) {
        if let Some(r) = self.x.get_mut(n as usize) {
            *r = v;
        }
    }
}
