//! How `porwatch run` ends, and what it says: the guest's full test status
//! (tiny hand-assembled guests exit with 3, 63, 64, 256, 2^32, 2^64-1),
//! a guest kernel's death on the console, QEMU failing to start, dying or
//! contradicting the trace (a stand-in QEMU script), and a closing summary
//! that never lands inside a console line; a killed porwatch takes QEMU
//! with it.
mod common;
use common::*;

use porwatch::exit_status::RunStatus;
use porwatch_trace::{test_exit_status, Event, Record};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_porwatch");
/// Where the raw guests are loaded and entered.
const LOAD: u64 = 0x4400_0000;

// AArch64 instructions of the raw guests (encodings checked with llvm-mc).
/// movz x0, #0x0050
const MOVZ_X0_FID_LO: u32 = 0xd280_0a00;
/// movk x0, #0xc600, lsl #16: x0 = 0xc6000050, PORWATCH_TEST_EXIT.
const MOVK_X0_FID_HI: u32 = 0xf2b8_c000;
/// movn x1, #0: x1 = 2^64 - 1.
const MOVN_X1_0: u32 = 0x9280_0001;
/// smc #0
const SMC_0: u32 = 0xd400_0003;
/// b . (never reached: the test exit ends the run)
const B_SELF: u32 = 0x1400_0000;
/// movz x2, #0x0900, lsl #16: x2 = 0x09000000, the console PL011's data register.
const MOVZ_X2_UART: u32 = 0xd2a1_2002;
/// ldrb w4, [x3], #1
const LDRB_W4_X3_POST1: u32 = 0x3840_1464;
/// cbz w4, +12 (past the loop)
const CBZ_W4_12: u32 = 0x3400_0064;
/// str w4, [x2]
const STR_W4_X2: u32 = 0xb900_0044;
/// b -12 (back to the ldrb)
const B_BACK_12: u32 = 0x17ff_fffd;

/// movz x1, #imm16, lsl #(16 * hw)
fn movz_x1(imm16: u16, hw: u32) -> u32 {
    0xd280_0001 | hw << 21 | u32::from(imm16) << 5
}

/// adr x3, +offset (offset < 1 MiB, a multiple of 4 here).
fn adr_x3(offset: u32) -> u32 {
    0x1000_0003 | (offset & 3) << 29 | (offset >> 2) << 5
}

