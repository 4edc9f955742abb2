//! The flight recorder (docs/flight.md): a CPU's recent exception entries,
//! returns and POR writes kept unencoded in a fixed ring, and the rule that
//! says which of them are a hazard's cause chain. The hyp keeps one ring per
//! CPU; the reader applies the same rule to a full stream, so the two
//! chains can be compared.

use crate::s1::overlay::perm_field;

/// Events a CPU's ring holds.
pub const FLIGHT_SLOTS: usize = 256;

/// Fields an event carries (the trace record's fields, in its order).
pub const FIELDS: usize = 7;

/// Overlay permission bits (POR_ELx Perm<n>): W, and the reserved bit
/// (0b1xxx behaves as no access).
const PERM_W: u8 = 0b0100;
const PERM_RESERVED: u8 = 0b1000;

/// What a ring event is (the trace kind it stands for). One byte in the
/// slot; the hyp's assembly writes `ExcEntry` and `PorWrite` by value
/// ([`asm`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `exc_entry`: vector, esr, elr, spsr, far, por, depth.
    #[default]
    ExcEntry = 0,
    /// `exc_return`: elr, spsr, por, depth.
    ExcReturn = 1,
    /// `por_write`: pc, reg, old, new, at_entry, entry_seq, sampled.
    PorWrite = 2,
    /// `trap`: esr, elr, outcome (a trap porwatch handled as expected;
    /// kept for context, not a chain link).
    Trap = 3,
}

/// `por_write`'s field indices: the register (0 POR_EL1, 1 POR_EL0), its
/// old value, at_entry and entry_seq.
pub const POR_REG: usize = 1;
pub const POR_OLD: usize = 2;
pub const POR_NEW: usize = 3;
pub const POR_AT_ENTRY: usize = 4;
pub const POR_ENTRY_SEQ: usize = 5;

/// One recorded event: its CPU's seq and timestamp, and its fields. A fixed
/// layout (`repr(C)`): the hyp's assembly fills slots itself ([`asm`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlightEvent {
    pub seq: u64,
    pub ts: u64,
    pub kind: Kind,
    /// Already sent on the wire (an entry transition): not counted as lost
    /// when overwritten.
    pub streamed: bool,
    pub fields: [u64; FIELDS],
}

/// What the chain rule needs to know of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Entry,
    Return,
    /// A POR_EL1 (`reg` 0) or POR_EL0 (`reg` 1) write, its old value, and
    /// whether exception-entry code made it (`por_write.at_entry`).
    Por {
        reg: u64,
        old: u64,
        at_entry: bool,
    },
}

impl FlightEvent {
    /// This event as a chain link (None: not one).
    pub fn link(&self) -> Option<Link> {
        Some(match self.kind {
            Kind::ExcEntry => Link::Entry,
            Kind::ExcReturn => Link::Return,
            Kind::PorWrite => Link::Por {
                reg: self.fields[POR_REG],
                old: self.fields[POR_OLD],
                at_entry: self.fields[POR_AT_ENTRY] != 0,
            },
            Kind::Trap => return None,
        })
    }
}

/// Whether overlay value `por` grants write to `pkey` (Perm<pkey> has W
/// and is not reserved). S1PIE/WXN are not applied: a chain may start one
/// write early, never late.
pub const fn grants_write(por: u64, pkey: u8) -> bool {
    let p = perm_field(por, pkey);
    p & PERM_RESERVED == 0 && p & PERM_W != 0
}

/// Bit 0 of every Perm<n> field.
const PERM_LSBS: u64 = 0x1111_1111_1111_1111;

/// Whether a POR change from `old` to `new` takes write away from some pkey
/// (`old` grants it W, `new` does not): at an exception entry, the entry
/// code's reset (the seed's shape), which flight mode streams; a raise, or
/// a change that only adds grants, stays in the ring. The per-field test
/// of [`grants_write`] as one word operation, as vectors.S does it: W is
/// bit 2 of a field, reserved bit 3.
pub const fn takes_write_away(old: u64, new: u64) -> bool {
    write_grants(old) & !write_grants(new) != 0
}

/// Bit 4n set: Perm<n> of `v` grants write (W set, not reserved).
const fn write_grants(v: u64) -> u64 {
    (v >> PERM_W.trailing_zeros()) & !(v >> PERM_RESERVED.trailing_zeros()) & PERM_LSBS
}

