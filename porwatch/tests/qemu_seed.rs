//! The seed bug (../shared/seed/000_16eaa8d5c58b3fdb.txt) under porwatch:
//! the `seed` test kernel reproduces it (guest-tests/src/bin/seed.rs) and
//! prints, from its own tables, which write the hardware would fault on.
//! porwatch must report exactly that write, with the IRQ entry and the
//! POR_EL1 reset as its cause chain, before the guest faults.
mod common;
use common::*;
use porwatch::OwnedRecord;

/// The guest's own expectation: `seed: expect hazard va=.. level=.. table=..
/// old=.. new=.. por=.. pkey=.. perm=R`.
struct Expect {
    va: u64,
    level: i64,
    table: u64,
    old: u64,
    new: u64,
    por: u64,
    pkey: u64,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn expectation(console: &str) -> Expect {
    let line = console
        .lines()
        .find_map(|l| l.strip_prefix("seed: expect hazard "))
        .unwrap_or_else(|| panic!("no expectation line:\n{console}"));
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
    };
    Expect {
        va: hex(field("va")),
        level: field("level").parse().unwrap(),
        table: hex(field("table")),
        old: hex(field("old")),
        new: hex(field("new")),
        por: hex(field("por")),
        pkey: field("pkey").parse().unwrap(),
    }
}

fn summary_value(console: &str, key: &str) -> u64 {
    console
        .lines()
        .find_map(|l| l.strip_prefix("seed: summary "))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}="))))
        .unwrap_or_else(|| panic!("no summary {key}:\n{console}"))
        .parse()
        .unwrap()
}

fn by_seq(o: &Outcome, seq: u64) -> &OwnedRecord {
    o.records.iter().find(|r| r.seq == seq).unwrap_or_else(|| panic!("no record #{seq}"))
}

fn run_seed(opts: &[&str], append: Option<&str>) -> Outcome {
    let mut a = args_all("seed");
    a.hyp_opts = opts.iter().map(|s| s.to_string()).collect();
    a.append = append.map(str::to_string);
    let o = run_guest(a);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    o
}

/// The hazard matches the guest's own account, and its cause chain is the
/// IRQ entry and the POR_EL1 reset that entry code made.
fn check_hazard(o: &Outcome, action: &str) -> Expect {
    let e = expectation(&o.console);
    let h = o.one("hazard");
    assert_eq!(h.get_u64("va"), Some(e.va));
    assert_eq!(h.get_u64("ipa").map(|ipa| ipa & !0xfff), Some(e.table));
    assert_eq!(h.get_i64("level"), Some(e.level));
    assert_eq!(h.get_enum("half"), Some("ttbr1"));
    assert_eq!(h.get_u64("old"), Some(e.old));
    assert_eq!(h.get_u64("por"), Some(e.por));
    assert_eq!(h.get_u64("poindex"), Some(e.pkey));
    assert_eq!(h.get_u64("perm"), Some(1), "pkey 1 is read-only under 0x17");
    assert_eq!(h.get_enum("action"), Some(action));
    // The seed's linear map uses pages: the fault the hardware would raise
    // is a level-3 permission fault.
    assert_eq!(h.get_i64("leaf_level"), Some(3));
    if action == "performed" {
        assert_eq!(h.get_u64("new"), Some(e.new));
    }
    let entry = by_seq(o, h.get_u64("entry_seq").unwrap());
    assert_eq!(entry.kind, "exc_entry");
    assert_eq!(entry.get_enum("vector"), Some("irq_el1h"));
    let reset = by_seq(o, h.get_u64("por_seq").unwrap());
    assert_eq!(reset.kind, "por_write");
    assert_eq!(reset.get_u64("at_entry"), Some(1));
    assert_eq!(reset.get_u64("entry_seq"), Some(entry.seq));
    assert_eq!(reset.get_u64("new"), Some(e.por));
    assert!(entry.seq < reset.seq && reset.seq < h.seq);
    e
}

#[test]
fn report_mode_names_the_write_and_its_cause_and_the_guest_lives() {
    let o = run_seed(&[], None);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.console.contains("seed: done"), "console:\n{}", o.console);
    check_hazard(&o, "performed");
    let stats = o.one("pt_stats");
    assert_eq!(stats.get_u64("hazards"), Some(1));
    assert_eq!(stats.get_u64("coverage_gaps"), Some(0));
    assert_eq!(stats.get_u64("table_writes"), Some(summary_value(&o.console, "table_writes")));
    assert_eq!(o.of_kind("coverage_gap").count(), 0);
    assert!(o.of_kind("pt_root").any(|r| r.get_enum("half") == Some("ttbr1")));
}

