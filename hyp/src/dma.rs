//! No DMA past stage 2: every device the guest could program to write
//! memory is hidden from it, or put behind an SMMUv3 porwatch runs with the
//! guest's stage 2 (porwatch_monitor::fdt::dma decides which; the SMMU
//! mechanism is arch/smmu.rs).
//!
//! At boot (boot.rs): [`survey`] before the EL2 MMU (it names the SMMU
//! frame hyp must map), [`decide`] once it is mapped (probe the SMMU; the
//! tree edits and stage-2 holes follow), [`start`] once stage 2 exists.
//! While the guest runs, [`poll`] turns the SMMU's events into
//! `smmu_event` records.
use crate::arch::smmu;
use crate::console::{Msg, To};
use crate::take_once::TakeOnce;
use crate::trace_out;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0};
use core::sync::atomic::{AtomicU64, Ordering};
use porwatch_monitor::fdt::dma::{self, Decision, Survey};
use porwatch_monitor::fdt::{FdtError, Region};
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

/// The bus masters of the tree, and the SMMU hyp takes if PCI is behind one.
pub struct Surveyed {
    survey: &'static Survey,
    smmu: Option<usize>,
}

impl Surveyed {
    /// The pages of the SMMU's register frame hyp must map at EL2 (pages 0
    /// and 1: the event queue's index registers are in page 1).
    pub fn smmu_pages(&self) -> [Option<u64>; 2] {
        match self.smmu_base() {
            Some(b) => [Some(b), Some(b + smmu_regs::PAGE1 as u64)],
            None => [None, None],
        }
    }

    fn smmu_base(&self) -> Option<u64> {
        let d = &self.survey.devices[self.smmu?];
        d.regions.first().filter(|r| r.size >= smmu_regs::FRAME_SIZE).map(|r| r.base)
    }
}

/// Lists the DMA-capable devices of `dtb` (MMU off is fine: plain reads).
pub fn survey(dtb: &'static [u8]) -> Result<Surveyed, FdtError> {
    let s = SURVEY.take().ok_or(FdtError::BadEdit)?;
    dma::survey(dtb, s)?;
    let s: &'static Survey = s;
    Ok(Surveyed { survey: s, smmu: s.smmu_for_pci() })
}

/// What boot does with the devices.
pub struct Plan {
    pub decision: &'static Decision<'static>,
    /// The SMMU to start: register frame base and what it supports.
    smmu: Option<(u64, Features)>,
}

/// With the SMMU frame mapped: probes it, and decides. An SMMU that cannot
/// confine devices is said so on the console; PCI is then hidden too.
pub fn decide(s: Surveyed, vtcr: u64) -> Result<Plan, FdtError> {
    let smmu = s.smmu_base().and_then(|base| {
        let f = smmu::probe(base);
        let usable = smmu_regs::check(&f, smmu::CMDQ_LOG2, smmu::EVTQ_LOG2)
            // The root is not known yet; any root in RAM the SMMU addresses
            // is checked again in start().
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
    let d = DECISION.take().ok_or(FdtError::BadEdit)?;
    s.survey.decide(smmu.and(s.smmu), d)?;
    Ok(Plan { decision: d, smmu })
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

impl Plan {
    /// Stage-2 holes (device regions, not rounded).
    pub fn hidden(&self) -> &[Region] {
        &self.decision.hidden
    }

    /// Traces what the guest cannot reach (page-rounded and merged).
    pub fn emit_hidden(&self) {
        let _ = dma::merged(&self.decision.hidden, crate::arch::stage2::PAGE, |s, e| {
            trace_out::emit(Event::MemRegion { base: s, size: e - s, kind: MemKind::HiddenMmio as u64 });
        });
    }

    /// Starts the SMMU with the guest's stage 2 (`vtcr`, VTTBR_EL2 root).
    /// PCI is in the guest's tree by now: if the SMMU does not come up,
    /// porwatch refuses to run the guest (Err, with a message).
    pub fn start(&self, vtcr: u64, root: u64) -> Result<(), ()> {
        let Some((base, f)) = self.smmu else { return Ok(()) };
        match smmu::enable(base, &f, vtcr, root) {
            Ok(()) => {
                let freq = CNTFRQ_EL0.get();
                POLL_TICKS.store((freq / POLLS_PER_SECOND).max(1), Ordering::Relaxed);
                Ok(())
            }
            Err(why) => {
                Msg::new(To::Both).s("SMMUv3 at ").hex(base).s(" did not start: ").s(why.text()).end();
                Err(())
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
