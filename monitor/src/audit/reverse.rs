//! The reverse map: each tracked page-table page and the stage-1 mappings
//! (aliases) through which the guest can reach it, from one walk of each
//! live translation regime.
//!
//! The tracked table pages are copied into a sorted array ([`Audit::add_table`]).
//! A walk ([`Audit::walk`]) reads every descriptor reachable from one root
//! once: a table descriptor records where its child sits in the VA space
//! (what the child table maps); a block or page descriptor is looked up in
//! the array by output address (a binary search, then the pages inside the
//! leaf's span), and each table page it covers gains an alias, judged by
//! the [`AuditRule`]. No per-page re-walks: the cost is one pass over the
//! regime plus `log2(tables)` per leaf. Tables already reached in the same
//! walk are not entered again, and a descriptor budget bounds the work on a
//! table graph the tracker does not know (overflow) or a hostile one.

use heapless::Vec;

use super::rule::AuditRule;
use crate::s1::desc::{self, Kind, LAST_LEVEL, PAGE_SIZE};

/// Descriptors in a full table.
const ENTRIES: usize = desc::ENTRIES as usize;
use crate::s1::{GuestMem, Half, Layout, RootMask, TableInfo};

/// Lookup levels a walk can be inside at once (-1..=3).
const DEPTH: usize = 5;

/// A stage-1 mapping of a table page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Alias {
    /// The VA that maps the table page's first byte.
    pub va: u64,
    /// Lookup level of the leaf (3: a page; 1, 2: a block).
    pub level: i8,
    /// POIndex of the leaf (its pkey).
    pub poindex: u8,
    /// Perm<POIndex> of the audited POR_EL1.
    pub perm: u8,
}

/// One tracked page-table page and what the walks found about it (64
/// bytes: the hypervisor keeps 4096 of them).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TablePage {
    /// The page (4 KiB aligned).
    pub ipa: u64,
    base: u64,
    first: u64,
    last: u64,
    writable_va: u64,
    protected_va: u64,
    /// Leaves that map the page, in the regimes walked.
    pub aliases: u32,
    /// The roots the tracker reached it from.
    pub roots: RootMask,
    /// Lookup level of the (first) table in the page.
    pub level: i8,
    flags: u8,
    /// (level, POIndex, perm) of the writable / protected alias.
    writable_meta: [u8; 3],
    protected_meta: [u8; 3],
}

const REACHED: u8 = 1 << 0;
const REACHED_TTBR1: u8 = 1 << 1;
const USED: u8 = 1 << 2;
const VISITED: u8 = 1 << 3;
const WRITABLE: u8 = 1 << 4;
const PROTECTED: u8 = 1 << 5;

const fn meta(a: &Alias) -> [u8; 3] {
    [a.level as u8, a.poindex, a.perm]
}

const fn alias(va: u64, m: [u8; 3]) -> Alias {
    Alias { va, level: m[0] as i8, poindex: m[1], perm: m[2] }
}

impl TablePage {
    const fn new(t: &TableInfo) -> Self {
        Self {
            ipa: t.ipa & !(PAGE_SIZE - 1),
            base: 0,
            first: 0,
            last: 0,
            writable_va: 0,
            protected_va: 0,
            aliases: 0,
            roots: t.roots,
            level: t.level,
            flags: 0,
            writable_meta: [0; 3],
            protected_meta: [0; 3],
        }
    }

    /// Where a walk reached the table: its half and the first VA it
    /// translates. `None`: no walk went through it (a TTBR0 root that is
    /// not installed, or a tracker with stale entries).
    pub const fn reached(&self) -> Option<(Half, u64)> {
        if self.flags & REACHED == 0 {
            None
        } else if self.flags & REACHED_TTBR1 != 0 {
            Some((Half::Ttbr1, self.base))
        } else {
            Some((Half::Ttbr0, self.base))
        }
    }

