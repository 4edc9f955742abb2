//! Shared by the QEMU integration tests: run a guest under porwatch and
//! collect what a user would see (exit status, console, decoded trace).
#![allow(dead_code)]

use porwatch::run::{run, RunArgs};
use porwatch::{decode_all, DecodeStats, OwnedRecord};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where scripts/build put the images. Missing images fail the test: the
/// integration tests must never pass by not running.
pub fn images() -> PathBuf {
    let dir = std::env::var_os("PORWATCH_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/porwatch"));
    assert!(
        dir.join("porwatch-hyp.bin").is_file(),
        "{} has no porwatch-hyp.bin: run scripts/build (scripts/test does)",
        dir.display()
    );
    dir
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Outcome {
    pub status: i32,
    pub timed_out: bool,
    pub console: String,
    /// JSON lines as printed live by `porwatch run --json`.
    pub json: Vec<serde_json::Value>,
    /// The raw trace (--trace-out), decoded again from the file.
    pub records: Vec<OwnedRecord>,
    pub stats: DecodeStats,
    pub raw: Vec<u8>,
}

impl Outcome {
    pub fn of_kind<'a>(&'a self, kind: &'static str) -> impl Iterator<Item = &'a OwnedRecord> + 'a {
        self.records.iter().filter(move |r| r.kind == kind)
    }

    pub fn one(&self, kind: &'static str) -> &OwnedRecord {
        let v: Vec<_> = self.of_kind(kind).collect();
        assert_eq!(v.len(), 1, "expected exactly one {kind} record, got {}:\n{:#?}", v.len(), self.records);
        v[0]
    }
}

pub fn args(guest: &str) -> RunArgs {
    RunArgs {
        guest: guest.to_string(),
        load_addr: 0x4400_0000,
        raw: false,
        trace_out: None,
        all: false,
        json: true,
        qemu: "qemu-system-aarch64".into(),
        timeout: None,
        images: Some(images()),
        append: None,
        hyp_opts: vec![],
        policy: None,
        icount: false,
        smp: 1,
        secure: false,
        trace_via: None,
        linux: None,
        initrd: None,
        verbose: false,
        view: Default::default(),
        qemu_args: vec![],
    }
}

/// [`args`] with `--all` (porwatch.stream=all): for tests that read every
/// exception entry, return, POR write or expected trap, which the default
/// (the flight recorder, docs/flight.md) keeps in porwatch's ring.
pub fn args_all(guest: &str) -> RunArgs {
    RunArgs { all: true, ..args(guest) }
}

/// Runs `a` with the trace saved to a file, JSON on the live output.
pub fn run_guest(mut a: RunArgs) -> Outcome {
    let dir = tempdir();
    let raw_path = dir.join("trace.bin");
    a.trace_out = Some(raw_path.clone());
    a.json = true;
    let trace = Sink::default();
    let console = Sink::default();
    let out =
        run(&a, Box::new(trace.clone()), Box::new(console.clone())).expect("porwatch run failed to start");
    let raw = std::fs::read(&raw_path).unwrap_or_default();
    let (records, stats) = decode_all(&raw);
    let live = String::from_utf8(trace.0.lock().unwrap().clone()).expect("JSON output is UTF-8");
    let json = live
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}")))
        .collect();
    let console = String::from_utf8_lossy(&console.0.lock().unwrap()).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    Outcome { status: out.status, timed_out: out.timed_out, console, json, records, stats, raw }
}

/// Runs `a` as `porwatch run` prints it in text mode (the guest console
/// and the trace lines on one output, then the closing summary), with the
/// trace saved and decoded again: (outcome, that output, records, stats).
pub fn run_text(mut a: RunArgs) -> (porwatch::run::RunOutcome, String, Vec<OwnedRecord>, DecodeStats) {
    let dir = tempdir();
    let raw_path = dir.join("trace.bin");
    a.trace_out = Some(raw_path.clone());
    a.json = false;
    let out = Sink::default();
    let o = run(&a, Box::new(out.clone()), Box::new(out.clone())).expect("porwatch run failed to start");
    let raw = std::fs::read(&raw_path).unwrap_or_default();
    let (records, stats) = decode_all(&raw);
    let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    (o, text, records, stats)
}

/// The trace record lines of `porwatch run`'s text output
/// (`[    0.123456] cpu0 #15 kind ...`; a Linux console line has no `cpuN #`).
pub fn record_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.split_once("] "))
                .and_then(|(_, rest)| rest.strip_prefix("cpu"))
                .and_then(|rest| rest.split_once(' '))
                .is_some_and(|(n, rest)| n.parse::<u32>().is_ok() && rest.starts_with('#'))
        })
        .collect()
}

pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "porwatch-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// ESR exception class.
pub fn ec(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// Sequence numbers start at 0 and have no gaps in a clean run. In a
/// flight-recorder trace (the default) seqs skip what stayed in the ring by
/// design: there every `flight_stats.streamed` must equal the records of
/// its CPU received up to it, and every CPU with records must have one
/// (the last comes at the end of the run, before `guest_exit`).
pub fn assert_consecutive(records: &[OwnedRecord]) {
    let flight = records
        .first()
        .filter(|h| h.kind == "header")
        .and_then(|h| h.get_u64("options"))
        .is_some_and(|o| o >> porwatch_monitor::cmdline::STREAM_FLIGHT_BIT & 1 != 0);
    if flight {
        let mut received = std::collections::BTreeMap::new();
        let mut accounted = std::collections::BTreeSet::new();
        for r in records {
            let n = received.entry(r.cpu).or_insert(0u64);
            *n += 1;
            if r.kind == "flight_stats" {
                assert_eq!(r.get_u64("streamed"), Some(*n), "cpu{} flight_stats: {r:?}", r.cpu);
                accounted.insert(r.cpu);
            }
        }
        let cpus: std::collections::BTreeSet<u32> = received.keys().copied().collect();
        assert_eq!(accounted, cpus, "every CPU with records has a flight_stats");
        return;
    }
    // Each CPU numbers its own records from 0.
    let mut next = std::collections::BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let n = next.entry(r.cpu).or_insert(0u64);
        assert_eq!(r.seq, *n, "record {i} (cpu{}) has seq {}", r.cpu, r.seq);
        *n += 1;
    }
}

/// What the guest reads for ID register `reg`, from the trace alone: the
/// CPU's value `cpu` with every `id_field` record for `reg` applied.
pub fn guest_id_value(records: &[OwnedRecord], reg: porwatch_monitor::sysreg::SysRegId, cpu: u64) -> u64 {
    let mut v = cpu;
    for r in records.iter().filter(|r| r.kind == "id_field") {
        let (id, lsb) = porwatch_monitor::idregs::unpack(r.get_u64("field").unwrap());
        if id != reg {
            continue;
        }
        let width = r.get_u64("width").unwrap();
        let mask = if width >= 64 { u64::MAX } else { ((1u64 << width) - 1) << lsb };
        assert_eq!((v & mask) >> lsb, r.get_u64("cpu").unwrap(), "id_field cpu value: {r:?}");
        v = (v & !mask) | ((r.get_u64("guest").unwrap() << lsb) & mask);
    }
    v
}
