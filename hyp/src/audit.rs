//! The protection audit (mechanism; the rules are porwatch_monitor::audit,
//! the user's guide docs/audit.md): which tracked page-table pages could
//! the guest kernel write under its own restrictive POR_EL1?
//!
//! * What it learns from the tap ([`note_overlay`], at each POR_EL1 change
//!   and TCR2_EL1 write): the first restrictive POR_EL1 (one that, with
//!   TCR2_EL1.POE set, denies write to some pkeys and grants it to others)
//!   and the value exception entry installs (an at-entry POR_EL1 write). `porwatch.audit_por=`
//!   overrides both.
//! * When it runs: `first-por`, at the first trap after the guest set a
//!   restrictive POR_EL1 with its MMU on and tables tracked; `every:MS`, at
//!   the first trap after MS have passed since the last audit; `exit`, when
//!   the guest stops. [`run_pending`] is called at the end of every trap
//!   handled in Rust (no lock held there): one load of [`ARMED`] unless a
//!   first-por audit waits or a period is set. The default audits only a
//!   guest that uses overlays, so stock Linux pays that load and nothing
//!   else.
//! * What it does: copies the tracker's table pages into a sorted array,
//!   walks the TTBR1 tree and the installed TTBR0 tree once each (leaves
//!   included), the other tracked TTBR0 trees for their tables' placement
//!   only, then writes an `audit` record and, after it, the unprotected
//!   tables (`audit_table`, at most [`LISTED`]) and the stale-pkey leaves
//!   (`audit_stale`, at most [`STALE_PER_PKEY`] per pkey). Every record is
//!   reliable (waits for room), and the audit record counts what the lists
//!   leave out. The arrays are static (no allocation; the EL2 stack holds
//!   only the walk's five frames).
use crate::arch::regs::{PIRE0_EL1_REG, PIR_EL1_REG, TCR2_EL1_REG};
use crate::boot::config;
use crate::pt::{self, Ram};
use crate::tap;
use crate::trace_out;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTPCT_EL0, SCTLR_EL1, TTBR0_EL1, VBAR_EL1};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use porwatch_monitor::audit::{Audit, AuditRule, Root, StaleList, WalkStats};
use porwatch_monitor::s1::overlay::{write_deny_mask, TCR2_PIE, TCR2_POE};
use porwatch_monitor::s1::{Half, OverlayRegs, Privilege, Ttbr};
use porwatch_monitor::vpoe::Mode;
use porwatch_trace::{AuditStatus, AuditTrigger, Event, PorSource};
use spin::Mutex;

/// `audit_table` records per audit; more unprotected pages are counted only.
pub const LISTED: usize = 128;
/// `audit_stale` records kept per pkey.
pub const STALE_PER_PKEY: usize = 32;
/// Descriptors one audit reads at most (a tracked set of 4096 tables has
/// 2M; the rest bounds tables the tracker does not know).
const BUDGET: u64 = 8 << 20;
/// SCTLR_EL1.M: the guest's stage-1 MMU is on.
const SCTLR_M: u64 = 1 << 0;
/// SCTLR_EL1.WXN (bit 19).
const SCTLR_WXN: u64 = 1 << 19;
const MS_PER_S: u64 = 1000;
/// A write-deny mask with every POIndex (0..=7) set.
const ALL_PKEYS: u8 = 0xff;

/// What the audit knows about the guest's overlays.
#[derive(Clone, Copy)]
struct Learned {
    /// The first restrictive POR_EL1 the guest set.
    first_restrictive: Option<u64>,
    /// The POR_EL1 the latest at-entry write installed (if restrictive).
    at_entry: Option<u64>,
    /// A first-por audit is due (waiting for the MMU and tables).
    first_por_pending: bool,
}

static LEARNED: Mutex<Learned> =
    Mutex::new(Learned { first_restrictive: None, at_entry: None, first_por_pending: false });
/// A first-por audit waits for the MMU and the tables.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Something may be due (PENDING, or a period is set): the trap path's only
/// check otherwise, one load.
static ARMED: AtomicBool = AtomicBool::new(false);
/// The first restrictive POR_EL1 is known: later changes matter only when
/// exception-entry code makes them (one load on every POR_EL1 change).
static SEEN: AtomicBool = AtomicBool::new(false);
/// CNTPCT at the last audit (periodic audits).
static LAST: AtomicU64 = AtomicU64::new(0);

struct Work {
    audit: Audit<{ pt::MAX_TABLES }>,
    stale: StaleList<STALE_PER_PKEY>,
}

static WORK: Mutex<Work> = Mutex::new(Work { audit: Audit::new(), stale: StaleList::new() });

/// Restrictive: some pkey writable (the kernel's own data), some not. A
/// POR_EL1 that grants nothing (0, its reset value) is a transient.
/// `tcr2` as for [`note_overlay`].
pub fn restrictive(por: u64, tcr2: u64) -> bool {
    let tcr2 = if config().poe == Mode::Native { TCR2_EL1_REG.get() } else { tcr2 };
    let regs = OverlayRegs { por_el1: por, tcr2_el1: tcr2, wxn: wxn(), ..OverlayRegs::default() };
    let deny = write_deny_mask(&regs, Privilege::Privileged);
    deny != 0 && deny != ALL_PKEYS
}