/// Whether flight mode streams a `por_write` (with its entry) as an entry
/// transition: made by exception-entry code, taking write away.
pub const fn streams_transition(at_entry: bool, old: u64, new: u64) -> bool {
    at_entry && takes_write_away(old, new)
}

/// Where a hazard's chain starts, found by [`chain_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainSpan {
    /// Links in the chain (the newest `len` links; from
    /// [`FlightRing::chain`]: the newest `len` ring events, which may hold
    /// events that are not links, see `links`).
    pub len: usize,
    /// Links among them.
    pub links: usize,
    /// The write that took write away from the pkey was found (it is the
    /// chain's first, oldest event).
    pub found: bool,
}

/// The cause chain of a write under register `reg` (0 POR_EL1, 1 POR_EL0)
/// that the overlay denies for `pkey` (None: unknown, the whole history):
/// every link from the newest back to the last write of `reg` whose old
/// value granted write to `pkey`, that write included — and, when
/// exception-entry code made that write (`at_entry`), back to that entry
/// too (the entry is the cause; it came in while write was still granted).
/// `newest_first` yields the CPU's events, newest first, as links (None:
/// an event that is not a link, skipped but counted in `len`); without
/// such a write the chain is all of them (`found` false).
pub fn chain_len(newest_first: impl Iterator<Item = Option<Link>>, reg: u64, pkey: Option<u8>) -> ChainSpan {
    let (mut len, mut links) = (0, 0);
    let mut want_entry = false;
    for link in newest_first {
        len += 1;
        let Some(link) = link else { continue };
        links += 1;
        match (link, pkey) {
            (Link::Entry, _) if want_entry => return ChainSpan { len, links, found: true },
            (Link::Por { reg: r, old, at_entry }, Some(p))
                if !want_entry && r == reg && grants_write(old, p) =>
            {
                if !at_entry {
                    return ChainSpan { len, links, found: true };
                }
                want_entry = true;
            }
            _ => {}
        }
    }
    ChainSpan { len, links, found: false }
}

/// A CPU's ring of its last [`FLIGHT_SLOTS`] events, with the count of
/// those overwritten before they were ever streamed. A fixed layout
/// (`repr(C)`): the hyp's assembly pushes into it too ([`asm`]); the
/// fields are what a push must write (the count held and the overwrites
/// follow from `recorded`).
#[repr(C)]
pub struct FlightRing<const N: usize = FLIGHT_SLOTS> {
    /// Index of the next slot to write.
    next: usize,
    /// Events recorded (ever).
    pub recorded: u64,
    /// Events overwritten that had been streamed (ever; rare: entry
    /// transitions and cause chains).
    lost_streamed: u64,
    slots: [FlightEvent; N],
}

impl<const N: usize> Default for FlightRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FlightRing<N> {
    pub const fn new() -> Self {
        const EMPTY: FlightEvent =
            FlightEvent { seq: 0, ts: 0, kind: Kind::ExcEntry, streamed: false, fields: [0; FIELDS] };
        Self { next: 0, recorded: 0, lost_streamed: 0, slots: [EMPTY; N] }
    }

    /// Records `e`, overwriting the oldest event when full.
    #[inline]
    pub fn push(&mut self, e: FlightEvent) {
        if N == 0 {
            self.lost_streamed += u64::from(e.streamed);
        } else {
            if self.recorded >= N as u64 {
                self.lost_streamed += u64::from(self.slots[self.next].streamed);
            }
            self.slots[self.next] = e;
            self.next = (self.next + 1) % N;
        }
        self.recorded += 1;
    }

    /// Events overwritten without having been streamed (ever).
    pub fn overwritten(&self) -> u64 {
        self.recorded.saturating_sub(N as u64) - self.lost_streamed
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.recorded.min(N as u64) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.recorded == 0
    }

    /// The `i`-th newest event (0: the newest).
    pub fn newest(&self, i: usize) -> Option<&FlightEvent> {
        (i < self.len()).then(|| &self.slots[(self.next + N - 1 - i) % N])
    }

    fn newest_mut(&mut self, i: usize) -> Option<&mut FlightEvent> {
        (i < self.len()).then(|| &mut self.slots[(self.next + N - 1 - i) % N])
    }

    /// The event with seq `seq`, if still held.
    pub fn find_mut(&mut self, seq: u64) -> Option<&mut FlightEvent> {
        let i = (0..self.len()).find(|&i| self.newest(i).is_some_and(|e| e.seq == seq))?;
        self.newest_mut(i)
    }

