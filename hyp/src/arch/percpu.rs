//! The per-CPU block: one per CPU porwatch runs (the guest's vCPU i runs on
//! physical CPU i), reached through TPIDR_EL2, which holds the block's
//! address on its CPU from the moment that CPU enters porwatch's Rust code.
//!
//! Its first member is the fast-path block ([`FastPath`]) so that
//! vectors.S, which only has TPIDR_EL2, reaches it at offset 0. The rest is
//! what the mechanism needs per CPU: the CPU's dense index (the boot CPU is
//! 0, porwatch_monitor::cpus) and MPIDR_EL1, and where its EL2 stack is.
//! Later per-CPU work (a trace ring per CPU, a hardware-breakpoint tap)
//! adds its members here, after `fast`.
//!
//! Ownership: a CPU writes only its own block, at EL2, never concurrently
//! (no preemption at EL2). The exceptions are boot-time set-up (before the
//! CPU runs) and reads of counters for statistics, which tolerate a racy
//! value.
use super::fast_path::FastPath;
use core::cell::UnsafeCell;
use porwatch_monitor::cpus::MAX_CPUS;

/// One CPU's block. Layout: `fast` at offset 0 (vectors.S).
#[repr(C, align(64))]
pub struct PerCpu {
    pub fast: FastPath,
    /// Dense CPU index (0 = boot CPU).
    pub index: u64,
    /// MPIDR_EL1 of this CPU (what the guest reads too: VMPIDR_EL2).
    pub mpidr: u64,
}

const _: () = assert!(core::mem::offset_of!(PerCpu, fast) == 0);

impl PerCpu {
    const NEW: Self = Self { fast: FastPath::OFF, index: 0, mpidr: 0 };
}

#[repr(transparent)]
struct Blocks(UnsafeCell<[PerCpu; MAX_CPUS]>);

// SAFETY: block i is written only by CPU i at EL2 (see the module doc).
unsafe impl Sync for Blocks {}

static BLOCKS: Blocks = Blocks(UnsafeCell::new([PerCpu::NEW; MAX_CPUS]));

/// CPU `cpu`'s block (index clamped into range).
pub fn block(cpu: usize) -> *mut PerCpu {
    // SAFETY: in bounds.
    unsafe { (BLOCKS.0.get() as *mut PerCpu).add(cpu.min(MAX_CPUS - 1)) }
}

/// Makes block `cpu` this CPU's (TPIDR_EL2), recording its index and
/// MPIDR_EL1. Called first thing on each CPU, before anything traces.
pub fn install(cpu: usize, mpidr: u64) {
    let b = block(cpu);
    // SAFETY: this CPU is the only one using block `cpu` (the topology gives
    // each CPU its own index); TPIDR_EL2 is porwatch's own register.
    unsafe {
        (*b).index = cpu as u64;
        (*b).mpidr = mpidr;
        core::arch::asm!("msr tpidr_el2, {}", in(reg) b as u64, options(nomem, nostack));
    }
}

/// This CPU's block (TPIDR_EL2); the boot CPU's before any install.
#[inline]
pub fn current() -> *mut PerCpu {
    let p: u64;
    // SAFETY: reading porwatch's own scratch register.
    unsafe { core::arch::asm!("mrs {}, tpidr_el2", out(reg) p, options(nomem, nostack, preserves_flags)) };
    let base = block(0) as u64;
    let end = base + (MAX_CPUS * core::mem::size_of::<PerCpu>()) as u64;
    if (base..end).contains(&p) {
        p as *mut PerCpu
    } else {
        // Not installed yet (TPIDR_EL2 resets to an UNKNOWN value): only the
        // boot CPU runs Rust before installing its block.
        block(0)
    }
}

/// This CPU's dense index.
#[inline]
pub fn index() -> usize {
    // SAFETY: a read of this CPU's own block.
    unsafe { (*current()).index as usize }
}
