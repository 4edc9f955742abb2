//! The Secure side of a GICv3, set up at an EL3 entry with no firmware
//! (Arm FVP direct start, QEMU `secure=on` with porwatch as `-bios`
//! payload), the way TF-A's BL31 leaves it for a Non-secure OS.
//!
//! With two security states (GICD_CTLR.DS = 0) every interrupt comes out of
//! reset in Group 0 (Secure), and the group registers, GICD_CTLR.ARE_S and
//! GICR_WAKER are Secure-only: a Non-secure guest writing them is ignored,
//! so its timer interrupt would never arrive. Before dropping to EL2,
//! porwatch therefore puts every SGI, PPI and SPI in Group 1 Non-secure,
//! enables affinity routing for both states and wakes this CPU's
//! redistributor. The guest enables Group 1 and its interrupts itself.
//!
//! Runs at EL3 with the MMU off (all accesses Secure, Device memory); never
//! panics, and gives up silently (bounded polls) on a GIC that does not
//! answer: the guest then simply gets no interrupts, as before.
use porwatch_monitor::fdt::platform::{Gic, GicVersion};
use porwatch_monitor::gic::{
    find_redistributor, GICR_SGI_FRAME, GICR_WAKER, GICR_WAKER_CHILDREN_ASLEEP, GICR_WAKER_PROCESSOR_SLEEP,
};

const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_IGRPMODR: usize = 0x0d00;
/// GICD_CTLR, Secure view.
const CTLR_ENABLE_GRP0: u32 = 1 << 0;
const CTLR_ENABLE_GRP1NS: u32 = 1 << 1;
const CTLR_ENABLE_GRP1S: u32 = 1 << 2;
const CTLR_ARE_S: u32 = 1 << 4;
const CTLR_ARE_NS: u32 = 1 << 5;
const CTLR_DS: u32 = 1 << 6;
const CTLR_RWP: u32 = 1 << 31;
/// GICD_TYPER.ITLinesNumber: INTIDs up to 32 * (N + 1) - 1.
const TYPER_IT_LINES: u32 = 0x1f;

const GICR_IGROUPR0: usize = 0x0080;
const GICR_IGRPMODR0: usize = 0x0d00;

const POLL_LIMIT: u32 = 1_000_000;

fn rd32(a: usize) -> u32 {
    unsafe { (a as *const u32).read_volatile() }
}

fn wr32(a: usize, v: u32) {
    unsafe { (a as *mut u32).write_volatile(v) }
}

fn poll(mut done: impl FnMut() -> bool) -> bool {
    (0..POLL_LIMIT).any(|_| done())
}

/// Hands every interrupt of `gic` to the Non-secure world (see the module
/// doc): the distributor's SPIs and this CPU's redistributor. `affinity`:
/// this CPU's MPIDR_EL1 in GICR_TYPER[63:32] layout. Nothing is done for a
/// GICv2, or a GICv3 with security disabled (DS = 1: the Non-secure world
/// can do all of this itself).
pub fn hand_to_non_secure(gic: &Gic, affinity: u32) {
    if distributor_to_non_secure(gic) {
        redistributor_to_non_secure(gic, affinity);
    }
}

/// The other CPUs' part (the distributor is shared, done once by the boot
/// CPU): this CPU's redistributor and its SGIs and PPIs.
pub fn redistributor_to_non_secure(gic: &Gic, affinity: u32) {
    if gic.version != GicVersion::V3 || rd32(gic.dist.base as usize + GICD_CTLR) & CTLR_DS != 0 {
        return;
    }
    let Some(rd) = find_redistributor(gic, affinity, rd32) else { return };
    wr32(rd + GICR_WAKER, rd32(rd + GICR_WAKER) & !GICR_WAKER_PROCESSOR_SLEEP);
    if !poll(|| rd32(rd + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP == 0) {
        return;
    }
    wr32(rd + GICR_SGI_FRAME + GICR_IGROUPR0, u32::MAX);
    wr32(rd + GICR_SGI_FRAME + GICR_IGRPMODR0, 0);
}

/// The distributor: every SPI to Group 1 Non-secure, affinity routing for
/// both states. False if there is nothing to do (not a GICv3 with two
/// security states) or it did not answer.
fn distributor_to_non_secure(gic: &Gic) -> bool {
    if gic.version != GicVersion::V3 {
        return false;
    }
    let dist = gic.dist.base as usize;
    let ctlr = rd32(dist + GICD_CTLR);
    if ctlr & CTLR_DS != 0 {
        return false;
    }
    // Group enables off while the routing mode changes.
    wr32(dist + GICD_CTLR, ctlr & !(CTLR_ENABLE_GRP0 | CTLR_ENABLE_GRP1NS | CTLR_ENABLE_GRP1S));
    if !poll(|| rd32(dist + GICD_CTLR) & CTLR_RWP == 0) {
        return false;
    }
    // SPIs: Group 1 Non-secure (IGROUPR = 1, IGRPMODR = 0). Register 0
    // (SGIs/PPIs) is the redistributor's under affinity routing.
    let lines = (rd32(dist + GICD_TYPER) & TYPER_IT_LINES) as usize;
    for n in 1..=lines {
        wr32(dist + GICD_IGROUPR + 4 * n, u32::MAX);
        wr32(dist + GICD_IGRPMODR + 4 * n, 0);
    }
    wr32(dist + GICD_CTLR, CTLR_ARE_S | CTLR_ARE_NS);
    poll(|| rd32(dist + GICD_CTLR) & CTLR_RWP == 0)
}
