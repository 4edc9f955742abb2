//! `--perfetto FILE`: the trace as a Chrome Trace Event Format JSON object
//! (`{"traceEvents": [...]}`), loadable by ui.perfetto.dev and
//! chrome://tracing.
//!
//! One process ("porwatch guest") with three tracks (threads) per CPU, named
//! after it (`cpu1 guest exceptions`, ...; a CPU's tracks appear with its
//! first record):
//!
//! * "cpuN guest exceptions": each `exc_entry` is a slice (`B`) ended (`E`)
//!   by the `exc_return` with the same nesting depth; an entry without a
//!   matching return is an instant (`i`) instead.
//! * "cpuN page-table watch": `hazard`, `por_write`, `coverage_gap` as
//!   instants.
//! * "cpuN traps": `trap` and `unknown_trap` as instants.
//!
//! plus a counter (`C`) per CPU and POR register (`cpuN POR_EL1`, `cpuN
//! POR_EL0`): the value after each `por_write`, and POR_EL1 at each
//! `exc_entry` (its `por`).
//! Every event's `args` is the record's JSON line (symbolized members
//! included). Timestamps are µs since counter start (the header's cntfrq);
//! records before any header use their raw `ts` ticks.

use std::collections::BTreeMap;
use std::io::{self, Write};

use porwatch_trace::{Event, Record};
use serde_json::{json, Value};

use crate::decode::Timestamp;
use crate::json;
use crate::symbols::Symbolizer;

const PID: u64 = 1;
/// A CPU's tracks: thread ids `TRACKS * cpu + TID_*`.
const TRACKS: u64 = 3;
const TID_EXC: u64 = 1;
const TID_WATCH: u64 = 2;
const TID_TRAPS: u64 = 3;

/// Collects trace events; [`Perfetto::write`] writes the JSON object.
#[derive(Default)]
pub struct Perfetto {
    events: Vec<Value>,
    /// Open exception slices per CPU: (index in `events`, depth at entry).
    open: BTreeMap<u32, Vec<(usize, u64)>>,
}

/// The thread id of `cpu`'s track `tid` (a `TID_*`).
fn track(cpu: u32, tid: u64) -> u64 {
    TRACKS * u64::from(cpu) + tid
}

