//! The flight recorder's hot path (docs/flight.md "The hot path"): with
//! `porwatch.stream=flight` the assembly pushes completed exception entries
//! and POR_EL1 changes into the CPU's ring itself. What it leaves to Rust
//! (entry transitions, the flight_stats period) and what it counts must
//! give the same trace as Rust recording every event.
mod common;
use common::*;
use porwatch::OwnedRecord;

/// (kind, seq, fields) of a record: what must match between two runs
/// under -icount (timestamps aside).
fn key(r: &OwnedRecord) -> (String, u64, String) {
    (r.kind.clone(), r.seq, format!("{:?}", r.fields))
}

fn run(guest: &str, stream: &str, append: Option<&str>) -> Outcome {
    let mut a = args(guest);
    a.hyp_opts = vec![format!("stream={stream}")];
    a.append = append.map(str::to_string);
    a.icount = true;
    let o = run_guest(a);
    assert_eq!(o.status, 0, "{guest} {stream}: console:\n{}", o.console);
    assert!(!o.console.contains("FAIL"), "{guest} {stream}: console:\n{}", o.console);
    assert!(o.stats.is_clean(), "{guest} {stream}: {:?}", o.stats);
    o
}

/// `flight_stats` events per period (hyp trace_out `FLIGHT_STATS_PERIOD`).
const PERIOD: u64 = 65_536;

/// A flood longer than one `flight_stats` period: exactly two such records
/// (one at the period, one at the end); the final (events, overwritten).
fn flood_totals(flight: &Outcome) -> (u64, u64) {
    let stats: Vec<(u64, u64, u64)> = flight
        .of_kind("flight_stats")
        .map(|r| {
            let f = |n| r.get_u64(n).unwrap();
            (f("events"), f("streamed"), f("overwritten"))
        })
        .collect();
    assert_eq!(stats.len(), 2, "one at the period, one at the end: {stats:?}");
    assert_eq!(stats[0].0, PERIOD, "{stats:?}");
    (stats[1].0, stats[1].2)
}

/// The `exceptions` kernel's entry transitions reach the trace in flight
/// mode exactly as the full stream has them: each at_entry `por_write` that
/// takes write away from some pkey (its entry code lowers POR_EL1: #1-#4,
/// #6) and the `exc_entry` it names, with the same seqs and fields,
/// although the assembly recorded the entries (and the plain POR writes) in
/// the ring and Rust only the transitions. #5's handler raise (0x17 ->
/// 0x57, at_entry: its entry changed nothing) stays in the ring
/// (monitor flight::streams_transition).
#[test]
fn flight_mode_streams_the_full_streams_entry_transitions() {
    let all = run("exceptions", "all", None);
    let flight = run("exceptions", "flight", None);
    let transitions = |o: &Outcome, only_resets: bool| -> Vec<(String, u64, String)> {
        let at_entry: Vec<&OwnedRecord> = o
            .of_kind("por_write")
            .filter(|r| r.get_u64("at_entry") == Some(1))
            .filter(|r| {
                let (old, new) = (r.get_u64("old").unwrap(), r.get_u64("new").unwrap());
                !only_resets || porwatch_monitor::flight::takes_write_away(old, new)
            })
            .collect();
        let mut v = Vec::new();
        for w in at_entry {
            let entry_seq = w.get_u64("entry_seq").unwrap();
            let e = o
                .of_kind("exc_entry")
                .find(|e| e.seq == entry_seq)
                .unwrap_or_else(|| panic!("entry {entry_seq} of {w:?} not in the trace"));
            v.push(key(e));
            v.push(key(w));
        }
        v
    };
    assert_eq!(transitions(&all, false).len(), 12, "six at_entry writes, #5's raise one of them");
    let want = transitions(&all, true);
    assert_eq!(want.len(), 10, "the kernel's entry code resets POR_EL1 five times: {want:#?}");
    assert_eq!(transitions(&flight, false), want, "flight streams the resets, not the raise");
    // The plain POR writes and the raise stayed in the ring.
    assert!(flight.of_kind("por_write").count() < all.of_kind("por_write").count());
    let fs = flight.one("flight_stats");
    let ring_kinds = ["exc_entry", "exc_return", "por_write", "trap"];
    let events = all.records.iter().filter(|r| ring_kinds.contains(&r.kind.as_str())).count() as u64;
    assert_eq!(fs.get_u64("events"), Some(events), "every entry, POR write and trap went into the ring");
}

