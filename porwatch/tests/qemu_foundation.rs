//! Boots each guest-tests kernel under porwatch in QEMU and checks what the
//! user sees: exit status, the guest's own console output, the decoded trace.
mod common;
use common::*;

/// FNV-1a over the pattern hello computes (guest-tests/src/bin/hello.rs).
fn hello_checksum(len: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..len {
        let b = (i as u64).wrapping_mul(2_654_435_761) >> 7;
        h = (h ^ (b & 0xff)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn guest_entry(name: &str) -> u64 {
    let bytes = std::fs::read(images().join("guests").join(format!("{name}.elf"))).unwrap();
    porwatch::qemu::elf_entry(&bytes).expect("guest is an AArch64 ELF")
}

/// Parses "hello: memory 0x..-0x.." console lines.
fn guest_memory(console: &str) -> Vec<(u64, u64)> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("hello: memory "))
        .map(|r| {
            let (a, b) = r.split_once("..").unwrap();
            let p = |s: &str| u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap();
            (p(a), p(b))
        })
        .collect()
}

#[test]
fn hello_runs_and_the_trace_describes_the_boot() {
    let o = run_guest(args("hello"));
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.console.contains("hello: done"), "console:\n{}", o.console);
    let want = format!("hello: checksum={:#018x}", hello_checksum(1 << 16));
    assert!(o.console.contains(&want), "want {want}; console:\n{}", o.console);
    // The trace UART is hidden from the guest.
    assert!(o.console.contains("hello: 1 PL011 UART(s) visible"), "console:\n{}", o.console);
    // QEMU's own /psci node reaches the guest unchanged.
    assert!(
        o.console.contains("hello: device tree PSCI: method=smc arm,psci-1.0"),
        "console:\n{}",
        o.console
    );
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    assert_consecutive(&o.records);

    let header = &o.records[0];
    assert_eq!(header.kind, "header");
    assert_eq!(header.get_u64("format_version"), Some(porwatch_trace::FORMAT_VERSION));
    assert!(header.get_u64("cntfrq").unwrap() > 0);
    // QEMU's CPUs lack FEAT_S1POE: with the tap on (default) porwatch
    // provides it virtually.
    let mmfr3 = header.get_u64("id_aa64mmfr3").unwrap();
    assert_eq!(mmfr3 >> 16 & 0xf, 0, "the header carries the CPU's own value");
    assert_eq!(header.get_enum("poe_mode"), Some("virtual"));
    // What the guest reads (HCR_EL2.TID3): the CPU's values with each
    // id_field record applied, among them S1POE advertised (virtual POE)
    // and HAFDBS hidden (the page-table watch).
    use porwatch_monitor::sysreg::{ID_AA64MMFR1_EL1, ID_AA64MMFR3_EL1};
    let mmfr1 = guest_id_value(&o.records, ID_AA64MMFR1_EL1, header.get_u64("id_aa64mmfr1").unwrap());
    let guest_mmfr3 = guest_id_value(&o.records, ID_AA64MMFR3_EL1, mmfr3);
    assert_eq!(guest_mmfr3 >> 16 & 0xf, 1, "virtual S1POE");
    assert_eq!(mmfr1 & 0xf, 0, "HAFDBS hidden");
    let want = format!("hello: id_aa64mmfr1={mmfr1:#x} id_aa64mmfr3={guest_mmfr3:#x}");
    assert!(o.console.contains(&want), "want {want}; console:\n{}", o.console);
    let reasons: Vec<_> = o.of_kind("id_field").map(|r| r.get_enum("reason").unwrap()).collect();
    assert!(reasons.contains(&"virtual_poe") && reasons.contains(&"page_table_watch"), "{reasons:?}");
    assert!(!reasons.contains(&"unknown"), "QEMU's CPU has a field porwatch does not know: {reasons:?}");
    let hyp_base = header.get_u64("hyp_base").unwrap();
    let hyp_size = header.get_u64("hyp_size").unwrap();

    let boot = o.one("hyp_boot");
    assert_eq!(boot.get_u64("entry_el"), Some(2));
    assert_eq!(boot.get_u64("trace_uart"), Some(0x0904_0000));
    assert_eq!(boot.get_u64("console_uart"), Some(0x0900_0000));

    // The guest's memory map excludes hyp and matches the trace's regions:
    // one range from the RAM base up to porwatch, at the top of RAM
    // (qemu_memory.rs checks other RAM sizes).
    let mem = guest_memory(&o.console);
    assert_eq!(mem, [(0x4000_0000, hyp_base)], "console:\n{}", o.console);
    for (s, e) in &mem {
        assert!(*e <= hyp_base || *s >= hyp_base + hyp_size, "guest sees hyp memory: {s:#x}..{e:#x}");
    }
    let ram: Vec<(u64, u64)> = o
        .of_kind("mem_region")
        .filter(|r| r.get_enum("kind") == Some("guest_ram"))
        .map(|r| (r.get_u64("base").unwrap(), r.get_u64("base").unwrap() + r.get_u64("size").unwrap()))
        .collect();
    assert_eq!(ram, mem, "trace guest_ram regions vs the guest's own view");
    assert!(o
        .of_kind("mem_region")
        .any(|r| r.get_enum("kind") == Some("hidden_mmio") && r.get_u64("base") == Some(0x0904_0000)));

    let start = o.one("guest_start");
    assert_eq!(start.get_u64("entry"), Some(guest_entry("hello")));
    assert!(o.console.contains(&format!("dtb at {:#x}", start.get_u64("dtb").unwrap())));

    // PSCI_VERSION went through porwatch.
    let v =
        o.of_kind("psci").find(|r| r.get_u64("function") == Some(0x8400_0000)).expect("PSCI_VERSION record");
    let res = v.get_i64("result").unwrap();
    assert!(o.console.contains(&format!("PSCI version {}.{}", res >> 16, res & 0xffff)));
    // SMCCC is the firmware's: QEMU's PSCI knows no SMCCC_VERSION, and
    // PSCI_FEATURES(SMCCC_VERSION) says so, so the guest finds v1.0 (as on
    // bare QEMU) and never calls SMCCC_VERSION.
    let f = o
        .of_kind("psci")
        .find(|r| r.get_u64("function") == Some(0x8400_000A) && r.get_u64("arg0") == Some(0x8000_0000))
        .expect("PSCI_FEATURES(SMCCC_VERSION) record");
    assert_eq!(f.get_i64("result"), Some(-1));
    assert!(o.console.contains("hello: SMC Calling Convention v1.0"), "console:\n{}", o.console);
    assert!(o.of_kind("psci").all(|r| r.get_u64("function") != Some(0x8000_0000)));

    let exit = o.records.last().unwrap();
    assert_eq!(exit.kind, "guest_exit");
    assert_eq!(exit.get_enum("reason"), Some("test_exit"));
    assert_eq!(exit.get_u64("code"), Some(0));

    // The live JSON stream carries the same records.
    let live: Vec<&serde_json::Value> = o.json.iter().filter(|j| j["event"] != "summary").collect();
    assert_eq!(live.len(), o.records.len());
    assert_eq!(live[0]["event"], "header");
    assert_eq!(live.last().unwrap()["event"], "guest_exit");
}