    /// The VA range its valid descriptors translate (first and last byte),
    /// `None` if it has none (or was not reached).
    pub const fn used(&self) -> Option<(u64, u64)> {
        if self.flags & USED == 0 {
            None
        } else {
            Some((self.first, self.last))
        }
    }

    /// The first alias through which EL1 could write the page.
    pub const fn writable(&self) -> Option<Alias> {
        if self.flags & WRITABLE == 0 {
            None
        } else {
            Some(alias(self.writable_va, self.writable_meta))
        }
    }

    /// The first alias only the overlay keeps EL1 from writing.
    pub const fn protected(&self) -> Option<Alias> {
        if self.flags & PROTECTED == 0 {
            None
        } else {
            Some(alias(self.protected_va, self.protected_meta))
        }
    }

    /// What the audit concludes for this page.
    pub const fn state(&self) -> PageState {
        if self.flags & WRITABLE != 0 {
            PageState::Unprotected
        } else if self.aliases == 0 {
            PageState::Unmapped
        } else {
            PageState::Protected
        }
    }

    fn visited(&self) -> bool {
        self.flags & VISITED != 0
    }

    fn reach(&mut self, half: Half, va: u64) {
        self.flags |= VISITED;
        if self.flags & REACHED == 0 {
            self.flags |= REACHED | if half == Half::Ttbr1 { REACHED_TTBR1 } else { 0 };
            self.base = va;
        }
    }

    fn use_range(&mut self, first: u64, last: u64) {
        if self.flags & USED == 0 {
            self.flags |= USED;
            (self.first, self.last) = (first, last);
        } else {
            self.first = self.first.min(first);
            self.last = self.last.max(last);
        }
    }

    fn add_alias(&mut self, a: &Alias, writable: bool, protected: bool) {
        self.aliases = self.aliases.saturating_add(1);
        if writable && self.flags & WRITABLE == 0 {
            self.flags |= WRITABLE;
            self.writable_va = a.va;
            self.writable_meta = meta(a);
        } else if protected && self.flags & PROTECTED == 0 {
            self.flags |= PROTECTED;
            self.protected_va = a.va;
            self.protected_meta = meta(a);
        }
    }
}

const _: () = assert!(core::mem::size_of::<TablePage>() == 64);

/// The audit's conclusion for one table page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageState {
    /// EL1 can write it through some alias under the audited POR.
    Unprotected,
    /// Mapped, and no alias lets EL1 write it.
    Protected,
    /// No alias in the regimes walked: the guest cannot write it without
    /// mapping it first.
    Unmapped,
}

/// A leaf that carries a pkey the audited POR_EL1 denies write to, over
/// pages that are not page tables: a stale pkey, if it is the tables' own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stale {
    pub va: u64,
    /// Output address of the leaf (block or page base).
    pub oa: u64,
    pub level: i8,
    pub poindex: u8,
    /// 4 KiB pages in the leaf that are not tracked tables.
    pub pages: u64,
}

/// Counters of one walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WalkStats {
    /// Tables entered.
    pub tables: u64,
    /// Tables entered that the tracker does not know.
    pub untracked: u64,
    pub descriptors: u64,
    pub leaves: u64,
    /// Tables that could not be read (not entered).
    pub unreadable: u64,
    /// The descriptor budget ran out: the walk is incomplete.
    pub truncated: bool,
}

impl WalkStats {
    pub fn add(&mut self, o: &WalkStats) {
        self.tables += o.tables;
        self.untracked += o.untracked;
        self.descriptors += o.descriptors;
        self.leaves += o.leaves;
        self.unreadable += o.unreadable;
        self.truncated |= o.truncated;
    }
}

/// The audit's totals over all pages.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Totals {
    pub tables: u64,
    pub unprotected: u64,
    pub protected: u64,
    pub unmapped: u64,
    /// POIndex values of the aliases only the overlay protects (bit i =
    /// pkey i): the tables' pkeys.
    pub table_pkeys: u8,
    /// Tracked tables that did not fit the array.
    pub not_audited: u64,
}

