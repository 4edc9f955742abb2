//! JSON-lines output (schema version [`JSON_VERSION`]; documented in
//! `docs/trace-format.md`). Members are written in a fixed order.

use std::fmt::Display;
use std::io::{self, Write};

use porwatch_trace::{Event, FieldValue, Hint, Record};

use crate::annotate::{annotate, enum_text, hex_bytes};
use crate::decode::{Item, Timestamp};
use crate::stats::DecodeStats;
use crate::symbols::{is_code_field, Symbolizer};

/// Version of the JSON schema, the `"v"` member of every line.
pub const JSON_VERSION: u32 = 1;

/// Writes one JSON object member by member.
struct Obj<'w> {
    out: &'w mut dyn Write,
    first: bool,
}

impl<'w> Obj<'w> {
    /// Starts an object with `"v"`.
    fn open(out: &'w mut dyn Write) -> io::Result<Self> {
        out.write_all(b"{")?;
        let mut o = Obj { out, first: true };
        o.num("v", JSON_VERSION)?;
        Ok(o)
    }

    /// Starts an object with `"v"` and `"event"`.
    fn start(out: &'w mut dyn Write, event: &str) -> io::Result<Self> {
        let mut o = Self::open(out)?;
        o.str("event", event)?;
        Ok(o)
    }

    fn key(&mut self, k: &str) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        write_json_str(self.out, k)?;
        self.out.write_all(b":")
    }

    fn str(&mut self, k: &str, v: &str) -> io::Result<()> {
        self.key(k)?;
        write_json_str(self.out, v)
    }

    /// A number or literal written as is.
    fn num(&mut self, k: &str, v: impl Display) -> io::Result<()> {
        self.key(k)?;
        write!(self.out, "{v}")
    }

    fn opt_num(&mut self, k: &str, v: Option<impl Display>) -> io::Result<()> {
        match v {
            Some(v) => self.num(k, v),
            None => self.num(k, "null"),
        }
    }

    fn end(self) -> io::Result<()> {
        self.out.write_all(b"}\n")
    }

    /// A member whose value is an object (no `"v"`), filled by `f`.
    fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>) -> io::Result<()>) -> io::Result<()> {
        self.key(k)?;
        self.out.write_all(b"{")?;
        let mut inner = Obj { out: &mut *self.out, first: true };
        f(&mut inner)?;
        self.out.write_all(b"}")
    }
}

fn write_json_str(out: &mut dyn Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(out, s).map_err(io::Error::from)
}

/// Prints one item as a JSON line.
pub fn write_item(out: &mut dyn Write, item: &Item<'_>) -> io::Result<()> {
    match *item {
        Item::Record { record, time } => write_record(out, record, time),
        Item::Corrupt { error, offset } => {
            let mut o = Obj::start(out, "corrupt_frame")?;
            o.str("error", error.code())?;
            if let Some(field) = error.field() {
                o.str("field", field)?;
            }
            o.num("offset", offset)?;
            o.end()
        }
        Item::Text { text, offset } => {
            let mut o = Obj::start(out, "hyp_message")?;
            o.str("text", text)?;
            o.num("offset", offset)?;
            o.end()
        }
        Item::Gap { cpu, expected, got, dropped } => {
            let mut o = Obj::start(out, "seq_gap")?;
            o.num("cpu", cpu)?;
            o.num("expected", expected)?;
            o.num("got", got)?;
            o.opt_num("dropped", dropped)?;
            o.end()
        }
        Item::FlightShort { cpu, streamed, received } => {
            let mut o = Obj::start(out, "flight_short")?;
            o.num("cpu", cpu)?;
            o.num("streamed", streamed)?;
            o.num("received", received)?;
            o.end()
        }
        Item::TruncatedTail { offset, bytes } => {
            let mut o = Obj::start(out, "truncated_tail")?;
            o.num("offset", offset)?;
            o.num("bytes", bytes)?;
            o.end()
        }
        Item::MidStreamHeader { seq, offset } => {
            let mut o = Obj::start(out, "mid_stream_header")?;
            o.num("seq", seq)?;
            o.num("offset", offset)?;
            o.end()
        }
        Item::NoRecords { bytes } => {
            let mut o = Obj::start(out, "no_records")?;
            o.num("bytes", bytes)?;
            o.end()
        }
    }
}

