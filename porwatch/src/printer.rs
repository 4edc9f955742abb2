//! The stateful printer behind [`crate::decode_stream`]: symbolization (with
//! the KASLR offset), the hazard report, `--hazards-only`. It remembers the
//! last [`HISTORY`] `exc_entry` and `por_write` records of each CPU by seq
//! so that a `hazard` record's cause chain (`entry_seq`, `por_seq`: records
//! of the CPU that made the write, in that CPU's numbering) can be shown.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use porwatch_monitor::cmdline::STREAM_FLIGHT_BIT;
use porwatch_trace::{decode_payload, encode_payload, Event, Record, TrapOutcome, MAX_PAYLOAD};

use crate::chain::{self, Cut};
use crate::decode::{Item, Timestamp};
use crate::filter::Filter;
use crate::findings::{Findings, Seen};
use crate::hazard::{self, Entry};
use crate::perfetto::Perfetto;
use crate::stats::DecodeStats;
use crate::symbols::{Symbolizer, Symbols};
use crate::{audit_report, calltrace, json, text};

/// How many `exc_entry` and how many `por_write` records are remembered,
/// per CPU.
pub const HISTORY: usize = 4096;

/// What to show besides the plain record lines.
#[derive(Clone, Debug, Default)]
pub struct ViewOptions {
    /// Symbolize guest code addresses with these symbols.
    pub symbols: Option<Arc<Symbols>>,
    /// KASLR offset (runtime - link address) given by the user; `None`:
    /// automatic (`tap_arm.vbar` - `vectors` when the symbols have
    /// `vectors`, else 0).
    pub kaslr_offset: Option<u64>,
    /// Add `file:line` to symbols in text mode.
    pub verbose: bool,
    /// Print only hazard records and their cause-chain records, UNDEFs
    /// porwatch injected (and problems).
    pub hazards_only: bool,
    /// After the summary, print [`Printer::counts_line`] on stderr.
    pub counts: bool,
    /// Show only the records this filter matches (`--kind`, `--addr`, ...).
    pub filter: Filter,
    /// Write a Chrome Trace Event Format file here at the end (`--perfetto`).
    pub perfetto: Option<PathBuf>,
    /// `porwatch run`'s readable default (text, no `--all`): when the
    /// header says `stream=flight`, show only hazard reports, entry
    /// transitions and findings ([`brief_shows`]); the console and the
    /// summary as always.
    pub brief: bool,
}

/// A remembered record: its payload (re-decoded on demand) and context.
struct Stored {
    payload: Vec<u8>,
    time: Option<Timestamp>,
    /// VBAR_EL1 (latest `tap_arm`) when the record was seen.
    vbar: Option<u64>,
}

/// Prints items as text or JSON lines, keeping the state the views need.
pub struct Printer {
    json: bool,
    hazards_only: bool,
    sym: Option<Symbolizer>,
    /// Link address of `vectors`, when the offset is automatic.
    auto_vectors: Option<u64>,
    /// Latest `tap_arm.vbar`, per CPU.
    vbar: BTreeMap<u32, u64>,
    /// Per CPU, by seq.
    entries: BTreeMap<u32, BTreeMap<u64, Stored>>,
    pors: BTreeMap<u32, BTreeMap<u64, Stored>>,
    /// Highest seq printed, per CPU (with --hazards-only, cause records
    /// print once).
    last_printed: BTreeMap<u32, u64>,
    /// `tables` and `max_tables` of the latest `pt_stats` record.
    pt_tables: Option<(u64, u64)>,
    filter: Filter,
    perfetto: Option<Perfetto>,
    /// The first injected UNDEF's text line (symbolized when seen).
    first_undef: Option<String>,
    /// `call_trace` records by seq, for --hazards-only (printed as causes).
    calls: BTreeMap<u32, BTreeMap<u64, Stored>>,
    /// Hazard sites, call traces and audits (crate::findings).
    findings: Findings,
    /// The header's counter frequency (0: none seen).
    cntfrq: u64,
    /// Per CPU: its latest chain links and `cause_chain` records, for
    /// [`chain::span_of_hazard`].
    recent: BTreeMap<u32, Recent>,
    /// [`ViewOptions::brief`].
    brief: bool,
    /// The header says `porwatch.stream=flight`.
    flight: bool,
    /// Per CPU: records still to come of the chain a `cause_chain` opened.
    block_left: BTreeMap<u32, u64>,
}

/// A CPU's latest chain links (exc_entry, exc_return, por_write) and
/// `cause_chain` records, oldest first.
#[derive(Default)]
struct Recent {
    recs: VecDeque<Kept>,
}

/// A record kept for the chain rule: encoded (one allocation; fields are
/// decoded only for the records the rule visits).
struct Kept {
    cpu: u32,
    kind: &'static str,
    stored: Stored,
}

impl chain::ChainRecord for Kept {
    fn cpu(&self) -> u32 {
        self.cpu
    }
    fn kind(&self) -> &str {
        self.kind
    }
    fn u64_field(&self, name: &str) -> Option<u64> {
        let r = decode_payload(&self.stored.payload).ok()?;
        r.event.fields().find(|(spec, _)| spec.name == name).and_then(|(_, v)| match v {
            porwatch_trace::FieldValue::U64(v) => Some(v),
            _ => None,
        })
    }
}

