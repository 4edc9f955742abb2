//! The exception-entry tap's decisions: which vector slot a fetch hit, when
//! stepping through the vector page ends, which exception entry a POR_EL1
//! change belongs to, and the guest's exception registers to put back after
//! an emulated access. Mechanism (stage-2 XN, single-step) is in hyp.

/// The vector table is 2 KiB: 16 slots of 0x80 bytes (Arm ARM D1.3.1).
pub const VECTOR_TABLE_SIZE: u64 = 0x800;
pub const VECTOR_SLOT_SIZE: u64 = 0x80;
/// VBAR_EL1[10:0] are RES0.
pub const VBAR_MASK: u64 = !(VECTOR_TABLE_SIZE - 1);
pub const PAGE_SIZE: u64 = 4096;

/// The slot index (0..16, offset / 0x80) if `pc` is the first instruction
/// of a slot of the table at `vbar`.
#[inline]
pub fn slot(vbar: u64, pc: u64) -> Option<u8> {
    let off = pc.wrapping_sub(vbar & VBAR_MASK);
    (off < VECTOR_TABLE_SIZE && off.is_multiple_of(VECTOR_SLOT_SIZE))
        .then_some((off / VECTOR_SLOT_SIZE) as u8)
}

/// True for the synchronous slots (current EL SP0/SPx, lower EL 64/32).
#[inline]
pub const fn is_sync_slot(slot: u8) -> bool {
    slot.is_multiple_of(4)
}

#[inline]
pub const fn page_of(addr: u64) -> u64 {
    addr & !(PAGE_SIZE - 1)
}

/// What a software-step exception at `pc` means, when stepping through the
/// page at `page` and the previous step was at `prev_pc`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    /// Still inside the page: step again.
    Continue,
    /// Landed on vector slot `slot` not by falling through from the
    /// instruction before it: an exception was taken during the step.
    Entry(u8),
    /// Left the page: stop stepping and protect it again.
    Leave,
}

#[inline]
pub fn classify_step(vbar: u64, page: u64, prev_pc: u64, pc: u64) -> Step {
    if let Some(s) = slot(vbar, pc) {
        if prev_pc.wrapping_add(4) != pc {
            return Step::Entry(s);
        }
    }
    if page_of(pc) == page {
        Step::Continue
    } else {
        Step::Leave
    }
}

/// Attribution of POR_EL1 changes to exception entries (documented in
/// docs/tap.md): a change is "at entry" when it is the first POR_EL1
/// change after an exception entry, with no other entry and no exception
/// return (when returns are traced) in between.
#[derive(Clone, Copy, Default, Debug)]
pub struct EntryWindow {
    /// seq of the most recent exc_entry record (0: none yet).
    last_entry: u64,
    open: bool,
}

impl EntryWindow {
    pub const fn new() -> Self {
        Self { last_entry: 0, open: false }
    }

    pub fn on_entry(&mut self, seq: u64) {
        self.last_entry = seq;
        self.open = true;
    }

    /// A window as it was left elsewhere (the hyp's assembly keeps it too).
    pub const fn resume(last_entry: u64, open: bool) -> Self {
        Self { last_entry, open }
    }

    /// seq of the most recent entry (0: none yet).
    pub fn last_entry(&self) -> u64 {
        self.last_entry
    }

    /// Whether a POR_EL1 change now would be made by entry code.
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn on_return(&mut self) {
        self.open = false;
    }

    /// A POR_EL1 change: `(at_entry, entry_seq)`; closes the window.
    pub fn on_por_change(&mut self) -> (bool, u64) {
        let at = self.open;
        self.open = false;
        (at, self.last_entry)
    }
}

/// A POR_EL1 change porwatch did not see being made but derived from two
/// samples that differ (native POE, `porwatch.por=sample`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Derived {
    pub old: u64,
    pub new: u64,
    /// As for a trapped write: the first change seen after an entry
    /// (`EntryWindow`).
    pub at_entry: bool,
    pub entry_seq: u64,
}

/// Sampling POR_EL1 instead of trapping its writes (native POE, docs/tap.md
/// "Sampling"): porwatch reads POR_EL1 at every tapped exception entry (the
/// value in force when the exception was taken) and at every table-store
/// trap, and derives a change whenever a sample differs from the one
/// before. A change derived at an entry happened before that entry, so the
/// caller records it before the entry's own `exc_entry` and only then opens
/// the entry's window (`EntryWindow::on_entry`). Changes that are undone
/// between two samples are not seen, several changes between two samples
/// show as one, and where the guest made one (its PC) is not known.
#[derive(Clone, Copy, Default, Debug)]
pub struct PorSamples {
    last: Option<u64>,
}

