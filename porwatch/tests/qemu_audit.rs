//! The protection audit, call traces and hazard sites, on the `audit` test
//! kernel (guest-tests/src/bin/audit.rs): a kpkeys kernel that forgets to
//! protect four of its page tables (the fixmap's early `bm_pte`, the
//! vmemmap tables under a second PGD slot) and leaves one stale pkey. The
//! kernel prints what it built; porwatch's audits must list exactly that,
//! grouped by region, in the trace, the text report and the JSON summary.
mod common;
use common::*;
use porwatch::findings::AuditTable;
use porwatch::OwnedRecord;
use std::collections::BTreeSet;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_porwatch");

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// `(table, level, region)` from `audit: expect unprotected ...` lines.
fn expected_tables(console: &str) -> BTreeSet<(u64, i64, String)> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("audit: expect unprotected "))
        .map(|l| {
            let f = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or_else(|| panic!("no {k} in {l:?}"))
                    .to_string()
            };
            (hex(&f("table")), f("level").parse().unwrap(), f("region"))
        })
        .collect()
}

fn console_value(console: &str, key: &str) -> String {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("audit: expect "))
        .find_map(|l| {
            l.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
        .unwrap_or_else(|| panic!("no {key}:\n{console}"))
}

fn run_audit(opts: &[&str]) -> Outcome {
    let mut a = args_all("audit");
    a.hyp_opts = opts.iter().map(|s| s.to_string()).collect();
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.console.contains("audit: done"), "console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    o
}

/// The audit records, each with the audit_table / audit_stale records that
/// follow it.
fn audits(o: &Outcome) -> Vec<(&OwnedRecord, Vec<&OwnedRecord>, Vec<&OwnedRecord>)> {
    let mut out: Vec<(&OwnedRecord, Vec<&OwnedRecord>, Vec<&OwnedRecord>)> = Vec::new();
    for r in &o.records {
        match r.kind.as_str() {
            "audit" => out.push((r, Vec::new(), Vec::new())),
            "audit_table" => out.last_mut().expect("audit_table after an audit").1.push(r),
            "audit_stale" => out.last_mut().expect("audit_stale after an audit").2.push(r),
            _ => {}
        }
    }
    out
}

/// The region the reader gives a listed table (the same code as its report).
fn region(r: &OwnedRecord, va_bits: u64) -> String {
    let t = AuditTable {
        ipa: r.get_u64("ipa").unwrap(),
        level: r.get_i64("level").unwrap(),
        half: r.get_u64("half").unwrap(),
        reached: r.get_u64("reached") == Some(1),
        base: r.get_u64("base").unwrap(),
        first: r.get_u64("first").unwrap(),
        last: r.get_u64("last").unwrap(),
        alias: 0,
        alias_level: 3,
        poindex: 0,
        perm: 0,
        aliases: 0,
    };
    let layout = porwatch_monitor::audit::LinuxLayout::new(va_bits as u8, None);
    porwatch::audit_report::group(&t, layout.as_ref())
}

#[test]
fn audits_list_exactly_the_forgotten_tables_grouped_and_the_stale_pkey() {
    let o = run_audit(&[]);
    let want = expected_tables(&o.console);
    assert_eq!(want.len(), 4, "console:\n{}", o.console);
    let stale = hex(&console_value(&o.console, "ipa"));
    let all = audits(&o);
    assert_eq!(all.len(), 2, "first-por and exit");
    for ((a, tables, stales), (trigger, source)) in
        all.iter().zip([("first_por", "first_restrictive"), ("exit", "at_entry")])
    {
        assert_eq!(a.get_enum("trigger"), Some(trigger));
        assert_eq!(a.get_enum("status"), Some("done"));
        assert_eq!(a.get_enum("por_source"), Some(source), "{a:?}");
        assert_eq!(a.get_u64("por"), Some(0x17));
        assert_eq!(a.get_u64("tables"), Some(20));
        assert_eq!(a.get_u64("unprotected"), Some(4));
        assert_eq!(a.get_u64("protected"), Some(16));
        assert_eq!(a.get_u64("listed"), Some(4));
        assert_eq!(a.get_u64("table_pkeys"), Some(0b10));
        assert_eq!(a.get_u64("va_bits"), Some(48));
        let va_bits = a.get_u64("va_bits").unwrap();
        let got: BTreeSet<(u64, i64, String)> = tables
            .iter()
            .map(|t| (t.get_u64("ipa").unwrap(), t.get_i64("level").unwrap(), region(t, va_bits)))
            .collect();
        assert_eq!(got, want, "{trigger}");
        for t in tables {
            // The writable alias: the table's linear-map page, pkey 0, rwx.
            assert_eq!(t.get_u64("alias"), Some(0xffff_0000_0000_0000 + t.get_u64("ipa").unwrap()));
            assert_eq!((t.get_u64("poindex"), t.get_u64("perm")), (Some(0), Some(7)));
            assert_eq!(t.get_enum("half"), Some("ttbr1"));
        }
        // bm_pte lies in the image's bss: identity-mapped too.
        let bm = tables.iter().find(|t| region(t, va_bits) == "fixmap").unwrap();
        assert_eq!(bm.get_u64("aliases"), Some(2));
        assert_eq!((a.get_u64("stale_pages"), a.get_u64("stale_listed")), (Some(1), Some(1)));
        assert_eq!(stales.len(), 1);
        assert_eq!(stales[0].get_u64("ipa"), Some(stale));
        assert_eq!(stales[0].get_u64("poindex"), Some(1));
    }
    // The first audit ran once the MMU was on, before any table write
    // under the default POR.
    let first_hazard = o.of_kind("hazard").next().unwrap().seq;
    assert!(all[0].0.seq < first_hazard);
}

#[test]
fn stores_to_forgotten_tables_are_not_hazards_and_hazards_carry_call_traces() {
    let o = run_audit(&[]);
    let forgotten: BTreeSet<u64> = expected_tables(&o.console).iter().map(|t| t.0).collect();
    assert!(o.console.contains("__set_fixmap wrote bm_pte"), "console:\n{}", o.console);
    let hazards: Vec<&OwnedRecord> = o.of_kind("hazard").collect();
    assert_eq!(hazards.len() as u64, console_value(&o.console, "hazards").parse::<u64>().unwrap());
    for h in &hazards {
        assert!(
            !forgotten.contains(&(h.get_u64("ipa").unwrap() & !0xfff)),
            "a forgotten table as a hazard: {h:?}"
        );
    }
    let by_seq = |s: u64| o.records.iter().find(|r| r.seq == s).unwrap_or_else(|| panic!("no #{s}"));
    let sym = porwatch::symbols::Symbols::load(&images().join("guests/audit.elf")).unwrap();
    let names = |c: &OwnedRecord| -> Vec<String> {
        let frames: Vec<u64> =
            porwatch_trace::FieldValue::Bytes(c.get_bytes("frames").unwrap()).addrs().collect();
        std::iter::once(c.get_u64("pc").unwrap())
            .chain(frames)
            .map(|a| sym.lookup(a).map(|h| h.name.to_string()).unwrap_or_else(|| format!("{a:#x}")))
            .collect()
    };
    // Three from one site, then one from the SVC handler.
    for h in &hazards[..3] {
        let c = by_seq(h.get_u64("trace_seq").unwrap());
        assert_eq!(
            (c.kind.as_str(), c.get_enum("of"), c.get_enum("end")),
            ("call_trace", Some("hazard"), Some("complete"))
        );
        assert_eq!(c.get_u64("pc"), h.get_u64("pc"));
        assert_eq!(
            &names(c)[..4],
            ["copy_to_kernel_nofault", "kunit_write_linear_map_pte", "kunit_run_case", "test_main"]
        );
        assert!(c.seq < h.seq);
    }
    let h = hazards[3];
    let c = by_seq(h.get_u64("trace_seq").unwrap());
    assert_eq!(
        &names(c)[..4],
        ["copy_to_kernel_nofault", "vmemmap_remap_pte", "do_el1_svc", "audit::audit_exception"]
    );
    let entry = by_seq(h.get_u64("entry_seq").unwrap());
    assert_eq!(entry.get_enum("vector"), Some("sync_el1h"));
    let e = by_seq(h.get_u64("entry_trace_seq").unwrap());
    assert_eq!((e.get_enum("of"), e.get_u64("ref_seq")), (Some("exc_entry"), Some(entry.seq)));
    assert_eq!(e.get_u64("pc"), entry.get_u64("elr"));
    assert_eq!(&names(e)[..2], ["kpkeys_set_level_and_svc", "test_main"]);
    // The live JSON summary: two sites (3 + 1) and both audits.
    let summary = o.json.last().unwrap();
    assert_eq!(summary["event"], "summary");
    let sites = summary["hazard_sites"].as_array().unwrap();
    assert_eq!(sites.iter().map(|s| s["count"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 1]);
    assert_eq!(sites[0]["first_seq"], hazards[0].seq);
    assert_eq!(sites[0]["last_seq"], hazards[2].seq);
    assert_eq!(
        sites[0]["frames_sym"][0].as_str().unwrap().split('+').next(),
        Some("kunit_write_linear_map_pte")
    );
    let audits = summary["audits"].as_array().unwrap();
    assert_eq!(audits.len(), 2);
    assert_eq!(audits[1]["by_region"], serde_json::json!({"fixmap": 1, "vmemmap": 3}));
    assert_eq!(audits[1]["unprotected_tables"].as_array().unwrap().len(), 4);
    assert_eq!(audits[1]["stale"][0]["pages"], 1);
    // Each live call_trace line names its frames.
    let live = o.json.iter().find(|v| v["event"] == "call_trace").unwrap();
    assert_eq!(live["frames_sym"][0].as_str().unwrap().split('+').next(), Some("kunit_write_linear_map_pte"));
}

/// `porwatch decode` of the same trace: the text report (counts, then the
/// groups), the hazard reports' call traces, and --hazards-only: the first
/// report of each site and the counts.
#[test]
fn text_reports_and_hazards_only() {
    let o = run_audit(&[]);
    let dir = tempdir();
    let trace = dir.join("audit.pwt");
    std::fs::write(&trace, &o.raw).unwrap();
    let elf = images().join("guests/audit.elf");
    let decode = |extra: &[&str]| {
        let out = Command::new(BIN)
            .arg("decode")
            .args(["--symbols", elf.to_str().unwrap()])
            .args(extra)
            .arg(&trace)
            .output()
            .unwrap();
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap(), out.status.code())
    };
    let (text, err, code) = decode(&[]);
    assert_eq!(code, Some(4), "a trace with hazards: {err}");
    let head = text.lines().position(|l| l.starts_with("porwatch: AUDIT (first_por, #")).expect(&text);
    let lines: Vec<&str> = text.lines().skip(head).take(12).collect();
    assert!(lines[0].ends_with("4 of 20 page-table pages are writable under POR_EL1=0x17 (the first restrictive value the guest set)"), "{}", lines[0]);
    assert_eq!(lines[1], "  writable, by what the table maps: fixmap 1, vmemmap 3");
    assert!(lines[2].starts_with("  protected 16, unmapped 0; the tables' pkey 1"), "{}", lines[2]);
    assert_eq!(lines[3], "  fixmap:");
    assert_eq!(lines[5], "  vmemmap:");
    assert!(lines[9].starts_with("  stale pkeys:"), "{}", lines[9]);
    assert_eq!(text.matches("porwatch: AUDIT (").count(), 2);
    assert!(text.contains("  Call trace:\n   copy_to_kernel_nofault+0x"), "{text}");
    assert!(text.contains("\n   kunit_write_linear_map_pte+0x"), "{text}");
    assert!(text.contains("  Interrupted code (#"), "{text}");
    assert!(err.contains("porwatch: 4 hazards at 2 sites (PC and call trace):"), "{err}");
    assert!(err.contains("porwatch:   3 x copy_to_kernel_nofault+0x"), "{err}");
    assert!(err.contains("porwatch: audit exit #"), "{err}");
    assert!(err.contains("(fixmap 1, vmemmap 3); 1 stale-pkey page (the last of 2 audits)"), "{err}");

    let (text, err, _) = decode(&["--hazards-only"]);
    assert_eq!(text.matches("porwatch: HAZARD:").count(), 2, "one report per site:\n{text}");
    assert_eq!(text.matches(" hazard ").count(), 2, "{text}");
    assert_eq!(text.matches("porwatch: AUDIT (").count(), 2, "{text}");
    assert!(!text.contains(" audit_table "), "the report, not the records:\n{text}");
    assert!(err.contains("porwatch: 4 hazards at 2 sites"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audit_options() {
    // Off: no audit.
    let o = run_audit(&["audit=off"]);
    assert_eq!(o.of_kind("audit").count(), 0);
    // Exit only, against a POR given on the command line that lets EL1
    // write pkeys 0 and 1: every table is writable.
    let o = run_audit(&["audit=exit", "audit_por=0x77"]);
    let a = o.one("audit");
    assert_eq!(
        (a.get_enum("trigger"), a.get_enum("por_source"), a.get_u64("por")),
        (Some("exit"), Some("option"), Some(0x77))
    );
    assert_eq!(a.get_u64("unprotected"), Some(20));
    assert_eq!(a.get_u64("table_pkeys"), Some(0));
    // Periodic: the guest keeps writing tables (traps) for 20 ms of its
    // clock; porwatch audits at most every 5 ms: at least 3 more audits.
    // -icount: both clocks count instructions, so a loaded host that
    // deschedules QEMU for milliseconds cannot starve the window of traps.
    let mut a = args_all("audit");
    a.icount = true;
    a.hyp_opts = vec!["audit=first-por,every:5".into()];
    a.append = Some("audit.spin_ms=20".into());
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    let all = audits(&o);
    assert!(all.len() >= 4, "{}", all.len());
    assert_eq!(all[0].0.get_enum("trigger"), Some("first_por"));
    assert!(all[1..].iter().all(|a| a.0.get_enum("trigger") == Some("periodic")));
    assert!(all.iter().all(|a| a.0.get_u64("unprotected") == Some(4) && a.1.len() == 4));
}

#[test]
fn a_guest_without_overlays_is_not_audited_unless_asked() {
    // tap=off: no POE for the guest (it skips every POR access).
    let o = run_audit(&["tap=off"]);
    assert_eq!(o.of_kind("audit").count(), 0);
    let o = run_audit(&["tap=off", "audit=exit"]);
    let a = o.one("audit");
    assert_eq!(a.get_enum("status"), Some("no_overlays"));
    assert_eq!(a.get_enum("por_source"), Some("none"));
    assert_eq!(a.get_u64("tables"), Some(0));
}

/// Stock Debian Linux uses no kernel pkeys (TCR2_EL1.POE stays 0): no
/// first-por audit ever runs, and an exit audit asked for explicitly says
/// there is nothing to audit. (The default, which would say nothing at all,
/// is what porwatch/tests/qemu_linux.rs runs.)
#[test]
fn stock_linux_has_nothing_to_audit() {
    let suite = "bookworm";
    let dir = porwatch::linux::cache_dir().join("linux").join(suite);
    assert!(dir.join("Image").is_file(), "run `scripts/fetch-linux {suite}` (scripts/test does)");
    let mut a = args("seed");
    a.linux = Some(suite.into());
    a.timeout = Some(600);
    a.hyp_opts = vec!["audit=first-por,exit".into()];
    let o = run_guest(a);
    assert!(!o.timed_out);
    assert_eq!(o.status, 0);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    let a = o.one("audit");
    assert_eq!(a.get_enum("trigger"), Some("exit"));
    assert_eq!((a.get_enum("status"), a.get_enum("por_source")), (Some("no_overlays"), Some("none")));
    assert_eq!(o.of_kind("audit_table").count(), 0);
    assert_eq!(o.of_kind("call_trace").count(), 0);
}