/// How many records [`Recent`] keeps per CPU (entries and POR writes).
const RECENT: usize = 2 * HISTORY;

/// A hazard's cause chain as the printer shows it.
struct ChainOut {
    /// The chain's records (encoded) and times, oldest first.
    items: Vec<(Vec<u8>, Option<Timestamp>)>,
    cut: Cut,
}

/// What the readable default shows of a flight trace: hazards (with their
/// reports), entry transitions (the exc_entry/por_write/exc_return records
/// streamed outside a cause chain: the chain is in the hazard's report),
/// and findings. Not the chain blocks, call traces (in the report), table
/// roots, counters or boot records.
pub fn brief_shows(kind: &str, in_chain: bool) -> bool {
    match kind {
        "exc_entry" | "por_write" | "exc_return" => !in_chain,
        "hazard" | "coverage_gap" | "unknown_trap" | "audit" | "audit_table" | "audit_stale" | "dropped"
        | "panic" | "smmu_event" | "guest_exit" => true,
        _ => false,
    }
}

/// An `unknown_trap` porwatch answered with an UNDEF: an instruction it
/// could not handle, a guest failure shown even with --hazards-only.
fn is_injected_undef(rec: &Record<'_>) -> bool {
    matches!(rec.event, Event::UnknownTrap { action, .. } if action == TrapOutcome::UndefInjected.code())
}

impl Printer {
    /// A printer; with symbols, says on stderr which ones and which KASLR
    /// offset is in force.
    pub fn new(json: bool, view: &ViewOptions) -> Self {
        let sym = view.symbols.as_ref().map(|s| Symbolizer {
            symbols: s.clone(),
            offset: view.kaslr_offset.unwrap_or(0),
            verbose: view.verbose,
        });
        let auto_vectors = match (&view.symbols, view.kaslr_offset) {
            (Some(s), None) => s.address_of("vectors"),
            _ => None,
        };
        if let Some(s) = &view.symbols {
            let how = match (view.kaslr_offset, auto_vectors) {
                (Some(o), _) => format!("KASLR offset {o:#x} (--kaslr-offset)"),
                (None, Some(_)) => "KASLR offset 0x0 until a tap_arm record gives vbar - vectors".to_string(),
                (None, None) => "KASLR offset 0x0 (no `vectors` symbol)".to_string(),
            };
            eprintln!("porwatch: symbols from {}; {how}", s.description);
        }
        Printer {
            json,
            hazards_only: view.hazards_only,
            sym,
            auto_vectors,
            vbar: BTreeMap::new(),
            entries: BTreeMap::new(),
            pors: BTreeMap::new(),
            last_printed: BTreeMap::new(),
            pt_tables: None,
            filter: view.filter.clone(),
            perfetto: view.perfetto.as_ref().map(|_| Perfetto::new()),
            first_undef: None,
            calls: BTreeMap::new(),
            findings: Findings::default(),
            cntfrq: 0,
            recent: BTreeMap::new(),
            brief: view.brief,
            flight: false,
            block_left: BTreeMap::new(),
        }
    }

    /// The first injected UNDEF seen, as a text record line.
    pub fn first_undef(&self) -> Option<&str> {
        self.first_undef.as_deref()
    }

    /// What the trace found so far: hazard sites, audits.
    pub fn findings(&self) -> &Findings {
        &self.findings
    }

    /// The summary's extra lines (text mode, after the one-line summary):
    /// hazards by site, the last protection audit.
    pub fn summary_lines(&self) -> Vec<String> {
        let sym = self.sym.as_ref();
        let f = &self.findings;
        let mut v = Vec::new();
        if !f.sites.is_empty() {
            let (n, k) = (f.hazards(), f.sites.len());
            v.push(format!(
                "porwatch: {n} hazard{} at {k} site{} (PC and call trace):",
                if n == 1 { "" } else { "s" },
                if k == 1 { "" } else { "s" }
            ));
            for s in &f.sites {
                v.push(format!(
                    "porwatch:   {} x {} (first #{}, last #{})",
                    s.count,
                    calltrace::one_line(s.pc, &s.frames, sym, 3),
                    s.first_seq,
                    s.last_seq
                ));
            }
        }
        if let Some(a) = f.audits.last() {
            let of = if f.audit_count > 1 {
                format!(" (the last of {} audits)", f.audit_count)
            } else {
                String::new()
            };
            v.push(format!("porwatch: {}{of}", audit_report::summary_line(a, sym)));
        }
        v
    }

    /// The summary's extra JSON members: `hazard_sites`, `audits`.
    pub fn summary_json(&self) -> serde_json::Map<String, serde_json::Value> {
        json::findings_members(&self.findings, self.sym.as_ref())
    }

