//! EL1 exception handling for the test kernels: an exception the test asked
//! for is recorded and the faulting instruction skipped; anything else is a
//! test failure.
use crate::println;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Saved state, as laid out by rt/entry.S.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    _pad: u64,
}

/// Which of the 16 vectors was taken (0..3 current EL SP0, 4..7 SPx, ...).
pub const VECTOR_NAMES: [&str; 16] = [
    "sync/el1t",
    "irq/el1t",
    "fiq/el1t",
    "serror/el1t",
    "sync/el1h",
    "irq/el1h",
    "fiq/el1h",
    "serror/el1h",
    "sync/el0-64",
    "irq/el0-64",
    "fiq/el0-64",
    "serror/el0-64",
    "sync/el0-32",
    "irq/el0-32",
    "fiq/el0-32",
    "serror/el0-32",
];

/// A synchronous exception the test expected.
#[derive(Clone, Copy, Debug)]
pub struct Caught {
    pub vector: u64,
    pub esr: u64,
    pub far: u64,
    pub elr: u64,
}

impl Caught {
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
    /// Data/instruction fault status code.
    pub fn fsc(&self) -> u64 {
        self.esr & 0x3f
    }
}

static EXPECTING: AtomicBool = AtomicBool::new(false);
static CAUGHT: AtomicBool = AtomicBool::new(false);
static C_VECTOR: AtomicU64 = AtomicU64::new(0);
static C_ESR: AtomicU64 = AtomicU64::new(0);
static C_FAR: AtomicU64 = AtomicU64::new(0);
static C_ELR: AtomicU64 = AtomicU64::new(0);

/// Run `f`, which is expected to raise one synchronous exception at EL1;
/// returns what the CPU reported (None if nothing was raised).
pub fn expect_sync(f: impl FnOnce()) -> Option<Caught> {
    CAUGHT.store(false, Ordering::Relaxed);
    EXPECTING.store(true, Ordering::Relaxed);
    f();
    EXPECTING.store(false, Ordering::Relaxed);
    CAUGHT.load(Ordering::Relaxed).then(|| Caught {
        vector: C_VECTOR.load(Ordering::Relaxed),
        esr: C_ESR.load(Ordering::Relaxed),
        far: C_FAR.load(Ordering::Relaxed),
        elr: C_ELR.load(Ordering::Relaxed),
    })
}

#[unsafe(no_mangle)]
extern "C" fn guest_exception(frame: &mut Frame, vector: u64) {
    let sync = vector.is_multiple_of(4);
    if sync && EXPECTING.load(Ordering::Relaxed) && !CAUGHT.load(Ordering::Relaxed) {
        C_VECTOR.store(vector, Ordering::Relaxed);
        C_ESR.store(frame.esr, Ordering::Relaxed);
        C_FAR.store(frame.far, Ordering::Relaxed);
        C_ELR.store(frame.elr, Ordering::Relaxed);
        CAUGHT.store(true, Ordering::Relaxed);
        frame.elr += 4; // skip the faulting instruction
        return;
    }
    println!(
        "guest: unexpected exception {} esr={:#x} elr={:#x} far={:#x}",
        VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    crate::smccc::test_exit(2);
}