impl PorSamples {
    pub const fn new() -> Self {
        Self { last: None }
    }

    /// The value in force when sampling starts (the guest's start): no
    /// change is derived from it.
    pub fn start(&mut self, por: u64) {
        self.last = Some(por);
    }

    /// A new sample: the change since the previous one, attributed by
    /// `window` (which it closes, like a trapped change).
    pub fn sample(&mut self, window: &mut EntryWindow, por: u64) -> Option<Derived> {
        let old = self.last.replace(por)?;
        if old == por {
            return None;
        }
        let (at_entry, entry_seq) = window.on_por_change();
        Some(Derived { old, new: por, at_entry, entry_seq })
    }

    /// The last value seen (None before the first sample).
    pub fn last(&self) -> Option<u64> {
        self.last
    }
}

/// The registers an exception entry writes at EL1.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct EntryRegs {
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
}

/// Exception registers of the exceptions the guest is inside, innermost
/// last: pushed at each entry, popped at each traced return. When porwatch
/// emulates an access that the CPU first turned into an UNDEF at EL1 (which
/// overwrote ELR/SPSR/ESR/FAR_EL1), it puts back the innermost entry's
/// values. Without return tracing nothing is popped and the stack holds
/// only the latest entry.
#[derive(Clone, Copy, Debug)]
pub struct ShadowStack<const N: usize> {
    regs: [EntryRegs; N],
    len: usize,
    /// Entries deeper than N (counted, not stored).
    overflow: u64,
}

impl<const N: usize> Default for ShadowStack<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ShadowStack<N> {
    pub const fn new() -> Self {
        Self { regs: [EntryRegs { elr: 0, spsr: 0, esr: 0, far: 0 }; N], len: 0, overflow: 0 }
    }

    /// `track_returns`: false keeps only the latest entry.
    pub fn push(&mut self, r: EntryRegs, track_returns: bool) {
        if !track_returns {
            self.len = 0;
        }
        if self.len < N {
            self.regs[self.len] = r;
            self.len += 1;
        } else {
            self.overflow += 1;
        }
    }

    pub fn pop(&mut self) {
        if self.overflow > 0 {
            self.overflow -= 1;
        } else {
            self.len = self.len.saturating_sub(1);
        }
    }

    pub fn top(&self) -> Option<EntryRegs> {
        self.len.checked_sub(1).map(|i| self.regs[i])
    }