#[test]
fn hostile_guest_gets_architectural_answers_and_hyp_survives() {
    let o = run_guest(args("hostile"));
    // Its deliberate IMPLEMENTATION DEFINED register read gets an UNDEF
    // porwatch injected: a guest failure, whatever the guest's own status.
    assert_eq!(o.status, porwatch::exit_status::RunStatus::GuestUndef.code(), "console:\n{}", o.console);
    for check in [
        "impdef-sysreg",
        "write-hyp-memory",
        "read-hyp-memory",
        "cpu-on-into-hyp-memory",
        "bogus-hvc",
        "hvc-nonzero-imm",
        "unknown-smc",
        "psci-features-system-off",
        "read-fw-cfg",
        "fw-cfg-dma",
        "read-virtio-mmio",
        "gic-lpi-tables-in-hyp-memory",
        "gic-lpi-tables-in-guest-ram",
    ] {
        assert!(o.console.contains(&format!("hostile: {check}: ok")), "{check}; console:\n{}", o.console);
    }
    // fw_cfg, virtio-mmio, the SMMU and the ITS are not in its device tree.
    assert_eq!(o.console.matches("hostile: no-dma-device-in-tree: ok").count(), 4, "console:\n{}", o.console);
    assert!(o.console.contains("hostile: 0 check(s) failed"));
    assert!(o.stats.trace_intact(), "{:?}", o.stats);
    assert_eq!(o.stats.undefs_injected, 1, "{:?}", o.stats);
    assert_eq!(o.records.last().unwrap().get_u64("code"), Some(0), "the guest's own status");
    let summary = o.json.last().unwrap();
    assert_eq!(summary["run"]["outcome"], "guest_undef", "{summary}");
    assert_eq!(summary["problems"], serde_json::json!(["undef_injected"]), "{summary}");

    let hyp_base = o.records[0].get_u64("hyp_base").unwrap();
    let unknown: Vec<_> = o.of_kind("unknown_trap").collect();
    assert_eq!(unknown.len(), 7, "{unknown:#?}");
    // 1: MRS of an IMPLEMENTATION DEFINED register (EC 0x18) -> UNDEF.
    assert_eq!(ec(unknown[0].get_u64("esr").unwrap()), 0x18);
    assert_eq!(unknown[0].get_enum("action"), Some("undef_injected"));
    // 2, 3: a write then a read of hyp memory (stage-2 data abort, EC 0x24)
    // -> synchronous external abort; WnR (ESR bit 6) tells them apart.
    for (r, write) in [(unknown[1], true), (unknown[2], false)] {
        let esr = r.get_u64("esr").unwrap();
        assert_eq!(ec(esr), 0x24);
        assert_eq!(esr & (1 << 6) != 0, write);
        assert_eq!(r.get_u64("far"), Some(hyp_base));
        assert_eq!(r.get_enum("action"), Some("abort_injected"));
    }
    // 4-6: fw_cfg's data register (read), its DMA address register (the
    // write that would start a transfer), a virtio-mmio transport (read):
    // all unmapped at stage 2, aborted, logged.
    for (r, far, write) in
        [(unknown[3], 0x902_0000, false), (unknown[4], 0x902_0010, true), (unknown[5], 0xa00_0000, false)]
    {
        let esr = r.get_u64("esr").unwrap();
        assert_eq!(ec(esr), 0x24);
        assert_eq!(esr & (1 << 6) != 0, write);
        assert_eq!(r.get_u64("far"), Some(far));
        assert_eq!(r.get_enum("action"), Some("abort_injected"));
    }
    // 7: GICR_CTLR.EnableLPIs with the LPI pending table in porwatch's
    // memory: the redistributor page is emulated, the write done without
    // EnableLPIs (ignored, logged). The legitimate enable that follows is
    // emulated quietly.
    let rd = o
        .of_kind("mem_region")
        .find(|r| r.get_enum("kind") == Some("emulated_mmio"))
        .and_then(|r| r.get_u64("base"))
        .expect("the redistributor page is emulated");
    let esr = unknown[6].get_u64("esr").unwrap();
    assert_eq!(ec(esr), 0x24);
    assert!(esr & (1 << 6) != 0, "a write");
    assert_eq!(unknown[6].get_u64("far"), Some(rd));
    assert_eq!(unknown[6].get_enum("action"), Some("ignored"));

    let psci: Vec<_> = o.of_kind("psci").collect();
    let find = |f: u64| {
        psci.iter().find(|r| r.get_u64("function") == Some(f)).unwrap_or_else(|| panic!("no psci {f:#x}"))
    };
    let cpu_on = find(0xC400_0003);
    assert_eq!(cpu_on.get_u64("arg1"), Some(hyp_base));
    assert_eq!(cpu_on.get_i64("result"), Some(-9));
    let bogus = find(0xdead_beef);
    assert_eq!(bogus.get_enum("conduit"), Some("hvc"));
    assert_eq!(bogus.get_i64("result"), Some(-1));
    assert_eq!(find(0xC200_1234).get_i64("result"), Some(-1));
    assert_eq!(find(0x8400_000A).get_i64("result"), Some(0));
    assert_eq!(o.records.last().unwrap().get_enum("reason"), Some("test_exit"));
}