#[derive(Clone, Copy)]
struct Frame {
    level: i8,
    entries: u16,
    next: u16,
    /// First VA the table translates.
    va: u64,
}

/// A tree to walk: a root table (its address, as `Layout::root_table`
/// gives it) of `layout`'s half, with or without its leaves.
#[derive(Clone, Copy, Debug)]
pub struct Root<'a> {
    pub table: u64,
    pub layout: &'a Layout,
    /// Check the leaves (aliases, stale pkeys), not only the tables.
    pub leaves: bool,
}

/// The tracked table pages (at most `N`) and what the walks found.
pub struct Audit<const N: usize> {
    pages: Vec<TablePage, N>,
    not_audited: u64,
    /// The descriptors of the tables the walk is inside, one per depth:
    /// a table is read whole when entered (one range check for 512
    /// descriptors; reading them one by one cost twice as much).
    bufs: [[u64; ENTRIES]; DEPTH],
    /// Where the last leaf's search in `pages` ended.
    hint: usize,
}

impl<const N: usize> Default for Audit<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Audit<N> {
    pub const fn new() -> Self {
        Self { pages: Vec::new(), not_audited: 0, bufs: [[0; ENTRIES]; DEPTH], hint: 0 }
    }

    /// Forgets everything (before the next audit).
    pub fn clear(&mut self) {
        self.pages.clear();
        self.not_audited = 0;
        self.hint = 0;
    }

    /// Adds a tracked table (the tracker yields them by address; any order
    /// is accepted). Tables sharing a page (small roots) count once.
    /// Returns false, and counts it, when the array is full.
    pub fn add_table(&mut self, t: &TableInfo) -> bool {
        let p = TablePage::new(t);
        let pos = match self.pages.last() {
            Some(last) if last.ipa < p.ipa => self.pages.len(),
            _ => match self.pages.binary_search_by_key(&p.ipa, |x| x.ipa) {
                Ok(i) => {
                    let e = &mut self.pages[i];
                    e.roots = RootMask(e.roots.0 | p.roots.0);
                    e.level = e.level.min(p.level);
                    return true;
                }
                Err(i) => i,
            },
        };
        if self.pages.insert(pos, p).is_err() {
            self.not_audited += 1;
            return false;
        }
        true
    }

    /// The pages, by address.
    pub fn pages(&self) -> &[TablePage] {
        &self.pages
    }

    /// The page at `ipa`'s page, if tracked.
    pub fn page(&self, ipa: u64) -> Option<&TablePage> {
        self.find(ipa & !(PAGE_SIZE - 1)).map(|i| &self.pages[i])
    }

    /// Counts over all pages.
    pub fn totals(&self) -> Totals {
        let mut t =
            Totals { tables: self.pages.len() as u64, not_audited: self.not_audited, ..Totals::default() };
        for p in &self.pages {
            match p.state() {
                PageState::Unprotected => t.unprotected += 1,
                PageState::Protected => t.protected += 1,
                PageState::Unmapped => t.unmapped += 1,
            }
            if let Some(a) = p.protected() {
                t.table_pkeys |= 1 << (a.poindex & 7);
            }
        }
        t
    }

    fn find(&self, page: u64) -> Option<usize> {
        self.pages.binary_search_by_key(&page, |p| p.ipa).ok()
    }

    /// Index of the first page at or above `addr`.
    fn lower_bound(&self, addr: u64) -> usize {
        match self.pages.binary_search_by_key(&addr, |p| p.ipa) {
            Ok(i) | Err(i) => i,
        }
    }

