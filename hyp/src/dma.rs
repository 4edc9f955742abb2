//! No DMA past stage 2: every device the guest could program to write
//! memory is hidden from it, or put behind an SMMUv3 porwatch runs with the
//! guest's stage 2 (porwatch_monitor::fdt::dma decides which; the SMMU
//! mechanism is arch/smmu.rs). The GICv3 redistributors' LPI registers are
//! guarded too (crate::gicr).
//!
//! At boot (boot.rs), four calls: [`survey`] before the EL2 MMU (it names
//! the device pages hyp must map: the SMMU's, the redistributors'),
//! [`Surveyed::decide`] once they are mapped (probe the SMMU; the tree edits
//! and stage-2 holes follow), [`Plan::start`] once stage 2 exists (trace
//! what is hidden, start the SMMU), and crate::integrity::record. While the
//! guest runs, [`poll_if_due`] turns the SMMU's events into `smmu_event`
//! records.
use crate::arch::{smmu, stage2};
use crate::console::{Msg, To};
use crate::gicr;
use crate::take_once::TakeOnce;
use crate::trace_out;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::fdt::dma::{self, Decision, Survey};
use porwatch_monitor::fdt::{rewrite::MAX_REMOVE, Platform, Region};
use porwatch_monitor::smmu::event::{Coalescer, Kind, Run};
use porwatch_monitor::smmu::regs::{self as smmu_regs, Features, Unusable};
use porwatch_trace::{Event, MemKind, SmmuEventType};

static SURVEY: TakeOnce<Survey> = TakeOnce::new(Survey::new());
static DECISION: TakeOnce<Decision<'static>> = TakeOnce::new(Decision {
    remove: heapless::Vec::new(),
    drop_props: heapless::Vec::new(),
    hidden: heapless::Vec::new(),
    protected: 0,
});

/// Why boot cannot go on (the message for the console).
pub type Refusal = &'static str;

/// Device pages hyp maps at EL2: the console and trace UARTs, the SMMU's
/// two register pages, the redistributors' trapped pages.
pub type El2Devices = heapless::Vec<Option<u64>, { 4 + gicr::MAX_REDISTRIBUTORS }>;

/// The bus masters of the tree, and the SMMU hyp takes if PCI is behind one.
pub struct Surveyed {
    survey: Result<&'static Survey, Refusal>,
    smmu: Option<usize>,
    redist: Result<&'static [u64], Refusal>,
}

/// Boot, MMU off (plain reads): lists the DMA-capable devices of `dtb` and
/// the GICv3 redistributors of `plat`. Errors wait for [`Surveyed::decide`]
/// (nothing can be printed yet).
pub fn survey(dtb: &'static [u8], plat: &Platform) -> Surveyed {
    let survey = match SURVEY.take() {
        Some(s) => dma::survey(dtb, s).map(|_| &*s).map_err(|_| "cannot list the devices that can do DMA"),
        None => Err("devices surveyed twice"),
    };
    let smmu = survey.as_ref().ok().and_then(|s| s.smmu_for_pci());
    let redist = gicr::find(plat).map_err(|_| "more GICv3 redistributors than porwatch can guard");
    Surveyed { survey, smmu, redist }
}

impl Surveyed {
    /// `uarts` and the device pages this module needs, for the EL2 map.
    pub fn el2_devices(&self, uarts: [Option<u64>; 2]) -> El2Devices {
        let smmu = self.smmu_base().map_or([None, None], |b| [Some(b), Some(b + smmu_regs::PAGE1 as u64)]);
        // gicr::find returns at most MAX_REDISTRIBUTORS pages: all fit.
        uarts
            .into_iter()
            .chain(smmu)
            .chain(self.redist.as_ref().map_or(&[][..], |r| r).iter().map(|&p| Some(p)))
            .collect()
    }

    fn smmu_base(&self) -> Option<u64> {
        let d = &self.survey.as_ref().ok()?.devices[self.smmu?];
        d.regions.first().filter(|r| r.size >= smmu_regs::FRAME_SIZE).map(|r| r.base)
    }

    /// With the device pages mapped: probes the SMMU and decides. An SMMU
    /// that cannot confine devices is said so on the console, set to abort
    /// every transaction, and PCI is hidden too. `trace_uart`: the trace
    /// UART's node, removed from the guest's tree with the hidden devices.
    pub fn decide(self, vtcr: u64, trace_uart: Option<&str>) -> Result<Plan<'_>, Refusal> {
        let survey = self.survey?;
        self.redist?;
        let smmu = self.smmu_base().and_then(|base| {
            let f = smmu::probe(base);
            let usable = smmu_regs::check(&f, smmu::CMDQ_LOG2, smmu::EVTQ_LOG2)
                // The root is not known yet; the real one is checked again
                // in Plan::start().
                .and_then(|_| {
                    porwatch_monitor::smmu::geometry::for_smmu(&f, vtcr, 0, smmu::GUEST_VMID).map(|_| ())
                });
            match usable {
                Ok(()) => Some((base, f)),
                Err(why) => {
                    unusable(base, why);
                    smmu::abort_all(base);
                    None
                }
            }
        });
        let d = DECISION.take().ok_or("devices decided twice")?;
        survey.decide(smmu.and(self.smmu), d).map_err(|_| "too many devices to hide from the guest")?;
        let mut holes = heapless::Vec::new();
        for r in d.hidden.iter().copied().chain(gicr::regions()) {
            holes.push(r).map_err(|_| "too many device regions to keep from the guest")?;
        }
        let mut remove = heapless::Vec::new();
        for p in trace_uart.into_iter().chain(d.remove.iter().copied()) {
            remove.push(p).map_err(|_| "too many devices to hide from the guest")?;
        }
        Ok(Plan { decision: d, smmu, holes, remove })
    }
}

