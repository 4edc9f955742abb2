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
        Item::TruncatedTail { offset, bytes } => {
            let mut o = Obj::start(out, "truncated_tail")?;
            o.num("offset", offset)?;
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
    let kind_name = rec.event.kind_name();
    let mut o = Obj::open(out)?;
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
            (FieldValue::Bytes(b), _) => o.str(spec.name, &String::from_utf8_lossy(b))?,
        }
        if let Some(a) = annotate(kind_name, spec.name, value) {
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
    o.end()
}

/// The final `{"v":1,"event":"summary",...}` line.
pub fn write_summary(out: &mut dyn Write, s: &DecodeStats) -> io::Result<()> {
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
    o.num("panics", s.panics)?;
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
    o.num("bytes", s.bytes)?;
    o.num("clean", s.is_clean())?;
    o.end()
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
                   "corrupt_frames":1,"truncated_tail":false,"unexplained_gaps":0,"panics":0,
                   "guest_exit":{"reason":"test_exit","code":1},
                   "per_cpu":{"0":{"records":1,"exc_entries":0,"hazards":0,"coverage_gaps":0,"hyp_dropped":0,"unexplained_gaps":0},
                              "1":{"records":1,"exc_entries":3,"hazards":1,"coverage_gaps":0,"hyp_dropped":0,"unexplained_gaps":0}},
                   "bytes":40,"clean":false})
        );
    }
}