    /// Walks the tree under `root`. With `root.leaves`, every block and
    /// page descriptor is checked for table pages it maps (aliases, judged
    /// by `rule`) and for stale pkeys (`stale` is called for leaves whose
    /// POIndex `rule` may deny and that map pages other than tables);
    /// without, only where the tables sit in the VA space is recorded. At
    /// most `budget` descriptors are read (it is decreased).
    pub fn walk<M: GuestMem + ?Sized>(
        &mut self,
        mem: &M,
        root: &Root<'_>,
        rule: &AuditRule,
        budget: &mut u64,
        stale: &mut dyn FnMut(Stale),
    ) -> WalkStats {
        let (layout, leaves) = (root.layout, root.leaves);
        let root = root.table;
        let mut st = WalkStats::default();
        for p in self.pages.iter_mut() {
            p.flags &= !VISITED;
        }
        let half = layout.half;
        let root_va = layout.va_range().0;
        let mut stack = [Frame { level: 0, entries: 0, next: 0, va: 0 }; DEPTH];
        let entries = layout.root_entries();
        if !self.load(mem, 0, root, entries, budget, &mut st) {
            return st;
        }
        let first = self.enter(root, half, root_va, &mut st);
        self.note_used(first, 0, entries, root_va, desc::level_size(layout.start_level));
        stack[0] = Frame { level: layout.start_level, entries, next: 0, va: root_va };
        let mut depth = 1;
        'tables: while depth > 0 {
            let top = depth - 1;
            let f = stack[top];
            let size = desc::level_size(f.level);
            // The descriptors of one table, in a tight loop: most are invalid.
            let mut next = f.next;
            while next < f.entries {
                let index = next;
                next += 1;
                let d = self.bufs[top][index as usize];
                if !desc::is_valid(d) {
                    continue;
                }
                let kind = desc::kind(d, f.level, layout.ds);
                if kind == Kind::Reserved {
                    continue;
                }
                let va = f.va.wrapping_add(index as u64 * size);
                if kind == Kind::Table {
                    let child = desc::table_address(d, layout.ds);
                    if layout.oa_too_large(child) || depth >= DEPTH || f.level >= LAST_LEVEL {
                        continue;
                    }
                    let page = self.find(child);
                    if page.is_some_and(|i| self.pages[i].visited()) {
                        continue;
                    }
                    if !self.load(mem, depth, child, desc::ENTRIES, budget, &mut st) {
                        if st.truncated {
                            break 'tables;
                        }
                        continue;
                    }
                    let page = self.enter(child, half, va, &mut st);
                    self.note_used(page, depth, desc::ENTRIES, va, desc::level_size(f.level + 1));
                    stack[top].next = next;
                    stack[depth] = Frame { level: f.level + 1, entries: desc::ENTRIES, next: 0, va };
                    depth += 1;
                    continue 'tables;
                }
                if leaves {
                    self.leaf(d, va, f.level, layout.ds, rule, stale);
                    st.leaves += 1;
                }
            }
            depth -= 1;
        }
        st
    }

    /// Records the VA range the valid descriptors of the table just loaded
    /// at `depth` translate (once per table, not per descriptor).
    fn note_used(&mut self, page: Option<usize>, depth: usize, entries: u16, va: u64, size: u64) {
        let Some(i) = page else { return };
        let d = &self.bufs[depth][..(entries as usize).min(ENTRIES)];
        let (Some(first), Some(last)) =
            (d.iter().position(|&x| desc::is_valid(x)), d.iter().rposition(|&x| desc::is_valid(x)))
        else {
            return;
        };
        let lo = va.wrapping_add(first as u64 * size);
        self.pages[i].use_range(lo, va.wrapping_add((last as u64 + 1) * size).wrapping_sub(1));
    }

    /// A block or page descriptor `d` at `level` mapping `va`: the table
    /// pages it covers gain an alias; a leaf with a pkey `rule` may deny
    /// over other pages is reported to `stale`.
    fn leaf(&mut self, d: u64, va: u64, level: i8, ds: bool, rule: &AuditRule, stale: &mut dyn FnMut(Stale)) {
        let size = desc::level_size(level);
        let oa = desc::output_address(d, level, ds);
        let end = oa.saturating_add(size);
        let mut tables_in_leaf = 0u64;
        // Most leaves map no table: find the first page at or above `oa`
        // before judging the descriptor. Output addresses mostly grow from
        // leaf to leaf (the linear map): try where the last search ended.
        let (n, h) = (self.pages.len(), self.hint);
        let mut i = if h <= n && (h == 0 || self.pages[h - 1].ipa < oa) && (h == n || self.pages[h].ipa >= oa)
        {
            h
        } else {
            self.lower_bound(oa)
        };
        if i < self.pages.len() && self.pages[i].ipa < end {
            let v = rule.alias(d);
            while i < self.pages.len() && self.pages[i].ipa < end {
                let p = &mut self.pages[i];
                let alias = Alias { va: va + (p.ipa - oa), level, poindex: v.poindex, perm: v.perm };
                p.add_alias(&alias, v.writable(), v.protected_by_pkey());
                tables_in_leaf += 1;
                i += 1;
            }
        }
        self.hint = i;
        let poindex = desc::poindex(d);
        let pages = size / PAGE_SIZE - tables_in_leaf;
        if pages > 0 && rule.may_deny(poindex) {
            stale(Stale { va, oa, level, poindex, pages });
        }
    }

    /// Reads the table at `table` into the buffer of `depth`: false if it
    /// is not readable guest memory, or the budget cannot cover it.
    fn load<M: GuestMem + ?Sized>(
        &mut self,
        mem: &M,
        depth: usize,
        table: u64,
        entries: u16,
        budget: &mut u64,
        st: &mut WalkStats,
    ) -> bool {
        let n = (entries as usize).min(ENTRIES);
        if *budget < n as u64 {
            st.truncated = true;
            return false;
        }
        *budget -= n as u64;
        st.descriptors += n as u64;
        if !mem.read_table(table, &mut self.bufs[depth][..n]) {
            st.unreadable += 1;
            return false;
        }
        true
    }

    /// Starts a table: marks its page visited and where it was reached.
    fn enter(&mut self, table: u64, half: Half, va: u64, st: &mut WalkStats) -> Option<usize> {
        st.tables += 1;
        let i = self.find(table & !(PAGE_SIZE - 1));
        match i {
            Some(i) => self.pages[i].reach(half, va),
            None => st.untracked += 1,
        }
        i
    }
}