    /// The chain of a write under `reg` denied for `pkey` (see [`chain_len`]).
    pub fn chain(&self, reg: u64, pkey: Option<u8>) -> ChainSpan {
        chain_len((0..self.len()).filter_map(|i| self.newest(i)).map(FlightEvent::link), reg, pkey)
    }

    /// The links among the newest `len` events, oldest first (a chain).
    pub fn chain_links(&self, len: usize) -> impl Iterator<Item = &FlightEvent> + '_ {
        self.last(len).filter(|e| e.link().is_some())
    }

    /// The newest `len` events, oldest first.
    pub fn last(&self, len: usize) -> impl Iterator<Item = &FlightEvent> + '_ {
        let len = len.min(self.len());
        (0..len).rev().filter_map(move |i| self.newest(i))
    }

    /// Marks the links among the newest `len` events as streamed (a cause
    /// chain went out).
    pub fn mark_streamed(&mut self, len: usize) {
        for i in 0..len.min(self.len()) {
            if let Some(e) = self.newest_mut(i).filter(|e| e.link().is_some()) {
                e.streamed = true;
            }
        }
    }

    /// Whether events have been lost from the ring (ever).
    pub fn has_wrapped(&self) -> bool {
        self.recorded > self.len() as u64
    }
}

/// The layout the hyp's assembly (vectors.S) writes a [`FlightRing`] by:
/// byte offsets and values, defined here once and passed to it. A push in
/// assembly does what [`FlightRing::push`] does, in the same fields
/// (`asm_push` in the tests below is that push, written by these offsets,
/// and checked against the Rust one).
pub mod asm {
    use super::{FlightEvent, FlightRing, Kind, FIELDS, FLIGHT_SLOTS};
    use core::mem::{offset_of, size_of};

    /// Bytes per slot, and the slot's fields.
    pub const EVENT_BYTES: usize = size_of::<FlightEvent>();
    pub const EV_SEQ: usize = offset_of!(FlightEvent, seq);
    pub const EV_TS: usize = offset_of!(FlightEvent, ts);
    /// `kind` (a byte) and `streamed` (a byte, 0/1) share one 8-byte word
    /// (the rest is padding): the assembly stores the word `kind`.
    pub const EV_KIND: usize = offset_of!(FlightEvent, kind);
    pub const EV_STREAMED: usize = offset_of!(FlightEvent, streamed);
    pub const EV_FIELDS: usize = offset_of!(FlightEvent, fields);
    /// The ring: the next slot's index, the events recorded, the streamed
    /// ones overwritten, then the slots.
    pub const RING_SLOTS: usize = offset_of!(FlightRing<FLIGHT_SLOTS>, slots);
    pub const RING_NEXT: usize = offset_of!(FlightRing<FLIGHT_SLOTS>, next);
    pub const RING_RECORDED: usize = offset_of!(FlightRing<FLIGHT_SLOTS>, recorded);
    pub const RING_LOST_STREAMED: usize = offset_of!(FlightRing<FLIGHT_SLOTS>, lost_streamed);
    pub const KIND_EXC_ENTRY: u64 = Kind::ExcEntry as u64;
    pub const KIND_POR_WRITE: u64 = Kind::PorWrite as u64;

