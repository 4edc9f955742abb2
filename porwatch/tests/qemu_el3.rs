//! `porwatch run --secure`: porwatch entered at EL3 (QEMU `virt,secure=on`
//! started from a -bios stub, as an Arm FVP starts it), boot.S configures
//! EL3 (and the Secure side of the GIC) and drops to EL2, and the guests run
//! with porwatch answering PSCI and ending the run through semihosting.
//!
//! Under secure=on the second PL011 is Secure-only, so the trace goes to a
//! host file through semihosting (porwatch.trace=semihosting:FILE), which
//! `porwatch run` follows and decodes. Checked: the exit status, the guest's
//! console, QEMU's own interrupt log (`-d int`) showing the exception return
//! from EL3 to EL2, and for the seed kernel the same hazard, with the same
//! cause chain, as in the normal (EL2-entry, trace-UART) run.
mod common;
use common::*;
use porwatch::OwnedRecord;
use std::io::Write;
use std::sync::{Arc, Mutex};

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

/// Runs `guest` with --secure; returns (status, console, QEMU -d int log).
fn run_secure(guest: &str) -> (i32, String, String) {
    let dir = tempdir();
    let log = dir.join("qemu-int.log");
    let mut a = args(guest);
    a.secure = true;
    a.json = false;
    a.trace_out = None;
    a.qemu_args = vec!["-d".into(), "int".into(), "-D".into(), log.display().to_string()];
    let out = Sink::default();
    let o = porwatch::run::run(&a, Box::new(out.clone()), Box::new(out.clone()))
        .expect("porwatch run failed to start");
    assert!(!o.timed_out, "{guest}: timed out");
    let console = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    let int_log = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (o.status, console, int_log)
}

fn assert_entered_at_el3(int_log: &str) {
    let first = int_log.lines().next().unwrap_or("");
    assert!(
        first.starts_with("Exception return from AArch64 EL3 to AArch64 EL2"),
        "the first exception event must be boot.S's ERET from EL3 to EL2; log starts:\n{}",
        int_log.lines().take(10).collect::<Vec<_>>().join("\n")
    );
    assert!(!int_log.contains("to EL3"), "nothing may trap to the empty EL3:\n{int_log}");
}

#[test]
fn hello_runs_when_porwatch_is_entered_at_el3() {
    let (status, console, int_log) = run_secure("hello");
    assert_eq!(status, 0, "console:\n{console}");
    assert!(console.contains("hello: done"), "console:\n{console}");
    // No QEMU PSCI under secure=on with firmware: porwatch answers itself.
    assert!(console.contains("hello: PSCI version 1.1"), "console:\n{console}");
    // Without firmware porwatch is SMCCC v1.1, and says so consistently:
    // PSCI_FEATURES lists SMCCC_VERSION, which answers 1.1; ARCH_FEATURES
    // knows SMCCC_VERSION and no firmware Spectre workaround.
    for want in [
        "hello: PSCI_FEATURES(SMCCC_VERSION)=0 SMCCC_VERSION=0x10001",
        "hello: SMC Calling Convention v1.1",
        "hello: SMCCC_ARCH_FEATURES ARCH_WORKAROUND_1=-1 SMCCC_VERSION=0",
    ] {
        assert!(console.contains(want), "want {want:?}; console:\n{console}");
    }
    // One RAM range from the RAM base, as in the normal run.
    let mem: Vec<&str> = console.lines().filter(|l| l.starts_with("hello: memory ")).collect();
    assert_eq!(mem.len(), 1, "console:\n{console}");
    assert!(mem[0].starts_with("hello: memory 0x40000000.."), "{}", mem[0]);
    // The Secure-only second UART is not offered to the guest.
    assert!(console.contains("hello: 1 PL011 UART(s) visible"), "console:\n{console}");
    // QEMU's secure=on tree has no /psci node; porwatch adds one, as QEMU
    // does (smc, PSCI 1.0) when it implements PSCI itself.
    assert!(console.contains("hello: device tree PSCI: method=smc arm,psci-1.0"), "console:\n{console}");
    assert_entered_at_el3(&int_log);
}

