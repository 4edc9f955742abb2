//! A hazard's cause chain as the reader finds it (docs/flight.md): in a
//! flight-recorder trace, the records its `cause_chain` record announces;
//! in a full stream, the CPU's own records picked by the flight recorder's
//! rule (`porwatch_monitor::flight::chain_len`). The two must agree.

use porwatch_monitor::flight::{chain_len, Link};
use porwatch_trace::PorReg;

use crate::records::OwnedRecord;

/// `hazard.poindex` when the leaf could not be found.
const POINDEX_UNKNOWN: u64 = 8;

/// What the chain rule reads of a record: its CPU, kind and u64 fields
/// (the printer keeps its recent records encoded, tests and tools owned).
pub trait ChainRecord {
    fn cpu(&self) -> u32;
    fn kind(&self) -> &str;
    fn u64_field(&self, name: &str) -> Option<u64>;
}

impl ChainRecord for OwnedRecord {
    fn cpu(&self) -> u32 {
        self.cpu
    }
    fn kind(&self) -> &str {
        &self.kind
    }
    fn u64_field(&self, name: &str) -> Option<u64> {
        self.get_u64(name)
    }
}

/// A hazard's chain: exc_entry, exc_return and por_write records, oldest
/// first.
#[derive(Debug)]
pub struct Chain<'a> {
    pub records: Vec<&'a OwnedRecord>,
    /// The chain starts where write was taken away (else it is everything
    /// the trace or the ring held).
    pub complete: bool,
    /// A flight trace: the `cause_chain` record that announced the chain.
    pub header: Option<&'a OwnedRecord>,
}

/// [`Chain`] as indices into the records searched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The chain's records, oldest first.
    pub records: Vec<usize>,
    pub complete: bool,
    /// The `cause_chain` record (a flight trace).
    pub header: Option<usize>,
}

/// Why a chain that is not complete stops where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Complete: it starts at the write that took write away.
    No,
    /// A flight trace whose ring never wrapped: the chain runs from the
    /// CPU's first event; no POR write ever granted write to the pkey.
    NeverGranted,
    /// A flight trace whose ring had wrapped: the chain starts at the
    /// oldest event the ring still held. `overwritten` events were lost
    /// unsent (0: what the ring lost had been streamed, earlier in the
    /// trace).
    RingWrapped { overwritten: u64 },
    /// A full stream: the chain is all the reader kept (or the trace
    /// holds) before the hazard.
    History,
}

impl Chain<'_> {
    /// Why the chain starts where it does.
    pub fn cut(&self) -> Cut {
        cut_of(self.complete, self.header)
    }
}

/// [`Chain::cut`] from `complete` and the `cause_chain` record.
pub fn cut_of(complete: bool, header: Option<&impl ChainRecord>) -> Cut {
    if complete {
        return Cut::No;
    }
    let Some(h) = header else { return Cut::History };
    let overwritten = h.u64_field("overwritten").unwrap_or(0);
    // A writer from before `wrapped` existed: only `overwritten` can say.
    if h.u64_field("wrapped").unwrap_or(0) != 0 || overwritten != 0 {
        Cut::RingWrapped { overwritten }
    } else {
        Cut::NeverGranted
    }
}

fn link(r: &impl ChainRecord) -> Option<Link> {
    match r.kind() {
        "exc_entry" => Some(Link::Entry),
        "exc_return" => Some(Link::Return),
        "por_write" => Some(Link::Por {
            reg: r.u64_field("reg")?,
            old: r.u64_field("old")?,
            at_entry: r.u64_field("at_entry")? != 0,
        }),
        _ => None,
    }
}

/// The chain of the hazard at `records[at]` (None: not a hazard).
pub fn of_hazard(records: &[OwnedRecord], at: usize) -> Option<Chain<'_>> {
    let s = span_of_hazard(records, at)?;
    Some(Chain {
        records: s.records.iter().map(|&i| &records[i]).collect(),
        complete: s.complete,
        header: s.header.map(|i| &records[i]),
    })
}

