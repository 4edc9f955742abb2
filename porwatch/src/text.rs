//! Human-readable output: one ftrace-like line per record,
//! `[   seconds.micros] cpuN #seq kind  field=value ...` (ftrace-like:
//! timestamp, CPU, event, fields; `[t=TICKS]` and no CPU before a header).

use std::fmt::Write as _;
use std::io::{self, Write};

use porwatch_trace::{Event, FieldValue, Record};

use crate::annotate::{annotate, value_text};
use crate::decode::{Item, Timestamp};
use crate::symbols::{is_code_field, Symbolizer};

/// Prints one item as a line of text.
pub fn write_item(out: &mut dyn Write, item: &Item<'_>) -> io::Result<()> {
    match *item {
        Item::Record { record, time } => writeln!(out, "{}", record_line(record, time)),
        Item::Corrupt { error, offset } => {
            writeln!(out, "[corrupt] frame at byte {offset}: {error}")
        }
        Item::Text { text, .. } => writeln!(out, "{text}"),
        Item::Gap { cpu, expected, got, dropped: Some(count) } => writeln!(
            out,
            "[gap] cpu{cpu} dropped record says {count} lost, but seq went from #{expected} to #{got}"
        ),
        Item::Gap { cpu, expected, got, .. } if got > expected => writeln!(
            out,
            "[gap] cpu{cpu} {} record(s) missing: expected #{expected}, got #{got}",
            got - expected
        ),
        Item::Gap { cpu, expected, got, .. } => {
            writeln!(out, "[gap] cpu{cpu} seq went backwards: expected #{expected}, got #{got}")
        }
        Item::FlightShort { cpu, streamed, received } => {
            writeln!(out, "[gap] cpu{cpu} flight_stats says {streamed} record(s) sent, {received} arrived")
        }
        Item::TruncatedTail { offset, bytes } => {
            writeln!(out, "[truncated] input ended {bytes} bytes into a frame starting at byte {offset}")
        }
        Item::MidStreamHeader { seq, offset } => writeln!(
            out,
            "[header] a header record (#{seq}, frame at byte {offset}) after the first record: \
             a trace restart or a forged header; records after it may not be this run's"
        ),
        Item::NoRecords { bytes } => {
            writeln!(out, "[no records] the input ({bytes} bytes) held no trace record")
        }
    }
}

/// The text line of a record (no newline). Before the first header (no
/// counter frequency known) the time is shown as raw ticks: `[t=12345]`.
pub fn record_line(rec: &Record<'_>, time: Option<Timestamp>) -> String {
    record_line_with(rec, time, None)
}