#[test]
fn hostile_runs_when_porwatch_is_entered_at_el3() {
    let (status, console, int_log) = run_secure("hostile");
    // hostile reads an IMPLEMENTATION DEFINED register on purpose, and
    // porwatch answers with an UNDEF (as KVM does): a guest failure (81).
    assert_eq!(status, porwatch::exit_status::RunStatus::GuestUndef.code(), "console:\n{console}");
    assert!(console.contains("hostile: 0 check(s) failed"), "console:\n{console}");
    assert_entered_at_el3(&int_log);
}

/// The seed scenario through the EL3 entry finds the same hazard as the
/// normal run (porwatch/tests/qemu_seed.rs): the whole guest-side trace,
/// after `guest_start` up to `guest_exit`, is the same record for record
/// (kinds and fields; sequence numbers shifted by the two fewer
/// `mem_region`s, timestamps aside), the guest starts at the same place,
/// prints the same and exits the same way.
/// Also covers `--json` and `--trace-out` with `--secure` (run_guest uses
/// both).
#[test]
fn seed_under_el3_entry_finds_the_same_hazard_as_the_normal_run() {
    let normal = run_guest(args_all("seed"));
    let mut a = args_all("seed");
    a.secure = true;
    let secure = run_guest(a);
    for (name, o) in [("normal", &normal), ("secure", &secure)] {
        assert!(!o.timed_out, "{name}: timed out; console:\n{}", o.console);
        assert_eq!(o.status, 0, "{name}: console:\n{}", o.console);
        assert!(o.stats.is_clean(), "{name}: {:?}", o.stats);
        assert!(o.console.contains("seed: done"), "{name}: console:\n{}", o.console);
        assert_consecutive(&o.records);
    }
    assert_eq!(normal.one("hyp_boot").get_u64("entry_el"), Some(2));
    let boot = secure.one("hyp_boot");
    assert_eq!(boot.get_u64("entry_el"), Some(3));
    assert_eq!(boot.get_u64("trace_uart"), Some(0), "no trace UART: semihosting");
    // Header option bits 0..=1 and 12: trace = 4, semihosting:FILE.
    let options = secure.one("header").get_u64("options").unwrap();
    assert_eq!((options & 3) | (options >> 12 & 1) << 2, 4, "options={options:#x}");
    assert_eq!(normal.console, secure.console, "the guest prints the same");

    // The hazard the guest expects (qemu_seed.rs checks the same line).
    let expect = secure
        .console
        .lines()
        .find_map(|l| l.strip_prefix("seed: expect hazard "))
        .unwrap_or_else(|| panic!("no expectation line:\n{}", secure.console));
    let hazard = secure.one("hazard");
    for (field, value) in [("va", "va"), ("old", "old"), ("por", "por")] {
        let want = expect
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{value}=")))
            .map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap());
        assert_eq!(hazard.get_u64(field), want, "{field} ({expect})");
    }
    assert_eq!(hazard.get_enum("action"), Some("performed"));
    let entry = secure.records.iter().find(|r| Some(r.seq) == hazard.get_u64("entry_seq")).unwrap();
    assert_eq!((entry.kind.as_str(), entry.get_enum("vector")), ("exc_entry", Some("irq_el1h")));
    let reset = secure.records.iter().find(|r| Some(r.seq) == hazard.get_u64("por_seq")).unwrap();
    assert_eq!((reset.kind.as_str(), reset.get_u64("at_entry")), ("por_write", Some(1)));
    assert_eq!(reset.get_u64("entry_seq"), Some(entry.seq));

    // The same entry and DTB address (QEMU's secure=on tree is bigger).
    let start = |o: &Outcome| {
        let r = o.one("guest_start");
        (r.get_u64("entry"), r.get_u64("dtb"), r.get_u64("spsr"))
    };
    assert_eq!(start(&normal), start(&secure));
    // Record for record, after guest_start.
    let (n, s) = (guest_side(&normal.records), guest_side(&secure.records));
    assert_eq!(n.len(), s.len(), "normal:\n{n:#?}\nsecure:\n{s:#?}");
    for (rn, rs) in n.iter().zip(&s) {
        assert_eq!(rn, rs);
    }
    let hazards = |v: &[Comparable]| v.iter().filter(|r| r.0 == "hazard").count();
    assert_eq!(hazards(&s), 1);

    // --json: the live JSON lines carry the same hazard and the summary.
    let live_hazard = secure.json.iter().find(|j| j["event"] == "hazard").expect("hazard in --json output");
    assert_eq!(live_hazard["seq"].as_u64(), Some(hazard.seq));
    let summary = secure.json.last().expect("JSON output");
    assert_eq!(summary["event"], "summary", "{summary}");
}

