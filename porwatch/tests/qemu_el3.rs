//! `porwatch run --secure`: porwatch entered at EL3 (QEMU `virt,secure=on`
//! started from a -bios stub, as an Arm FVP starts it), boot.S configures
//! EL3 and drops to EL2, and the guests run with porwatch answering PSCI and
//! ending the run through semihosting.
//!
//! No trace assertions are possible here: under secure=on the second PL011
//! is Secure-only, so `--secure` runs with porwatch.trace=none. What is
//! checked instead: the exit status, the guest's console, and QEMU's own
//! interrupt log (`-d int`) showing the exception return from EL3 to EL2.
mod common;
use common::*;
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
    // The Secure-only second UART is not offered to the guest.
    assert!(console.contains("hello: 1 PL011 UART(s) visible"), "console:\n{console}");
    assert_entered_at_el3(&int_log);
}

#[test]
fn hostile_runs_when_porwatch_is_entered_at_el3() {
    let (status, console, int_log) = run_secure("hostile");
    assert_eq!(status, 0, "console:\n{console}");
    assert!(console.contains("hostile: 0 check(s) failed"), "console:\n{console}");
    assert_entered_at_el3(&int_log);
}