    /// `porwatch: hazards 1; tables tracked 5 (max 7); exception entries 12`
    /// (`tables tracked unknown (no pt_stats)` without a `pt_stats` record).
    pub fn counts_line(&self, stats: &DecodeStats) -> String {
        let tables = match self.pt_tables {
            Some((now, max)) => format!("{now} (max {max})"),
            None => "unknown (no pt_stats)".to_string(),
        };
        let traps = stats.count("trap") + stats.count("unknown_trap");
        let span = stats.first_ts.map_or(0, |f| stats.last_ts.saturating_sub(f));
        let rate = if stats.cntfrq > 0 && span > 0 {
            // Integer arithmetic: traps per second over the trace's time span.
            let per_s = (traps as u128 * stats.cntfrq as u128 / span as u128) as u64;
            let ms = (span as u128 * 1000 / stats.cntfrq as u128) as u64;
            format!(" ({per_s}/s over {ms} ms)")
        } else {
            String::new()
        };
        if self.flight {
            // The entries and traps stayed in the rings: the records here
            // are transitions and chain copies, not a count of either.
            let ring: u64 = stats.per_cpu.values().map(|c| c.flight_events).sum();
            return format!(
                "porwatch: hazards {}; tables tracked {tables}; exception entries and traps in the flight ring \
                 ({ring} ring events; --all counts them)",
                stats.count("hazard")
            );
        }
        format!(
            "porwatch: hazards {}; tables tracked {tables}; exception entries {}; traps {traps}{rate}",
            stats.count("hazard"),
            stats.count("exc_entry")
        )
    }

    /// Writes the `--perfetto` file, if one was asked for.
    pub fn finish(&mut self, view: &ViewOptions) -> io::Result<()> {
        if let (Some(p), Some(path)) = (self.perfetto.take(), &view.perfetto) {
            let f = std::fs::File::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
            p.write(&mut io::BufWriter::new(f))?;
        }
        Ok(())
    }

    /// The symbolizer in force (offset included).
    pub fn symbolizer(&self) -> Option<&Symbolizer> {
        self.sym.as_ref()
    }

    /// Prints one item (a hazard record with its report and, with
    /// --hazards-only, its cause records first).
    pub fn item(&mut self, out: &mut dyn Write, item: &Item<'_>) -> io::Result<()> {
        match *item {
            Item::Record { record, time } => self.record(out, record, time),
            _ if self.json => json::write_item(out, item),
            _ => text::write_item(out, item),
        }
    }

