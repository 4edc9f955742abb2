//! Generated parts of `docs/trace-format.md`: the record tables (from the
//! trace crate's event table) and example output (from the real printers).
//! `tests/docs.rs` checks that the document is up to date.

use std::fmt::Write as _;

use porwatch_trace::{Event, Hint, Record, KINDS};

use crate::decode::{decode_stream, DecodeOptions};
use crate::sample;

fn doc_text(lines: &[&str]) -> String {
    let words: Vec<&str> = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
    words.join(" ").replace('|', "\\|")
}

fn shown_as(hint: Hint) -> String {
    match hint {
        Hint::Enum(names) => {
            let vals: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("{i} `{n}`")).collect();
            format!("enum: {}", vals.join(", "))
        }
        h => h.name().to_string(),
    }
}

/// Markdown: an overview table of all kinds, then one field table per kind.
pub fn records_markdown() -> String {
    let mut s = String::new();
    s.push_str("| code | kind | fields |\n|---|---|---|\n");
    for k in KINDS {
        let fields: Vec<&str> = k.fields.iter().map(|f| f.name).collect();
        let _ = writeln!(s, "| `{:#04x}` | `{}` | {} |", k.code, k.name, fields.join(", "));
    }
    for k in KINDS {
        let _ = write!(s, "\n#### `{:#04x}` `{}`\n\n{}\n\n", k.code, k.name, doc_text(k.doc));
        s.push_str("| # | field | type | shown as | meaning |\n|---|---|---|---|---|\n");
        for (i, f) in k.fields.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} |",
                i + 1,
                f.name,
                f.ty.name(),
                shown_as(f.hint),
                doc_text(f.doc)
            );
        }
    }
    s
}

/// The sample trace followed by a corrupted frame, a record after an
/// unexplained sequence gap, and a frame cut off by the end of input: a
/// stream that shows every kind of output line.
pub fn example_stream() -> Vec<u8> {
    let records = sample::records();
    let mut bytes = sample::encode(&records).unwrap_or_default();
    let next = records.last().map_or(0, |r| r.seq + 1);
    let mut bad = sample::encode(&[Record {
        cpu: 0,
        seq: next,
        ts: 2 * sample::CNTFRQ,
        event: Event::Dropped { count: 0 },
    }])
    .unwrap_or_default();
    if let Some(b) = bad.get_mut(2) {
        *b ^= 0x10; // a bit flip: CRC mismatch
    }
    bytes.extend_from_slice(&bad);
    let after_gap = Record {
        cpu: 0,
        seq: next + 2,
        ts: 2 * sample::CNTFRQ + 1234,
        event: Event::Trap { esr: 0x5a00_0000, elr: 0x4020_3000, outcome: 0 },
    };
    bytes.extend(sample::encode(&[after_gap]).unwrap_or_default());
    let cut = sample::encode(&[Record {
        cpu: 0,
        seq: next + 3,
        ts: 3 * sample::CNTFRQ,
        event: Event::Dropped { count: 0 },
    }])
    .unwrap_or_default();
    bytes.extend_from_slice(cut.get(..4).unwrap_or(&[]));
    bytes
}

fn decode_to_string(json: bool) -> String {
    let mut out = Vec::new();
    let opts = DecodeOptions { json, summary: json, ..Default::default() };
    match decode_stream(&example_stream()[..], &mut out, &opts, None) {
        Ok(stats) => {
            let mut s = String::from_utf8_lossy(&out).into_owned();
            if !json {
                let _ = writeln!(s, "{stats}");
            }
            s
        }
        Err(e) => format!("error: {e}\n"),
    }
}

/// `porwatch decode --json` of [`example_stream`].
pub fn json_example() -> String {
    decode_to_string(true)
}

/// `porwatch decode` of [`example_stream`], with the stderr summary last.
pub fn text_example() -> String {
    decode_to_string(false)
}