/// `{"v":1,"cpu":N,"seq":N,"ts":TICKS,"time":SECONDS|null,"event":KIND, fields...}`.
pub fn write_record(out: &mut dyn Write, rec: &Record<'_>, time: Option<Timestamp>) -> io::Result<()> {
    write_record_with(out, rec, time, None)
}

/// [`write_record`] with a `"FIELD_sym": "func+0xoff/0xsize"` member after
/// each symbolized code-address field (see [`crate::symbols::is_code_field`]).
pub fn write_record_with(
    out: &mut dyn Write,
    rec: &Record<'_>,
    time: Option<Timestamp>,
    sym: Option<&Symbolizer>,
) -> io::Result<()> {
    let mut o = Obj::open(out)?;
    record_members(&mut o, rec, time, sym)?;
    o.end()
}

/// A hazard's cause chain (crate::chain), the `chain` member of its line.
pub struct ChainJson<'a> {
    /// It starts at the write that took write away.
    pub complete: bool,
    /// Why it starts where it does: `none` (complete), `never_granted`,
    /// `ring_wrapped`, `history` (crate::chain::Cut).
    pub cut: &'a str,
    /// `ring_wrapped`: events the ring lost unsent.
    pub overwritten: Option<u64>,
    /// The chain's records, oldest first.
    pub records: &'a [(Record<'a>, Option<Timestamp>)],
}

/// A hazard record's line, with `"chain":{"complete":B,"cut":S,
/// ["overwritten":N,]"records":[{record members}...]}` after its fields.
pub fn write_hazard_with(
    out: &mut dyn Write,
    rec: &Record<'_>,
    time: Option<Timestamp>,
    sym: Option<&Symbolizer>,
    chain: &ChainJson<'_>,
) -> io::Result<()> {
    let mut o = Obj::open(out)?;
    record_members(&mut o, rec, time, sym)?;
    o.obj("chain", |c| {
        c.num("complete", chain.complete)?;
        c.str("cut", chain.cut)?;
        if let Some(n) = chain.overwritten {
            c.num("overwritten", n)?;
        }
        c.key("records")?;
        c.out.write_all(b"[")?;
        for (i, (r, t)) in chain.records.iter().enumerate() {
            if i > 0 {
                c.out.write_all(b",")?;
            }
            c.out.write_all(b"{")?;
            let mut m = Obj { out: &mut *c.out, first: true };
            record_members(&mut m, r, *t, sym)?;
            c.out.write_all(b"}")?;
        }
        c.out.write_all(b"]")
    })?;
    o.end()
}

/// A record's members: cpu, seq, ts, time, event, its fields (with their
/// annotations and symbols).
fn record_members(
    o: &mut Obj<'_>,
    rec: &Record<'_>,
    time: Option<Timestamp>,
    sym: Option<&Symbolizer>,
) -> io::Result<()> {
    let kind_name = rec.event.kind_name();
    o.num("cpu", rec.cpu)?;
    o.num("seq", rec.seq)?;
    o.num("ts", rec.ts)?;
    o.opt_num("time", time.map(|t| format!("{}.{:06}", t.secs, t.micros)))?;
    o.str("event", kind_name)?;
    if let Event::Unknown { kind, .. } = rec.event {
        o.num("kind", kind)?;
    }
    for (spec, value) in rec.event.fields() {
        match (value, spec.hint) {
            (FieldValue::U64(v), Hint::Hex) => o.str(spec.name, &format!("{v:#x}"))?,
            (FieldValue::U64(v), Hint::Enum(names)) => o.str(spec.name, &enum_text(names, v))?,
            (FieldValue::U64(v), _) => o.num(spec.name, v)?,
            (FieldValue::I64(v), Hint::Hex) => o.str(spec.name, &format!("{v:#x}"))?,
            (FieldValue::I64(v), _) => o.num(spec.name, v)?,
            (FieldValue::Bytes(b), Hint::HexBytes) => o.str(spec.name, &hex_bytes(b))?,
            (FieldValue::Bytes(_), Hint::Addrs) => {
                let addrs: Vec<u64> = value.addrs().collect();
                o.key(spec.name)?;
                let hex: Vec<String> = addrs.iter().map(|a| format!("{a:#x}")).collect();
                serde_json::to_writer(&mut *o.out, &hex).map_err(io::Error::from)?;
                if let Some(sym) = sym {
                    o.key(&format!("{}_sym", spec.name))?;
                    let names: Vec<Option<String>> = addrs.iter().map(|&a| sym.sym(a)).collect();
                    serde_json::to_writer(&mut *o.out, &names).map_err(io::Error::from)?;
                }
            }
            (FieldValue::Bytes(b), _) => o.str(spec.name, &String::from_utf8_lossy(b))?,
        }
        if let Some(a) = annotate(&rec.event, spec.name, value) {
            for (k, v) in &a.json {
                o.str(k, v)?;
            }
        }
        if let (Some(sym), FieldValue::U64(v)) = (sym, value) {
            if is_code_field(kind_name, spec.name) {
                if let Some(t) = sym.sym(v) {
                    o.str(&format!("{}_sym", spec.name), &t)?;
                }
            }
        }
    }
    Ok(())
}

