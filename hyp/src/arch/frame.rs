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
    _pad: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 34 * 8);