    fn record(&mut self, out: &mut dyn Write, rec: &Record<'_>, time: Option<Timestamp>) -> io::Result<()> {
        match rec.event {
            Event::Header { .. } if rec.seq == 0 => {
                // The hypervisor restarted: seqs start again.
                self.entries.clear();
                self.pors.clear();
                self.last_printed.clear();
                self.vbar.clear();
                self.recent.clear();
                self.block_left.clear();
            }
            Event::TapArm { vbar, .. } => {
                self.vbar.insert(rec.cpu, vbar);
                if let (Some(vectors), Some(sym)) = (self.auto_vectors, self.sym.as_mut()) {
                    let offset = vbar.wrapping_sub(vectors);
                    if offset != sym.offset {
                        sym.offset = offset;
                        eprintln!(
                            "porwatch: KASLR offset {offset:#x} (tap_arm vbar {vbar:#x} - vectors {vectors:#x})"
                        );
                    }
                }
            }
            Event::PtStats { tables, max_tables, .. } => self.pt_tables = Some((tables, max_tables)),
            Event::ExcEntry { .. } => remember(
                self.entries.entry(rec.cpu).or_default(),
                rec,
                time,
                self.vbar.get(&rec.cpu).copied(),
            ),
            Event::PorWrite { .. } => {
                remember(self.pors.entry(rec.cpu).or_default(), rec, time, self.vbar.get(&rec.cpu).copied())
            }
            Event::UnknownTrap { .. } if self.first_undef.is_none() && is_injected_undef(rec) => {
                self.first_undef = Some(text::record_line_with(rec, time, self.sym.as_ref()));
            }
            Event::CallTrace { .. } => {
                remember(self.calls.entry(rec.cpu).or_default(), rec, time, self.vbar.get(&rec.cpu).copied())
            }
            _ => {}
        }
        if let Event::Header { cntfrq, options, .. } = rec.event {
            self.cntfrq = cntfrq;
            self.flight = options >> STREAM_FLIGHT_BIT & 1 != 0;
        }
        let in_chain = self.keep_recent(rec, time);
        let seen = self.findings.observe(rec);
        if let Some(p) = self.perfetto.as_mut() {
            p.record(rec, time, self.sym.as_ref());
        }
        if !self.filter.matches(rec, self.sym.as_ref()) {
            return Ok(());
        }
        let brief = self.brief && self.flight && !self.json;
        if brief && !brief_shows(rec.event.kind_name(), in_chain) {
            return Ok(());
        }
        if let Event::Audit { .. } | Event::AuditTable { .. } | Event::AuditStale { .. } = rec.event {
            // --hazards-only text shows the audit's report, not its records.
            if !(self.hazards_only || brief) || self.json {
                self.print(out, rec, time)?;
            }
            if let (Seen::AuditComplete(i), false) = (seen, self.json) {
                if let Some(a) = self.findings.audits.get(i) {
                    out.write_all(audit_report::report(a, self.sym.as_ref(), self.cntfrq).as_bytes())?;
                }
            }
            return Ok(());
        }
        if let Event::Hazard { entry_seq, por_seq, trace_seq, entry_trace_seq, .. } = rec.event {
            // --hazards-only: one report per site (the summary counts them).
            if self.hazards_only && seen == (Seen::Hazard { first: false }) {
                return Ok(());
            }
            // The cause chain is the hazarding CPU's own.
            let cpu = rec.cpu;
            let entry = self
                .entries
                .get(&cpu)
                .and_then(|m| m.get(&entry_seq))
                .map(|s| (s.payload.clone(), s.time, s.vbar));
            let por = self.pors.get(&cpu).and_then(|m| m.get(&por_seq)).map(|s| (s.payload.clone(), s.time));
            let entry_rec = entry.as_ref().and_then(|(p, t, v)| decode_payload(p).ok().map(|r| (r, *t, *v)));
            let por_rec = por.as_ref().and_then(|(p, t)| decode_payload(p).ok().map(|r| (r, *t)));
            if self.hazards_only {
                let mut causes: Vec<(&Record<'_>, Option<Timestamp>)> = Vec::new();
                if let Some((r, t, _)) = &entry_rec {
                    causes.push((r, *t));
                }
                if let Some((r, t)) = &por_rec {
                    causes.push((r, *t));
                }
                let calls: Vec<(Vec<u8>, Option<Timestamp>)> = [trace_seq, entry_trace_seq]
                    .iter()
                    .filter(|&&s| s != 0)
                    .filter_map(|s| {
                        self.calls.get(&cpu).and_then(|m| m.get(s)).map(|c| (c.payload.clone(), c.time))
                    })
                    .collect();
                let call_recs: Vec<(Record<'_>, Option<Timestamp>)> =
                    calls.iter().filter_map(|(p, t)| decode_payload(p).ok().map(|r| (r, *t))).collect();
                for (r, t) in &call_recs {
                    causes.push((r, *t));
                }
                causes.sort_by_key(|(r, _)| r.seq);
                for (r, t) in causes {
                    if self.last_printed.get(&r.cpu).is_none_or(|&last| r.seq > last) {
                        self.print(out, r, t)?;
                    }
                }
            }
            let chain = self.chain_of(rec);
            if self.json {
                self.last_printed.insert(rec.cpu, rec.seq);
                return write_hazard_json(out, rec, time, self.sym.as_ref(), &chain);
            }
            let e = entry_rec.as_ref().map(|(r, _, v)| Entry { record: r, vbar: *v });
            let p = por_rec.as_ref().map(|(r, _)| r);
            out.write_all(hazard::report(rec, e, p, self.sym.as_ref()).as_bytes())?;
            self.write_chain(out, &chain, entry_seq, por_seq)?;
            let (store, entry) =
                (self.findings.call(cpu, trace_seq), self.findings.call(cpu, entry_trace_seq));
            out.write_all(calltrace::section(store, entry, entry_seq, self.sym.as_ref()).as_bytes())?;
            return self.print(out, rec, time);
        }
        if self.hazards_only && !is_injected_undef(rec) {
            return Ok(());
        }
        self.print(out, rec, time)
    }

    /// Keeps `rec` among its CPU's recent chain links when it is one (or
    /// a `cause_chain`); returns whether it belongs to the chain block a
    /// `cause_chain` opened (or is that record).
    fn keep_recent(&mut self, rec: &Record<'_>, time: Option<Timestamp>) -> bool {
        let is_link =
            matches!(rec.event, Event::ExcEntry { .. } | Event::ExcReturn { .. } | Event::PorWrite { .. });
        let left = self.block_left.entry(rec.cpu).or_default();
        let in_chain = match rec.event {
            Event::CauseChain { events, .. } => {
                *left = events;
                true
            }
            _ if is_link && *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        if is_link || matches!(rec.event, Event::CauseChain { .. }) {
            let mut buf = [0u8; MAX_PAYLOAD];
            if let Some(n) = encode_payload(rec, &mut buf) {
                let r = self.recent.entry(rec.cpu).or_default();
                let stored = Stored { payload: buf.get(..n).unwrap_or(&[]).to_vec(), time, vbar: None };
                r.recs.push_back(Kept { cpu: rec.cpu, kind: rec.event.kind_name(), stored });
                if r.recs.len() > RECENT {
                    r.recs.pop_front();
                }
            }
        }
        in_chain
    }

    /// The hazard `h`'s cause chain (docs/flight.md): in a flight trace the
    /// block its `cause_chain` announced, in a full stream the rule over
    /// the CPU's recent records ([`chain::span_of_hazard`], both).
    fn chain_of(&mut self, h: &Record<'_>) -> ChainOut {
        let mut buf = [0u8; MAX_PAYLOAD];
        let n = encode_payload(h, &mut buf).unwrap_or(0);
        let stored = Stored { payload: buf.get(..n).unwrap_or(&[]).to_vec(), time: None, vbar: None };
        let r = self.recent.entry(h.cpu).or_default();
        r.recs.push_back(Kept { cpu: h.cpu, kind: h.event.kind_name(), stored });
        let recs = r.recs.make_contiguous();
        let span = chain::span_of_hazard(recs, recs.len() - 1);
        r.recs.pop_back();
        let Some(span) = span else { return ChainOut { items: vec![], cut: Cut::History } };
        let header = span.header.and_then(|i| r.recs.get(i));
        let cut = chain::cut_of(span.complete, header);
        let items = span
            .records
            .iter()
            .filter_map(|&i| r.recs.get(i).map(|k| (k.stored.payload.clone(), k.stored.time)))
            .collect();
        ChainOut { items, cut }
    }

    /// The text report's `chain:` section: the hazard's whole cause chain,
    /// when it holds more than the entry and POR write the report names
    /// already, or does not start at the write that took write away (then
    /// it says why).
    fn write_chain(&self, out: &mut dyn Write, c: &ChainOut, entry_seq: u64, por_seq: u64) -> io::Result<()> {
        let chain: Vec<(Record<'_>, Option<Timestamp>)> =
            c.items.iter().filter_map(|(p, t)| decode_payload(p).ok().map(|r| (r, *t))).collect();
        let in_report = chain.iter().all(|(r, _)| r.seq == entry_seq || r.seq == por_seq);
        if (c.cut == Cut::No && in_report) || (c.cut == Cut::History && chain.is_empty()) {
            return Ok(());
        }
        writeln!(out, "  chain:  {} records {}:", chain.len(), cut_text(c.cut))?;
        for (r, t) in &chain {
            writeln!(out, "          {}", text::record_line_with(r, *t, self.sym.as_ref()))?;
        }
        Ok(())
    }

    fn print(&mut self, out: &mut dyn Write, rec: &Record<'_>, time: Option<Timestamp>) -> io::Result<()> {
        self.last_printed.insert(rec.cpu, rec.seq);
        if self.json {
            json::write_record_with(out, rec, time, self.sym.as_ref())
        } else {
            writeln!(out, "{}", text::record_line_with(rec, time, self.sym.as_ref()))
        }
    }
}

/// Why a chain starts where it does, after "chain: N records".
fn cut_text(cut: Cut) -> String {
    match cut {
        Cut::No => "since write was taken away".into(),
        Cut::NeverGranted => {
            "from this CPU's first event (no POR write ever granted write to the pkey)".into()
        }
        Cut::RingWrapped { overwritten: 0 } => {
            "cut where the flight ring had wrapped (it lost nothing unsent: \
             its older events are earlier in this trace)"
                .into()
        }
        Cut::RingWrapped { overwritten } => {
            format!("cut where the flight ring had wrapped ({overwritten} older events were lost unsent)")
        }
        Cut::History => "incomplete: all this trace holds".into(),
    }
}

/// A hazard's JSON line with its `chain` member.
fn write_hazard_json(
    out: &mut dyn Write,
    h: &Record<'_>,
    time: Option<Timestamp>,
    sym: Option<&Symbolizer>,
    c: &ChainOut,
) -> io::Result<()> {
    let records: Vec<(Record<'_>, Option<Timestamp>)> =
        c.items.iter().filter_map(|(p, t)| decode_payload(p).ok().map(|r| (r, *t))).collect();
    let (cut, overwritten) = match c.cut {
        Cut::No => ("none", None),
        Cut::NeverGranted => ("never_granted", None),
        Cut::RingWrapped { overwritten } => ("ring_wrapped", Some(overwritten)),
        Cut::History => ("history", None),
    };
    let chain = json::ChainJson { complete: c.cut == Cut::No, cut, overwritten, records: &records };
    json::write_hazard_with(out, h, time, sym, &chain)
}

fn remember(map: &mut BTreeMap<u64, Stored>, rec: &Record<'_>, time: Option<Timestamp>, vbar: Option<u64>) {
    let mut buf = [0u8; MAX_PAYLOAD];
    let Some(n) = encode_payload(rec, &mut buf) else { return };
    map.insert(rec.seq, Stored { payload: buf.get(..n).unwrap_or(&[]).to_vec(), time, vbar });
    while map.len() > HISTORY {
        map.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn entry(seq: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq,
            ts: seq,
            event: Event::ExcEntry { vector: 5, esr: 0, elr: 0x1010, spsr: 0, far: 0, por: 0x57, depth: 0 },
        }
    }

    fn hazard(seq: u64, entry_seq: u64, por_seq: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq,
            ts: seq,
            event: Event::Hazard {
                va: 0x1000,
                ipa: 0x1000,
                level: 3,
                half: 1,
                old: 1 << 60,
                new: 0,
                pc: 0x1020,
                por: 0x17,
                poindex: 1,
                perm: 1,
                unprivileged: 0,
                entry_seq,
                por_seq,
                action: 0,
                leaf_level: 3,
                pir: 0,
                trace_seq: 0,
                entry_trace_seq: 0,
            },
        }
    }

    fn por(seq: u64, entry_seq: u64) -> Record<'static> {
        Record {
            cpu: 0,
            seq,
            ts: seq,
            event: Event::PorWrite {
                pc: 0x2000,
                reg: 0,
                old: 0x57,
                new: 0x17,
                at_entry: 1,
                entry_seq,
                sampled: 0,
            },
        }
    }

    fn trap(seq: u64) -> Record<'static> {
        Record { cpu: 0, seq, ts: seq, event: Event::Trap { esr: 0x5a00_0000, elr: 0x1004, outcome: 0 } }
    }

    fn print(json: bool, view: &ViewOptions, recs: &[Record<'_>]) -> String {
        let mut p = Printer::new(json, view);
        let mut out = Vec::new();
        for r in recs {
            p.item(&mut out, &Item::Record { record: r, time: None }).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn syms() -> Arc<Symbols> {
        Arc::new(Symbols::from_entries(vec![
            (0x1000, Some(0x40), "pageattr_pte_entry".into()),
            (0x2000, None, "kentry_entry".into()),
            (0x2100, None, "vectors".into()),
            (0x2200, None, "end".into()),
        ]))
    }

    #[test]
    fn text_report_precedes_hazard_line_and_cause_is_found() {
        let recs = [entry(1), por(2, 1), trap(3), hazard(4, 1, 2)];
        let out = print(false, &ViewOptions::default(), &recs);
        let lines: Vec<&str> = out.lines().collect();
        // The report: 7 lines, the 10-line fault decoding, the stale-ESR note.
        assert_eq!(lines.len(), 3 + 7 + 10 + 1 + 1, "{out}");
        assert!(lines[3].starts_with("porwatch: HAZARD:"), "{out}");
        assert!(lines[7].trim() == "Mem abort info:", "{out}");
        assert!(lines[17].contains("#1 exc_entry irq_el1h ESR=0x0"), "{out}");
        assert!(lines[18].contains("ESR not decoded: an IRQ"), "{out}");
        assert!(lines[20].contains("exception-entry code of IRQ #1"), "{out}");
        assert!(lines[21].contains("#4 hazard"), "{out}");
    }

    #[test]
    fn a_longer_chain_is_listed_after_the_report() {
        // The entry whose code took W away (1, 2), then a nested entry (3)
        // and a POR write that does not give W back (4): four links.
        let mut nested = entry(3);
        nested.event = Event::ExcEntry {
            vector: 4,
            esr: 0x5600_0000,
            elr: 0x1030,
            spsr: 0,
            far: 0,
            por: 0x17,
            depth: 0,
        };
        let mut narrow = por(4, 3);
        narrow.event = Event::PorWrite {
            pc: 0x2000,
            reg: 0,
            old: 0x17,
            new: 0x07,
            at_entry: 0,
            entry_seq: 3,
            sampled: 0,
        };
        let recs = [por(0, 0), entry(1), por(2, 1), nested, narrow, hazard(5, 3, 4)];
        let out = print(false, &ViewOptions::default(), &recs);
        let at =
            out.find("  chain:  4 records since write was taken away:").unwrap_or_else(|| panic!("{out}"));
        let lines: Vec<&str> = out[at..].lines().skip(1).take(4).collect();
        for (line, seq) in lines.iter().zip(1..=4) {
            assert!(line.contains(&format!("#{seq} ")), "{seq}: {out}");
        }
        // The seed's shape (entry and POR write only) adds nothing.
        let out = print(false, &ViewOptions::default(), &[entry(1), por(2, 1), hazard(4, 1, 2)]);
        assert!(!out.contains("chain:"), "{out}");
    }

    #[test]
    fn hazards_only_prints_causes_once() {
        let view = ViewOptions { hazards_only: true, ..Default::default() };
        // Hazard 7 is at the same site as 5 (same PC, no call trace): only
        // the first of a site is shown; hazard 9 is at another PC.
        let mut other = hazard(9, 1, 3);
        if let Event::Hazard { ref mut pc, .. } = other.event {
            *pc = 0x1024;
        }
        let recs = [entry(1), trap(2), por(3, 1), trap(4), hazard(5, 1, 3), trap(6), hazard(7, 1, 3), other];
        let out = print(true, &view, &recs);
        let seqs: Vec<u64> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 3, 5, 9]);
        let mut p = Printer::new(false, &view);
        for r in &recs {
            p.item(&mut Vec::new(), &Item::Record { record: r, time: None }).unwrap();
        }
        assert_eq!(
            p.summary_lines(),
            [
                "porwatch: 3 hazards at 2 sites (PC and call trace):",
                "porwatch:   2 x 0x1020 (first #5, last #7)",
                "porwatch:   1 x 0x1024 (first #9, last #9)"
            ]
        );
        // A cause that fell out of the history is named as missing.
        let out = print(false, &view, &[hazard(9, 1, 3)]);
        assert!(out.contains("#1 exc_entry (not in this trace)"), "{out}");
        assert_eq!(out.lines().count(), 8 + 10);
    }

    #[test]
    fn hazards_only_shows_injected_undefs_and_the_first_is_kept() {
        let undef = |seq: u64, action: u64| Record {
            cpu: 0,
            seq,
            ts: seq,
            event: Event::UnknownTrap { esr: 0x6234_d028, elr: 0x1010, far: 0, action },
        };
        let view = ViewOptions {
            hazards_only: true,
            symbols: Some(syms()),
            kaslr_offset: Some(0),
            ..Default::default()
        };
        let recs = [trap(1), undef(2, 3), undef(3, 2), trap(4), undef(5, 2)];
        let mut p = Printer::new(false, &view);
        let mut out = Vec::new();
        for r in &recs {
            p.item(&mut out, &Item::Record { record: r, time: None }).unwrap();
        }
        let out = String::from_utf8(out).unwrap();
        // Only the two UNDEFs (not the abort, not the traps).
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(
            out.lines().all(|l| l.contains("unknown_trap") && l.ends_with("action=undef_injected")),
            "{out}"
        );
        let first = p.first_undef().unwrap();
        assert!(first.contains("#3 unknown_trap"), "{first}");
        assert!(first.contains("esr=0x6234d028 (SYS64"), "{first}");
        assert!(first.contains("elr=0x1010 <pageattr_pte_entry+0x10/0x40>"), "{first}");
    }

    #[test]
    fn history_is_bounded() {
        let mut p = Printer::new(false, &ViewOptions::default());
        let mut out = Vec::new();
        for seq in 0..(HISTORY as u64 + 10) {
            p.item(&mut out, &Item::Record { record: &entry(seq), time: None }).unwrap();
        }
        assert_eq!(p.entries[&0].len(), HISTORY);
        assert_eq!(p.entries[&0].keys().next(), Some(&10));
    }

    /// A hazard's cause chain is looked up among its own CPU's records: the
    /// seqs are per CPU, and another CPU's records with the same numbers
    /// are not its causes.
    #[test]
    fn cause_chain_is_the_hazarding_cpus() {
        let on = |cpu, mut r: Record<'static>| {
            r.cpu = cpu;
            r
        };
        // CPU 0 and CPU 1 both have an entry #1 and a POR write #2; CPU 1's
        // entry is a sync exception (vector 4), CPU 0's an IRQ.
        let mut sync_entry = entry(1);
        if let Event::ExcEntry { ref mut vector, .. } = sync_entry.event {
            *vector = 4;
        }
        let recs = [entry(1), on(1, sync_entry), por(2, 1), on(1, por(2, 1)), on(1, hazard(3, 1, 2))];
        let out = print(false, &ViewOptions::default(), &recs);
        assert!(out.contains("#1 exc_entry sync_el1h"), "{out}");
        assert!(!out.contains("#1 exc_entry irq_el1h"), "{out}");
        assert!(out.contains("cpu1 #3 hazard") || out.contains("#3 hazard"), "{out}");
        // A hazard of CPU 2, which has no records: its causes are missing.
        let out = print(false, &ViewOptions::default(), &[entry(1), por(2, 1), on(2, hazard(3, 1, 2))]);
        assert!(out.contains("#1 exc_entry (not in this trace)"), "{out}");
    }

    #[test]
    fn symbols_and_kaslr_offset() {
        let view = ViewOptions { symbols: Some(syms()), ..Default::default() };
        let tap =
            Record { cpu: 0, seq: 0, ts: 0, event: Event::TapArm { vbar: 0x10_2100, page: 0, mechanism: 0 } };
        let mut h = hazard(1, 0, 0);
        if let Event::Hazard { ref mut pc, .. } = h.event {
            *pc = 0x10_1020;
        }
        let out = print(false, &view, &[tap, h]);
        assert!(out.contains("vbar=0x102100 <vectors+0x0/0x100>"), "{out}");
        assert!(out.contains("pc=0x101020 <pageattr_pte_entry+0x20/0x40>"), "{out}");
        assert!(out.contains("no exception entry before this write"), "{out}");
        let out = print(true, &view, &[tap, h]);
        let v: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(v[0]["vbar_sym"], "vectors+0x0/0x100");
        assert_eq!(v[1]["pc_sym"], "pageattr_pte_entry+0x20/0x40");
        assert!(v[1].get("va_sym").is_none());
        assert_eq!(v.len(), 2, "no report in JSON mode");
        // A user-given offset is kept even with a tap_arm record.
        let view = ViewOptions { symbols: Some(syms()), kaslr_offset: Some(0), ..Default::default() };
        let out = print(false, &view, &[tap, h]);
        assert!(out.contains("vbar=0x102100 "), "{out}");
        assert!(!out.contains('<'), "{out}");
    }

    #[test]
    fn counts_line() {
        let mut p = Printer::new(false, &ViewOptions::default());
        let mut stats = DecodeStats::default();
        assert_eq!(
            p.counts_line(&stats),
            "porwatch: hazards 0; tables tracked unknown (no pt_stats); exception entries 0; traps 0"
        );
        let pt = Record {
            cpu: 0,
            seq: 0,
            ts: 0,
            event: Event::PtStats {
                tables: 5,
                max_tables: 7,
                table_writes: 0,
                stores: 0,
                hazards: 1,
                coverage_gaps: 0,
                roots_dropped: 0,
                roots_released: 0,
                fast_stores: 0,
                mops_steps: 0,
                stepped_stores: 0,
                released_pages: 0,
                leaves_opened: 0,
                overflows: 0,
            },
        };
        p.item(&mut Vec::new(), &Item::Record { record: &pt, time: None }).unwrap();
        stats.per_kind.insert("hazard", 1);
        stats.per_kind.insert("exc_entry", 12);
        assert_eq!(
            p.counts_line(&stats),
            "porwatch: hazards 1; tables tracked 5 (max 7); exception entries 12; traps 0"
        );
        // 30 traps over 0.5 s of a 1 GHz counter.
        stats.per_kind.insert("trap", 20);
        stats.per_kind.insert("unknown_trap", 10);
        stats.cntfrq = 1_000_000_000;
        stats.first_ts = Some(1_000);
        stats.last_ts = 500_001_000;
        assert_eq!(
            p.counts_line(&stats),
            "porwatch: hazards 1; tables tracked 5 (max 7); exception entries 12; traps 30 (60/s over 500 ms)"
        );
        // A flight trace's records are not a count of entries or traps.
        p.flight = true;
        stats.per_cpu.entry(0).or_default().flight_events = 40;
        stats.per_cpu.entry(1).or_default().flight_events = 2;
        assert_eq!(
            p.counts_line(&stats),
            "porwatch: hazards 1; tables tracked 5 (max 7); exception entries and traps in the flight ring \
             (42 ring events; --all counts them)"
        );
    }

    /// A flight trace's header, a chain block of `links` announced by a
    /// `cause_chain`, and the hazard.
    fn flight_hazard(complete: u64, overwritten: u64, wrapped: u64) -> Vec<Record<'static>> {
        let mut header =
            sample::records().into_iter().find(|r| matches!(r.event, Event::Header { .. })).unwrap();
        if let Event::Header { ref mut options, .. } = header.event {
            *options |= 1 << STREAM_FLIGHT_BIT;
        }
        let cc = Record {
            cpu: 0,
            seq: 9,
            ts: 9,
            event: Event::CauseChain { events: 2, first_seq: 1, complete, overwritten, wrapped },
        };
        vec![header, cc, entry(1), por(2, 1), hazard(10, 1, 2)]
    }

    /// Why an incomplete chain starts where it does, in the three flight
    /// cases (the ring wrapped over streamed events only must not read as
    /// "no write ever granted the pkey").
    #[test]
    fn the_chain_section_says_why_a_flight_chain_is_cut() {
        let text = |c, o, w| print(false, &ViewOptions::default(), &flight_hazard(c, o, w));
        assert!(!text(1, 0, 0).contains("chain:"), "complete, and the report names both");
        let never = text(0, 0, 0);
        assert!(
            never.contains("  chain:  2 records from this CPU's first event (no POR write ever granted"),
            "{never}"
        );
        let wrapped = text(0, 0, 1);
        assert!(
            wrapped.contains(
                "  chain:  2 records cut where the flight ring had wrapped (it lost nothing unsent"
            ),
            "{wrapped}"
        );
        assert!(!wrapped.contains("ever granted"), "{wrapped}");
        let lost = text(0, 7, 1);
        assert!(lost.contains("ring had wrapped (7 older events were lost unsent)"), "{lost}");
    }

    /// The JSON hazard line carries its chain: in a flight trace the block
    /// its cause_chain announced, in a full stream the rule's records.
    #[test]
    fn json_hazard_lines_carry_the_chain() {
        let last = |out: String| -> serde_json::Value {
            let l = out.lines().last().unwrap().to_string();
            serde_json::from_str(&l).unwrap()
        };
        let h = last(print(true, &ViewOptions::default(), &flight_hazard(0, 3, 1)));
        assert_eq!(h["event"], "hazard");
        let c = &h["chain"];
        assert_eq!(
            (c["complete"].as_bool(), c["cut"].as_str(), c["overwritten"].as_u64()),
            (Some(false), Some("ring_wrapped"), Some(3))
        );
        let seqs: Vec<u64> =
            c["records"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(c["records"][0]["event"], "exc_entry");
        assert_eq!(c["records"][1]["at_entry"], 1);
        assert!(c["records"][0].get("v").is_none(), "members of the hazard line, not lines");
        // Full stream: entry 1, its POR write 2 (at entry, took W away), a trap.
        let h = last(print(
            true,
            &ViewOptions::default(),
            &[por(0, 0), entry(1), por(2, 1), trap(3), hazard(4, 1, 2)],
        ));
        let c = &h["chain"];
        assert_eq!((c["complete"].as_bool(), c["cut"].as_str()), (Some(true), Some("none")));
        assert!(c.get("overwritten").is_none());
        let seqs: Vec<u64> =
            c["records"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2]);
    }

    /// `porwatch run`'s readable default: in a flight trace, hazards (with
    /// their report) and entry transitions, not the chain block, call
    /// traces, roots or counters; a full stream prints everything.
    #[test]
    fn the_brief_view_shows_reports_transitions_and_findings_of_a_flight_trace() {
        let view = ViewOptions { brief: true, ..Default::default() };
        let mut recs = flight_hazard(1, 0, 0);
        // An entry transition streamed outside any chain, and a pt_root.
        recs.insert(1, Record { seq: 20, ..entry(20) });
        recs.insert(2, por(21, 20));
        recs.insert(
            3,
            Record {
                cpu: 0,
                seq: 22,
                ts: 22,
                event: Event::PtRoot { half: 0, asid: 1, root: 0x1000, tables: 1, evicted: 0, levels: 4 },
            },
        );
        let out = print(false, &view, &recs);
        let lines: Vec<&str> =
            out.lines().filter(|l| l.contains(" #")).filter(|l| !l.starts_with(' ')).collect();
        assert!(lines[0].contains("#20 exc_entry") && lines[1].contains("#21 por_write"), "{out}");
        assert!(!out.contains("header") && !out.contains("pt_root") && !out.contains("cause_chain"), "{out}");
        assert!(
            out.contains("porwatch: HAZARD:") && out.lines().last().unwrap().contains("#10 hazard"),
            "{out}"
        );
        // The chain's records are in the report, not as lines of their own.
        assert!(!out.lines().any(|l| l.contains("#1 exc_entry") && !l.starts_with(' ')), "{out}");
        // Without the flight bit (stream=all) the view prints every record.
        recs[0] = sample::records().into_iter().find(|r| matches!(r.event, Event::Header { .. })).unwrap();
        let all = print(false, &view, &recs);
        assert!(all.contains("pt_root") && all.contains("cause_chain"), "{all}");
    }

    #[test]
    fn plain_output_unchanged_without_options() {
        let recs = sample::records();
        let out = print(false, &ViewOptions::default(), &recs);
        let expected: String = recs.iter().map(|r| format!("{}\n", text::record_line(r, None))).collect();
        assert_eq!(out, expected);
    }
}
