//! Golden corpus: regression checks of the decoder's output format.
//!
//! `tests/golden/` holds traces recorded from the guest-tests kernels
//! (`seed.pwt`, `exceptions.pwt`, `audit.pwt`: `porwatch run --guest NAME
//! --trace-out`, recorded when the full stream was the default: `--all`
//! now; `seed_flight.pwt` the same with `--hyp-opt stream=flight`, now the
//! default; those are format 2, `exceptions_v3.pwt` is format 3, with
//! batches, recorded with the full stream)
//! and a synthetic one built here with the trace encoder (`synthetic.pwt`:
//! the sample records with garbage, a `dropped` record and a truncated
//! tail), plus what `porwatch decode` prints for each: text (`.txt`, and
//! its stderr `.txt.stderr`), JSON lines (`.jsonl`), the Perfetto export
//! (`.perfetto.json`), and for the seed the symbolized hazard report
//! (`seed.hazards.txt`, `--hazards-only` with `seed.System.map`, text
//! symbols extracted from the seed ELF so the test needs no build product),
//! and for the audit kernel its audit reports and call traces
//! (`audit.hazards.txt`, with `audit.System.map`).
//! Each is compared byte for byte. After an intended output change,
//! regenerate them (and review the diff):
//!
//! ```text
//! PORWATCH_BLESS=1 cargo test -p porwatch --test golden
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use porwatch::sample;
use porwatch_trace::{Event, Record};

const BIN: &str = env!("CARGO_BIN_EXE_porwatch");

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn bless() -> bool {
    std::env::var_os("PORWATCH_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the golden file `name`, or writes it when blessing.
/// Returns a description of the mismatch.
fn check(name: &str, actual: &[u8]) -> Option<String> {
    let path = dir().join(name);
    if bless() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return None;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if expected == actual {
        return None;
    }
    let (e, a) = (String::from_utf8_lossy(&expected), String::from_utf8_lossy(actual));
    let line = e
        .lines()
        .zip(a.lines())
        .position(|(x, y)| x != y)
        .unwrap_or(e.lines().count().min(a.lines().count()));
    Some(format!(
        "tests/golden/{name} differs at line {}:\n  expected: {:?}\n  actual:   {:?}",
        line + 1,
        e.lines().nth(line).unwrap_or("<end>"),
        a.lines().nth(line).unwrap_or("<end>")
    ))
}

/// Runs `porwatch decode ARGS` in the golden directory (relative paths, so
/// stderr names files the same everywhere); returns (status, stdout, stderr).
fn decode(args: &[&str]) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    let o = Command::new(BIN).arg("decode").args(args).current_dir(dir()).output().expect("porwatch runs");
    (o.status.code(), o.stdout, o.stderr)
}

/// The synthetic trace: the sample records with 14 bytes of garbage after
/// the third frame (the sample already has a `dropped` record explaining a
/// gap of 3), and the first half of one more frame as a truncated tail.
fn synthetic_trace() -> Vec<u8> {
    // A format-2 trace (no batches): it must keep decoding as it did.
    let mut recs = sample::records();
    if let Event::Header { ref mut format_version, .. } = recs[0].event {
        *format_version = 2;
    }
    let mut out = sample::encode(&recs[..3]).unwrap();
    out.extend_from_slice(b"\x13garbage\xff\xfe\x00\x01\x02\x00");
    out.extend_from_slice(&sample::encode(&recs[3..]).unwrap());
    let last = recs.last().unwrap().seq;
    let tail = Record {
        cpu: 0,
        seq: last + 1,
        ts: 0x1234_5678,
        event: Event::Trap { esr: 0x5a00_0000, elr: 0x4000_1000, outcome: 0 },
    };
    let frame = sample::encode(&[tail]).unwrap();
    out.extend_from_slice(&frame[..frame.len() / 2]);
    out
}

/// One trace's goldens; `status` is the expected exit status of decode.
fn trace_goldens(stem: &str, status: i32, failures: &mut Vec<String>) {
    let trace = format!("{stem}.pwt");
    let (code, out, err) = decode(&[&trace]);
    if code != Some(status) {
        failures.push(format!("{trace}: text decode exited {code:?}, expected {status}"));
    }
    failures.extend(check(&format!("{stem}.txt"), &out));
    failures.extend(check(&format!("{stem}.txt.stderr"), &err));

    let (code, out, _) = decode(&["--json", &trace]);
    if code != Some(status) {
        failures.push(format!("{trace}: JSON decode exited {code:?}, expected {status}"));
    }
    failures.extend(check(&format!("{stem}.jsonl"), &out));

    let tmp =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("golden-{stem}-{}.json", std::process::id()));
    let (code, _, err) = decode(&["--perfetto", tmp.to_str().unwrap(), &trace]);
    let perfetto = std::fs::read(&tmp)
        .unwrap_or_else(|e| panic!("{trace}: no perfetto file ({e}): {}", String::from_utf8_lossy(&err)));
    let _ = std::fs::remove_file(&tmp);
    if code != Some(status) {
        failures.push(format!("{trace}: perfetto decode exited {code:?}, expected {status}"));
    }
    failures.extend(check(&format!("{stem}.perfetto.json"), &perfetto));
}