    // What the assembly assumes beyond the offsets: one word for kind and
    // streamed, 8-byte fields, a power-of-two ring.
    const _: () = {
        assert!(EV_SEQ == 0 && EV_TS == 8 && EV_KIND == 16 && EV_STREAMED == 17);
        assert!(EV_FIELDS == 24 && EVENT_BYTES == EV_FIELDS + 8 * FIELDS);
        assert!(RING_NEXT < RING_SLOTS && RING_RECORDED < RING_SLOTS && RING_LOST_STREAMED < RING_SLOTS);
        assert!(RING_SLOTS + EVENT_BYTES < 504); // slot offsets folded into STP's
        assert!(size_of::<usize>() == 8);
        assert!(FLIGHT_SLOTS.is_power_of_two());
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    fn ev(seq: u64, kind: Kind, fields: [u64; FIELDS]) -> FlightEvent {
        FlightEvent { seq, ts: seq * 10, kind, streamed: false, fields }
    }

    fn entry(seq: u64) -> FlightEvent {
        ev(seq, Kind::ExcEntry, [5, 0, 0x1000 + seq, 0x3c5, 0, 0, 0])
    }

    fn por(seq: u64, reg: u64, old: u64, new: u64) -> FlightEvent {
        ev(seq, Kind::PorWrite, [0x2000, reg, old, new, 0, 0, 0])
    }

    impl FlightEvent {
        fn with_entry_seq(mut self, seq: u64) -> Self {
            self.fields[POR_ENTRY_SEQ] = seq;
            self
        }
    }

    fn por_at_entry(seq: u64, old: u64, new: u64, entry: u64) -> FlightEvent {
        ev(seq, Kind::PorWrite, [0x2000, 0, old, new, 1, entry, 0])
    }

    // The seed's values: pkey 1 RW under 0x57 (Perm1 = 5), R only under
    // 0x17 (Perm1 = 1).
    const RW: u64 = 0x57;
    const RO: u64 = 0x17;

    #[test]
    fn grants_write_reads_the_pkeys_w_bit_and_treats_reserved_as_none() {
        assert!(grants_write(RW, 1));
        assert!(!grants_write(RO, 1));
        assert!(grants_write(RO, 0), "Perm0 = 7");
        assert!(!grants_write(0xc0, 1), "0b1100 is reserved: no access");
        assert!(!grants_write(u64::MAX, 16), "no Perm16");
    }

    #[test]
    fn takes_write_away_is_grants_write_per_pkey() {
        let by_field = |old, new| (0..16).any(|p| grants_write(old, p) && !grants_write(new, p));
        let vals = [0, RO, RW, 0x77, 0xc4, 0x4c, u64::MAX, 0x4000_0000_0000_0000, 0x0123_4567_89ab_cdef];
        for old in vals {
            for new in vals {
                assert_eq!(takes_write_away(old, new), by_field(old, new), "{old:#x} -> {new:#x}");
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (old, new) = (x, x.rotate_left(29) ^ 0x5555);
            assert_eq!(takes_write_away(old, new), by_field(old, new), "{old:#x} -> {new:#x}");
        }
    }

    #[test]
    fn only_an_entry_write_that_takes_write_away_streams() {
        assert!(streams_transition(true, RW, RO), "the entry code's reset");
        assert!(!streams_transition(true, RO, RW), "a handler's raise");
        assert!(!streams_transition(false, RW, RO), "not at an entry");
        assert!(!streams_transition(true, RO, 0x77), "only adds grants");
        assert!(streams_transition(true, 0x77, RO), "takes W from pkey 0");
    }

    #[test]
    fn the_seeds_chain_runs_from_the_write_that_took_w_away() {
        let mut r = FlightRing::<16>::new();
        r.push(entry(1));
        r.push(por(2, 0, RO, RW)); // batch opens: grants
        r.push(entry(3)); // IRQ inside the batch
        r.push(por_at_entry(4, RW, RO, 3)); // its entry code resets: takes W away
        r.push(entry(5)); // nested
        let c = r.chain(0, Some(1));
        assert_eq!(c, ChainSpan { len: 3, links: 3, found: true });
        let seqs: Vec<u64> = r.last(c.len).map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5], "the entry whose code took W away is the chain's first link");
    }