#[test]
fn fault_mode_delivers_the_seed_esr_at_the_same_far_after_the_report() {
    let o = run_seed(&["policy=fault"], None);
    assert_eq!(o.status, 0x0f, "the seed's STATUS_OVERLAY_FAULT; console:\n{}", o.console);
    let e = check_hazard(&o, "fault_injected");
    assert!(o.console.contains("seed:   ESR = 0x000000409600004f"), "console:\n{}", o.console);
    assert!(o.console.contains(&format!("at virtual address {:016x}", e.va)), "console:\n{}", o.console);
    // The guest takes the overlay fault after porwatch reported it.
    let h = o.one("hazard");
    let fault = o
        .of_kind("exc_entry")
        .find(|r| r.get_u64("esr") == Some(0x0000_0040_9600_004f))
        .expect("the injected fault, seen by the tap");
    assert_eq!(fault.get_u64("far"), Some(e.va));
    assert!(h.seq < fault.seq);
}

#[test]
fn fixed_kernel_has_no_hazard() {
    let o = run_seed(&[], Some("seed.fixed=1"));
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert_eq!(o.of_kind("hazard").count(), 0);
    assert_eq!(o.one("pt_stats").get_u64("hazards"), Some(0));
    assert_eq!(summary_value(&o.console, "expected_hazards"), 0);
}