/// How a `porwatch run` ended, for the `run` member of its summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunEnd<'a> {
    /// porwatch run's exit status.
    pub status: i32,
    /// Its name in the exit-status table (`guest`, `timeout`, ...).
    pub outcome: &'a str,
    /// QEMU's exit status, or the signal that ended it (None, None: it did
    /// not start).
    pub qemu_exit: Option<i32>,
    pub qemu_signal: Option<i32>,
    pub timed_out: bool,
    /// The first guest console line naming a kernel panic or Oops.
    pub guest_failure: Option<&'a str>,
    /// Problems of the run the trace does not show (name, text): added to
    /// the summary's `problems`, and `clean` is false with any.
    pub extra_problems: &'a [(&'a str, &'a str)],
}

/// The final `{"v":1,"event":"summary",...}` line.
pub fn write_summary(out: &mut dyn Write, s: &DecodeStats) -> io::Result<()> {
    write_summary_with(out, s, None, &serde_json::Map::new())
}

/// The summary line, with `"run":{...}` (before `clean`) for `porwatch run`
/// and `extra` members at the end (the printer's findings: `hazard_sites`,
/// `audits`).
pub fn write_summary_with(
    out: &mut dyn Write,
    s: &DecodeStats,
    run: Option<&RunEnd<'_>>,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> io::Result<()> {
    let mut o = Obj::start(out, "summary")?;
    o.num("records", s.records)?;
    o.key("kinds")?;
    o.out.write_all(b"{")?;
    for (i, (kind, n)) in s.kinds_in_order().into_iter().enumerate() {
        if i > 0 {
            o.out.write_all(b",")?;
        }
        write_json_str(o.out, kind)?;
        write!(o.out, ":{n}")?;
    }
    o.out.write_all(b"}")?;
    o.key("bytes_per_kind")?;
    o.out.write_all(b"{")?;
    for (i, (kind, n)) in s.bytes_per_kind.iter().enumerate() {
        if i > 0 {
            o.out.write_all(b",")?;
        }
        write_json_str(o.out, kind)?;
        write!(o.out, ":{n}")?;
    }
    o.out.write_all(b"}")?;
    o.num("hyp_dropped", s.hyp_dropped)?;
    o.num("corrupt_frames", s.corrupt_frames)?;
    o.num("truncated_tail", s.truncated_tail)?;
    o.num("unexplained_gaps", s.unexplained_gaps)?;
    o.num("mid_stream_headers", s.mid_stream_headers)?;
    o.num("panics", s.panics)?;
    o.num("undefs_injected", s.undefs_injected)?;
    o.opt_num("first_undef_seq", s.first_undef_seq)?;
    o.num("tables_unwatched", s.tables_unwatched)?;
    o.key("guest_exit")?;
    match &s.guest_exit {
        Some(e) => {
            o.out.write_all(b"{\"reason\":")?;
            write_json_str(o.out, &e.reason_name())?;
            write!(o.out, ",\"code\":{}}}", e.code)?;
        }
        None => o.out.write_all(b"null")?,
    }
    o.key("per_cpu")?;
    o.out.write_all(b"{")?;
    for (i, (cpu, c)) in s.per_cpu.iter().enumerate() {
        if i > 0 {
            o.out.write_all(b",")?;
        }
        write!(
            o.out,
            "\"{cpu}\":{{\"records\":{},\"exc_entries\":{},\"hazards\":{},\"coverage_gaps\":{},\"hyp_dropped\":{},\"unexplained_gaps\":{}}}",
            c.records, c.exc_entries, c.hazards, c.coverage_gaps, c.hyp_dropped, c.unexplained_gaps
        )?;
    }
    o.out.write_all(b"}")?;
    // A flight-recorder trace (docs/flight.md): what the CPUs' rings took.
    let (kept, lost) =
        s.per_cpu.values().fold((0u64, 0u64), |(k, l), c| (k + c.flight_events, l + c.flight_overwritten));
    if kept > 0 {
        o.num("flight_events", kept)?;
        o.num("flight_overwritten", lost)?;
    }
    o.num("bytes", s.bytes)?;
    let run_problems = run.map_or(&[][..], |r| r.extra_problems);
    o.key("problems")?;
    o.out.write_all(b"[")?;
    let names = s.problems().into_iter().map(|p| p.name()).chain(run_problems.iter().map(|(n, _)| *n));
    for (i, name) in names.enumerate() {
        if i > 0 {
            o.out.write_all(b",")?;
        }
        write_json_str(o.out, name)?;
    }
    o.out.write_all(b"]")?;
    o.num("trace_intact", s.trace_intact())?;
    if let Some(r) = run {
        o.key("run")?;
        let mut ro = Obj { out: &mut *o.out, first: true };
        ro.out.write_all(b"{")?;
        ro.num("status", r.status)?;
        ro.str("outcome", r.outcome)?;
        ro.opt_num("qemu_exit", r.qemu_exit)?;
        ro.opt_num("qemu_signal", r.qemu_signal)?;
        ro.num("timed_out", r.timed_out)?;
        ro.key("guest_failure")?;
        match r.guest_failure {
            Some(l) => write_json_str(ro.out, l)?,
            None => ro.out.write_all(b"null")?,
        }
        ro.out.write_all(b"}")?;
    }
    o.num("clean", s.is_clean() && run_problems.is_empty())?;
    for (k, v) in extra {
        o.key(k)?;
        serde_json::to_writer(&mut *o.out, v).map_err(io::Error::from)?;
    }
    o.end()
}