/// Whether [`note_overlay`] still wants every POR_EL1 change (it learns
/// until it has seen a restrictive value; then only entry code's).
pub fn learning() -> bool {
    !SEEN.load(Ordering::Relaxed) && config().opts.audit.any() && config().opts.track
}

/// The guest set POR_EL1 to `por` (`at_entry`: exception-entry code did,
/// taking write away from some pkey: `flight::streams_transition`),
/// or wrote TCR2_EL1; `tcr2` is the virtual TCR2_EL1 (native POE reads the
/// register). Called with the tap's lock held: learns, never audits.
pub fn note_overlay(por: u64, tcr2: u64, at_entry: bool) {
    if !at_entry && SEEN.load(Ordering::Relaxed) {
        return;
    }
    let when = config().opts.audit;
    // Without the page-table watch there are no tables to audit.
    if !when.any() || !config().opts.track {
        return;
    }
    if !restrictive(por, tcr2) {
        return;
    }
    let mut l = LEARNED.lock();
    if l.first_restrictive.is_none() {
        l.first_restrictive = Some(por);
        SEEN.store(true, Ordering::Relaxed);
        if when.first_por {
            l.first_por_pending = true;
            PENDING.store(true, Ordering::Relaxed);
            ARMED.store(true, Ordering::Relaxed);
        }
    }
    if at_entry {
        l.at_entry = Some(por);
    }
}

/// At boot, with the page-table watch on: a periodic audit keeps the
/// trap path's check armed.
pub fn init() {
    if config().opts.audit.every_ms != 0 {
        ARMED.store(true, Ordering::Relaxed);
    }
}

/// Runs an audit that is due. Called at the end of every trap handled in
/// Rust, with no lock held.
#[inline]
pub fn run_pending() {
    if !ARMED.load(Ordering::Relaxed) {
        return;
    }
    let pending = PENDING.load(Ordering::Relaxed);
    let every_ms = config().opts.audit.every_ms;
    let periodic = every_ms != 0 && due(every_ms);
    if !pending && !periodic {
        return;
    }
    // Decide under the lock, audit without it (the audit reads the tap's
    // state, whose lock note_overlay's callers hold).
    let (trigger, l) = {
        let mut l = LEARNED.lock();
        // Only a guest running on its tables is audited before it stops.
        let ready = mmu_on() && pt::with_tracker(|t, _| t.stats().tables > 0);
        if l.first_por_pending && ready {
            l.first_por_pending = false;
            PENDING.store(false, Ordering::Relaxed);
            ARMED.store(every_ms != 0, Ordering::Relaxed);
            (Some(AuditTrigger::FirstPor), *l)
        } else if periodic && ready && active(&l) {
            (Some(AuditTrigger::Periodic), *l)
        } else {
            (None, *l)
        }
    };
    if let Some(t) = trigger {
        run(t, &l);
    }
}

/// The guest stops: the exit audit (with the default, only for a guest
/// that used overlays; asked for explicitly, it says so when there is
/// nothing to audit).
pub fn at_exit() {
    let when = config().opts.audit;
    if !when.exit {
        return;
    }
    let l = *LEARNED.lock();
    if active(&l) || when.explicit {
        run(AuditTrigger::Exit, &l);
    }
}

/// The guest used overlays, or the user named the POR to audit against.
fn active(l: &Learned) -> bool {
    l.first_restrictive.is_some() || config().opts.audit_por.is_some()
}

fn due(every_ms: u32) -> bool {
    let period = CNTFRQ_EL0.get() * every_ms as u64 / MS_PER_S;
    CNTPCT_EL0.get().wrapping_sub(LAST.load(Ordering::Relaxed)) >= period
}

fn mmu_on() -> bool {
    SCTLR_EL1.get() & SCTLR_M != 0
}

fn wxn() -> bool {
    SCTLR_EL1.get() & SCTLR_WXN != 0
}

/// The POR_EL1 value to audit against, and where it came from.
fn audit_por(l: &Learned) -> (u64, PorSource) {
    match (config().opts.audit_por, l.at_entry, l.first_restrictive) {
        (Some(p), _, _) => (p, PorSource::Option),
        (None, Some(p), _) => (p, PorSource::AtEntry),
        (None, None, Some(p)) => (p, PorSource::FirstRestrictive),
        (None, None, None) => (0, PorSource::None),
    }
}

/// The overlay state the audit judges by: the guest's, with POR_EL1 the
/// audited value. With `porwatch.audit_por=` the overlay counts as on
/// (what would the tables' pkeys protect?).
fn rule(por: u64) -> AuditRule {
    let tcr2 = match config().poe {
        Mode::Virtual => tap::vpoe_overlay_regs().2,
        Mode::Native => TCR2_EL1_REG.get(),
        Mode::None => 0,
    };
    let tcr2 = if config().opts.audit_por.is_some() { tcr2 | TCR2_POE } else { tcr2 };
    let (pir_el1, pire0_el1) =
        if tcr2 & TCR2_PIE != 0 { (PIR_EL1_REG.get(), PIRE0_EL1_REG.get()) } else { (0, 0) };
    AuditRule::new(OverlayRegs { por_el1: por, por_el0: 0, tcr2_el1: tcr2, pir_el1, pire0_el1, wxn: wxn() })
}