fn console_value(console: &str, prefix: &str, key: &str) -> String {
    console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .find_map(|l| {
            l.split_whitespace().find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
        .unwrap_or_else(|| panic!("no {key}:\n{console}"))
}

/// ≥ 100,000 table writes of every store form the kernel uses (STR X/W, STP,
/// CAS, LDSET/LDCLR, DC ZVA) across all levels and both TTBRs, with a
/// constructed number of writes under the default overlay: porwatch must
/// count exactly those, emulate everything else, and leave the tables as
/// the guest expects (it verifies them itself).
#[test]
fn stress_counts_exactly_the_constructed_hazards_and_keeps_tables_intact() {
    let mut a = args_all("pt_stress");
    a.timeout = Some(120);
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    assert!(o.console.contains("tables_verified=ok"), "console:\n{}", o.console);
    let expected: u64 = console_value(&o.console, "pt_stress: ", "expected_hazards").parse().unwrap();
    let writes: u64 = console_value(&o.console, "pt_stress: ", "writes").parse().unwrap();
    let hazard_va = hex(&console_value(&o.console, "pt_stress: ", "hazard_va"));
    assert!(expected > 0 && writes >= 100_000);
    let stats = o.one("pt_stats");
    assert_eq!(stats.get_u64("hazards"), Some(expected));
    assert_eq!(stats.get_u64("stores"), Some(writes), "every store emulated");
    assert_eq!(stats.get_u64("coverage_gaps"), Some(0));
    assert!(stats.get_u64("table_writes").unwrap() >= writes);
    let hazards: Vec<_> = o.of_kind("hazard").collect();
    assert_eq!(hazards.len() as u64, expected);
    for h in hazards {
        assert_eq!(h.get_u64("va"), Some(hazard_va));
        assert_eq!(h.get_u64("por"), Some(0x17));
        assert_eq!(h.get_u64("poindex"), Some(1));
    }
}

/// The store fast path (hyp/src/arch/fast_path.rs, vectors.S): `pt_store`
/// stores through every transfer register (x0..x30, XZR), every size and
/// form the assembly completes, every 64-bit LSE atomic (QEMU's `max` CPU
/// has FEAT_LSE), the kernel's stores while EL0 overlays deny everything,
/// an unaligned store (Rust path) and constructed hazards (one by STTR);
/// the guest checks every value itself. porwatch must have completed at
/// least the stores the guest counts as fast-path eligible in assembly,
/// emulated every store, and reported each hazard.
///
/// With `porwatch.leaves=trap`: every table store traps (by default, a
/// last-level table is left writable while the guest has no overlay on:
/// the next test).
#[test]
fn store_fast_path_keeps_every_value_and_reports_every_hazard() {
    let mut a = args_all("pt_store");
    a.append = Some("pt_store.iters=300".into());
    a.hyp_opts.push("leaves=trap".into());
    a.timeout = Some(120);
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    for check in ["regs", "sizes", "unaligned", "atomics", "unpriv", "hazards"] {
        assert!(o.console.contains(&format!("pt_store: check {check} ok")), "{check}:\n{}", o.console);
    }
    let field = |k: &str| console_value(&o.console, "pt_store: ", k);
    let writes: u64 = field("writes").parse().unwrap();
    let fast_min: u64 = field("fast_min").parse().unwrap();
    let expected: u64 = field("hazards").parse().unwrap();
    let hazard_va = hex(&field("hazard_va"));
    let sttr_va = hex(&field("sttr_va"));
    assert!(expected == 14 && fast_min > 900, "{}", o.console);
    assert!(o.console.contains("pt_store: check deny_cache ok"), "{}", o.console);
    let stats = o.one("pt_stats");
    assert_eq!(stats.get_u64("stores"), Some(writes), "every table store emulated");
    assert_eq!(stats.get_u64("coverage_gaps"), Some(0));
    assert_eq!(stats.get_u64("hazards"), Some(expected));
    let fast = stats.get_u64("fast_stores").unwrap();
    assert!(
        fast >= fast_min && fast < writes,
        "fast_stores {fast}, guest's minimum {fast_min}, writes {writes}"
    );
    // The STTR under POR_EL0 = 0 (its stores are EL0's: POR_EL0 applies),
    // then the kernel's own stores under POR_EL1 = 0x17, then the
    // deny_cache check's (PTEs 131, 133, 134 of the same table: the fast
    // path's mask cache must not have hidden them).
    let hazards: Vec<_> = o.of_kind("hazard").collect();
    assert_eq!(hazards.len() as u64, expected);
    let (sttr, kernel) = hazards.split_first().unwrap();
    let (kernel, cache) = kernel.split_at(10);
    let pte = |j: u64| hazard_va + 8 * (j - 48); // hazard_va is PTE 48's
    let want = [(pte(131), 0x106, 0x17), (pte(133), 0x10a, 0x17), (pte(134), 0x10c, 0x37)];
    for (h, (va, new, por)) in cache.iter().zip(want) {
        assert_eq!((h.get_u64("va"), h.get_u64("new")), (Some(va), Some(new)), "{h:?}");
        assert_eq!((h.get_u64("por"), h.get_u64("poindex")), (Some(por), Some(1)), "{h:?}");
    }
    assert_eq!(sttr.get_u64("va"), Some(sttr_va));
    assert_eq!(sttr.get_u64("unprivileged"), Some(1));
    assert_eq!(
        (sttr.get_u64("por"), sttr.get_u64("poindex"), sttr.get_u64("perm")),
        (Some(0), Some(1), Some(0))
    );
    for (i, h) in kernel.iter().enumerate() {
        assert_eq!(h.get_u64("va"), Some(hazard_va + 8 * i as u64));
        assert_eq!(h.get_u64("new"), Some(2 * i as u64 + 2));
        assert_eq!(h.get_u64("unprivileged"), Some(0));
        assert_eq!((h.get_u64("por"), h.get_u64("poindex")), (Some(0x17), Some(1)));
    }
}

/// The chain as compared: kind, seq and every field of each record.
fn chain_of(o: &Outcome) -> (Vec<(String, u64, String)>, bool) {
    let at = o.records.iter().position(|r| r.kind == "hazard").expect("a hazard");
    let c = porwatch::chain::of_hazard(&o.records, at).expect("a chain");
    (c.records.iter().map(|r| (r.kind.clone(), r.seq, format!("{:?}", r.fields))).collect(), c.complete)
}

/// docs/flight.md: the flight recorder keeps entries and POR writes in a
/// per-CPU ring and sends a hazard's cause chain from it; that chain must be
/// the one the full stream gives (same records, seqs and fields: -icount
/// makes both runs take the IRQ at the same instruction).
#[test]
fn flight_recorder_chain_equals_the_full_streams() {
    let run = |stream: &str| {
        let mut a = args("seed");
        a.hyp_opts = vec![format!("stream={stream}")];
        a.icount = true;
        let o = run_guest(a);
        assert!(o.stats.is_clean(), "{stream}: {:?}", o.stats);
        assert_eq!(o.status, 0, "{stream}: console:\n{}", o.console);
        o
    };
    let all = run("all");
    let flight = run("flight");
    let (full_chain, full_complete) = chain_of(&all);
    let (flight_chain, flight_complete) = chain_of(&flight);
    assert!(full_complete && flight_complete);
    // The seed's chain: the IRQ entry and its entry code's POR_EL1 reset.
    let kinds: Vec<&str> = full_chain.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds, ["exc_entry", "por_write"], "{full_chain:#?}");
    assert_eq!(flight_chain, full_chain);
    assert_eq!(flight.of_kind("cause_chain").count(), 1);
    assert_eq!(all.of_kind("cause_chain").count(), 0);
    // The hazard's own pointers resolve in the flight trace too.
    check_hazard(&flight, "performed");
    // Most POR writes and entries stayed in the ring, counted (a chain
    // re-sends records an entry transition already sent: count seqs once).
    let ring_kinds = |o: &Outcome| {
        let mut seqs: Vec<u64> = o
            .records
            .iter()
            .filter(|r| r.kind == "exc_entry" || r.kind == "por_write")
            .map(|r| r.seq)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.len() as u64
    };
    assert!(ring_kinds(&flight) < ring_kinds(&all), "{} vs {}", ring_kinds(&flight), ring_kinds(&all));
    let fs = flight.one("flight_stats");
    let traps = all.of_kind("trap").count() as u64;
    assert_eq!(flight.of_kind("trap").count(), 0, "expected traps stay in the ring");
    assert_eq!(
        fs.get_u64("events"),
        Some(ring_kinds(&all) + traps),
        "every entry, POR write and trap went into the ring"
    );
    assert_eq!(fs.get_u64("overwritten"), Some(0));
}

/// `porwatch.leaves=open` (the default, hyp/src/pt/open_leaves.rs):
/// `pt_store` stores to its last-level tables before it turns TCR2_EL1.POE
/// on, so porwatch leaves one writable and does not see those stores; it
/// must protect it again when POE goes on, or the hazards made there later
/// are lost (without the re-protection 3 of the 14 are).
#[test]
fn open_leaf_tables_are_protected_again_when_overlays_go_on() {
    let mut a = args_all("pt_store");
    a.append = Some("pt_store.iters=300".into());
    a.timeout = Some(120);
    let o = run_guest(a);
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{:?}", o.stats);
    assert!(o.console.contains("pt_store: check hazards ok"), "{}", o.console);
    let writes: u64 = console_value(&o.console, "pt_store: ", "writes").parse().unwrap();
    let expected: u64 = console_value(&o.console, "pt_store: ", "hazards").parse().unwrap();
    let stats = o.one("pt_stats");
    assert!(stats.get_u64("leaves_opened").unwrap() >= 1, "{stats:?}");
    let stores = stats.get_u64("stores").unwrap();
    assert!(stores < writes, "a page was open, its stores unseen: {stores} of {writes}");
    assert_eq!(stats.get_u64("hazards"), Some(expected), "{stats:?}");
    assert_eq!(o.of_kind("hazard").count() as u64, expected);
    assert_eq!(stats.get_u64("coverage_gaps"), Some(0));
}

/// `pt_store.window=1` (its `window` check): a lazy-MMU batch, the store
/// after its closing POR_EL1 write, and a batch cut by an exception entry
/// whose kpkeys entry code resets POR_EL1 (its handler's stores are
/// hazards). The reset goes to Rust after the assembly raised the level;
/// the store fast path must then check against the default level's mask,
/// not keep the raised one's (it did: 15 of 19 hazards were reported).
/// Every table page protected, and by default.
#[test]
fn a_reset_after_a_raise_checks_stores_against_the_reset_level() {
    for opts in [vec!["leaves=trap"], vec![]] {
        let mut a = args("pt_store");
        a.append = Some("pt_store.iters=50 pt_store.window=1".into());
        a.hyp_opts = opts.iter().map(|s| s.to_string()).collect();
        a.timeout = Some(120);
        let o = run_guest(a);
        assert_eq!(o.status, 0, "{opts:?}: console:\n{}", o.console);
        assert!(o.stats.is_clean(), "{opts:?}: {:?}", o.stats);
        assert!(o.console.contains("pt_store: check window ok"), "{opts:?}: {}", o.console);
        let checks: u64 = console_value(&o.console, "pt_store: writes=", "hazards").parse().unwrap();
        let window: u64 = console_value(&o.console, "pt_store: window ", "hazards").parse().unwrap();
        assert_eq!((checks, window), (14, 5), "{opts:?}: {}", o.console);
        let stats = o.one("pt_stats");
        assert_eq!(stats.get_u64("hazards"), Some(checks + window), "{opts:?}: {stats:?}");
        assert_eq!(o.of_kind("hazard").count() as u64, checks + window, "{opts:?}");
    }
}
