//! Just enough GICv3 for a test kernel to take a PPI (e.g. the EL1 virtual
//! timer) at EL1 through the system-register CPU interface: porwatch leaves
//! the GIC to the guest (no HCR_EL2.IMO, ICC_SRE_EL2.Enable = 1).
use core::arch::asm;
use porwatch_monitor::fdt::platform::{Gic, GicVersion};
use porwatch_monitor::gic::{
    find_redistributor, gicr_affinity, GICR_SGI_FRAME, GICR_WAKER, GICR_WAKER_CHILDREN_ASLEEP,
    GICR_WAKER_PROCESSOR_SLEEP,
};

const GICD_CTLR: usize = 0x0000;
const GICD_CTLR_RWP: u32 = 1 << 31;
/// ARE (single security state) / ARE_NS (Non-secure view).
const GICD_CTLR_ARE: u32 = 1 << 4;
/// EnableGrp1 (single security state) / EnableGrp1A (Non-secure view).
const GICD_CTLR_ENABLE_G1: u32 = 1 << 1;

const GICR_IGROUPR0: usize = 0x0080;
const GICR_ISENABLER0: usize = 0x0100;
const GICR_IPRIORITYR: usize = 0x0400;

/// INTID the CPU interface returns when nothing is pending.
pub const INTID_SPURIOUS: u32 = 1023;

const POLL_LIMIT: u32 = 1_000_000;

fn rd32(a: usize) -> u32 {
    unsafe { (a as *const u32).read_volatile() }
}

fn wr32(a: usize, v: u32) {
    unsafe { (a as *mut u32).write_volatile(v) }
}

fn poll(what: &'static str, mut done: impl FnMut() -> bool) -> Result<(), &'static str> {
    for _ in 0..POLL_LIMIT {
        if done() {
            return Ok(());
        }
    }
    Err(what)
}

/// This CPU's affinity in GICR_TYPER[63:32] layout.
fn my_affinity() -> u32 {
    let m: u64;
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
    gicr_affinity(m)
}

/// The distributor and this CPU's redistributor, initialised.
pub struct GicV3 {
    pub dist: usize,
    /// RD_base of this CPU's redistributor.
    pub redist: usize,
}

impl GicV3 {
    /// Enables Group 1 in the distributor, wakes this CPU's redistributor and
    /// enables the CPU interface (ICC_SRE_EL1.SRE, ICC_PMR_EL1 = 0xff,
    /// ICC_IGRPEN1_EL1 = 1). Interrupts stay masked in PSTATE.
    pub fn init(gic: &Gic) -> Result<Self, &'static str> {
        if gic.version != GicVersion::V3 {
            return Err("not a GICv3");
        }
        let dist = gic.dist.base as usize;
        let redist = find_redistributor(gic, my_affinity(), rd32).ok_or("no redistributor for this CPU")?;

        let ctlr = rd32(dist + GICD_CTLR);
        if ctlr & GICD_CTLR_ARE == 0 {
            wr32(dist + GICD_CTLR, ctlr | GICD_CTLR_ARE);
            poll("GICD_CTLR.RWP", || rd32(dist + GICD_CTLR) & GICD_CTLR_RWP == 0)?;
        }
        let ctlr = rd32(dist + GICD_CTLR);
        wr32(dist + GICD_CTLR, ctlr | GICD_CTLR_ARE | GICD_CTLR_ENABLE_G1);
        poll("GICD_CTLR.RWP", || rd32(dist + GICD_CTLR) & GICD_CTLR_RWP == 0)?;

        let waker = rd32(redist + GICR_WAKER);
        wr32(redist + GICR_WAKER, waker & !GICR_WAKER_PROCESSOR_SLEEP);
        poll("GICR_WAKER.ChildrenAsleep", || rd32(redist + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP == 0)?;

        unsafe {
            // ICC_SRE_EL1 (S3_0_C12_C12_5): SRE = 1 (DFB/DIB kept).
            let sre: u64;
            asm!("mrs {}, s3_0_c12_c12_5", out(reg) sre, options(nomem, nostack));
            asm!("msr s3_0_c12_c12_5, {}", "isb", in(reg) sre | 1, options(nostack));
            // ICC_PMR_EL1 (S3_0_C4_C6_0): let every priority through.
            asm!("msr s3_0_c4_c6_0, {}", in(reg) 0xffu64, options(nostack));
            // ICC_IGRPEN1_EL1 (S3_0_C12_C12_7): Group 1 on.
            asm!("msr s3_0_c12_c12_7, {}", "isb", in(reg) 1u64, options(nostack));
        }
        Ok(GicV3 { dist, redist })
    }

    /// Makes SGI/PPI `intid` (< 32) Group 1 with priority `prio`, and enables it.
    pub fn enable_ppi(&self, intid: u32, prio: u8) {
        assert!(intid < 32, "not an SGI/PPI");
        let sgi = self.redist + GICR_SGI_FRAME;
        let bit = 1u32 << intid;
        wr32(sgi + GICR_IGROUPR0, rd32(sgi + GICR_IGROUPR0) | bit);
        let pri = sgi + GICR_IPRIORITYR + (intid as usize & !3);
        let shift = (intid % 4) * 8;
        let v = (rd32(pri) & !(0xff << shift)) | ((prio as u32) << shift);
        wr32(pri, v);
        wr32(sgi + GICR_ISENABLER0, bit);
    }
}

/// Sends SGI `intid` (< 16) to the CPU with affinity 0.0.0.`aff0` (< 16)
/// (ICC_SGI1R_EL1, S3_0_C12_C11_5: INTID [27:24], TargetList [15:0]).
pub fn send_sgi(intid: u32, aff0: u32) {
    let v = ((intid as u64 & 0xf) << 24) | (1u64 << (aff0 & 0xf));
    unsafe { asm!("dsb ishst", "msr s3_0_c12_c11_5, {}", "isb", in(reg) v, options(nostack)) };
}

/// Acknowledges the highest-priority pending Group 1 interrupt
/// (ICC_IAR1_EL1, S3_0_C12_C12_0); [`INTID_SPURIOUS`] if none.
pub fn ack() -> u32 {
    let v: u64;
    unsafe { asm!("mrs {}, s3_0_c12_c12_0", out(reg) v, options(nostack)) };
    v as u32
}

/// Ends an interrupt (ICC_EOIR1_EL1, S3_0_C12_C12_1: priority drop and
/// deactivation, EOImode 0).
pub fn eoi(intid: u32) {
    unsafe { asm!("msr s3_0_c12_c12_1, {}", "isb", in(reg) intid as u64, options(nostack)) };
}