fn unusable(base: u64, why: Unusable) {
    Msg::new(To::Console)
        .s("SMMUv3 at ")
        .hex(base)
        .s(" cannot confine DMA (")
        .s(why.text())
        .s("): PCI hidden")
        .end();
}

/// What boot does with the devices.
pub struct Plan<'a> {
    decision: &'static Decision<'static>,
    /// The SMMU to start: register frame base and what it supports.
    smmu: Option<(u64, Features)>,
    holes: heapless::Vec<Region, { stage2::MAX_HOLES - 1 }>,
    remove: heapless::Vec<&'a str, MAX_REMOVE>,
}

impl Plan<'_> {
    /// What stage 2 leaves unmapped besides the trace UART: hidden devices'
    /// regions and the redistributors' trapped pages (not rounded).
    pub fn holes(&self) -> &[Region] {
        &self.holes
    }

    /// Nodes to remove from the guest's tree: the trace UART, the hidden
    /// devices.
    pub fn removals(&self) -> &[&str] {
        &self.remove
    }

    /// Properties to remove from kept nodes (a PCIe bridge's `iommu-map`).
    pub fn dropped_props(&self) -> &[(&'static str, &'static str)] {
        &self.decision.drop_props
    }

    /// Once stage 2 exists (`vtcr`, its root table): traces what the guest
    /// cannot reach (page-rounded, merged) and what porwatch emulates, and
    /// starts the SMMU. PCI is in the guest's tree by now: if the SMMU does
    /// not come up, porwatch refuses to run the guest.
    pub fn start(&self, vtcr: u64, root: u64) -> Result<(), Refusal> {
        let _ = dma::merged(&self.decision.hidden, stage2::PAGE, |s, e| {
            trace_out::emit(Event::MemRegion { base: s, size: e - s, kind: MemKind::HiddenMmio as u64 });
        });
        for r in gicr::regions() {
            trace_out::emit(Event::MemRegion {
                base: r.base,
                size: r.size,
                kind: MemKind::EmulatedMmio as u64,
            });
        }
        let Some((base, f)) = self.smmu else { return Ok(()) };
        match smmu::enable(base, &f, vtcr, root) {
            Ok(()) => {
                let freq = CNTFRQ_EL0.get();
                POLL_TICKS.store((freq / POLLS_PER_SECOND).max(1), Ordering::Relaxed);
                Ok(())
            }
            Err(why) => {
                Msg::new(To::Both).s("SMMUv3 at ").hex(base).s(" did not start: ").s(why.text()).end();
                Err("the SMMU in front of PCI did not start")
            }
        }
    }
}

/// Event queue polls per second of counter time, at most.
const POLLS_PER_SECOND: u64 = 1000;
/// Counter ticks between polls (0: no SMMU).
static POLL_TICKS: AtomicU64 = AtomicU64::new(0);
static NEXT_POLL: AtomicU64 = AtomicU64::new(0);

/// On the trap path: reports the SMMU's events if the last poll is older
/// than a millisecond. Without an SMMU: one load and a branch.
#[inline]
pub fn poll_if_due() {
    let ticks = POLL_TICKS.load(Ordering::Relaxed);
    if ticks == 0 {
        return;
    }
    let now = CNTPCT_EL0.get();
    if now < NEXT_POLL.load(Ordering::Relaxed) {
        return;
    }
    NEXT_POLL.store(now + ticks, Ordering::Relaxed);
    poll();
}

/// Reports every queued SMMU event as `smmu_event` records (runs of
/// per-access faults folded into one).
pub fn poll() {
    let mut runs = Coalescer::new();
    smmu::drain_events(|e| match e {
        None => {
            if let Some(r) = runs.finish() {
                emit(&r);
            }
            trace_out::emit(Event::SmmuEvent {
                sid: 0,
                reason: SmmuEventType::Overflow as u64,
                code: 0,
                addr: 0,
                write: 0,
                count: 1,
                last: 0,
            });
        }
        Some(e) => {
            if let Some(r) = runs.push(e) {
                emit(&r);
            }
        }
    });
    if let Some(r) = runs.finish() {
        emit(&r);
    }
}

fn emit(r: &Run) {
    let e = &r.first;
    trace_out::emit(Event::SmmuEvent {
        sid: u64::from(e.sid),
        reason: event_type(e.kind) as u64,
        code: u64::from(e.code),
        addr: e.addr,
        write: u64::from(e.write),
        count: u64::from(r.count),
        last: r.last_addr,
    });
}

fn event_type(k: Kind) -> SmmuEventType {
    match k {
        Kind::Translation => SmmuEventType::Translation,
        Kind::Permission => SmmuEventType::Permission,
        Kind::AddrSize => SmmuEventType::AddrSize,
        Kind::Access => SmmuEventType::Access,
        Kind::WalkAbort => SmmuEventType::WalkAbort,
        Kind::BadStreamId => SmmuEventType::BadStreamId,
        Kind::BadSte => SmmuEventType::BadSte,
        Kind::SteFetch => SmmuEventType::SteFetch,
        Kind::BadSubstreamId => SmmuEventType::BadSubstreamId,
        Kind::TranslForbidden => SmmuEventType::TranslForbidden,
        Kind::StreamDisabled => SmmuEventType::StreamDisabled,
        Kind::Uut => SmmuEventType::Uut,
        Kind::Other => SmmuEventType::Other,
    }
}