#[test]
fn golden_corpus() {
    let synthetic = synthetic_trace();
    let mut failures = Vec::new();
    failures.extend(check("synthetic.pwt", &synthetic));
    trace_goldens("seed", 4, &mut failures);
    // The seed under the flight recorder (docs/flight.md): gaps in seqs,
    // a cause_chain block re-sending older seqs, flight_stats: clean.
    trace_goldens("seed_flight", 4, &mut failures);
    trace_goldens("audit", 4, &mut failures);
    trace_goldens("exceptions", 0, &mut failures);
    // Format 3: the same kernel with its hot records in batch frames.
    trace_goldens("exceptions_v3", 0, &mut failures);
    trace_goldens("synthetic", 3, &mut failures);

    // The symbolized hazard report of the seed.
    let (code, out, err) = decode(&["--symbols", "seed.System.map", "--hazards-only", "seed.pwt"]);
    if code != Some(4) {
        failures.push(format!("seed.pwt --hazards-only: exited {code:?}, expected 4"));
    }
    failures.extend(check("seed.hazards.txt", &out));
    failures.extend(check("seed.hazards.txt.stderr", &err));
    let report = String::from_utf8_lossy(&out);
    assert!(report.contains("<pageattr_pte_entry+0x"), "symbolized: {report}");
    assert!(report.contains("  ESR = 0x000000409600004f"), "{report}");

    // The audit kernel: audit reports, one hazard report per site with its
    // call traces, the sites' counts.
    let (code, out, err) = decode(&["--symbols", "audit.System.map", "--hazards-only", "audit.pwt"]);
    if code != Some(4) {
        failures.push(format!("audit.pwt --hazards-only: exited {code:?}, expected 4"));
    }
    failures.extend(check("audit.hazards.txt", &out));
    failures.extend(check("audit.hazards.txt.stderr", &err));
    let report = String::from_utf8_lossy(&out);
    assert!(report.contains("writable, by what the table maps: fixmap 1, vmemmap 3"), "{report}");
    assert!(report.contains("  Call trace:\n   copy_to_kernel_nofault+0x"), "{report}");

    assert!(
        failures.is_empty(),
        "{}\n(after an intended change: PORWATCH_BLESS=1 cargo test -p porwatch --test golden)",
        failures.join("\n")
    );
}

#[test]
fn golden_corpus_is_small() {
    let total: u64 = std::fs::read_dir(dir()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(total < 300 * 1024, "tests/golden is {total} bytes");
    assert!(Path::new(&dir().join("seed.System.map")).exists());
}