#[test]
fn raw_image_through_the_generic_loader() {
    let raw = images().join("guests/raw/hello.bin");
    let mut a = args(raw.to_str().unwrap());
    // Neither an ELF nor an Image: loaded only when asked for.
    a.raw = true;
    a.load_addr = guest_entry("hello");
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.console.contains("hello: done"));
    assert_eq!(o.one("guest_start").get_u64("entry"), Some(guest_entry("hello")));
}

#[test]
fn guest_command_line_reaches_the_guest_without_porwatch_options() {
    let mut a = args("hello");
    a.append = Some("hello.greeting=hi quiet".into());
    a.hyp_opts = vec!["verbose=1".into()];
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.console.contains("hello: bootargs \"hello.greeting=hi quiet\""), "console:\n{}", o.console);
}

#[test]
fn unknown_porwatch_option_is_refused_with_a_message() {
    let mut a = args("hello");
    a.hyp_opts = vec!["no-such-option=1".into()];
    let o = run_guest(a);
    assert_eq!(o.status, 78, "console:\n{}", o.console);
    assert!(o.console.contains("unknown option porwatch.no-such-option"), "console:\n{}", o.console);
    assert!(!o.console.contains("hello: done"));
}

#[test]
fn decode_cli_reads_a_saved_trace_and_reports_damage() {
    let o = run_guest(args("hello"));
    assert_eq!(o.status, 0);
    let dir = tempdir();
    let good = dir.join("good.bin");
    std::fs::write(&good, &o.raw).unwrap();
    let exe = env!("CARGO_BIN_EXE_porwatch");
    let out = std::process::Command::new(exe).args(["decode", "--json"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["event"], "header");
    assert!(lines.iter().any(|l| l["event"] == "guest_exit"));

    let truncated = dir.join("truncated.bin");
    std::fs::write(&truncated, &o.raw[..o.raw.len() - 3]).unwrap();
    let out = std::process::Command::new(exe).arg("decode").arg(&truncated).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let mut garbled = o.raw.clone();
    let mid = garbled.len() / 2;
    garbled[mid] ^= 0x5a;
    let bad = dir.join("garbled.bin");
    std::fs::write(&bad, &garbled).unwrap();
    let out = std::process::Command::new(exe).arg("decode").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A hyp failure is loud: the message on both UARTs (the trace carries it as
/// a panic record), and QEMU exits non-zero.
#[test]
fn hyp_panic_and_el2_fault_print_and_exit_nonzero() {
    for (opt, text) in [
        ("selftest=panic", "PANIC: porwatch.selftest=panic: deliberate hypervisor panic"),
        ("selftest=el2-fault", "exception at EL2: vector 4 ESR_EL2=0x2000000"),
    ] {
        let mut a = args("hello");
        a.hyp_opts = vec![opt.into()];
        let o = run_guest(a);
        assert_eq!(o.status, 70, "{opt}: console:\n{}", o.console);
        assert!(o.console.contains(text), "{opt}: console:\n{}", o.console);
        assert!(!o.console.contains("hello: done"));
        assert_eq!(o.stats.panics, 1, "{opt}: {:?}", o.stats);
        let p = o.records.last().unwrap();
        assert_eq!(p.kind, "panic");
        // The trace UART got the human-readable text too, between frames, and
        // the reader shows it as a message rather than corruption.
        assert!(o.stats.text_messages >= 1 && o.stats.corrupt_frames == 0, "{opt}: {:?}", o.stats);
        assert!(String::from_utf8_lossy(&o.raw).contains(text), "{opt}");
    }
}