/// (kind, fields) of the records after `guest_start`, with the fields that
/// name a sequence number (`entry_seq`, `por_seq`, `trace_seq`,
/// `entry_trace_seq`, `ref_seq`; 0 = none) made relative to `guest_start`,
/// and an audit's duration and leaf count left out.
#[derive(Debug, PartialEq)]
struct Comparable(String, Vec<(String, porwatch::records::OwnedValue)>);

fn guest_side(records: &[OwnedRecord]) -> Vec<Comparable> {
    use porwatch::records::OwnedValue;
    let start = records.iter().position(|r| r.kind == "guest_start").expect("guest_start");
    let base = records[start].seq;
    records[start + 1..]
        .iter()
        .map(|r| {
            let fields = r
                .fields
                .iter()
                .map(|(name, v)| match (name.as_str(), v) {
                    (
                        "entry_seq" | "por_seq" | "trace_seq" | "entry_trace_seq" | "ref_seq",
                        OwnedValue::U64(x),
                    ) if *x != 0 => (name.clone(), OwnedValue::I64(*x as i64 - base as i64)),
                    // An audit's duration, and its leaves: the secure-mode
                    // device tree is bigger (one more page identity-mapped).
                    ("ticks" | "leaves", _) if r.kind == "audit" => (name.clone(), OwnedValue::U64(0)),
                    _ => (name.clone(), v.clone()),
                })
                .collect();
            Comparable(r.kind.clone(), fields)
        })
        .collect()
}

/// Runs QEMU (no `porwatch run`) on the hello guest with the trace going to
/// `trace_file` through semihosting and the hyp command line edited by
/// `edit`; returns (QEMU's exit status, its stdout: the console).
fn run_qemu_direct(trace_file: &std::path::Path, edit: impl Fn(&str) -> String) -> (Option<i32>, String) {
    use porwatch::qemu::{GuestImage, QemuConfig};
    let images = images();
    let cfg = QemuConfig {
        qemu: "qemu-system-aarch64".into(),
        hyp: images.join("porwatch-hyp.bin"),
        guest: GuestImage::resolve(&images, "hello", 0x4400_0000).unwrap(),
        initrd: None,
        trace_pipe: "/nonexistent".into(),
        trace_file: Some(trace_file.to_path_buf()),
        guest_args: String::new(),
        hyp_opts: vec![],
        smp: 1,
        icount: false,
        extra: vec![],
        secure_stub: None,
    };
    let mut argv = cfg.argv().unwrap();
    let i = argv.iter().position(|a| a == "-append").unwrap() + 1;
    argv[i] = edit(&argv[i]);
    let mut child = std::process::Command::new(&cfg.qemu)
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut out = String::new();
    use std::io::Read;
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    (status, out)
}

/// `porwatch.trace=semihosting:FILE` without `porwatch.semihosting=1` is
/// refused with a console message: porwatch never executes a semihosting
/// HLT nobody asked for (it would be UNDEFINED without a debugger or model).
/// Without semihosting the run ends with PSCI SYSTEM_OFF (status 0; QEMU
/// cannot be told more). A file the host cannot open is refused too (78).
#[test]
fn semihosting_trace_file_needs_semihosting_and_an_openable_file() {
    let dir = tempdir();
    let file = dir.join("trace.pwt");
    let (status, console) = run_qemu_direct(&file, |a| a.replace(" porwatch.semihosting=1", ""));
    assert_eq!(status, Some(0), "console:\n{console}");
    assert!(
        console.contains(&format!(
            "porwatch: porwatch.trace=semihosting:{} needs porwatch.semihosting=1",
            file.display()
        )),
        "console:\n{console}"
    );
    assert!(!console.contains("hello:"), "the guest must not start:\n{console}");
    assert!(!file.exists(), "nothing was opened");

    let missing = dir.join("no-such-dir").join("trace.pwt");
    let (status, console) = run_qemu_direct(&missing, str::to_string);
    assert_eq!(status, Some(78), "console:\n{console}");
    assert!(
        console.contains(&format!("cannot open the semihosting trace file {}", missing.display())),
        "console:\n{console}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