/// A flood of `svc` round trips and POR_EL1 changes (the `bench` kernel),
/// every one recorded by the assembly: more than the `flight_stats` period
/// (the push that makes one due goes to Rust) and hundreds of times the
/// ring. Every event is counted, and every one the ring lost is counted as
/// overwritten (none silently), with the same totals as the full stream's
/// records.
#[test]
fn a_flood_through_the_assembly_is_counted_and_nothing_is_lost_silently() {
    const ITERS: u64 = 35_000; // per operation: 70,000 ring events
    const SLOTS: u64 = porwatch_monitor::flight::FLIGHT_SLOTS as u64;
    let append = format!("bench.iters={ITERS}");
    let flight = run("bench", "flight", Some(&append));
    let (events, overwritten) = flood_totals(&flight);
    // The ring holds its last SLOTS events; every older one was overwritten,
    // and counted unless it had been streamed: no entry or POR write is
    // here. The first POR_EL1 change after the svc flood is at_entry (the
    // last entry's window is open) but a raise (0 -> 0x40: it takes no write
    // away), so it stayed in the ring and was overwritten by the POR
    // flood (no hazard, so no chain) -- checked against the full stream
    // below.
    let mut streamed: Vec<u64> = flight
        .records
        .iter()
        .filter(|r| r.kind == "exc_entry" || r.kind == "por_write")
        .map(|r| r.seq)
        .collect();
    streamed.dedup();
    assert!(
        streamed.is_empty() && events > 2 * ITERS,
        "events {events}, overwritten {overwritten}, streamed {streamed:?}"
    );
    assert_eq!(
        overwritten,
        events - SLOTS - streamed.len() as u64,
        "events {events}, overwritten {overwritten}, streamed {streamed:?}"
    );
    // The full stream sends each of those events as a record: the same
    // count, and the flood's entries all there with consecutive seqs.
    let all = run("bench", "all", Some(&append));
    let ring_kinds = ["exc_entry", "exc_return", "por_write", "trap"];
    let all_events = all.records.iter().filter(|r| ring_kinds.contains(&r.kind.as_str())).count() as u64;
    assert_eq!(events, all_events, "flight_stats.events against the full stream's records");
    assert!(all.of_kind("exc_entry").count() as u64 >= ITERS);
    let at_entry: Vec<(u64, u64)> = all
        .of_kind("por_write")
        .filter(|r| r.get_u64("at_entry") == Some(1))
        .map(|r| (r.get_u64("old").unwrap(), r.get_u64("new").unwrap()))
        .collect();
    assert_eq!(at_entry, [(0, 0x40)], "one at_entry write, a raise (pkey 1 gets W)");
    assert!(!porwatch_monitor::flight::takes_write_away(0, 0x40));
    // The seq numbering is the same in both modes: the last flood entry's
    // seq in the full stream is below the flight run's final flight_stats.
    let last_entry = all.of_kind("exc_entry").last().unwrap().seq;
    let final_stats = flight.of_kind("flight_stats").last().unwrap().seq;
    assert!(last_entry < final_stats, "{last_entry} vs {final_stats}");
}

/// The flood again, but with `bench.por=0x40`: the first POR_EL1 change
/// after the `svc` flood (0x40 -> 0, at_entry: the last entry's window is
/// open) takes pkey 1's write away, an entry transition, so that entry and
/// that write are streamed; then the POR flood overwrites them in the ring.
/// An event streamed before it was overwritten is not lost: the assembly
/// counts it (`FlightRing::lost_streamed`, vectors.S `FLIGHT_PUSH`) and
/// `flight_stats.overwritten` leaves it out.
#[test]
fn a_streamed_event_overwritten_later_is_not_counted_as_overwritten() {
    const ITERS: u64 = 35_000; // per operation: 70,000 ring events
    const SLOTS: u64 = porwatch_monitor::flight::FLIGHT_SLOTS as u64;
    let append = format!("bench.iters={ITERS} bench.por=0x40");
    let flight = run("bench", "flight", Some(&append));
    assert!(flight.console.contains("bench: por=0x40"), "{}", flight.console);
    let (events, overwritten) = flood_totals(&flight);
    // The one entry transition: the svc flood's last entry and the write
    // that named it, both streamed.
    let streamed: Vec<&OwnedRecord> =
        flight.records.iter().filter(|r| r.kind == "exc_entry" || r.kind == "por_write").collect();
    assert_eq!(streamed.len(), 2, "{streamed:#?}");
    let (entry, write) = (streamed[0], streamed[1]);
    assert_eq!(entry.kind, "exc_entry", "{streamed:#?}");
    assert_eq!(write.kind, "por_write", "{streamed:#?}");
    assert_eq!(write.get_u64("at_entry"), Some(1), "{write:?}");
    assert_eq!(write.get_u64("entry_seq"), Some(entry.seq), "{write:?}");
    assert_eq!((write.get_u64("old"), write.get_u64("new")), (Some(0x40), Some(0)), "{write:?}");
    assert!(porwatch_monitor::flight::takes_write_away(0x40, 0));
    // Both were overwritten by the POR flood after them (far more than
    // SLOTS events): every event older than the ring's last SLOTS is lost
    // from it, and counted as overwritten unless it had been streamed.
    let final_stats = flight.of_kind("flight_stats").last().unwrap();
    assert!(
        events > 2 * ITERS && final_stats.seq > write.seq + ITERS && ITERS > 2 * SLOTS,
        "events {events}"
    );
    assert_eq!(
        overwritten,
        events - SLOTS - 2,
        "events {events}, overwritten {overwritten}: the two streamed events are not overwritten ones"
    );
    // The full stream has the same events, and that transition with the
    // same seqs and fields.
    let all = run("bench", "all", Some(&append));
    let ring_kinds = ["exc_entry", "exc_return", "por_write", "trap"];
    let all_events = all.records.iter().filter(|r| ring_kinds.contains(&r.kind.as_str())).count() as u64;
    assert_eq!(events, all_events, "flight_stats.events against the full stream's records");
    let at_entry: Vec<&OwnedRecord> =
        all.of_kind("por_write").filter(|r| r.get_u64("at_entry") == Some(1)).collect();
    assert_eq!(at_entry.len(), 1, "{at_entry:#?}");
    assert_eq!(key(at_entry[0]), key(write));
    let all_entry =
        all.of_kind("exc_entry").find(|e| e.seq == entry.seq).expect("the entry in the full stream");
    assert_eq!(key(all_entry), key(entry));
}
