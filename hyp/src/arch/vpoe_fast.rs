//! State for the virtual-POE fast path in vectors.S (`lower_sync`).
//!
//! Under virtual POE every guest `MRS/MSR POR_EL1` at EL1 UNDEFs, and the
//! guest's fetch of its EL1h synchronous vector faults to EL2 (the tap). The
//! Rust path for that (save every register, decode ESR, lock the tap, read
//! the instruction, emulate, restore) costs ~270 instructions; vectors.S
//! completes the two common cases itself in ~60, saving only x0-x5: a read
//! of POR_EL1, and a write of the value it already holds (kpkeys code sets
//! the level it is already at). Anything else -- a change of value (it is
//! traced, with the entry-window rule), POR_EL0, an access from EL0, the tap
//! stepping -- goes the full way.
//!
//! The tap publishes what the assembly needs into this per-vCPU block each
//! time it releases its lock (tap.rs, `TapGuard`); only the vCPU itself
//! reads or writes its block, at EL2, never concurrently.
use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

/// Blocks, indexed by MPIDR_EL1.Aff0 (vectors.S: `VPOE_MAX_VCPUS`).
pub const MAX_VCPUS: usize = 8;
/// Guest RAM ranges the assembly checks before it reads the instruction
/// (later ones take the Rust path).
pub const RAM_RANGES: usize = 4;

/// One vCPU's block. Layout shared with vectors.S: offsets asserted below.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
pub struct FastPath {
    /// Non-zero: virtual POE, the tap armed and not stepping.
    pub enabled: u64,
    /// The virtual POR_EL1.
    pub por_el1: u64,
    /// Non-zero: the shadow registers below are valid (the innermost
    /// exception's ELR/SPSR/ESR/FAR_EL1, which the UNDEF overwrote).
    pub shadow_valid: u64,
    pub shadow_elr: u64,
    pub shadow_spsr: u64,
    pub shadow_esr: u64,
    pub shadow_far: u64,
    _pad: u64,
    /// Guest RAM [start, end) (unused: 0, 0).
    pub ram: [(u64, u64); RAM_RANGES],
}

const _: () = {
    assert!(offset_of!(FastPath, enabled) == 0);
    assert!(offset_of!(FastPath, por_el1) == 8);
    assert!(offset_of!(FastPath, shadow_valid) == 16);
    assert!(offset_of!(FastPath, shadow_elr) == 24);
    assert!(offset_of!(FastPath, shadow_spsr) == 32);
    assert!(offset_of!(FastPath, shadow_esr) == 40);
    assert!(offset_of!(FastPath, shadow_far) == 48);
    assert!(offset_of!(FastPath, ram) == 64);
    assert!(size_of::<FastPath>() == 128); // vectors.S: lsl #7
};

impl FastPath {
    const OFF: Self = Self {
        enabled: 0,
        por_el1: 0,
        shadow_valid: 0,
        shadow_elr: 0,
        shadow_spsr: 0,
        shadow_esr: 0,
        shadow_far: 0,
        _pad: 0,
        ram: [(0, 0); RAM_RANGES],
    };
}

/// What the tap publishes.
pub struct Published {
    pub enabled: bool,
    pub por_el1: u64,
    /// (ELR, SPSR, ESR, FAR)_EL1 of the innermost exception, if known.
    pub shadow: Option<(u64, u64, u64, u64)>,
}

#[repr(transparent)]
pub struct Blocks(UnsafeCell<[FastPath; MAX_VCPUS]>);

// SAFETY: block i is only accessed by vCPU i, at EL2, with no preemption.
unsafe impl Sync for Blocks {}

#[unsafe(no_mangle)]
pub static VPOE_FAST: Blocks = Blocks(UnsafeCell::new([FastPath::OFF; MAX_VCPUS]));

fn block(cpu: usize) -> *mut FastPath {
    // SAFETY: in bounds; see Blocks.
    unsafe { (VPOE_FAST.0.get() as *mut FastPath).add(cpu % MAX_VCPUS) }
}

/// Guest RAM for every vCPU's block (boot, before the guest runs).
pub fn set_ram(ranges: &[(u64, u64)]) {
    for cpu in 0..MAX_VCPUS {
        // SAFETY: boot, single-threaded.
        let b = unsafe { &mut *block(cpu) };
        for (slot, r) in b.ram.iter_mut().zip(ranges.iter().chain(core::iter::repeat(&(0, 0)))) {
            *slot = *r;
        }
    }
}

/// Publishes vCPU `cpu`'s tap state for the assembly.
#[inline]
pub fn publish(cpu: usize, p: &Published) {
    // SAFETY: only this vCPU touches its block (see Blocks).
    let b = unsafe { &mut *block(cpu) };
    b.enabled = p.enabled as u64;
    if !p.enabled {
        return; // nothing else is read (e.g. while the tap steps)
    }
    b.por_el1 = p.por_el1;
    match p.shadow {
        Some((elr, spsr, esr, far)) => {
            b.shadow_valid = 1;
            b.shadow_elr = elr;
            b.shadow_spsr = spsr;
            b.shadow_esr = esr;
            b.shadow_far = far;
        }
        None => b.shadow_valid = 0,
    }
}
