//! State for the fast paths in vectors.S (`lower_sync`): virtual POE, and
//! the tap's single steps.
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
//! The second fast path is the tap's single step: while the tap steps the
//! guest through its vector page (tap.rs), every instruction traps. A step
//! that lands inside the page and not on a vector slot only means "step
//! again": vectors.S sets SPSR_EL2.SS, records the PC (`prev_pc`) and
//! returns, ~25 instructions instead of ~160. A step onto a slot (maybe an
//! exception taken during the step) or out of the page goes to Rust.
//!
//! The tap publishes what the assembly needs into this per-vCPU block each
//! time it releases its lock (tap.rs, `TapGuard`); only the vCPU itself
//! reads or writes its block, at EL2, never concurrently.
use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

/// Blocks, indexed by MPIDR_EL1.Aff0 (vectors.S: `VPOE_MAX_VCPUS`).
pub const MAX_VCPUS: usize = 8;
/// Guest RAM ranges the assembly checks before it reads the instruction
/// (later ones take the Rust path). vectors.S unrolls exactly 4.
pub const RAM_RANGES: usize = 4;
/// log2 of the block size (vectors.S indexes blocks with it).
pub const BLOCK_SHIFT: usize = 8;

/// One vCPU's block. Layout shared with vectors.S (offsets passed to it).
#[derive(Clone, Copy)]
#[repr(C, align(256))]
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
    /// Non-zero: the tap is single-stepping the guest through `step_page`.
    pub stepping: u64,
    /// Guest RAM [start, end) (unused: 0, 0).
    pub ram: [(u64, u64); RAM_RANGES],
    /// The VA page being stepped through.
    pub step_page: u64,
    /// The guest's vector table (VBAR_EL1, bits [10:0] clear).
    pub vbar: u64,
    /// The PC of the last step; written by the assembly, read back by the
    /// tap when it takes its lock.
    pub prev_pc: u64,
}

// vectors.S gets the offsets from Rust (arch/mod.rs); what it assumes
// beyond them: pairs it loads with one LDP, the unrolled RAM check, the
// block stride, and immediates that fit LDR/LDP's scaled offsets.
const _: () = {
    assert!(offset_of!(FastPath, shadow_spsr) == offset_of!(FastPath, shadow_elr) + 8);
    assert!(offset_of!(FastPath, shadow_far) == offset_of!(FastPath, shadow_esr) + 8);
    assert!(RAM_RANGES == 4);
    assert!(size_of::<FastPath>() == 1 << BLOCK_SHIFT);
    assert!(offset_of!(FastPath, prev_pc) < 504);
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
        stepping: 0,
        ram: [(0, 0); RAM_RANGES],
        step_page: 0,
        vbar: 0,
        prev_pc: 0,
    };
}

/// What the tap publishes.
pub struct Published {
    pub enabled: bool,
    pub por_el1: u64,
    /// (ELR, SPSR, ESR, FAR)_EL1 of the innermost exception, if known.
    pub shadow: Option<(u64, u64, u64, u64)>,
    /// Some((page, vbar, prev_pc)) while the tap single-steps.
    pub stepping: Option<(u64, u64, u64)>,
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
    match p.stepping {
        Some((page, vbar, prev_pc)) => {
            b.stepping = 1;
            b.step_page = page;
            b.vbar = vbar;
            b.prev_pc = prev_pc;
        }
        None => b.stepping = 0,
    }
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

/// The PC of the last step the assembly handled for vCPU `cpu` (valid while
/// the tap steps).
#[inline]
pub fn prev_pc(cpu: usize) -> u64 {
    // SAFETY: only this vCPU touches its block (see Blocks).
    unsafe { (*block(cpu)).prev_pc }
}