    #[test]
    fn traps_in_the_ring_are_counted_in_the_span_but_are_not_links() {
        let mut r = FlightRing::<16>::new();
        r.push(entry(1));
        r.push(por_at_entry(2, RW, RO, 1));
        r.push(ev(3, Kind::Trap, [0x6230_0800, 0x44, 0, 0, 0, 0, 0]));
        r.push(entry(4));
        let c = r.chain(0, Some(1));
        assert_eq!(c, ChainSpan { len: 4, links: 3, found: true });
        assert_eq!(r.chain_links(c.len).map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 4]);
    }

    #[test]
    fn a_plain_write_that_takes_w_away_starts_the_chain() {
        let mut r = FlightRing::<16>::new();
        r.push(entry(1));
        r.push(por(2, 0, RW, RO));
        r.push(entry(3));
        assert_eq!(r.chain(0, Some(1)), ChainSpan { len: 2, links: 2, found: true });
    }

    #[test]
    fn an_entry_cut_off_by_the_ring_leaves_the_chain_incomplete() {
        let mut r = FlightRing::<2>::new();
        r.push(entry(1));
        r.push(por_at_entry(2, RW, RO, 1));
        r.push(entry(3));
        assert_eq!(r.chain(0, Some(1)), ChainSpan { len: 2, links: 2, found: false });
    }

    #[test]
    fn por_el0_writes_do_not_start_a_por_el1_chain() {
        let mut r = FlightRing::<16>::new();
        r.push(por(1, 0, RW, RO));
        r.push(por(2, 1, RW, RO));
        assert_eq!(r.chain(0, Some(1)), ChainSpan { len: 2, links: 2, found: true });
        assert_eq!(r.chain(1, Some(1)), ChainSpan { len: 1, links: 1, found: true });
    }

    #[test]
    fn without_a_granting_write_the_chain_is_everything_held() {
        let mut r = FlightRing::<4>::new();
        for s in 1..=3 {
            r.push(entry(s));
        }
        assert_eq!(r.chain(0, Some(1)), ChainSpan { len: 3, links: 3, found: false });
        assert_eq!(r.chain(0, None), ChainSpan { len: 3, links: 3, found: false });
        assert!(!r.has_wrapped());
    }

    #[test]
    fn overwrites_count_only_events_never_streamed() {
        let mut r = FlightRing::<2>::new();
        r.push(entry(1));
        let mut e = entry(2);
        e.streamed = true;
        r.push(e);
        r.push(entry(3)); // overwrites 1
        r.push(entry(4)); // overwrites 2, streamed
        assert_eq!((r.recorded, r.overwritten(), r.len()), (4, 1, 2));
        assert!(r.has_wrapped());
        assert_eq!(r.last(9).map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
        assert!(r.find_mut(2).is_none());
        r.find_mut(3).unwrap().streamed = true;
        assert!(r.newest(1).unwrap().streamed);
        r.mark_streamed(1);
        assert!(r.newest(0).unwrap().streamed);
        r.push(entry(5));
        r.push(entry(6));
        assert_eq!(r.overwritten(), 1, "3 and 4 were streamed");
    }

    proptest::proptest! {
        /// The ring's chain is the full history's chain whenever the ring
        /// holds it, and says "not found" otherwise (never a wrong chain).
        #[test]
        fn the_rings_chain_is_the_full_historys_when_it_fits(
            ops in proptest::collection::vec((0u8..4, proptest::bool::ANY, proptest::bool::ANY), 0..64),
        ) {
            let mut ring = FlightRing::<8>::new();
            let mut all = Vec::new();
            for (i, &(op, rw, at_entry)) in ops.iter().enumerate() {
                let seq = i as u64 + 1;
                let old = if rw { RW } else { RO };
                let e = match op {
                    0 => entry(seq),
                    1 => ev(seq, Kind::ExcReturn, [0; FIELDS]),
                    2 => ev(seq, Kind::Trap, [0; FIELDS]),
                    _ if at_entry => por_at_entry(seq, old, RO, 0),
                    _ => por(seq, 0, old, RO),
                };
                ring.push(e);
                all.push(e);
            }
            let full = chain_len(all.iter().rev().map(FlightEvent::link), 0, Some(1));
            let want: Vec<u64> = all[all.len() - full.len..].iter().filter(|e| e.link().is_some()).map(|e| e.seq).collect();
            let c = ring.chain(0, Some(1));
            let got: Vec<u64> = ring.chain_links(c.len).map(|e| e.seq).collect();
            if full.found && full.len <= ring.len() {
                proptest::prop_assert!(c.found);
                proptest::prop_assert_eq!(got, want);
            } else if c.found {
                proptest::prop_assert!(full.found);
                proptest::prop_assert_eq!(got, want);
            }
            proptest::prop_assert_eq!(c.links, ring.chain_links(c.len).count());
        }
    }

    /// vectors.S's push (FLIGHT_PUSH and the slot stores after it),
    /// written by `asm`'s offsets alone, as the assembly does.
    fn asm_push(r: &mut FlightRing, seq: u64, ts: u64, kind: u64, fields: [u64; FIELDS]) {
        let base = r as *mut FlightRing as *mut u8;
        // SAFETY: in-bounds, aligned accesses at the offsets asm defines.
        unsafe {
            let word = |off: usize| base.add(off) as *mut u64;
            *word(asm::RING_RECORDED) += 1;
            let next = *word(asm::RING_NEXT);
            let slot = base.add(asm::RING_SLOTS + next as usize * asm::EVENT_BYTES);
            if *word(asm::RING_RECORDED) > FLIGHT_SLOTS as u64 && *slot.add(asm::EV_STREAMED) != 0 {
                *word(asm::RING_LOST_STREAMED) += 1;
            }
            *word(asm::RING_NEXT) = (next + 1) & (FLIGHT_SLOTS as u64 - 1);
            let slot = slot as *mut u64;
            *slot.add(asm::EV_SEQ / 8) = seq;
            *slot.add(asm::EV_TS / 8) = ts;
            *slot.add(asm::EV_KIND / 8) = kind;
            for (i, f) in fields.iter().enumerate() {
                *slot.add(asm::EV_FIELDS / 8 + i) = *f;
            }
        }
    }

    #[test]
    fn slots_the_assembly_writes_read_back_as_the_events_rust_pushes() {
        let mut by_asm = std::boxed::Box::new(FlightRing::<FLIGHT_SLOTS>::new());
        let mut by_rust = std::boxed::Box::new(FlightRing::<FLIGHT_SLOTS>::new());
        // More than a ring's worth, one in 7 already streamed (an entry
        // transition Rust pushed), so the overwrite count is exercised.
        for seq in 1..=(FLIGHT_SLOTS as u64 * 2 + 5) {
            let e = if seq % 3 == 0 { por(seq, 0, RW, RO) } else { entry(seq) };
            if seq % 7 == 0 {
                let e = FlightEvent { streamed: true, ..e };
                by_asm.push(e);
                by_rust.push(e);
                continue;
            }
            asm_push(&mut by_asm, e.seq, e.ts, e.kind as u64, e.fields);
            by_rust.push(e);
        }
        assert_eq!((by_asm.recorded, by_asm.overwritten()), (by_rust.recorded, by_rust.overwritten()));
        assert!(by_asm.overwritten() > 0 && by_asm.overwritten() < by_asm.recorded);
        assert_eq!(by_asm.len(), FLIGHT_SLOTS);
        assert!(by_asm.last(FLIGHT_SLOTS).eq(by_rust.last(FLIGHT_SLOTS)));
        assert_eq!(by_asm.newest(0).unwrap().kind, Kind::ExcEntry);
        assert_eq!(by_asm.chain(0, Some(1)), by_rust.chain(0, Some(1)));
    }

    #[test]
    fn the_assemblys_kind_values_are_the_enums() {
        let mut r = std::boxed::Box::new(FlightRing::<FLIGHT_SLOTS>::new());
        asm_push(&mut r, 7, 70, asm::KIND_POR_WRITE, [0x2000, 0, RW, RO, 0, 6, 0]);
        asm_push(&mut r, 8, 80, asm::KIND_EXC_ENTRY, [5, 0, 0x1000, 0x3c5, 0, RO, 0]);
        assert_eq!(r.newest(1).unwrap(), &por(7, 0, RW, RO).with_entry_seq(6));
        assert_eq!(r.newest(0).unwrap().link(), Some(Link::Entry));
        assert_eq!(r.chain(0, Some(1)), ChainSpan { len: 2, links: 2, found: true });
    }

    /// The three ways a chain ends, as `cause_chain` tells them apart:
    /// found; not found in a ring that never wrapped (no write ever granted
    /// the pkey); not found in a ring that wrapped, even when every event
    /// it lost had been streamed (`overwritten` 0: only `has_wrapped` says
    /// the chain is cut).
    #[test]
    fn a_ring_wrapped_over_streamed_events_is_cut_though_nothing_was_lost_unsent() {
        let mut r = FlightRing::<2>::new();
        r.push(por(1, 0, RW, RO));
        assert!(r.chain(0, Some(1)).found);
        let mut never = FlightRing::<2>::new();
        never.push(entry(1));
        assert!(!never.chain(0, Some(1)).found);
        assert_eq!((never.has_wrapped(), never.overwritten()), (false, 0));
        r.mark_streamed(1);
        r.push(entry(2));
        r.push(entry(3)); // pushes out 1, which went out in a chain
        assert!(!r.chain(0, Some(1)).found);
        assert_eq!((r.has_wrapped(), r.overwritten()), (true, 0));
    }

    #[test]
    fn a_cut_chain_is_not_found() {
        let mut r = FlightRing::<2>::new();
        r.push(por(1, 0, RW, RO));
        r.push(entry(2));
        r.push(entry(3));
        assert_eq!(r.chain(0, Some(1)), ChainSpan { len: 2, links: 2, found: false });
    }
}