impl Perfetto {
    pub fn new() -> Self {
        Perfetto {
            events: vec![
                json!({"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": "porwatch guest"}}),
            ],
            open: BTreeMap::new(),
        }
    }

    /// `cpu`'s track names, the first time it is seen.
    fn announce(&mut self, cpu: u32) {
        if self.open.contains_key(&cpu) {
            return;
        }
        self.open.insert(cpu, Vec::new());
        for (tid, what) in
            [(TID_EXC, "guest exceptions"), (TID_WATCH, "page-table watch"), (TID_TRAPS, "traps")]
        {
            let tid = track(cpu, tid);
            self.events.push(json!({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": format!("cpu{cpu} {what}")}}));
            self.events.push(json!({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}}));
        }
    }

    /// Adds the events of one record.
    pub fn record(&mut self, rec: &Record<'_>, time: Option<Timestamp>, sym: Option<&Symbolizer>) {
        let ts = match time {
            Some(t) => t.secs as f64 * 1e6 + f64::from(t.micros),
            None => rec.ts as f64,
        };
        let args = || {
            let mut buf = Vec::new();
            match json::write_record_with(&mut buf, rec, time, sym) {
                Ok(()) => serde_json::from_slice::<Value>(&buf).unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        };
        let cpu = rec.cpu;
        if matches!(rec.event, Event::Header { .. }) && rec.seq == 0 {
            self.close_all();
        }
        self.announce(cpu);
        let instant = |tid: u64, name: String, args: Value| json!({"ph": "i", "s": "t", "pid": PID, "tid": track(cpu, tid), "ts": ts, "name": name, "args": args});
        let counter = |reg: &str, value: u64| {
            let name = format!("cpu{cpu} {reg}");
            json!({"ph": "C", "pid": PID, "ts": ts, "name": name, "args": {name: value}})
        };
        match rec.event {
            Event::ExcEntry { vector, por, depth, .. } => {
                let name = porwatch_trace::VECTOR_NAMES.get(vector as usize).copied().unwrap_or("exception");
                self.events.push(counter("POR_EL1", por));
                let at = self.events.len();
                self.open.entry(cpu).or_default().push((at, depth));
                self.events.push(json!({
                    "ph": "B", "pid": PID, "tid": track(cpu, TID_EXC), "ts": ts,
                    "name": name, "args": args(),
                }));
            }
            Event::ExcReturn { depth, .. } => {
                while self.open.get(&cpu).and_then(|o| o.last()).is_some_and(|&(_, d)| d > depth) {
                    self.unmatch(cpu);
                }
                let open = self.open.entry(cpu).or_default();
                if open.last().is_some_and(|&(_, d)| d == depth) {
                    open.pop();
                    self.events.push(
                        json!({"ph": "E", "pid": PID, "tid": track(cpu, TID_EXC), "ts": ts, "args": args()}),
                    );
                }
            }
            Event::PorWrite { reg, new, .. } => {
                let name = if reg == 1 { "POR_EL0" } else { "POR_EL1" };
                self.events.push(instant(TID_WATCH, format!("por_write {name}={new:#x}"), args()));
                self.events.push(counter(name, new));
            }
            Event::Hazard { poindex, .. } => {
                self.events.push(instant(TID_WATCH, format!("hazard pkey {poindex}"), args()))
            }
            Event::CoverageGap { .. } => self.events.push(instant(TID_WATCH, "coverage_gap".into(), args())),
            Event::Trap { .. } | Event::UnknownTrap { .. } => {
                self.events.push(instant(TID_TRAPS, rec.event.kind_name().into(), args()))
            }
            _ => {}
        }
    }

    /// `cpu`'s innermost open slice never returned: make it an instant.
    fn unmatch(&mut self, cpu: u32) {
        if let Some((i, _)) = self.open.get_mut(&cpu).and_then(|o| o.pop()) {
            if let Some(Value::Object(e)) = self.events.get_mut(i) {
                e.insert("ph".into(), "i".into());
                e.insert("s".into(), "t".into());
            }
        }
    }

    fn close_all(&mut self) {
        let cpus: Vec<u32> = self.open.keys().copied().collect();
        for cpu in cpus {
            while self.open.get(&cpu).is_some_and(|o| !o.is_empty()) {
                self.unmatch(cpu);
            }
        }
    }

    /// Writes `{"traceEvents":[...],"displayTimeUnit":"ns"}`.
    pub fn write(mut self, out: &mut dyn Write) -> io::Result<()> {
        self.close_all();
        let doc = json!({"traceEvents": self.events, "displayTimeUnit": "ns"});
        serde_json::to_writer(&mut *out, &doc).map_err(io::Error::from)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode_stream, DecodeOptions};
    use crate::printer::ViewOptions;
    use crate::sample;
    use crate::symbols::Symbols;
    use std::sync::Arc;

    fn ev(seq: u64, ts: u64, event: Event<'static>) -> Record<'static> {
        Record { cpu: 0, seq, ts, event }
    }

    fn entry(depth: u64, por: u64) -> Event<'static> {
        Event::ExcEntry { vector: 5, esr: 0, elr: 0x1010, spsr: 0, far: 0, por, depth }
    }

    fn ret(depth: u64) -> Event<'static> {
        Event::ExcReturn { elr: 0x1010, spsr: 0, por: 0x57, depth }
    }

    /// Records encoded with the trace encoder, decoded with `--perfetto`.
    fn export(recs: &[Record<'_>]) -> Vec<Value> {
        let dir = std::env::temp_dir().join(format!("porwatch-perfetto-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.json", recs.len()));
        let symbols =
            Arc::new(Symbols::from_entries(vec![(0x1000, Some(0x40), "pageattr_pte_entry".into())]));
        let view = ViewOptions { perfetto: Some(path.clone()), symbols: Some(symbols), ..Default::default() };
        let opts = DecodeOptions { json: false, summary: false, view };
        let bytes = sample::encode(recs).unwrap();
        decode_stream(&bytes[..], &mut Vec::new(), &opts, None).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        doc["traceEvents"].as_array().unwrap().clone()
    }

    #[test]
    fn slices_counters_and_instants() {
        let mut header = sample::records()[0];
        header.seq = 0;
        header.ts = 0;
        if let Event::Header { ref mut cntfrq, .. } = header.event {
            *cntfrq = 1_000_000; // 1 tick = 1 µs
        }
        let recs = [
            header,
            ev(1, 10, entry(0, 0x57)),
            ev(
                2,
                12,
                Event::PorWrite {
                    pc: 0x1004,
                    reg: 0,
                    old: 0x57,
                    new: 0x17,
                    at_entry: 1,
                    entry_seq: 1,
                    sampled: 0,
                },
            ),
            ev(3, 14, entry(1, 0x17)), // nested, never returns
            ev(
                4,
                15,
                Event::Hazard {
                    va: 0x8000,
                    ipa: 0x8000,
                    level: 3,
                    half: 1,
                    old: 1 << 60,
                    new: 0,
                    pc: 0x1020,
                    por: 0x17,
                    poindex: 1,
                    perm: 1,
                    unprivileged: 0,
                    entry_seq: 1,
                    por_seq: 2,
                    action: 0,
                    leaf_level: 3,
                    pir: 0,
                    trace_seq: 0,
                    entry_trace_seq: 0,
                },
            ),
            ev(5, 20, ret(0)),
            ev(6, 22, Event::Trap { esr: 0x5a00_0000, elr: 0x1030, outcome: 0 }),
            ev(7, 25, Event::CoverageGap { pc: 0x1000, insn: 0, va: 1, ipa: 1, reason: 0 }),
            ev(8, 30, entry(0, 0x57)), // never returns: instant
        ];
        let evs = export(&recs);
        let ph = |p: &str| evs.iter().filter(|e| e["ph"] == p).collect::<Vec<_>>();
        let threads: Vec<&Value> = ph("M").iter().map(|e| &e["args"]["name"]).collect();
        assert!(
            threads.contains(&&json!("cpu0 guest exceptions")) && threads.contains(&&json!("cpu0 traps"))
        );
        let (b, e) = (ph("B"), ph("E"));
        assert_eq!((b.len(), e.len()), (1, 1), "{evs:#?}");
        assert_eq!(b[0]["ts"], 10.0);
        assert_eq!(b[0]["name"], "irq_el1h");
        assert_eq!(b[0]["tid"], TID_EXC);
        assert_eq!(b[0]["args"]["elr_sym"], "pageattr_pte_entry+0x10/0x40");
        assert_eq!(e[0]["ts"], 20.0);
        let instants = ph("i");
        let names: Vec<&str> = instants.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["por_write POR_EL1=0x17", "irq_el1h", "hazard pkey 1", "trap", "coverage_gap", "irq_el1h"],
            "{evs:#?}"
        );
        let hz = instants[2];
        assert_eq!(hz["ts"], 15.0);
        assert_eq!(hz["args"]["pc_sym"], "pageattr_pte_entry+0x20/0x40");
        assert_eq!(hz["args"]["poindex"], 1);
        assert_eq!(instants[3]["tid"], TID_TRAPS);
        let por: Vec<(f64, u64)> = ph("C")
            .iter()
            .map(|e| (e["ts"].as_f64().unwrap(), e["args"]["cpu0 POR_EL1"].as_u64().unwrap()))
            .collect();
        assert_eq!(por, [(10.0, 0x57), (12.0, 0x17), (14.0, 0x17), (30.0, 0x57)]);
    }

    #[test]
    fn no_header_uses_raw_ticks_and_empty_trace_is_valid() {
        let evs = export(&[ev(3, 77, Event::Trap { esr: 0, elr: 0, outcome: 0 })]);
        assert_eq!(evs.last().unwrap()["ts"], 77.0);
        assert_eq!(export(&[]).len(), 1, "the process name only");
    }

    /// Each CPU has its own tracks and counters; a CPU's exception slice is
    /// ended by that CPU's return, not by another CPU's.
    #[test]
    fn a_track_per_cpu() {
        let on = |cpu: u32, seq: u64, ts: u64, event| Record { cpu, seq, ts, event };
        let evs = export(&[
            on(0, 1, 10, entry(0, 0x57)),
            on(1, 1, 11, entry(0, 0x17)),
            on(1, 2, 12, ret(0)),
            on(0, 2, 13, Event::Trap { esr: 0x5a00_0000, elr: 0x1030, outcome: 0 }),
            on(0, 3, 14, ret(0)),
        ]);
        let names: Vec<&str> = evs
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "cpu0 guest exceptions",
                "cpu0 page-table watch",
                "cpu0 traps",
                "cpu1 guest exceptions",
                "cpu1 page-table watch",
                "cpu1 traps"
            ]
        );
        let slice = |ph: &str, tid: u64| evs.iter().filter(|e| e["ph"] == ph && e["tid"] == tid).count();
        assert_eq!((slice("B", TID_EXC), slice("E", TID_EXC)), (1, 1), "{evs:#?}");
        assert_eq!((slice("B", TRACKS + TID_EXC), slice("E", TRACKS + TID_EXC)), (1, 1), "{evs:#?}");
        let e1 = evs.iter().find(|e| e["ph"] == "E" && e["tid"] == TRACKS + TID_EXC).unwrap();
        assert_eq!(e1["ts"], 12.0);
        assert_eq!(evs.iter().filter(|e| e["ph"] == "i" && e["tid"] == TID_TRAPS).count(), 1);
        assert!(evs.iter().any(|e| e["ph"] == "C" && e["name"] == "cpu1 POR_EL1"));
    }
}