/// What one audit found, for its records.
#[derive(Default)]
struct Found {
    status: Option<AuditStatus>,
    stats: WalkStats,
    va_bits: u64,
}

fn run(trigger: AuditTrigger, l: &Learned) {
    let t0 = CNTPCT_EL0.get();
    let (por, source) = audit_por(l);
    let rule = rule(por);
    let mut w = WORK.lock();
    let w = &mut *w;
    w.audit.clear();
    w.stale.clear();
    let found = if source == PorSource::None || !rule.can_protect() {
        Found { status: Some(AuditStatus::NoOverlays), ..Found::default() }
    } else if !mmu_on() {
        Found { status: Some(AuditStatus::NoTables), ..Found::default() }
    } else {
        walk(w, &rule)
    };
    let t = w.audit.totals();
    let status = found.status.unwrap_or(if t.tables == 0 {
        AuditStatus::NoTables
    } else if found.stats.truncated || t.not_audited > 0 {
        AuditStatus::Incomplete
    } else {
        AuditStatus::Done
    });
    let (stale_leaves, stale_pages) = w.stale.count(t.table_pkeys);
    let listed = (t.unprotected as usize).min(LISTED);
    let stale_listed = w.stale.listed(t.table_pkeys).count();
    trace_out::emit_reliable(Event::Audit {
        trigger: trigger as u64,
        status: status as u64,
        por,
        por_source: source as u64,
        tables: t.tables + t.not_audited,
        unprotected: t.unprotected,
        protected: t.protected,
        unmapped: t.unmapped,
        listed: listed as u64,
        table_pkeys: t.table_pkeys as u64,
        stale_leaves,
        stale_pages,
        stale_listed: stale_listed as u64,
        leaves: found.stats.leaves,
        ticks: CNTPCT_EL0.get().wrapping_sub(t0),
        va_bits: found.va_bits,
        vbar: VBAR_EL1.get(),
    });
    for p in w.audit.pages().iter().filter(|p| p.writable().is_some()).take(LISTED) {
        let Some(a) = p.writable() else { continue };
        let (half, base, reached) = match p.reached() {
            Some((h, va)) => (h, va, 1),
            None => (if p.roots.kernel() { Half::Ttbr1 } else { Half::Ttbr0 }, 0, 0),
        };
        let (first, last) = p.used().unwrap_or((base, base));
        trace_out::emit_reliable(Event::AuditTable {
            ipa: p.ipa,
            level: p.level as i64,
            half: trace_half(half),
            reached,
            base,
            first,
            last,
            alias: a.va,
            alias_level: a.level as i64,
            poindex: a.poindex as u64,
            perm: a.perm as u64,
            aliases: p.aliases as u64,
        });
    }
    for s in w.stale.listed(t.table_pkeys) {
        trace_out::emit_reliable(Event::AuditStale {
            va: s.va,
            ipa: s.oa,
            level: s.level as i64,
            poindex: s.poindex as u64,
            pages: s.pages,
        });
    }
    LAST.store(CNTPCT_EL0.get(), Ordering::Relaxed);
}

/// The walks, under the page-table watch's lock: TTBR1 and the installed
/// TTBR0 with their leaves, the other tracked TTBR0 roots for placement.
fn walk(w: &mut Work, rule: &AuditRule) -> Found {
    let Work { audit, stale } = w;
    pt::with_tracker(|tracker, regime| {
        let mut found = Found::default();
        for t in tracker.tables() {
            audit.add_table(&t);
        }
        if !tracker.stats().complete {
            found.status = Some(AuditStatus::Incomplete);
        }
        let mut budget = BUDGET;
        let mut sink = |s| stale.push(s);
        if let (Ok(l1), Some(root)) = (regime.layout(Half::Ttbr1), tracker.kernel_root()) {
            found.va_bits = l1.ia_bits as u64;
            let r = Root { table: root, layout: &l1, leaves: l1.enabled };
            let st = audit.walk(&Ram, &r, rule, &mut budget, &mut sink);
            found.stats.add(&st);
        }
        if let Ok(l0) = regime.layout(Half::Ttbr0) {
            let installed = Ttbr(TTBR0_EL1.get()).table(&l0);
            for (_, root) in tracker.ttbr0_roots() {
                let r = Root { table: root, layout: &l0, leaves: root == installed && l0.enabled };
                let st = audit.walk(&Ram, &r, rule, &mut budget, &mut sink);
                found.stats.add(&st);
            }
        }
        if found.stats.truncated {
            found.status = Some(AuditStatus::Incomplete);
        }
        found
    })
}

fn trace_half(h: Half) -> u64 {
    match h {
        Half::Ttbr0 => porwatch_trace::Half::Ttbr0 as u64,
        Half::Ttbr1 => porwatch_trace::Half::Ttbr1 as u64,
    }
}