fn hex(v: u64) -> serde_json::Value {
    serde_json::Value::String(format!("{v:#x}"))
}

/// `hazard_sites` (every site: PC, call trace, count, first and last seq)
/// and `audits` (the last ones kept, each with its lists and the region of
/// each table) for the JSON summary; empty members are left out.
pub fn findings_members(
    f: &crate::findings::Findings,
    sym: Option<&Symbolizer>,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{json, Value};
    let syms = |addrs: &[u64]| -> Value { addrs.iter().map(|&a| sym.and_then(|s| s.sym(a))).collect() };
    let mut m = serde_json::Map::new();
    if !f.sites.is_empty() {
        let sites: Vec<Value> = f
            .sites
            .iter()
            .map(|s| {
                let mut v = json!({
                    "pc": hex(s.pc),
                    "frames": s.frames.iter().map(|&a| hex(a)).collect::<Vec<_>>(),
                    "count": s.count,
                    "first_seq": s.first_seq,
                    "last_seq": s.last_seq,
                });
                if sym.is_some() {
                    v["pc_sym"] = syms(&[s.pc])[0].clone();
                    v["frames_sym"] = syms(&s.frames);
                }
                v
            })
            .collect();
        m.insert("hazard_sites".into(), Value::Array(sites));
    }
    if !f.audits.is_empty() {
        let audits: Vec<Value> = f
            .audits
            .iter()
            .map(|a| {
                let layout = crate::audit_report::layout(a, sym);
                let groups: serde_json::Map<String, Value> = crate::audit_report::by_group(a, layout.as_ref())
                    .iter()
                    .map(|(g, ts)| (g.clone(), json!(ts.len())))
                    .collect();
                let tables: Vec<Value> = a
                    .list
                    .iter()
                    .map(|t| {
                        json!({
                            "ipa": hex(t.ipa),
                            "level": t.level,
                            "half": crate::annotate::enum_text(porwatch_trace::HALF_NAMES, t.half),
                            "region": crate::audit_report::group(t, layout.as_ref()),
                            "first": hex(t.first),
                            "last": hex(t.last),
                            "alias": hex(t.alias),
                            "alias_level": t.alias_level,
                            "poindex": t.poindex,
                            "perm": hex(t.perm),
                            "aliases": t.aliases,
                        })
                    })
                    .collect();
                let stale: Vec<Value> = a
                    .stale
                    .iter()
                    .map(|s| json!({"va": hex(s.va), "ipa": hex(s.ipa), "level": s.level, "poindex": s.poindex, "pages": s.pages}))
                    .collect();
                json!({
                    "seq": a.seq,
                    "trigger": a.trigger,
                    "status": a.status,
                    "por": hex(a.por),
                    "por_source": a.por_source,
                    "tables": a.tables,
                    "unprotected": a.unprotected,
                    "protected": a.protected,
                    "unmapped": a.unmapped,
                    "table_pkeys": hex(a.table_pkeys),
                    "stale_pages": a.stale_pages,
                    "by_region": groups,
                    "unprotected_tables": tables,
                    "stale": stale,
                })
            })
            .collect();
        m.insert("audits".into(), Value::Array(audits));
        m.insert("audit_count".into(), json!(f.audit_count));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use crate::stats::{CpuStats, GuestExit};
    use porwatch_trace::DecodeError;
    use serde_json::{json, Value};

    fn to_json(item: &Item<'_>) -> Value {
        let mut v = Vec::new();
        write_item(&mut v, item).unwrap();
        let s = String::from_utf8(v).unwrap();
        assert!(s.ends_with('\n') && s.matches('\n').count() == 1, "{s:?}");
        serde_json::from_str(&s).unwrap()
    }

    fn rec_json(event: Event<'_>, time: Option<Timestamp>) -> Value {
        to_json(&Item::Record { record: &Record { cpu: 0, seq: 3, ts: 99, event }, time })
    }

    #[test]
    fn trap_object() {
        let v = rec_json(
            Event::Trap { esr: 0x5a00_0000, elr: u64::MAX, outcome: 2 },
            Some(Timestamp { secs: 2, micros: 50, cpu: 0 }),
        );
        assert_eq!(
            v,
            json!({"v":1,"event":"trap","cpu":0,"seq":3,"ts":99,"time":2.00005,
                   "esr":"0x5a000000","ec":"HVC64","elr":"0xffffffffffffffff",
                   "outcome":"undef_injected"})
        );
        let v = rec_json(Event::Trap { esr: 0, elr: 0, outcome: 77 }, None);
        assert_eq!(v["time"], Value::Null);
        assert_eq!(v["outcome"], "unknown(77)");
        assert_eq!(v["ec"], "UNKNOWN");
    }

    #[test]
    fn member_order_is_fixed() {
        let mut out = Vec::new();
        write_record(&mut out, &Record { cpu: 5, seq: 1, ts: 2, event: Event::Dropped { count: 4 } }, None)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"v\":1,\"cpu\":5,\"seq\":1,\"ts\":2,\"time\":null,\"event\":\"dropped\",\"count\":4}\n"
        );
    }

    #[test]
    fn every_sample_kind_is_valid_json() {
        for r in sample::records() {
            let v = to_json(&Item::Record { record: &r, time: None });
            assert_eq!(v["event"], r.event.kind_name());
            assert_eq!(v["seq"], r.seq);
            for (spec, _) in r.event.fields() {
                assert!(v.get(spec.name).is_some(), "{} lacks {}", r.event.kind_name(), spec.name);
            }
        }
    }

    #[test]
    fn psci_panic_unknown() {
        let v = rec_json(
            Event::Psci { function: 0x8400_0000, arg0: 0, arg1: 0, arg2: 0, result: 0x10001, conduit: 0 },
            None,
        );
        assert_eq!(v["function"], "0x84000000");
        assert_eq!(v["function_name"], "PSCI_VERSION");
        assert_eq!(v["result"], 0x10001);
        assert!(v.get("result_name").is_none());
        assert_eq!(v["conduit"], "smc");
        let v = rec_json(
            Event::Psci { function: 1, arg0: 0, arg1: 0, arg2: 0, result: i64::MIN, conduit: 1 },
            None,
        );
        assert_eq!(v["result"], i64::MIN);

        let v = rec_json(Event::Panic { message: b"bad \xff \"q\"\n" }, None);
        assert_eq!(v["message"], "bad \u{fffd} \"q\"\n");

        let v = rec_json(Event::Unknown { kind: 0x42, raw: &[0, 0xff] }, None);
        assert_eq!(v["event"], "unknown");
        assert_eq!(v["kind"], 0x42);
        assert_eq!(v["raw"], "00ff");

        let v = rec_json(Event::GuestExit { reason: 0, code: u64::MAX }, None);
        assert_eq!(v["reason"], "system_off");
        assert_eq!(v["code"], u64::MAX);
    }

    #[test]
    fn problem_objects() {
        assert_eq!(
            to_json(&Item::Corrupt { error: DecodeError::Crc, offset: 12 }),
            json!({"v":1,"event":"corrupt_frame","error":"crc","offset":12})
        );
        assert_eq!(
            to_json(&Item::Corrupt { error: DecodeError::Truncated { field: "esr" }, offset: 0 }),
            json!({"v":1,"event":"corrupt_frame","error":"truncated","field":"esr","offset":0})
        );
        assert_eq!(
            to_json(&Item::Gap { cpu: 2, expected: 4, got: 9, dropped: None }),
            json!({"v":1,"event":"seq_gap","cpu":2,"expected":4,"got":9,"dropped":null})
        );
        assert_eq!(
            to_json(&Item::TruncatedTail { offset: 5, bytes: 3 }),
            json!({"v":1,"event":"truncated_tail","offset":5,"bytes":3})
        );
    }

    #[test]
    fn summary_object() {
        let mut s = DecodeStats { records: 2, corrupt_frames: 1, bytes: 40, ..Default::default() };
        s.per_kind.insert("trap", 2);
        s.bytes_per_kind.insert("trap", 36);
        s.guest_exit = Some(GuestExit { reason: 2, code: 1 });
        s.per_cpu.insert(0, CpuStats { records: 1, ..Default::default() });
        s.per_cpu.insert(1, CpuStats { records: 1, exc_entries: 3, hazards: 1, ..Default::default() });
        let mut out = Vec::new();
        write_summary(&mut out, &s).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"v":1,"event":"summary","records":2,"kinds":{"trap":2},"bytes_per_kind":{"trap":36},"hyp_dropped":0,
                   "corrupt_frames":1,"truncated_tail":false,"unexplained_gaps":0,"mid_stream_headers":0,"panics":0,
                   "undefs_injected":0,"first_undef_seq":null,"tables_unwatched":0,
                   "guest_exit":{"reason":"test_exit","code":1},
                   "per_cpu":{"0":{"records":1,"exc_entries":0,"hazards":0,"coverage_gaps":0,"hyp_dropped":0,"unexplained_gaps":0},
                              "1":{"records":1,"exc_entries":3,"hazards":1,"coverage_gaps":0,"hyp_dropped":0,"unexplained_gaps":0}},
                   "bytes":40,"problems":["corrupt_frames"],
                   "trace_intact":false,"clean":false})
        );
        // porwatch run adds how the run ended.
        let s = DecodeStats { corrupt_frames: 0, undefs_injected: 1, first_undef_seq: Some(9), ..s };
        let run = RunEnd {
            status: 81,
            outcome: "guest_undef",
            qemu_exit: Some(0),
            qemu_signal: None,
            timed_out: false,
            guest_failure: Some("Kernel panic - not syncing: x"),
            extra_problems: &[("guest_panic", "guest kernel died")],
        };
        let mut out = Vec::new();
        write_summary_with(&mut out, &s, Some(&run), &serde_json::Map::new()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["problems"], json!(["undef_injected", "guest_panic"]));
        assert_eq!(v["first_undef_seq"], 9);
        assert_eq!(v["trace_intact"], true);
        assert_eq!(
            v["run"],
            json!({"status":81,"outcome":"guest_undef","qemu_exit":0,"qemu_signal":null,"timed_out":false,
                   "guest_failure":"Kernel panic - not syncing: x"})
        );
        assert_eq!(v["clean"], false);
        let text = String::from_utf8(out).unwrap();
        assert!(text.find("\"run\"").unwrap() < text.find("\"clean\"").unwrap(), "{text}");
    }
}