    /// Nesting depth (entries minus returns, never negative).
    pub fn depth(&self) -> u64 {
        self.len as u64 + self.overflow
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    const VBAR: u64 = 0x4400_1000;

    #[test]
    fn slots_and_non_slots() {
        assert_eq!(slot(VBAR, VBAR), Some(0));
        assert_eq!(slot(VBAR, VBAR + 0x200), Some(4));
        assert_eq!(slot(VBAR, VBAR + 0x780), Some(15));
        assert_eq!(slot(VBAR, VBAR + 0x204), None);
        assert_eq!(slot(VBAR, VBAR + 0x800), None);
        assert_eq!(slot(VBAR, VBAR - 0x80), None);
        // VBAR's low bits are RES0 and ignored.
        assert_eq!(slot(VBAR | 0x7ff, VBAR + 0x80), Some(1));
        assert!(is_sync_slot(0) && is_sync_slot(4) && is_sync_slot(8) && is_sync_slot(12));
        assert!(!is_sync_slot(5));
    }

    #[test]
    fn steps() {
        let page = page_of(VBAR);
        assert_eq!(classify_step(VBAR, page, VBAR + 0x200, VBAR + 0x204), Step::Continue);
        // Falling through into the next slot is not an entry.
        assert_eq!(classify_step(VBAR, page, VBAR + 0x27c, VBAR + 0x280), Step::Continue);
        // Jumping to a slot (an exception taken during the step) is.
        assert_eq!(classify_step(VBAR, page, VBAR + 0x900, VBAR + 0x200), Step::Entry(4));
        assert_eq!(classify_step(VBAR, page, 0x4000_0000, VBAR + 0x280), Step::Entry(5));
        assert_eq!(classify_step(VBAR, page, VBAR + 0x210, 0x4000_2000), Step::Leave);
        assert_eq!(classify_step(VBAR, page, VBAR + 0xffc, VBAR + 0x1000), Step::Leave);
    }

    #[test]
    fn entry_window_attributes_the_first_change_only() {
        let mut w = EntryWindow::default();
        assert_eq!(w.on_por_change(), (false, 0));
        w.on_entry(7);
        assert_eq!(w.on_por_change(), (true, 7));
        assert_eq!(w.on_por_change(), (false, 7));
        w.on_entry(9);
        w.on_return();
        assert_eq!(w.on_por_change(), (false, 9));
        w.on_entry(11);
        w.on_entry(12);
        assert_eq!(w.on_por_change(), (true, 12));
    }

    /// What a sampled run records, in order: entries and derived changes.
    #[derive(Debug, PartialEq, Eq)]
    enum Rec {
        Entry(u64),
        Change(u64, u64, bool, u64),
    }

    /// Replays samples as hyp does: an entry samples first (its change
    /// belongs before it), then opens its window.
    fn replay(samples: &[(bool, u64)]) -> std::vec::Vec<Rec> {
        let mut w = EntryWindow::new();
        let mut s = PorSamples::new();
        s.start(0x17);
        let mut out = std::vec::Vec::new();
        let mut seq = 100;
        for &(entry, por) in samples {
            if let Some(d) = s.sample(&mut w, por) {
                out.push(Rec::Change(d.old, d.new, d.at_entry, d.entry_seq));
            }
            if entry {
                seq += 1;
                w.on_entry(seq);
                out.push(Rec::Entry(seq));
            }
        }
        out
    }

    #[test]
    fn sampling_derives_the_seed_chain() {
        use Rec::*;
        const E: bool = true;
        const S: bool = false;
        // The seed: a lazy-MMU batch raises POR_EL1 to 0x57 (a store inside
        // it samples that), an IRQ is taken inside the batch (sampled 0x57),
        // its entry code resets to 0x17, the IRQ-exit path stores to a
        // table: that sample sees 0x17, the entry's own change.
        let got = replay(&[(S, 0x57), (E, 0x57), (S, 0x17)]);
        assert_eq!(got, [Change(0x17, 0x57, false, 0), Entry(101), Change(0x57, 0x17, true, 101)]);
        // A change before the next entry is attributed to the entry before
        // it (the first change after it), and recorded before the new entry.
        let got = replay(&[(E, 0x17), (E, 0x57), (E, 0x57), (S, 0x57)]);
        assert_eq!(got, [Entry(101), Change(0x17, 0x57, true, 101), Entry(102), Entry(103)]);
        // What sampling cannot see: a change undone before the next sample
        // (the entry code's reset and the exit's restore around a handler
        // that stores nothing), and two changes between samples (one).
        let got = replay(&[(E, 0x57), (E, 0x57), (S, 0x57)]);
        assert_eq!(got, [Change(0x17, 0x57, false, 0), Entry(101), Entry(102)]);
        let got = replay(&[(E, 0x17), (S, 0x7)]);
        assert_eq!(got, [Entry(101), Change(0x17, 0x7, true, 101)]);
        // Only the first change after an entry is at_entry.
        let got = replay(&[(E, 0x17), (S, 0x57), (S, 0x17)]);
        assert_eq!(got, [Entry(101), Change(0x17, 0x57, true, 101), Change(0x57, 0x17, false, 101)]);
    }

    #[test]
    fn sampling_needs_a_start() {
        let mut w = EntryWindow::new();
        let mut s = PorSamples::new();
        assert_eq!(s.sample(&mut w, 0x57), None, "no earlier value: nothing derived");
        assert_eq!(s.last(), Some(0x57));
        assert_eq!(s.sample(&mut w, 0x57), None);
        assert!(s.sample(&mut w, 0x17).is_some());
    }

    #[test]
    fn shadow_stack_nests_and_bounds() {
        let r = |elr| EntryRegs { elr, spsr: 0x3c5, esr: 0, far: 0 };
        let mut s: ShadowStack<2> = ShadowStack::new();
        assert_eq!(s.top(), None);
        s.push(r(1), true);
        s.push(r(2), true);
        s.push(r(3), true); // overflow: counted
        assert_eq!(s.depth(), 3);
        assert_eq!(s.top().unwrap().elr, 2);
        s.pop();
        assert_eq!(s.top().unwrap().elr, 2);
        s.pop();
        assert_eq!(s.top().unwrap().elr, 1);
        s.pop();
        s.pop();
        assert_eq!(s.depth(), 0);
        s.push(r(4), false);
        s.push(r(5), false);
        assert_eq!((s.depth(), s.top().unwrap().elr), (1, 5));
    }
}