/// [`record_line`] with code addresses symbolized: `pc=0x440018c4
/// <pageattr_pte_entry+0x38/0xb0>` (see [`crate::symbols::is_code_field`]).
pub fn record_line_with(rec: &Record<'_>, time: Option<Timestamp>, sym: Option<&Symbolizer>) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = match time {
        Some(t) => write!(s, "[{:>5}.{:06}] cpu{}", t.secs, t.micros, t.cpu),
        None => write!(s, "[t={}]", rec.ts),
    };
    let kind_name = rec.event.kind_name();
    let kind = match rec.event {
        Event::Unknown { kind, .. } => format!("unknown({kind:#04x})"),
        _ => kind_name.to_string(),
    };
    let _ = write!(s, " #{} {kind:<12}", rec.seq);
    for (spec, value) in rec.event.fields() {
        if let (Some(sym), porwatch_trace::Hint::Addrs) = (sym, spec.hint) {
            let _ = write!(s, " {}={}", spec.name, crate::annotate::addrs_text(value, |a| sym.text(a)));
            continue;
        }
        let _ = write!(s, " {}={}", spec.name, value_text(spec, value));
        if let Some(a) = annotate(&rec.event, spec.name, value) {
            let _ = write!(s, " ({})", a.text);
        }
        if let (Some(sym), FieldValue::U64(v)) = (sym, value) {
            if is_code_field(kind_name, spec.name) {
                if let Some(t) = sym.text(v) {
                    let _ = write!(s, " {t}");
                }
            }
        }
    }
    s.truncate(s.trim_end().len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;
    use porwatch_trace::DecodeError;

    fn line(item: &Item<'_>) -> String {
        let mut v = Vec::new();
        write_item(&mut v, item).unwrap();
        String::from_utf8(v).unwrap()
    }

    fn rec(event: Event<'_>) -> Record<'_> {
        Record { cpu: 0, seq: 7, ts: 62_500_123, event }
    }

    const T: Option<Timestamp> = Some(Timestamp { secs: 1, micros: 1, cpu: 0 });

    #[test]
    fn trap_line() {
        let r = rec(Event::Trap { esr: 0x5a00_0000, elr: 0x4008_1234, outcome: 0 });
        assert_eq!(
            record_line(&r, T),
            "[    1.000001] cpu0 #7 trap         esr=0x5a000000 (HVC64) elr=0x40081234 outcome=emulated"
        );
        assert_eq!(
            record_line(&r, None),
            "[t=62500123] #7 trap         esr=0x5a000000 (HVC64) elr=0x40081234 outcome=emulated"
        );
    }

    #[test]
    fn annotated_lines() {
        let r = rec(Event::Psci {
            function: 0xc400_0003,
            arg0: 1,
            arg1: 0x4008_0000,
            arg2: 0,
            result: -4,
            conduit: 1,
        });
        let l = record_line(&r, T);
        assert!(l.contains(" psci "), "{l}");
        assert!(l.contains("function=0xc4000003 (CPU_ON)"), "{l}");
        assert!(l.contains("result=-4 (ALREADY_ON)"), "{l}");
        assert!(l.ends_with("conduit=hvc"), "{l}");

        let l = record_line(&rec(Event::Panic { message: b"oops \"x\"" }), T);
        assert!(l.ends_with(r#"panic        message="oops \"x\"""#), "{l}");

        let l = record_line(&rec(Event::GuestExit { reason: 2, code: 3 }), T);
        assert!(l.ends_with("guest_exit   reason=test_exit code=3"), "{l}");

        let l = record_line(&rec(Event::Unknown { kind: 0x42, raw: &[0xab, 0x01] }), T);
        assert!(l.ends_with("#7 unknown(0x42) raw=ab01"), "{l}");
    }

    #[test]
    fn header_line() {
        let recs = sample::records();
        let l = record_line(&recs[0], T);
        assert!(
            l.starts_with(
                "[    1.000001] cpu0 #0 header       format_version=3 cntfrq=62500000 midr=0x410fd083"
            ),
            "{l}"
        );
        assert!(l.contains(" poe_mode=virtual "), "{l}");
        assert!(l.contains(" id_aa64mmfr3=0x10000 "), "{l}");
    }

    #[test]
    fn problem_lines() {
        assert_eq!(
            line(&Item::Corrupt { error: DecodeError::Crc, offset: 40 }),
            "[corrupt] frame at byte 40: CRC mismatch\n"
        );
        assert_eq!(
            line(&Item::Gap { cpu: 1, expected: 5, got: 8, dropped: None }),
            "[gap] cpu1 3 record(s) missing: expected #5, got #8\n"
        );
        assert!(line(&Item::Gap { cpu: 0, expected: 5, got: 2, dropped: None }).contains("backwards"));
        assert!(line(&Item::Gap { cpu: 0, expected: 5, got: 9, dropped: Some(2) }).contains("says 2 lost"));
        assert_eq!(
            line(&Item::TruncatedTail { offset: 100, bytes: 7 }),
            "[truncated] input ended 7 bytes into a frame starting at byte 100\n"
        );
        let l = line(&Item::MidStreamHeader { seq: 0, offset: 77 });
        assert!(
            l.starts_with("[header] a header record (#0, frame at byte 77) after the first record"),
            "{l}"
        );
        assert!(l.contains("forged"), "{l}");
        assert_eq!(
            line(&Item::NoRecords { bytes: 0 }),
            "[no records] the input (0 bytes) held no trace record\n"
        );
    }
}
