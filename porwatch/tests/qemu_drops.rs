//! The trace's loss accounting when porwatch's trace queue drops records
//! (`porwatch.selftest=drop|drop-half` makes the queue refuse droppable
//! records as a full one would): every loss is reported by a `dropped`
//! record whose seq follows the dropped ones and whose time does not go
//! back, and in flight mode a pending report goes out before the
//! `flight_stats` that counts it, so a lossy run reads as lossy, not as
//! damaged.
mod common;
use common::*;
use porwatch::OwnedRecord;
use std::collections::BTreeMap;

/// Per CPU, record times never go back in arrival order, except for a
/// record re-sent from the flight ring (a seq below one already seen:
/// cause-chain links and transitions keep their own times).
fn assert_times_never_go_back(records: &[OwnedRecord]) {
    let mut last: BTreeMap<u32, (u64, u64, usize)> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        match last.get(&r.cpu) {
            Some(&(seq, _, _)) if r.seq < seq => continue,
            Some(&(_, ts, j)) => assert!(
                r.ts >= ts,
                "cpu{}: record {i} ({} seq {}) has ts {} before record {j} ({} seq {}) ts {ts}",
                r.cpu,
                r.kind,
                r.seq,
                r.ts,
                records[j].kind,
                records[j].seq
            ),
            None => {}
        }
        last.insert(r.cpu, (r.seq, r.ts, i));
    }
}

fn dropping(mut a: porwatch::run::RunArgs, test: &str) -> Outcome {
    a.hyp_opts = vec![format!("selftest={test}")];
    a.timeout = Some(120);
    run_guest(a)
}

/// Flight mode (the default), every droppable record dropped: the last
/// report is pending when the run ends and must go out before the CPU's
/// final `flight_stats`, counted in its `streamed` (else the reader sees
/// one record more than `streamed` and calls the trace damaged, 65).
#[test]
fn flight_stats_counts_the_dropped_report_sent_before_it() {
    let o = dropping(args("hello"), "drop");
    assert_eq!(o.status, 0, "stats {}\nconsole:\n{}", o.stats, o.console);
    assert!(o.console.contains("hello: done"), "{}", o.console);
    assert!(o.stats.hyp_dropped > 0, "{}", o.stats);
    assert_eq!(o.stats.unexplained_gaps, 0, "{}", o.stats);
    let last_stats = o.records.iter().rposition(|r| r.kind == "flight_stats" && r.cpu == 0).unwrap();
    let before = &o.records[last_stats - 1];
    assert_eq!(
        before.kind,
        "dropped",
        "the pending report goes out first: {:#?}",
        &o.records[last_stats - 1..]
    );
    let counts: u64 = o.of_kind("dropped").map(|r| r.get_u64("count").unwrap()).sum();
    assert_eq!(counts, o.stats.hyp_dropped, "{}", o.stats);
    assert_consecutive(&o.records);
    assert_times_never_go_back(&o.records);
    assert_eq!(o.records.last().unwrap().kind, "guest_exit");
}

/// The full stream, every other droppable frame dropped (`svc` round
/// trips: each full batch is refused): each report goes out just before a
/// record that was queued earlier (the tap's entries, emitted at the next
/// trap with their own older times). The report takes the seq after the
/// dropped ones (the reader's seq check passes) and that record's time,
/// not a later one.
#[test]
fn full_stream_reports_follow_the_dropped_seqs_and_keep_time_order() {
    let mut a = args_all("bench");
    a.append = Some("bench.iters=2000 bench.only=svc".into());
    let o = dropping(a, "drop-half");
    assert_eq!(o.status, 0, "stats {}\nconsole:\n{}", o.stats, o.console);
    assert!(o.console.contains("bench: done"), "{}", o.console);
    assert_eq!(o.stats.unexplained_gaps, 0, "{}", o.stats);
    let reports: Vec<usize> = (0..o.records.len()).filter(|&i| o.records[i].kind == "dropped").collect();
    assert!(reports.len() >= 10, "{} reports; {}", reports.len(), o.stats);
    // Reports right before a queued entry: the case a later time showed.
    let before_entry = reports
        .iter()
        .filter(|&&i| {
            o.records.get(i + 1).is_some_and(|r| r.kind == "exc_entry" && r.cpu == o.records[i].cpu)
        })
        .count();
    assert!(before_entry > 0, "no report precedes an exc_entry");
    let dropped: u64 = reports.iter().map(|&i| o.records[i].get_u64("count").unwrap()).sum();
    assert_eq!(dropped, o.stats.hyp_dropped);
    assert_times_never_go_back(&o.records);
}
