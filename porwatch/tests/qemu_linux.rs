//! Stock Debian Linux as the guest: bookworm's 6.1 (48-bit VA, 4 levels),
//! trixie's 6.12 (52-bit VA with LPA2, 5 levels, CONFIG_ARM64_POE) and
//! trixie-backports' 7.x (the same, and FEAT_MOPS memset/clear_page),
//! booted under porwatch to the initramfs workload (fork/exec, mmap, tmpfs)
//! and power-off. The kernels come from `scripts/fetch-linux` (scripts/test
//! runs it first; the cache makes it a no-op). Missing kernels fail the
//! test: it never passes by not running.
mod common;

use porwatch::OwnedRecord;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// Forks of the workload (the initramfs /init default).
const FORKS: u64 = 300;
/// TCR2_EL1.E0POE (bit 2): POE for EL0 accesses; PIE (bit 1).
const TCR2_E0POE: u64 = 1 << 2;
const TCR2_PIE: u64 = 1 << 1;
/// ID_AA64MMFR3_EL1.S1PIE [11:8].
const S1PIE_SHIFT: u32 = 8;

fn kernel_dir(suite: &str) -> PathBuf {
    let dir = porwatch::linux::cache_dir().join("linux").join(suite);
    assert!(
        dir.join("Image").is_file() && dir.join("initramfs.cpio.gz").is_file(),
        "Debian's {suite} kernel is not in {}: run `scripts/fetch-linux {suite}` (scripts/test does)",
        dir.display()
    );
    dir
}

fn u(r: &OwnedRecord, f: &str) -> u64 {
    r.get_u64(f).unwrap_or_else(|| panic!("{} has no {f}: {r:?}", r.kind))
}

/// Boots `suite` and checks what every Linux run must show; returns the
/// outcome for kernel-specific checks.
fn boot(suite: &str, levels: u64) -> common::Outcome {
    boot_on(suite, levels, 1)
}