/// x1 = `code` (one MOVZ or the MOVN for all ones).
fn load_x1(code: u64) -> u32 {
    if code == u64::MAX {
        return MOVN_X1_0;
    }
    let hw = (0..4).find(|&hw| code >> (16 * hw) << (16 * hw) == code && code >> (16 * hw) <= 0xffff);
    let hw = hw.unwrap_or_else(|| panic!("{code:#x} is not one 16-bit chunk"));
    movz_x1((code >> (16 * hw)) as u16, hw)
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A guest that exits at once with test status `code`.
fn exit_guest(code: u64) -> Vec<u8> {
    words(&[MOVZ_X0_FID_LO, MOVK_X0_FID_HI, load_x1(code), SMC_0, B_SELF])
}

/// A guest that writes `text` to the console, then exits with `code`.
fn print_guest(text: &str, code: u64) -> Vec<u8> {
    // The string follows the 11 instructions; adr is the second.
    let prog = [
        MOVZ_X2_UART,
        adr_x3(10 * 4),
        LDRB_W4_X3_POST1,
        CBZ_W4_12,
        STR_W4_X2,
        B_BACK_12,
        MOVZ_X0_FID_LO,
        MOVK_X0_FID_HI,
        load_x1(code),
        SMC_0,
        B_SELF,
    ];
    let mut b = words(&prog);
    b.extend_from_slice(text.as_bytes());
    b.push(0);
    b
}

fn raw_args(dir: &Path, name: &str, bytes: &[u8]) -> porwatch::run::RunArgs {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let mut a = args(p.to_str().unwrap());
    a.raw = true;
    a.load_addr = LOAD;
    a
}

#[test]
fn the_guests_full_test_status_is_passed_on_or_refused_as_out_of_range() {
    let dir = tempdir();
    for code in [3, 63, 64, 256, 1 << 32, u64::MAX] {
        let o = run_guest(raw_args(&dir, &format!("exit-{code}.bin"), &exit_guest(code)));
        let want = if code <= 63 { code as i32 } else { RunStatus::GuestStatusOutOfRange.code() };
        assert_eq!(o.status, want, "code {code:#x}; console:\n{}", o.console);
        // The trace has all 64 bits; QEMU exited with the hypervisor's
        // 8-bit status, never 0 for a non-zero code.
        let exit = o.one("guest_exit");
        assert_eq!((exit.get_enum("reason"), exit.get_u64("code")), (Some("test_exit"), Some(code)));
        let summary = o.json.last().unwrap();
        assert_eq!(summary["run"]["qemu_exit"], i64::from(test_exit_status(code)), "{summary}");
        assert_ne!(summary["run"]["qemu_exit"], 0);
        assert_eq!(summary["run"]["status"], want, "{summary}");
        assert!(o.stats.is_clean(), "{:?}", o.stats);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_kernel_panic_on_the_console_is_named_and_fails_the_run() {
    let dir = tempdir();
    let line = "[    1.234567] Kernel panic - not syncing: porwatch test panic";
    let mut a = raw_args(&dir, "panic.bin", &print_guest(&format!("{line}\r\n"), 0));
    a.json = true;
    let o = run_guest(a);
    assert_eq!(o.status, RunStatus::GuestPanic.code(), "console:\n{}", o.console);
    assert!(o.console.contains(line), "console:\n{}", o.console);
    let summary = o.json.last().unwrap();
    assert_eq!(summary["run"]["outcome"], "guest_panic", "{summary}");
    assert_eq!(summary["run"]["guest_failure"], line, "{summary}");
    assert_eq!(summary["problems"], serde_json::json!(["guest_panic"]), "{summary}");
    assert_eq!(summary["clean"], false, "{summary}");
    // The trace itself is clean: the guest's exit code is 0.
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    // Merely mentioning the words is not a panic.
    let o = run_guest(raw_args(
        &dir,
        "mention.bin",
        &print_guest("test: no Kernel panic - not syncing here\n", 0),
    ));
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the porwatch binary with stdout and stderr into one file, as a
/// terminal or `2>&1` would see them; returns (status, what was written).
fn run_binary_merged(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempdir();
    let out = dir.join("merged.txt");
    let f = std::fs::File::create(&out).unwrap();
    let status = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .status()
        .expect("porwatch runs");
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (status.code(), text)
}

#[test]
fn the_closing_summary_never_lands_inside_a_console_line() {
    let dir = tempdir();
    let guest = dir.join("partial.bin");
    // The guest's last console output has no line end.
    std::fs::write(&guest, print_guest("partial: SUMMARY: 8 tests / 26 / no line end", 5)).unwrap();
    let images = images();
    let (status, text) = run_binary_merged(&[
        "run",
        "--images",
        images.to_str().unwrap(),
        "--raw",
        "--load-addr",
        "0x44000000",
        "--guest",
        guest.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(5), "{text}");
    // A guest's failing status is its own verdict; porwatch saw nothing wrong.
    assert!(text.contains("; guest exit test_exit code 5; clean\n"), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let partial = lines.iter().position(|l| l.starts_with("partial: ")).expect(&text);
    assert_eq!(lines[partial], "partial: SUMMARY: 8 tests / 26 / no line end", "{text}");
    let summary =
        lines.iter().position(|l| l.starts_with("porwatch: ") && l.contains(" records (")).expect(&text);
    assert!(summary > partial, "{text}");
    assert_eq!(lines.last(), Some(&"porwatch: exit status 5 (guest)"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn qemu_failing_to_start_is_reported_with_its_status_and_message() {
    let mut a = args("hello");
    a.qemu_args = vec!["-device".into(), "no-such-device".into()];
    let out = porwatch::run::run(&a, Box::new(std::io::sink()), Box::new(std::io::sink())).unwrap();
    assert_eq!(out.status, RunStatus::QemuFailed.code(), "{:?}", out.verdict);
    assert_eq!(out.qemu_status, Some(1));
    let first = &out.verdict[0];
    assert!(
        first.starts_with("porwatch: QEMU failed: it exited with status 1 before the guest started"),
        "{first}"
    );
    assert!(first.contains("QEMU said: ") && first.contains("no-such-device"), "{first}");
    assert_eq!(out.verdict.last().unwrap(), "porwatch: exit status 69 (qemu_failed)");

    let mut a = args("hello");
    a.qemu = "/nonexistent/qemu".into();
    let out = porwatch::run::run(&a, Box::new(std::io::sink()), Box::new(std::io::sink())).unwrap();
    assert_eq!(out.status, RunStatus::QemuFailed.code());
    assert!(out.verdict[0].contains("QEMU failed: cannot start it: /nonexistent/qemu"), "{:?}", out.verdict);
}

/// A stand-in for QEMU: writes `trace` to porwatch run's trace FIFO, says
/// something on stderr, then does `then` (a shell command).
fn fake_qemu(dir: &Path, trace: &[u8], then: &str) -> PathBuf {
    let bytes = dir.join("fake-trace.pwt");
    std::fs::write(&bytes, trace).unwrap();
    let script = dir.join("fake-qemu");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             for a in \"$@\"; do case $a in pipe,id=trace,path=*) p=${{a#pipe,id=trace,path=}};; esac; done\n\
             cat '{}' > \"$p.out\"\n\
             echo 'fake-qemu: going down' >&2\n\
             {then}\n",
            bytes.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn started_trace(exit: Option<u64>) -> Vec<u8> {
    let s = porwatch::sample::records();
    let mut recs = vec![s[0], Record { cpu: 0, seq: 1, ts: s[0].ts + 1, event: s[4].event }];
    if let Some(code) = exit {
        recs.push(Record { cpu: 0, seq: 2, ts: s[0].ts + 2, event: Event::GuestExit { reason: 2, code } });
    }
    porwatch::sample::encode(&recs).unwrap()
}

#[test]
fn qemu_dying_mid_run_or_contradicting_the_trace_is_not_a_pass() {
    let dir = tempdir();
    let run = |qemu: PathBuf| {
        let mut a = args("hello");
        a.qemu = qemu;
        porwatch::run::run(&a, Box::new(std::io::sink()), Box::new(std::io::sink())).unwrap()
    };
    // Killed by a signal while the guest ran.
    let out = run(fake_qemu(&dir, &started_trace(None), "kill -SEGV $$"));
    assert_eq!(out.status, RunStatus::QemuFailed.code(), "{:?}", out.verdict);
    assert!(
        out.verdict[0].contains("killed by signal 11 (SIGSEGV); QEMU said: fake-qemu: going down"),
        "{:?}",
        out.verdict
    );
    // Exited 0 without the guest exiting.
    let out = run(fake_qemu(&dir, &started_trace(None), "exit 0"));
    assert_eq!(out.status, RunStatus::QemuFailed.code(), "{:?}", out.verdict);
    assert!(out.verdict[0].contains("exited with status 0 while the guest was running"), "{:?}", out.verdict);
    // A guest_exit saying 0 while QEMU exits 1: the trace lies (forged, or
    // not the run's end); never a pass.
    let out = run(fake_qemu(&dir, &started_trace(Some(0)), "exit 1"));
    assert_eq!(out.status, RunStatus::TraceDamaged.code(), "{:?}", out.verdict);
    assert!(out.verdict[0].contains("means QEMU exits with 0, but it exited with 1"), "{:?}", out.verdict);
    // The same trace with QEMU agreeing is a pass.
    let out = run(fake_qemu(&dir, &started_trace(Some(0)), "exit 0"));
    assert_eq!(out.status, 0, "{:?}", out.verdict);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--hyp-opt trace=none`: no trace to read, so the status is QEMU's, and
/// the run says so instead of calling a missing trace damaged.
#[test]
fn without_a_trace_the_status_is_qemus_and_said_to_be() {
    let mut a = args("hello");
    a.hyp_opts = vec!["trace=none".into()];
    a.json = false;
    let out = porwatch::run::run(&a, Box::new(std::io::sink()), Box::new(std::io::sink())).unwrap();
    assert_eq!(out.status, 0, "{:?}", out.verdict);
    assert!(
        out.verdict[0].contains("no trace (porwatch.trace=none): the status is QEMU's exit status 0"),
        "{:?}",
        out.verdict
    );
    let dir = tempdir();
    let mut a = raw_args(&dir, "exit-7.bin", &exit_guest(7));
    a.hyp_opts = vec!["trace=none".into()];
    let out = porwatch::run::run(&a, Box::new(std::io::sink()), Box::new(std::io::sink())).unwrap();
    assert_eq!(out.status, 7, "{:?}", out.verdict);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The QEMU child of the porwatch process `pid` (None: none yet).
fn qemu_child_of(pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with("qemu")))
}

/// Whether process `pid` is gone (or a zombie nobody will reap).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn a_killed_porwatch_takes_its_qemu_with_it() {
    let dir = tempdir();
    let guest = dir.join("spin.bin");
    std::fs::write(&guest, words(&[B_SELF])).unwrap();
    let images = images();
    let mut porwatch = Command::new(BIN)
        .args(["run", "--images", images.to_str().unwrap(), "--timeout", "300", "--raw", "--guest"])
        .arg(&guest)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let qemu = loop {
        if let Some(q) = qemu_child_of(porwatch.id()) {
            break q;
        }
        assert!(start.elapsed().as_secs() < 60, "no QEMU child of porwatch after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // SIGTERM, as a CI timeout or `kill` sends it: porwatch has no chance
    // to stop QEMU itself.
    assert_eq!(unsafe { libc::kill(porwatch.id() as i32, libc::SIGTERM) }, 0);
    porwatch.wait().unwrap();
    let start = std::time::Instant::now();
    while !gone(qemu) {
        assert!(start.elapsed().as_secs() < 30, "QEMU (pid {qemu}) still runs after porwatch was killed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