/// The stale-pkey leaves of one audit: counts per POIndex, and the first
/// `K` leaves of each (a leaf's POIndex is only known to be the tables'
/// pkey once the walks are over).
pub struct StaleList<const K: usize> {
    lists: [Vec<Stale, K>; 8],
    /// Leaves per POIndex.
    pub leaves: [u64; 8],
    /// 4 KiB pages per POIndex.
    pub pages: [u64; 8],
}

impl<const K: usize> Default for StaleList<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const K: usize> StaleList<K> {
    pub const fn new() -> Self {
        Self { lists: [const { Vec::new() }; 8], leaves: [0; 8], pages: [0; 8] }
    }

    pub fn clear(&mut self) {
        for l in self.lists.iter_mut() {
            l.clear();
        }
        self.leaves = [0; 8];
        self.pages = [0; 8];
    }

    /// Records one leaf (kept if its POIndex's list has room).
    pub fn push(&mut self, s: Stale) {
        let i = (s.poindex & 7) as usize;
        self.leaves[i] += 1;
        self.pages[i] += s.pages;
        let _ = self.lists[i].push(s);
    }

    /// Leaves and pages whose POIndex is in `pkeys` (bit i = POIndex i).
    pub fn count(&self, pkeys: u8) -> (u64, u64) {
        (0..8)
            .filter(|i| pkeys & (1 << i) != 0)
            .fold((0, 0), |(l, p), i| (l + self.leaves[i], p + self.pages[i]))
    }

    /// The kept leaves whose POIndex is in `pkeys`, by POIndex.
    pub fn listed(&self, pkeys: u8) -> impl Iterator<Item = &Stale> + '_ {
        (0..8).filter(move |i| pkeys & (1 << i) != 0).flat_map(move |i| self.lists[i].iter())
    }
}
