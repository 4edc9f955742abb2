//! The kpkeys-profile benchmark guest (`kpkeys_bench`, issue #13 item 6)
//! under porwatch: a working kpkeys kernel's op mix gives zero hazards, and
//! porwatch counts what the guest says it did, in both streams; with
//! `kpkeys_bench.bug=1` its one store outside a window is one hazard whose
//! cause chain starts at the POR_EL1 write that closed the window.
mod common;
use common::*;
use std::collections::BTreeMap;

const ITERS: u64 = 1000;

/// `kpkeys_bench: WHAT k=v ...` from the console.
fn counts(console: &str, what: &str) -> BTreeMap<String, u64> {
    let prefix = format!("kpkeys_bench: {what} ");
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{console}"));
    line.split_whitespace()
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap_or_else(|_| panic!("{w} in {line}")))
        })
        .collect()
}

fn run(stream: &str, append: &str) -> Outcome {
    let mut a = args("kpkeys_bench");
    a.hyp_opts = vec![format!("stream={stream}")];
    a.append = Some(append.to_string());
    let o = run_guest(a);
    assert!(!o.timed_out, "{stream}: timed out:\n{}", o.console);
    assert!(o.stats.is_clean(), "{stream}: {:?}", o.stats);
    assert_eq!(o.status, 0, "{stream}: console:\n{}", o.console);
    assert!(o.console.contains("kpkeys_bench: done"), "{}", o.console);
    o
}

fn pt_stat(o: &Outcome, field: &str) -> u64 {
    o.one("pt_stats").get_u64(field).unwrap()
}

/// TTBR0 roots installed after the set-up's.
fn new_roots(o: &Outcome) -> u64 {
    o.of_kind("pt_root").filter(|r| r.get_enum("half") == Some("ttbr0")).count() as u64 - 1
}

#[test]
fn a_working_kpkeys_kernel_has_no_hazards_and_porwatch_counts_what_it_did() {
    let append = format!("kpkeys_bench.iters={ITERS}");
    let all = run("all", &append);
    let flight = run("flight", &append);
    let mut traps_all = 0;
    for (name, o) in [("all", &all), ("flight", &flight)] {
        let lp = counts(&o.console, "loop");
        let t = counts(&o.console, "totals");
        assert_eq!(lp["svcs"], ITERS, "{name}");
        // The profile, per syscall (so independent of how many timer IRQs
        // the host's speed lets in; each IRQ adds one guarded store, and two
        // POR writes more when it lands in a window): ≈ 5.3 POR_EL1 writes,
        // ≈ 7.5 table stores. The IRQs must have landed in windows too.
        let per_svc = |v: u64| v as f64 / lp["svcs"] as f64;
        let por = lp["por_writes"] - 2 * lp["irqs"] - 2 * lp["irqs_in_window"];
        assert!((5.2..5.5).contains(&per_svc(por)), "{name}: {lp:?}");
        assert!((7.2..7.8).contains(&per_svc(lp["stores"] - lp["irqs"])), "{name}: {lp:?}");
        assert!(lp["irqs_in_window"] > 0, "{name}: {lp:?}");
        assert_eq!(lp["entries"], lp["svcs"] + lp["irqs"], "{name}");
        assert!(lp["batches"] == ITERS / 10 && lp["tables_linked"] == ITERS / 100, "{name}: {lp:?}");
        // Zero hazards: every store was made inside an open window.
        assert_eq!(o.of_kind("hazard").count(), 0, "{name}");
        assert_eq!(pt_stat(o, "hazards"), 0, "{name}");
        assert_eq!(pt_stat(o, "coverage_gaps"), 0, "{name}");
        // The protection audit judges the tables by the entry code's reset
        // (0x17: pkey 1 read-only), not by a syscall handler's raise (0x57,
        // the first change after an entry from EL0): no table is writable.
        let audits: Vec<_> = o.of_kind("audit").collect();
        assert!(!audits.is_empty(), "{name}: no audit");
        for a in audits {
            assert_eq!(a.get_u64("por"), Some(0x17), "{name}: {a:?}");
            assert_eq!(a.get_u64("unprotected"), Some(0), "{name}: {a:?}");
        }
        // porwatch saw every tracked store, each one descriptor.
        assert_eq!(pt_stat(o, "stores"), t["stores"], "{name}");
        assert_eq!(pt_stat(o, "table_writes"), t["stores"], "{name}");
        assert_eq!(new_roots(o), t["roots"], "{name}");
        assert_eq!(t["roots"], ITERS / 1000, "{name}");
        assert_eq!(pt_stat(o, "roots_released"), t["roots"], "{name}: each old root was released");
        if name == "all" {
            assert_eq!(o.of_kind("exc_entry").count() as u64, t["entries"], "{name}");
            assert_eq!(o.of_kind("por_write").count() as u64, t["por_writes"], "{name}");
            traps_all = o.of_kind("trap").count() as u64;
        } else {
            // Every entry, POR change and expected trap went into the ring:
            // the traps are the set-up's and one TTBR0 write per new root,
            // the same in both runs.
            let fs = o.of_kind("flight_stats").last().unwrap();
            assert_eq!(o.of_kind("trap").count(), 0);
            assert_eq!(fs.get_u64("events").unwrap(), t["entries"] + t["por_writes"] + traps_all, "{name}");
        }
    }
}

#[test]
fn bug_1_is_one_hazard_chained_to_the_write_that_closed_the_window() {
    let o = run("flight", "kpkeys_bench.iters=200 kpkeys_bench.bug=1");
    let va = o
        .console
        .lines()
        .find_map(|l| l.strip_prefix("kpkeys_bench: bug: one store outside a window at va=0x"))
        .map(|v| u64::from_str_radix(v, 16).unwrap())
        .unwrap_or_else(|| panic!("no bug line:\n{}", o.console));
    let h = o.one("hazard");
    assert_eq!(h.get_u64("va"), Some(va));
    assert_eq!(h.get_u64("por"), Some(0x17));
    assert_eq!(h.get_u64("poindex"), Some(1));
    assert_eq!(pt_stat(&o, "hazards"), 1);
    let at = o.records.iter().position(|r| r.kind == "hazard").unwrap();
    let chain = porwatch::chain::of_hazard(&o.records, at).expect("a chain");
    assert!(chain.complete, "{:#?}", chain.records);
    let first = chain.records.first().expect("a non-empty chain");
    assert_eq!(first.kind, "por_write", "{:#?}", chain.records);
    assert_eq!((first.get_u64("old"), first.get_u64("new")), (Some(0x57), Some(0x17)));
    assert_eq!(o.of_kind("cause_chain").count(), 1);
}