/// [`boot`] on `cpus` CPUs (QEMU -smp): every CPU comes online under
/// porwatch (Linux says so, and each has its own records), and the run is
/// as clean as on one.
fn boot_on(suite: &str, levels: u64, cpus: u32) -> common::Outcome {
    kernel_dir(suite);
    // Every entry: the tap's view of Linux is checked (the default keeps
    // entries in the flight ring: `bookworm_by_default_prints_...`).
    let mut a = common::args_all("seed");
    a.linux = Some(suite.into());
    a.smp = cpus;
    a.timeout = Some(600 + 300 * u64::from(cpus - 1));
    let o = common::run_guest(a);
    let tail: String =
        o.console.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(!o.timed_out, "timed out; console tail:\n{tail}");
    assert_eq!(o.status, 0, "console tail:\n{tail}");

    // The guest's own account: init ran the workload and powered off.
    for marker in ["porwatch-linux: init start", "porwatch-linux: workload done", "porwatch-linux: poweroff"]
    {
        assert!(o.console.contains(marker), "no {marker:?}; console tail:\n{tail}");
    }
    assert!(!o.console.contains("porwatch-linux: FAIL"), "the workload failed:\n{tail}");
    // All CPUs online (init counts /proc/cpuinfo), each started under
    // porwatch (cpu_start), each with exception entries of its own.
    assert!(o.console.contains(&format!(" cpus={cpus} ")), "not {cpus} CPUs online:\n{tail}");
    assert_eq!(o.of_kind("cpu_start").count() as u32, cpus - 1, "secondary CPUs started");
    for cpu in 0..cpus {
        let entries = o.records.iter().filter(|r| r.cpu == cpu && r.kind == "exc_entry").count();
        assert!(entries > 100, "cpu{cpu}: {entries} exception entries");
    }
    assert!(o.console.contains(&format!("forks={FORKS}")), "{tail}");
    for bad in ["Kernel panic", "Oops", "BUG:", "Unable to handle"] {
        assert!(!o.console.contains(bad), "{bad} on the console:\n{tail}");
    }
    // A real SMCCC version: QEMU's firmware has no SMCCC_VERSION, so Linux
    // keeps v1.0, as on bare QEMU (porwatch forwards both the call and
    // PSCI_FEATURES(SMCCC_VERSION), so they agree).
    let smccc = o.console.lines().find_map(|l| l.split("SMC Calling Convention v").nth(1));
    assert_eq!(smccc.map(str::trim), Some("1.0"), "console tail:\n{tail}");

    // The trace: complete, clean, and it followed Linux's page tables.
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    common::assert_consecutive(&o.records);
    let exit = o.one("guest_exit");
    assert_eq!(exit.get_enum("reason"), Some("system_off"), "{exit:?}");
    let st = o.one("pt_stats");
    assert!(u(st, "tables") > 0 && u(st, "max_tables") > 0, "{st:?}");
    // Upper-level tables (links and unlinks) are always trapped; stock
    // Linux never turns EL1 overlays on, so its last-level tables are left
    // writable (porwatch.leaves=open, the default): thousands are opened.
    assert!(u(st, "table_writes") > 1_000, "{st:?}");
    assert!(u(st, "leaves_opened") > 1_000, "{st:?}");
    assert_eq!((u(st, "hazards"), u(st, "coverage_gaps"), u(st, "overflows")), (0, 0, 0), "{st:?}");
    // Every table store Linux makes is emulated: none needs single-stepping
    // (SIMD&FP, CASP, ...), none leaves a page unwatched.
    assert_eq!((u(st, "stepped_stores"), u(st, "released_pages")), (0, 0), "{st:?}");
    assert!(u(st, "roots_released") > 0, "exited processes' roots are released: {st:?}");
    assert_eq!(o.of_kind("hazard").count(), 0);
    assert_eq!(o.of_kind("coverage_gap").count(), 0);
    assert_eq!(o.of_kind("unknown_trap").count(), 0, "{:?}", o.of_kind("unknown_trap").next());
    assert_eq!(o.of_kind("dropped").count(), 0);

    // Every process's TTBR0 was followed; both halves at the expected depth.
    let roots: Vec<&OwnedRecord> = o.of_kind("pt_root").collect();
    let ttbr0 = roots.iter().filter(|r| r.get_enum("half") == Some("ttbr0")).count() as u64;
    assert!(ttbr0 >= FORKS, "{ttbr0} TTBR0 trees walked for {FORKS} fork/exec");
    let last_kernel = roots.iter().rev().find(|r| r.get_enum("half") == Some("ttbr1")).expect("a TTBR1 root");
    assert_eq!(u(last_kernel, "levels"), levels, "{last_kernel:?}");

    // The tap saw Linux's exceptions: syscalls and faults from EL0, IRQs.
    // Each CPU arms it on the same vector table.
    let taps: Vec<&OwnedRecord> = o.of_kind("tap_arm").collect();
    assert_eq!(taps.len() as u32, cpus, "one tap_arm per CPU: {taps:?}");
    assert!(taps.iter().all(|t| t.get_u64("vbar") == taps[0].get_u64("vbar")), "{taps:?}");
    let tap = taps[0];
    let vectors: BTreeSet<&str> = o.of_kind("exc_entry").filter_map(|r| r.get_enum("vector")).collect();
    for v in ["sync_el0_64", "irq_el1h", "sync_el1h"] {
        assert!(vectors.contains(v), "no {v} entry; saw {vectors:?}");
    }
    let svc = o
        .of_kind("exc_entry")
        .filter(|r| r.get_enum("vector") == Some("sync_el0_64") && common::ec(u(r, "esr")) == 0x15)
        .count();
    assert!(svc > 1_000, "{svc} SVC entries");
    assert!(u(tap, "vbar") >> 48 == 0xffff, "Linux's own vector table: {tap:?}");
    // Linux's `kernel_ventry` leaves each slot's padding free: the tap is the
    // one-HVC trampoline, not the execute-never fallback (docs/tap.md).
    assert_eq!(tap.get_enum("mechanism"), Some("trampoline"), "{tap:?}");
    o
}