/// [`of_hazard`] as indices into `records`.
pub fn span_of_hazard<R: ChainRecord>(records: &[R], at: usize) -> Option<Span> {
    let h = records.get(at).filter(|h| h.kind() == "hazard")?;
    let cpu = h.cpu();
    // A flight trace: the block the latest `cause_chain` of this CPU opens.
    if let Some(pos) = records[..at].iter().rposition(|r| r.cpu() == cpu && r.kind() == "cause_chain") {
        let c = &records[pos];
        let n = c.u64_field("events")? as usize;
        let block = (pos + 1..at).filter(|&i| records[i].cpu() == cpu).take(n).collect();
        return Some(Span { records: block, complete: c.u64_field("complete")? != 0, header: Some(pos) });
    }
    let reg = if h.u64_field("unprivileged")? != 0 { PorReg::PorEl0 } else { PorReg::PorEl1 } as u64;
    let pkey = h.u64_field("poindex").filter(|&p| p != POINDEX_UNKNOWN).map(|p| p as u8);
    // Newest first, lazily: the rule stops at the chain's start.
    let links = || {
        (0..at)
            .rev()
            .filter(move |&i| records[i].cpu() == cpu)
            .filter_map(|i| link(&records[i]).map(|l| (i, l)))
    };
    let span = chain_len(links().map(|(_, l)| Some(l)), reg, pkey);
    let mut chain: Vec<usize> = links().take(span.len).map(|(i, _)| i).collect();
    chain.reverse();
    Some(Span { records: chain, complete: span.found, header: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use porwatch_trace::{Event, Record};

    fn rec(cpu: u32, seq: u64, event: Event<'_>) -> OwnedRecord {
        OwnedRecord::from(&Record { cpu, seq, ts: seq, event })
    }

    fn entry(cpu: u32, seq: u64) -> OwnedRecord {
        rec(cpu, seq, Event::ExcEntry { vector: 5, esr: 0, elr: seq, spsr: 0, far: 0, por: 0, depth: 0 })
    }

    fn por(cpu: u32, seq: u64, old: u64, new: u64, at_entry: u64, entry_seq: u64) -> OwnedRecord {
        rec(cpu, seq, Event::PorWrite { pc: 0, reg: 0, old, new, at_entry, entry_seq, sampled: 0 })
    }

    fn hazard(cpu: u32, seq: u64) -> OwnedRecord {
        rec(
            cpu,
            seq,
            Event::Hazard {
                va: 0,
                ipa: 0,
                level: 3,
                half: 1,
                old: 0,
                new: 0,
                pc: 0,
                por: 0x17,
                poindex: 1,
                perm: 1,
                unprivileged: 0,
                entry_seq: 0,
                por_seq: 0,
                action: 0,
                leaf_level: 3,
                pir: 0,
                trace_seq: 0,
                entry_trace_seq: 0,
            },
        )
    }

    fn seqs(c: &Chain<'_>) -> Vec<u64> {
        c.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn a_full_stream_chain_is_the_cpus_own_records_from_the_entry_that_took_w_away() {
        let rs = vec![
            por(0, 1, 0x17, 0x57, 0, 0),
            entry(0, 2),
            entry(1, 3), // another CPU's
            por(0, 4, 0x57, 0x17, 1, 2),
            rec(0, 5, Event::Trap { esr: 0, elr: 0, outcome: 0 }),
            hazard(0, 6),
        ];
        let c = of_hazard(&rs, 5).unwrap();
        assert_eq!((seqs(&c), c.complete), (vec![2, 4], true));
        assert!(of_hazard(&rs, 4).is_none());
    }

    #[test]
    fn a_flight_chain_is_the_block_its_cause_chain_record_announces() {
        let rs = vec![
            entry(0, 2),
            por(0, 4, 0x57, 0x17, 1, 2),
            rec(0, 9, Event::CauseChain { events: 2, first_seq: 2, complete: 1, overwritten: 0, wrapped: 0 }),
            entry(1, 3),
            entry(0, 2),
            por(0, 4, 0x57, 0x17, 1, 2),
            hazard(0, 12),
        ];
        let c = of_hazard(&rs, 6).unwrap();
        assert_eq!((seqs(&c), c.complete), (vec![2, 4], true));
        assert!(c.records.iter().all(|r| r.cpu == 0));
        assert_eq!((c.header.map(|h| h.seq), c.cut()), (Some(9), Cut::No));
    }

    /// The three ways a flight chain can end, and a full stream's.
    #[test]
    fn a_chain_says_why_it_starts_where_it_does() {
        let header = |complete, overwritten, wrapped| {
            rec(0, 9, Event::CauseChain { events: 1, first_seq: 2, complete, overwritten, wrapped })
        };
        let cut = |h: OwnedRecord| {
            let rs = vec![h, entry(0, 2), hazard(0, 10)];
            of_hazard(&rs, 2).unwrap().cut()
        };
        assert_eq!(cut(header(1, 5, 1)), Cut::No);
        assert_eq!(cut(header(0, 0, 0)), Cut::NeverGranted);
        assert_eq!(cut(header(0, 0, 1)), Cut::RingWrapped { overwritten: 0 });
        assert_eq!(cut(header(0, 7, 1)), Cut::RingWrapped { overwritten: 7 });
        // A writer without `wrapped`: overwritten events mean it wrapped.
        assert_eq!(cut(header(0, 7, 0)), Cut::RingWrapped { overwritten: 7 });
        let rs = vec![entry(0, 2), hazard(0, 3)];
        assert_eq!(of_hazard(&rs, 1).unwrap().cut(), Cut::History);
    }
}