/// Decodes the run's trace with the kernel's System.map; returns (stdout, stderr).
fn symbolized(o: &common::Outcome, suite: &str) -> (String, String) {
    let map = kernel_dir(suite).join("System.map");
    assert!(map.is_file(), "{} missing: run scripts/fetch-linux {suite}", map.display());
    let dir = common::tempdir();
    let trace = dir.join("linux.pwt");
    std::fs::write(&trace, &o.raw).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_porwatch"))
        .args(["decode", "--symbols"])
        .arg(&map)
        .arg(&trace)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_symbolized(o: &common::Outcome, suite: &str) {
    let (out, err) = symbolized(o, suite);
    // The offset is derived from the logged VBAR_EL1 and `vectors`.
    assert!(err.contains("KASLR offset 0x") && err.contains("vectors"), "{err}");
    let tap = out.lines().find(|l| l.contains(" tap_arm ")).expect("a tap_arm line");
    assert!(tap.contains("<vectors+0x0/"), "{tap}");
    // Kernel-mode IRQs interrupt kernel functions: named from System.map.
    let named = out
        .lines()
        .filter(|l| {
            l.contains(" exc_entry ") && l.contains("irq_el1h") && l.contains("elr=0xffff") && l.contains('<')
        })
        .count();
    assert!(named > 0, "no symbolized irq_el1h entry");
}

#[test]
fn bookworm_6_1_boots_to_poweroff_with_its_tables_tracked() {
    let o = boot("bookworm", 4);
    assert_eq!(o.one("header").get_enum("poe_mode"), Some("virtual"));
    assert!(o.console.contains("poe=no"), "6.1 has no POE support");
    assert_symbolized(&o, "bookworm");
}

#[test]
fn trixie_6_12_boots_with_lpa2_and_uses_virtual_poe_for_user_pkeys() {
    let o = boot("trixie", 5);
    assert_eq!(o.one("header").get_enum("poe_mode"), Some("virtual"));
    // 6.12 sees the advertised FEAT_S1POE, enables it for EL0 and context-
    // switches POR_EL0: all emulated, and the guest keeps working.
    assert!(o.console.contains("poe=yes"), "6.12 lists poe in /proc/cpuinfo");
    let tcr2 = o.of_kind("tcr2_write").last().expect("a TCR2_EL1 write");
    assert_ne!(u(tcr2, "new") & TCR2_E0POE, 0, "{tcr2:?}");
    // On a CPU with FEAT_S1PIE (QEMU 11) porwatch passes it and 6.12 turns
    // it on: TCR2_EL1.PIE reaches the hardware (docs/cpu.md).
    if u(o.one("header"), "id_aa64mmfr3") >> S1PIE_SHIFT & 0xf != 0 {
        assert_ne!(u(tcr2, "new") & TCR2_PIE, 0, "{tcr2:?}");
    }
    assert!(o.of_kind("por_write").count() > 0, "POR_EL0 context switches");
    assert_symbolized(&o, "trixie");
}

/// Four CPUs (issue #14): Linux brings all of them up through porwatch's
/// PSCI (CPU_ON forwarded with porwatch's own entry) and runs the workload
/// on them; one page-table watch for all, zero hazards, zero gaps. The
/// three kernels one after the other (one test): three 4-CPU guests at once
/// on a small host spend their time preempted inside each other's locks.
#[test]
fn debian_kernels_on_four_cpus() {
    for (suite, levels) in [("bookworm", 4), ("trixie", 5), ("trixie-backports", 5)] {
        let o = boot_on(suite, levels, 4);
        assert!(o.console.contains("smp: Brought up 1 node, 4 CPUs"), "{suite}: Linux saw the CPUs come up");
        if suite != "bookworm" {
            // Virtual POE per CPU: every CPU's POR_EL0 context switches
            // are emulated (6.1 has no POE support).
            for cpu in 0..4 {
                assert!(o.of_kind("por_write").any(|r| r.cpu == cpu), "{suite}: cpu{cpu}: no POR write");
            }
        }
    }
}

#[test]
fn trixie_backports_7_x_clears_its_tables_with_mops_and_porwatch_follows() {
    let o = boot("trixie-backports", 5);
    assert_eq!(o.one("header").get_enum("poe_mode"), Some("virtual"));
    assert!(o.console.contains("poe=yes"), "7.x lists poe in /proc/cpuinfo");
    // 7.x clears pages with FEAT_MOPS (SETP/SETM/SETE in __memset, SETPN in
    // clear_page) on -cpu max, also pages still tracked as tables: those
    // stores are emulated step by step: none of them is a gap (checked in
    // boot) and they are counted.
    let st = o.one("pt_stats");
    assert!(u(st, "mops_steps") > 0, "no MOPS store to a tracked table emulated: {st:?}");
    assert_symbolized(&o, "trixie-backports");
}

/// The default (the flight recorder, docs/flight.md) on Linux, as a user
/// sees it: `porwatch run --linux bookworm` in text. Zero hazards, zero
/// gaps, every CPU's flight accounting clean (each `flight_stats.streamed`
/// equals the records of that CPU that arrived; the reader's check, and
/// `is_clean`), and the output short: a record line for a small fraction
/// of what was streamed, which is itself a small fraction of the events
/// porwatch recorded (those `--all` streams and prints, one line each).
#[test]
fn bookworm_by_default_prints_a_short_clean_run() {
    kernel_dir("bookworm");
    let mut a = common::args("seed");
    a.linux = Some("bookworm".into());
    a.timeout = Some(600);
    let (o, text, records, stats) = common::run_text(a);
    let tail: String =
        text.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(!o.timed_out, "timed out; tail:\n{tail}");
    assert_eq!(o.status, 0, "tail:\n{tail}");
    for marker in ["porwatch-linux: workload done", "porwatch-linux: poweroff"] {
        assert!(text.contains(marker), "no {marker:?}; tail:\n{tail}");
    }
    assert!(stats.is_clean(), "{stats:?}");
    let header = &records[0];
    assert_eq!(header.kind, "header");
    assert_ne!(
        u(header, "options") >> porwatch_monitor::cmdline::STREAM_FLIGHT_BIT & 1,
        0,
        "the default is flight"
    );
    common::assert_consecutive(&records);
    let st = records.iter().rev().find(|r| r.kind == "pt_stats").expect("pt_stats");
    assert_eq!((u(st, "hazards"), u(st, "coverage_gaps"), u(st, "overflows")), (0, 0, 0), "{st:?}");
    for kind in ["hazard", "coverage_gap", "dropped", "unknown_trap"] {
        assert_eq!(stats.count(kind), 0, "{kind}");
    }
    // Expected traps and entries stayed in the ring.
    assert_eq!((stats.count("trap"), stats.count("exc_entry")), (0, 0));
    let fs = records.iter().rev().find(|r| r.kind == "flight_stats").expect("flight_stats");
    let events = u(fs, "events");
    assert!(u(fs, "overwritten") > 0 && events > u(fs, "streamed"), "{fs:?}");
    // Short: what was printed is a small part of what was streamed, which
    // is a small part of what --all would have printed.
    let printed = common::record_lines(&text);
    assert!(
        printed.len() * 10 < records.len(),
        "{} record lines of {} records",
        printed.len(),
        records.len()
    );
    assert!(records.len() * 10 < events as usize, "{} records streamed, {events} events", records.len());
    assert!(printed.iter().any(|l| l.contains(" guest_exit ")), "{printed:?}");
    assert!(!printed.iter().any(|l| l.contains(" pt_root ") || l.contains(" flight_stats ")), "{printed:?}");
    // The reader's flight totals (the summary's `flight ring:` part, on
    // stderr) are the CPU's last flight_stats.
    assert_eq!(stats.per_cpu.get(&0).map(|c| c.flight_events), Some(events));
}

/// A Linux kernel that panics (no init: `rdinit=` names nothing and there
/// is no root device) is named in the closing summary and fails the run
/// (80), though it then reboots cleanly through PSCI (`panic=-1`) and the
/// trace is intact.
#[test]
fn a_linux_kernel_panic_fails_the_run_and_is_named() {
    kernel_dir("bookworm");
    let mut a = common::args("seed");
    a.linux = Some("bookworm".into());
    a.append = Some("rdinit=/nonexistent panic=-1".into());
    a.timeout = Some(600);
    let o = common::run_guest(a);
    let tail: String =
        o.console.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(!o.timed_out, "timed out; console tail:\n{tail}");
    assert_eq!(o.status, porwatch::exit_status::RunStatus::GuestPanic.code(), "console tail:\n{tail}");
    assert_eq!(o.one("guest_exit").get_enum("reason"), Some("system_reset"));
    assert!(o.stats.trace_intact(), "{:?}", o.stats);
    let summary = o.json.last().unwrap();
    assert_eq!(summary["run"]["outcome"], "guest_panic", "{summary}");
    let line = summary["run"]["guest_failure"].as_str().unwrap_or_default();
    assert!(line.contains("Kernel panic - not syncing: VFS: Unable to mount root fs"), "{summary}");
    assert_eq!(summary["problems"], serde_json::json!(["guest_panic"]), "{summary}");
    assert_eq!(summary["clean"], false, "{summary}");
}
