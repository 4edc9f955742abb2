//! The set of guest translation tables porwatch write-protects at stage 2.
//!
//! A *table* is tracked while something tracked points at it: a root slot
//! (TTBR1_EL1, or one of the recent TTBR0_EL1 roots) or a valid table
//! descriptor inside another tracked table. Each table has a reference
//! count of those pointers. Stage-2 protection is per 4 KiB *page*: a page
//! is protected while at least one tracked table lies in it (small root
//! tables, e.g. 128-byte 52-bit PGDs, can share a page).
//!
//! Every change is reported through a sink of [`Action`]s that the
//! hypervisor carries out: `Protect(page)` when a page gains its first
//! tracked table, `Unprotect(page)` when it loses its last one (so the
//! stream for one page always alternates; nothing is duplicated),
//! `Overflow` when a table could not be tracked because the set is full
//! (never silent; the tracker is then incomplete until [`Tracker::rebuild`]
//! succeeds), and `RootDropped` when the least recently used TTBR0 root is
//! evicted.
//!
//! Several CPUs: each has its own TTBR0_EL1, TTBR1_EL1 and TCR_EL1, so the
//! roots are installed per CPU ([`Tracker::set_root_on`],
//! [`Tracker::on_tcr_change_on`]; `set_root`/`on_tcr_change` are CPU 0's).
//! A TTBR0 root installed on any CPU is never evicted or released, and
//! TTBR1 may hold different kernel trees on different CPUs for a while
//! (all of them tracked, sharing root bit 0).
//!
//! Protocol for the hypervisor: call `set_root` on every TTBR0/TTBR1 write
//! (a write that keeps the table address, e.g. an ASID change, is cheap),
//! `on_tcr_change` on every TCR_EL1 write, and `on_store` (or `on_write`)
//! for every trapped store to a protected page, **after** the store has been
//! performed in guest memory. Descriptors are interpreted with the level the
//! table was first tracked at; a table reached at two different levels, and
//! loops in the table graph, are counted (`level_conflicts`) / kept alive
//! until the next `rebuild` (a mark-and-sweep from the roots that repairs
//! any drift).

use super::sorted_slots::SortedSlots;
use crate::cpus::MAX_CPUS;

use super::desc::{self, DESC_BYTES, ENTRIES, LAST_LEVEL, PAGE_SIZE};
use super::regime::{Half, Layout, Regime};
use super::walk::GuestMem;

/// The most TTBR0 roots the tracker can hold (root bits 1..=31).
pub const MAX_TTBR0_ROOTS: usize = 31;
/// Depth of the explicit stacks: 4 is enough for a consistent tree (tables
/// at levels -1..=2 have children); the rest absorbs level conflicts.
const STACK: usize = 8;

/// Something the hypervisor must do (or report).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum Action {
    /// Make the 4 KiB page at this IPA read-only at stage 2.
    Protect(u64),
    /// As `Protect`, for a page that holds one last-level table and nothing
    /// else ([`Tracker::is_leaf_page`]): stores to it never change what is
    /// tracked, so a hypervisor that need not check them against an
    /// overlay may leave it writable.
    ProtectLeaf(u64),
    /// Make the page at this IPA writable again.
    Unprotect(u64),
    /// The table at `table_ipa` could not be tracked: the set is full.
    /// Stores to it will not be seen. Report it.
    Overflow { table_ipa: u64, level: i8 },
    /// TTBR0 root `root_ipa` (slot `slot`) was dropped: evicted as least
    /// recently used, or its half became unwalkable after a TCR change.
    RootDropped { root_ipa: u64, slot: u8 },
}

/// The roots a table belongs to: bit 0 = TTBR1 (kernel), bit 1 + s =
/// TTBR0 slot s. A superset after unlinks inside shared subtrees: bits are
/// only removed when a root is dropped and on `rebuild`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub struct RootMask(pub u32);

impl RootMask {
    pub const KERNEL: Self = Self(1);

    /// The bit of TTBR0 slot `slot` (empty for slots >= 31).
    #[inline]
    pub const fn ttbr0_slot(slot: u8) -> Self {
        if (slot as usize) < MAX_TTBR0_ROOTS {
            Self(2 << slot)
        } else {
            Self(0)
        }
    }

    /// Reached from TTBR1_EL1.
    #[inline]
    pub const fn kernel(self) -> bool {
        self.0 & 1 != 0
    }

    /// Reached from some TTBR0_EL1 root.
    #[inline]
    pub const fn user(self) -> bool {
        self.0 & !1 != 0
    }

    /// Bit s set for each TTBR0 slot s.
    #[inline]
    pub const fn ttbr0_slots(self) -> u32 {
        self.0 >> 1
    }

    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A tracked table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableInfo {
    /// Table address.
    pub ipa: u64,
    pub level: i8,
    /// Descriptors (512; fewer for a small root).
    pub entries: u16,
    /// Root slots + tracked table descriptors pointing here.
    pub refs: u32,
    pub roots: RootMask,
}

impl TableInfo {
    /// True if `ipa` lies inside the table.
    #[inline]
    pub const fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.entries as u64 * DESC_BYTES
    }
}

/// Counters (cumulative) and sizes. Report them in the trace.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// Tables tracked now / at most so far / capacity N.
    pub tables: usize,
    pub max_tables: usize,
    pub capacity: usize,
    /// Pages protected now / at most so far.
    pub pages: usize,
    pub max_pages: usize,
    /// TTBR0 roots held now, and the bound.
    pub ttbr0_roots: usize,
    pub ttbr0_bound: usize,
    /// TTBR0 roots evicted by the LRU bound.
    pub dropped_roots: u64,
    /// TTBR0 roots released as freed: left empty while not installed (an
    /// exited process's torn-down tree), or found reused as ordinary
    /// memory ([`Tracker::release_idle_roots`]).
    pub released_roots: u64,
    /// Roots dropped because their half became unwalkable (16K/64K granule,
    /// bad TxSZ) after a TCR change.
    pub unsupported_roots: u64,
    /// Tables not tracked because the set was full.
    pub overflows: u64,
    /// Table descriptors pointing at memory that cannot be read (not
    /// tracked; the CPU's walk would abort there too).
    pub unreadable: u64,
    /// A tracked table reached again at another level or size.
    pub level_conflicts: u64,
    /// Subtrees not followed because the explicit stack was full.
    pub depth_limited: u64,
    pub rebuilds: u64,
    /// Table pages released because a store to them could be neither
    /// emulated nor single-stepped ([`Tracker::release_page`]).
    pub released_pages: u64,
    /// No overflow or depth limit since the last successful rebuild: the set
    /// is exactly the tables reachable from the roots.
    pub complete: bool,
}

/// What [`Tracker::set_root`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RootChange {
    /// TTBR0 slot used (`None` for TTBR1).
    pub slot: Option<u8>,
    /// The root's tables were (re)walked; false when the root was already
    /// tracked (only the LRU order changed).
    pub walked: bool,
    /// Root table of the TTBR0 address space evicted to make room.
    pub evicted: Option<u64>,
}

/// What a store did to one descriptor of a tracked table.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WriteEffect {
    /// The tracked table written (`None`: not a tracked table).
    pub table: Option<TableInfo>,
    /// A table descriptor now points at this table (its subtree is tracked).
    pub linked: Option<u64>,
    /// A table descriptor no longer points at this table.
    pub unlinked: Option<u64>,
}

/// What [`Tracker::on_store`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StoreEffect {
    /// Descriptors (8-byte slots) the store touched.
    pub descriptors: u16,
    /// Of those, descriptors inside tracked tables.
    pub tracked: u16,
    /// The first tracked table written.
    pub table: Option<TableInfo>,
    pub linked: u16,
    pub unlinked: u16,
    /// `old` and `new` had different lengths; the shorter one was used.
    pub length_mismatch: bool,
    /// A partially written descriptor whose other bytes could not be read.
    pub unreadable: bool,
}

/// One descriptor's part of a store: full old and new 64-bit values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DescWrite {
    /// The descriptor's IPA (8-byte aligned).
    pub ipa: u64,
    pub old: u64,
    pub new: u64,
    /// First byte written within the descriptor, and how many.
    pub offset: u8,
    pub len: u8,
    /// Partially written and the rest could not be read (taken as 0).
    pub unreadable: bool,
}

/// Splits a store of `old`/`new` bytes at `ipa` into per-descriptor
/// writes (little-endian descriptors). Bytes of a partially written
/// descriptor outside the store are read from `mem`; they are the same
/// before and after the store, so this works whether or not the store has
/// been performed yet. Covers STR B/H/W/X to any half, STP (two
/// descriptors, or three when unaligned), 64-byte DC ZVA, and so on.
pub fn split_store<'a, M: GuestMem + ?Sized>(
    ipa: u64,
    old: &'a [u8],
    new: &'a [u8],
    mem: &'a M,
) -> SplitStore<'a, M> {
    let len = if old.len() < new.len() { old.len() } else { new.len() };
    SplitStore { mem, ipa, old: &old[..len], new: &new[..len], pos: 0 }
}

/// Iterator returned by [`split_store`].
pub struct SplitStore<'a, M: ?Sized> {
    mem: &'a M,
    ipa: u64,
    old: &'a [u8],
    new: &'a [u8],
    pos: usize,
}

impl<M: GuestMem + ?Sized> Iterator for SplitStore<'_, M> {
    type Item = DescWrite;

    fn next(&mut self) -> Option<DescWrite> {
        let len = self.old.len();
        if self.pos >= len {
            return None;
        }
        let addr = self.ipa.wrapping_add(self.pos as u64);
        let slot = addr & !(DESC_BYTES - 1);
        let off = (addr & (DESC_BYTES - 1)) as usize;
        let n = (8 - off).min(len - self.pos);
        let (cur, unreadable) = if n == 8 {
            (0, false)
        } else {
            match self.mem.read_u64(slot) {
                Some(v) => (v, false),
                None => (0, true),
            }
        };
        let mut ob = cur.to_le_bytes();
        let mut nb = ob;
        let src = self.pos..self.pos + n;
        ob[off..off + n].copy_from_slice(&self.old[src.clone()]);
        nb[off..off + n].copy_from_slice(&self.new[src]);
        self.pos += n;
        Some(DescWrite {
            ipa: slot,
            old: u64::from_le_bytes(ob),
            new: u64::from_le_bytes(nb),
            offset: off as u8,
            len: n as u8,
            unreadable,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    base: u64,
    refs: u32,
    roots: u32,
    entries: u16,
    level: i8,
    /// Not yet reached during a rebuild.
    stale: bool,
}

/// What unused slots of the table set hold.
const EMPTY_ENTRY: Entry = Entry { base: 0, refs: 0, roots: 0, entries: 0, level: 0, stale: false };

impl Entry {
    const fn info(&self) -> TableInfo {
        TableInfo {
            ipa: self.base,
            level: self.level,
            entries: self.entries,
            refs: self.refs,
            roots: RootMask(self.roots),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct RootSlot {
    /// As passed to `set_root`.
    root_ipa: u64,
    /// The root table address under `layout`.
    table: u64,
    layout: Layout,
    last_used: u64,
    /// The root has held a valid descriptor while tracked. Only such a root
    /// is released when it empties (an exited process's torn-down tree):
    /// one empty from the start (Linux's reserved_pg_dir, installed for
    /// every kernel thread) stays, instead of being released and walked
    /// again on each switch.
    populated: bool,
}

#[derive(Clone, Copy)]
struct Frame {
    base: u64,
    level: i8,
    entries: u16,
    next: u16,
    roots: u32,
}

const EMPTY_FRAME: Frame = Frame { base: 0, level: 0, entries: 0, next: 0, roots: 0 };

/// The explicit stack of a depth-first walk over tables' descriptors (at
/// most [`STACK`] tables deep).
struct Walk {
    stack: [Frame; STACK],
    depth: usize,
}

impl Walk {
    /// A walk starting at `first`, or an empty one.
    fn new(first: Option<Frame>) -> Self {
        let mut w = Walk { stack: [EMPTY_FRAME; STACK], depth: 0 };
        if let Some(f) = first {
            w.stack[0] = f;
            w.depth = 1;
        }
        w
    }

    /// The next descriptor to visit: the frame it belongs to (as it was
    /// before this step) and the descriptor's address. Frames whose
    /// descriptors have all been visited are dropped; `None` once the walk
    /// is over.
    fn next_desc(&mut self) -> Option<(Frame, u64)> {
        while self.depth > 0 {
            let top = self.stack[self.depth - 1];
            if top.next >= top.entries {
                self.depth -= 1;
                continue;
            }
            self.stack[self.depth - 1].next += 1;
            return Some((top, top.base.wrapping_add(top.next as u64 * DESC_BYTES)));
        }
        None
    }

    /// Moves the top frame's cursor past the invalid descriptors `buf`
    /// holds for it (see [`TableBuf::next_valid`]).
    #[inline]
    fn skip_invalid<M: GuestMem + ?Sized>(&mut self, buf: &mut TableBuf, mem: &M) {
        if let Some(top) = self.depth.checked_sub(1).and_then(|i| self.stack.get_mut(i)) {
            top.next = buf.next_valid(mem, top);
        }
    }

    /// Abandons the frame [`Walk::next_desc`] last returned.
    fn pop(&mut self) {
        self.depth -= 1;
    }

    /// Descends into `f`; false (and nothing pushed) if the stack is full.
    fn push(&mut self, f: Frame) -> bool {
        if self.depth < STACK {
            self.stack[self.depth] = f;
            self.depth += 1;
            true
        } else {
            false
        }
    }
}

/// The descriptors of the table a link/unlink walk is in, read a table at
/// a time (one range check and a tight copy instead of a GuestMem call per
/// descriptor: scanning a process's tree on each new TTBR0 was most of the
/// tracker's cost under Linux).
struct TableBuf {
    base: u64,
    entries: u16,
    /// `d` holds the table at `base`; false: read descriptor by descriptor.
    whole: bool,
    valid: bool,
    d: [u64; ENTRIES as usize],
}

impl TableBuf {
    fn new() -> Self {
        Self { base: 0, entries: 0, whole: false, valid: false, d: [0; ENTRIES as usize] }
    }

    /// Holds the table `f` (reads it unless it is the one held).
    #[inline]
    fn load<M: GuestMem + ?Sized>(&mut self, mem: &M, f: &Frame) {
        if !self.valid || self.base != f.base || self.entries != f.entries {
            let n = (f.entries as usize).min(self.d.len());
            self.base = f.base;
            self.entries = f.entries;
            self.valid = true;
            self.whole = mem.read_table(f.base, &mut self.d[..n]);
        }
    }

    /// The index of the first valid descriptor of table `f` at or after
    /// its cursor (`f.entries` if there is none). An invalid descriptor
    /// points to no table, so the walks skip it; this scan is a few
    /// instructions a descriptor against ≈ 25 for a step of the walk, and
    /// most descriptors of a process's tables are invalid (Linux's fork and
    /// exit scanned ≈ 512 per table). A table read descriptor by descriptor
    /// (`whole` false) skips nothing.
    #[inline]
    fn next_valid<M: GuestMem + ?Sized>(&mut self, mem: &M, f: &Frame) -> u16 {
        self.load(mem, f);
        let start = f.next as usize;
        let end = (f.entries as usize).min(self.d.len());
        match self.d.get(start..end) {
            Some(ds) if self.whole => {
                ds.iter().position(|d| d & desc::VALID != 0).map_or(end, |i| start + i) as u16
            }
            _ => f.next,
        }
    }

    /// The descriptor at `at` in the table `f`.
    #[inline]
    fn get<M: GuestMem + ?Sized>(&mut self, mem: &M, f: &Frame, at: u64) -> Option<u64> {
        self.load(mem, f);
        if !self.whole {
            return mem.read_u64(at);
        }
        self.d.get((at.wrapping_sub(f.base) / DESC_BYTES) as usize).copied()
    }
}

#[inline]
const fn page_of(ipa: u64) -> u64 {
    ipa & !(PAGE_SIZE - 1)
}

/// The tracked tables (at most `N`), the root slots and the counters.
pub struct Tracker<const N: usize> {
    /// Sorted by `base`.
    tables: SortedSlots<Entry, N>,
    /// TTBR1 roots: the distinct kernel trees some CPU has installed
    /// (normally one).
    kernel: [Option<RootSlot>; MAX_CPUS],
    /// Per CPU: the `kernel` slot of its TTBR1.
    kernel_of: [Option<u8>; MAX_CPUS],
    user: [Option<RootSlot>; MAX_TTBR0_ROOTS],
    /// Per CPU: the `user` slot of the root last written to its TTBR0 (the
    /// installed one).
    installed: [Option<u8>; MAX_CPUS],
    max_user: usize,
    clock: u64,
    ds: bool,
    pages: usize,
    stats: Stats,
    incomplete: bool,
}

impl<const N: usize> Tracker<N> {
    /// An empty tracker keeping at most `max_ttbr0_roots` TTBR0 roots
    /// (clamped to 1..=31) tracked at once. With several CPUs give at least
    /// one per CPU: an installed root is evicted only when every slot is
    /// installed on some CPU.
    pub const fn new(max_ttbr0_roots: usize) -> Self {
        let max_user = if max_ttbr0_roots == 0 {
            1
        } else if max_ttbr0_roots > MAX_TTBR0_ROOTS {
            MAX_TTBR0_ROOTS
        } else {
            max_ttbr0_roots
        };
        Self {
            tables: SortedSlots::new(EMPTY_ENTRY),
            kernel: [None; MAX_CPUS],
            kernel_of: [None; MAX_CPUS],
            user: [None; MAX_TTBR0_ROOTS],
            installed: [None; MAX_CPUS],
            max_user,
            clock: 0,
            ds: false,
            pages: 0,
            stats: Stats {
                tables: 0,
                max_tables: 0,
                capacity: N,
                pages: 0,
                max_pages: 0,
                ttbr0_roots: 0,
                ttbr0_bound: max_user,
                dropped_roots: 0,
                released_roots: 0,
                unsupported_roots: 0,
                overflows: 0,
                unreadable: 0,
                level_conflicts: 0,
                depth_limited: 0,
                rebuilds: 0,
                released_pages: 0,
                complete: true,
            },
            incomplete: false,
        }
    }

    // ---------------------------------------------------------------------
    // Queries.

    /// The tracked table containing `ipa`, if any.
    pub fn is_tracked(&self, ipa: u64) -> Option<TableInfo> {
        self.containing(ipa).map(|i| self.tables[i].info())
    }

    /// True if the page holding `ipa` is protected (holds a tracked table).
    pub fn is_page_protected(&self, ipa: u64) -> bool {
        self.page_used(page_of(ipa))
    }

    /// True if the page at `page` holds exactly one tracked table, a full
    /// last-level one at the page's base. A store there never changes what
    /// is tracked (`on_store` ignores last-level tables: their descriptors
    /// point at pages, not tables), which is what lets the hypervisor
    /// complete stores to such a page without the tracker. It stays true
    /// until the table is released (the page is unprotected), a root is set
    /// inside the page, or `on_tcr_change` rebuilds.
    pub fn is_leaf_page(&self, page: u64) -> bool {
        let Ok(i) = self.find(page) else { return false };
        let e = &self.tables[i];
        page.is_multiple_of(PAGE_SIZE)
            && !e.stale
            && e.level == LAST_LEVEL
            && e.entries == ENTRIES
            && self.tables.get(i + 1).is_none_or(|n| n.base >= page + PAGE_SIZE)
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        Stats {
            tables: self.tables.len(),
            pages: self.pages,
            ttbr0_roots: self.user.iter().flatten().count(),
            complete: !self.incomplete,
            ..self.stats
        }
    }

    /// Every tracked table, by address.
    pub fn tables(&self) -> impl Iterator<Item = TableInfo> + '_ {
        self.tables.iter().map(Entry::info)
    }

    /// The TTBR1 root table (the first, if CPUs differ).
    pub fn kernel_root(&self) -> Option<u64> {
        self.kernel.iter().flatten().next().map(|k| k.table)
    }

    /// Every TTBR1 root table some CPU has installed.
    pub fn kernel_roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.kernel.iter().flatten().map(|k| k.table)
    }

    /// TTBR0 slot `slot` is installed on some CPU.
    fn is_installed(&self, slot: u8) -> bool {
        self.installed.contains(&Some(slot))
    }

    /// The TTBR0 root table installed on CPU `cpu`.
    pub fn installed_root(&self, cpu: usize) -> Option<u64> {
        let s = (*self.installed.get(cpu)?)?;
        self.user[s as usize].map(|r| r.table)
    }

    /// `(slot, root table)` of every tracked TTBR0 root.
    pub fn ttbr0_roots(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.user.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i as u8, s.table)))
    }

    /// The root table of TTBR0 slot `slot` (for naming a [`RootMask`]).
    pub fn ttbr0_root(&self, slot: u8) -> Option<u64> {
        self.user.get(slot as usize).copied().flatten().map(|s| s.table)
    }

    // ---------------------------------------------------------------------
    // Roots.

    /// The guest wrote TTBR0_EL1 or TTBR1_EL1: track the tree under
    /// `root_ipa` (a table address, e.g. `Ttbr::baddr`; aligned here as the
    /// CPU does). TTBR1 has one slot: the previous kernel tree is released.
    /// TTBR0 keeps the `max_ttbr0_roots` most recently used roots; a new one
    /// beyond the bound evicts the least recently used (its pages are
    /// unprotected unless still referenced, `RootDropped` is emitted and
    /// counted).
    pub fn set_root<M: GuestMem + ?Sized>(
        &mut self,
        which: Half,
        root_ipa: u64,
        layout: &Layout,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> RootChange {
        self.set_root_on(0, which, root_ipa, layout, mem, sink)
    }

    /// [`Tracker::set_root`] for CPU `cpu` (< [`MAX_CPUS`]): its TTBR0 or
    /// TTBR1 now holds `root_ipa`. Roots other CPUs have installed stay.
    pub fn set_root_on<M: GuestMem + ?Sized>(
        &mut self,
        cpu: usize,
        which: Half,
        root_ipa: u64,
        layout: &Layout,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> RootChange {
        let sink: &mut dyn FnMut(Action) = sink;
        let cpu = cpu.min(MAX_CPUS - 1);
        self.clock = self.clock.wrapping_add(1);
        let table = layout.root_table(root_ipa);
        let slot = RootSlot { root_ipa, table, layout: *layout, last_used: self.clock, populated: false };
        let ds_changed = layout.ds != self.ds;
        match which {
            Half::Ttbr1 => self.set_kernel_root(cpu, slot, mem, sink),
            Half::Ttbr0 => {
                let prev = self.installed[cpu].take();
                let found = (0..self.max_user).find(|&i| self.user[i].is_some_and(|s| s.table == table));
                if let Some(p) = prev.filter(|&p| Some(p as usize) != found && !self.is_installed(p)) {
                    self.release_if_empty(p, mem, sink);
                }
                if let Some(i) = found {
                    self.installed[cpu] = Some(i as u8);
                    let same = self.user[i].is_some_and(|s| s.layout == *layout);
                    let populated = self.user[i].is_some_and(|s| s.populated);
                    self.user[i] = Some(RootSlot { populated, ..slot });
                    if same && !ds_changed {
                        return RootChange { slot: Some(i as u8), walked: false, evicted: None };
                    }
                    self.ds = layout.ds;
                    self.rebuild_dyn(mem, sink);
                    return RootChange { slot: Some(i as u8), walked: true, evicted: None };
                }
                let i = self.free_or_lru_slot();
                let bit = RootMask::ttbr0_slot(i as u8).0;
                let mut evicted = None;
                if let Some(old) = self.user[i].take() {
                    evicted = Some(old.table);
                    self.uninstall(i as u8);
                    self.stats.dropped_roots = self.stats.dropped_roots.saturating_add(1);
                    sink(Action::RootDropped { root_ipa: old.table, slot: i as u8 });
                    self.unlink(mem, old.table, sink);
                    self.clear_roots(bit);
                }
                let populated = Self::any_valid(mem, table, layout.root_entries());
                self.user[i] = Some(RootSlot { populated, ..slot });
                self.installed[cpu] = Some(i as u8);
                if ds_changed {
                    self.ds = layout.ds;
                    self.rebuild_dyn(mem, sink);
                } else {
                    self.link(mem, table, layout.start_level, layout.root_entries(), bit, sink);
                }
                RootChange { slot: Some(i as u8), walked: true, evicted }
            }
        }
    }

    /// CPU `cpu`'s TTBR1 now holds `slot`'s tree. The same tree as another
    /// CPU's is shared; a tree no CPU holds any more is released (root bit
    /// 0 then recomputed from the kernel trees that remain).
    fn set_kernel_root<M: GuestMem + ?Sized>(
        &mut self,
        cpu: usize,
        slot: RootSlot,
        mem: &M,
        sink: &mut dyn FnMut(Action),
    ) -> RootChange {
        let ds_changed = slot.layout.ds != self.ds;
        let unchanged = RootChange { slot: None, walked: false, evicted: None };
        let prev = self.kernel_of[cpu];
        if let Some(k) = prev.and_then(|p| self.kernel[p as usize].as_mut()) {
            if k.table == slot.table && k.layout == slot.layout && !ds_changed {
                k.root_ipa = slot.root_ipa;
                k.last_used = slot.last_used;
                return unchanged;
            }
        }
        // Another CPU's tree (same table): share its slot.
        let same = (0..MAX_CPUS).find(|&i| self.kernel[i].is_some_and(|k| k.table == slot.table));
        let at = match same {
            Some(i) => i,
            // A new tree: a free slot, or this CPU's previous one if no
            // other CPU holds it (each CPU holds one: there is always one).
            None => {
                let held_elsewhere = |i: usize| {
                    self.kernel_of.iter().enumerate().any(|(c, s)| c != cpu && *s == Some(i as u8))
                };
                let free = (0..MAX_CPUS).find(|&i| self.kernel[i].is_none());
                match free.or(prev.map(usize::from).filter(|&p| !held_elsewhere(p))) {
                    Some(i) => i,
                    None => return unchanged,
                }
            }
        };
        let replaced = self.kernel[at].filter(|k| k.table != slot.table);
        let relayout = same.is_some_and(|i| self.kernel[i].is_some_and(|k| k.layout != slot.layout));
        self.kernel[at] = Some(slot);
        self.kernel_of[cpu] = Some(at as u8);
        // The previous tree of this CPU, unless another CPU still has it.
        let orphan = prev
            .filter(|&p| p as usize != at && !self.kernel_of.contains(&Some(p)))
            .and_then(|p| self.kernel[p as usize].take());
        if same.is_some() && !relayout && !ds_changed && orphan.is_none() {
            return unchanged;
        }
        if ds_changed || relayout || replaced.is_some() {
            self.ds = slot.layout.ds;
            self.rebuild_dyn(mem, sink);
            return RootChange { slot: None, walked: true, evicted: None };
        }
        if same.is_none() {
            let l = slot.layout;
            self.link(mem, slot.table, l.start_level, l.root_entries(), RootMask::KERNEL.0, sink);
        }
        if let Some(o) = orphan {
            self.unlink(mem, o.table, sink);
            self.clear_roots(RootMask::KERNEL.0);
            let roots: [Option<u64>; MAX_CPUS] = core::array::from_fn(|i| self.kernel[i].map(|k| k.table));
            for k in roots.into_iter().flatten() {
                self.propagate_from(mem, k, RootMask::KERNEL.0);
            }
        }
        RootChange { slot: None, walked: same.is_none(), evicted: None }
    }

    /// Stops tracking a root explicitly (e.g. the guest freed that address
    /// space). Returns false if it was not a root. No `RootDropped` action.
    pub fn drop_root<M: GuestMem + ?Sized>(
        &mut self,
        which: Half,
        root_ipa: u64,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> bool {
        let sink: &mut dyn FnMut(Action) = sink;
        match which {
            Half::Ttbr1 => {
                let found = (0..MAX_CPUS)
                    .find(|&i| self.kernel[i].is_some_and(|k| k.table == k.layout.root_table(root_ipa)));
                let Some(i) = found else { return false };
                let Some(k) = self.kernel[i].take() else { return false };
                for c in self.kernel_of.iter_mut().filter(|c| **c == Some(i as u8)) {
                    *c = None;
                }
                self.unlink(mem, k.table, sink);
                self.clear_roots(RootMask::KERNEL.0);
                let roots: [Option<u64>; MAX_CPUS] =
                    core::array::from_fn(|i| self.kernel[i].map(|k| k.table));
                for r in roots.into_iter().flatten() {
                    self.propagate_from(mem, r, RootMask::KERNEL.0);
                }
                true
            }
            Half::Ttbr0 => {
                let found = (0..self.max_user)
                    .find(|&i| self.user[i].is_some_and(|s| s.table == s.layout.root_table(root_ipa)));
                let Some(i) = found else { return false };
                let Some(s) = self.user[i].take() else {
                    return false;
                };
                self.uninstall(i as u8);
                self.unlink(mem, s.table, sink);
                self.clear_roots(RootMask::ttbr0_slot(i as u8).0);
                true
            }
        }
    }

    /// No CPU has TTBR0 slot `slot` installed any more.
    fn uninstall(&mut self, slot: u8) {
        for c in self.installed.iter_mut().filter(|c| **c == Some(slot)) {
            *c = None;
        }
    }

    /// Releases every TTBR0 root no CPU has installed. For when a tracked
    /// page turns out to be ordinary memory (e.g. EL0 stored to it: no OS
    /// maps its page tables to user space): a root kept from the LRU was
    /// freed without its tree being torn down first. Returns how many were
    /// released; the page is still protected afterwards only if a live
    /// tree reaches it.
    pub fn release_idle_roots<M: GuestMem + ?Sized>(
        &mut self,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> usize {
        let sink: &mut dyn FnMut(Action) = sink;
        let mut n = 0;
        for i in 0..self.max_user as u8 {
            if !self.is_installed(i) && self.user[i as usize].is_some() {
                self.release_slot(i, mem, sink);
                n += 1;
            }
        }
        n
    }

    /// Stops tracking every table in the page at `page` and unprotects it:
    /// for a store porwatch can neither emulate nor single-step, so that the
    /// page does not stay writable while counted as tracked. Stores to the
    /// page are not seen from then on; the tables these pointed at keep
    /// their references (their descriptors can no longer be followed) and
    /// the tracker is marked incomplete until the next rebuild (a TCR_EL1
    /// change), which tracks the page again if it is still reachable. A
    /// table descriptor written later that points into the page tracks it
    /// again. Returns the number of tables released (0: nothing tracked
    /// there).
    pub fn release_page(&mut self, page: u64, sink: &mut impl FnMut(Action)) -> usize {
        let sink: &mut dyn FnMut(Action) = sink;
        let page = page_of(page);
        let mut n = 0;
        // Entries of one page are adjacent (sorted by base).
        let i = match self.find(page) {
            Ok(i) | Err(i) => i,
        };
        while self.tables.get(i).is_some_and(|e| page_of(e.base) == page) {
            // Each removal shifts the rest down; the page is unprotected
            // with its last table.
            if self.remove_at(i, sink).is_none() {
                break;
            }
            n += 1;
        }
        if n > 0 {
            self.incomplete = true;
            self.stats.released_pages = self.stats.released_pages.saturating_add(1);
        }
        n
    }

    /// The guest wrote TCR_EL1: re-derive every root's layout and, if any
    /// changed (T0SZ/T1SZ, DS, IPS, EPD, TBI), rebuild the tracked set. Roots
    /// of a half that became unwalkable are dropped (`RootDropped`, counted
    /// in `unsupported_roots`; TTBR1 reports slot 255). Returns whether the
    /// set was rebuilt. Cheap when nothing relevant changed.
    pub fn on_tcr_change<M: GuestMem + ?Sized>(
        &mut self,
        regime: &Regime,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> bool {
        self.on_tcr_change_on(0, regime, mem, sink)
    }

    /// [`Tracker::on_tcr_change`] for CPU `cpu`'s TCR_EL1: the roots it
    /// re-derives are its own (installed on it) and those no other CPU has
    /// installed (an idle root takes the layout of the next CPU to install
    /// it anyway); another CPU's roots keep that CPU's layout. With one CPU
    /// that is every root.
    pub fn on_tcr_change_on<M: GuestMem + ?Sized>(
        &mut self,
        cpu: usize,
        regime: &Regime,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> bool {
        let sink: &mut dyn FnMut(Action) = sink;
        let cpu = cpu.min(MAX_CPUS - 1);
        let mut changed = regime.ds != self.ds;
        let l1 = regime.layout(Half::Ttbr1);
        let l0 = regime.layout(Half::Ttbr0);
        let others = |installed: &[Option<u8>; MAX_CPUS], slot: u8| {
            installed.iter().enumerate().any(|(c, s)| c != cpu && *s == Some(slot))
        };
        for i in 0..MAX_CPUS {
            let Some(k) = self.kernel[i] else { continue };
            if others(&self.kernel_of, i as u8) {
                continue;
            }
            match l1 {
                Ok(l) => {
                    if l != k.layout {
                        self.kernel[i] = Some(RootSlot { table: l.root_table(k.root_ipa), layout: l, ..k });
                        changed = true;
                    }
                }
                Err(_) => {
                    self.kernel[i] = None;
                    for c in self.kernel_of.iter_mut().filter(|c| **c == Some(i as u8)) {
                        *c = None;
                    }
                    self.stats.unsupported_roots = self.stats.unsupported_roots.saturating_add(1);
                    sink(Action::RootDropped { root_ipa: k.table, slot: u8::MAX });
                    changed = true;
                }
            }
        }
        for i in 0..MAX_TTBR0_ROOTS {
            let Some(s) = self.user[i] else { continue };
            if others(&self.installed, i as u8) {
                continue;
            }
            match l0 {
                Ok(l) => {
                    if l != s.layout {
                        self.user[i] = Some(RootSlot { table: l.root_table(s.root_ipa), layout: l, ..s });
                        changed = true;
                    }
                }
                Err(_) => {
                    self.user[i] = None;
                    self.uninstall(i as u8);
                    self.stats.unsupported_roots = self.stats.unsupported_roots.saturating_add(1);
                    sink(Action::RootDropped { root_ipa: s.table, slot: i as u8 });
                    changed = true;
                }
            }
        }
        self.ds = regime.ds;
        if changed {
            self.rebuild_dyn(mem, sink);
        }
        changed
    }

    /// Recomputes the set from the roots (mark and sweep): tables still
    /// reachable stay protected without new actions, unreachable ones are
    /// unprotected, new ones protected. Repairs reference counts after
    /// overflow, level conflicts or loops, and clears stale root bits.
    pub fn rebuild<M: GuestMem + ?Sized>(&mut self, mem: &M, sink: &mut impl FnMut(Action)) {
        self.rebuild_dyn(mem, sink)
    }

    // ---------------------------------------------------------------------
    // Stores.

    /// A store changed descriptor `index` of the tracked table at
    /// `table_ipa` from `old` to `new` (the store has been performed). A new
    /// table descriptor starts tracking its subtree; a replaced or cleared
    /// one releases its child, and a table whose count reaches zero is
    /// untracked with its whole unreferenced subtree.
    pub fn on_write<M: GuestMem + ?Sized>(
        &mut self,
        table_ipa: u64,
        index: u16,
        old: u64,
        new: u64,
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> WriteEffect {
        let sink: &mut dyn FnMut(Action) = sink;
        match self.find(table_ipa) {
            Ok(i) => self.write_at(i, index, old, new, mem, sink),
            Err(_) => WriteEffect::default(),
        }
    }

    /// A trapped store of `new` over `old` (equal lengths, any size and
    /// alignment: STR/STRB/STRH, STP, DC ZVA, ...) at `ipa`, already
    /// performed. Split into descriptors, each applied with `on_write` to
    /// the tracked table containing it; bytes outside tracked tables are
    /// ignored.
    pub fn on_store<M: GuestMem + ?Sized>(
        &mut self,
        ipa: u64,
        old: &[u8],
        new: &[u8],
        mem: &M,
        sink: &mut impl FnMut(Action),
    ) -> StoreEffect {
        let sink: &mut dyn FnMut(Action) = sink;
        // The common case, one aligned descriptor (STR Xt, SWP, CAS, ...).
        if let (Ok(o), Ok(n), 0) = (<[u8; 8]>::try_from(old), <[u8; 8]>::try_from(new), ipa % DESC_BYTES) {
            let mut out = StoreEffect { descriptors: 1, ..StoreEffect::default() };
            if let Some(i) = self.containing(ipa) {
                let index = ((ipa - self.tables[i].base) / DESC_BYTES) as u16;
                let eff = self.write_at(i, index, u64::from_le_bytes(o), u64::from_le_bytes(n), mem, sink);
                out.tracked = 1;
                out.table = eff.table;
                out.linked = eff.linked.is_some() as u16;
                out.unlinked = eff.unlinked.is_some() as u16;
            }
            return out;
        }
        let mut out = StoreEffect { length_mismatch: old.len() != new.len(), ..StoreEffect::default() };
        for w in split_store(ipa, old, new, mem) {
            out.descriptors = out.descriptors.saturating_add(1);
            out.unreadable |= w.unreadable;
            let Some(i) = self.containing(w.ipa) else {
                continue;
            };
            let base = self.tables[i].base;
            let index = ((w.ipa - base) / DESC_BYTES) as u16;
            let eff = self.write_at(i, index, w.old, w.new, mem, sink);
            out.tracked = out.tracked.saturating_add(1);
            if out.table.is_none() {
                out.table = eff.table;
            }
            out.linked = out.linked.saturating_add(eff.linked.is_some() as u16);
            out.unlinked = out.unlinked.saturating_add(eff.unlinked.is_some() as u16);
        }
        out
    }

    // ---------------------------------------------------------------------
    // Internals.

    fn write_at<M: GuestMem + ?Sized>(
        &mut self,
        i: usize,
        index: u16,
        old: u64,
        new: u64,
        mem: &M,
        sink: &mut dyn FnMut(Action),
    ) -> WriteEffect {
        let Some(e) = self.tables.get(i).copied() else {
            return WriteEffect::default();
        };
        let mut out = WriteEffect { table: Some(e.info()), ..WriteEffect::default() };
        if e.stale || index >= e.entries || e.level >= LAST_LEVEL {
            return out;
        }
        // A valid descriptor written into a TTBR0 root (only roots live at
        // level 0 or above it): the root is populated.
        if e.level <= 0 && new & desc::VALID != 0 {
            for u in self.user.iter_mut().take(self.max_user).flatten() {
                if u.table == e.base {
                    u.populated = true;
                }
            }
        }
        let o = desc::next_table(old, e.level, self.ds);
        let n = desc::next_table(new, e.level, self.ds);
        if o == n {
            return out;
        }
        // Link first, then unlink: a table moved between two descriptors
        // (or re-pointed with new attributes) is never unprotected.
        if let Some(c) = n {
            self.link(mem, c, e.level + 1, ENTRIES, e.roots, sink);
            out.linked = Some(c);
        }
        if let Some(c) = o {
            self.unlink(mem, c, sink);
            out.unlinked = Some(c);
            // A process's tree is torn down (every root entry cleared)
            // before its root table is freed: once a root that is not
            // installed is empty, stop tracking it, so that the freed page
            // is ordinary memory again.
            if let Some(slot) = self.idle_root_slot(e.base) {
                self.release_if_empty(slot, mem, sink);
            }
        }
        out
    }

    /// True if the table at `base` has a valid descriptor among its first
    /// `entries` (an unreadable table counts as populated: never released
    /// for being empty).
    fn any_valid<M: GuestMem + ?Sized>(mem: &M, base: u64, entries: u16) -> bool {
        // In chunks, stopping at the first valid one: a live root's first
        // entries are valid, and this runs at every TTBR0 switch (a whole
        // 4 KiB buffer zeroed, copied and scanned cost ~4,000 instructions).
        const CHUNK: usize = 16;
        let n = (entries as usize).min(ENTRIES as usize);
        let mut buf = [0u64; CHUNK];
        (0..n).step_by(CHUNK).any(|i| {
            let len = CHUNK.min(n - i);
            !mem.read_table(base + 8 * i as u64, &mut buf[..len])
                || buf[..len].iter().any(|d| d & desc::VALID != 0)
        })
    }

    /// The TTBR0 slot whose root table is at `base`, if it is not the
    /// installed one.
    fn idle_root_slot(&self, base: u64) -> Option<u8> {
        (0..self.max_user)
            .find(|&i| !self.is_installed(i as u8) && self.user[i].is_some_and(|s| s.table == base))
            .map(|i| i as u8)
    }

    /// Releases TTBR0 slot `slot` if its root table, once populated, has no
    /// valid descriptor now.
    fn release_if_empty<M: GuestMem + ?Sized>(&mut self, slot: u8, mem: &M, sink: &mut dyn FnMut(Action)) {
        let Some(s) = self.user.get(slot as usize).copied().flatten() else { return };
        if !s.populated {
            return;
        }
        if !Self::any_valid(mem, s.table, s.layout.root_entries()) {
            self.release_slot(slot, mem, sink);
        }
    }

    fn release_slot<M: GuestMem + ?Sized>(&mut self, slot: u8, mem: &M, sink: &mut dyn FnMut(Action)) {
        let Some(s) = self.user[slot as usize].take() else { return };
        self.uninstall(slot);
        self.stats.released_roots = self.stats.released_roots.saturating_add(1);
        self.unlink(mem, s.table, sink);
        self.clear_roots(RootMask::ttbr0_slot(slot).0);
    }

    fn rebuild_dyn<M: GuestMem + ?Sized>(&mut self, mem: &M, sink: &mut dyn FnMut(Action)) {
        self.stats.rebuilds = self.stats.rebuilds.saturating_add(1);
        self.incomplete = false;
        self.tables.for_each_mut(|e| {
            e.stale = true;
            e.refs = 0;
            e.roots = 0;
        });
        for i in 0..MAX_CPUS {
            if let Some(k) = self.kernel[i] {
                let l = k.layout;
                self.link(mem, k.table, l.start_level, l.root_entries(), RootMask::KERNEL.0, sink);
            }
        }
        for i in 0..MAX_TTBR0_ROOTS {
            if let Some(s) = self.user[i] {
                let l = s.layout;
                let bit = RootMask::ttbr0_slot(i as u8).0;
                self.link(mem, s.table, l.start_level, l.root_entries(), bit, sink);
            }
        }
        // Sweep: entries of one page are adjacent (sorted by base).
        let n = self.tables.len();
        let mut i = 0;
        while i < n {
            let page = page_of(self.tables[i].base);
            let mut live = false;
            let mut j = i;
            while j < n && page_of(self.tables[j].base) == page {
                live |= !self.tables[j].stale;
                j += 1;
            }
            if !live {
                self.pages = self.pages.saturating_sub(1);
                sink(Action::Unprotect(page));
            }
            i = j;
        }
        self.tables.retain(|e| !e.stale);
    }

    /// A free TTBR0 slot, else the least recently used one no CPU has
    /// installed, else (fewer slots than CPUs) the least recently used.
    fn free_or_lru_slot(&self) -> usize {
        let idle = (0..self.max_user).filter(|&i| self.user[i].is_none() || !self.is_installed(i as u8));
        if let Some(i) = idle.min_by_key(|&i| self.user[i].map_or(0, |s| s.last_used.wrapping_add(1))) {
            return i;
        }
        let mut best = 0;
        let mut best_used = u64::MAX;
        for i in 0..self.max_user {
            match self.user[i] {
                None => return i,
                Some(s) if s.last_used < best_used => {
                    best = i;
                    best_used = s.last_used;
                }
                Some(_) => {}
            }
        }
        best
    }

    fn find(&self, base: u64) -> Result<usize, usize> {
        self.tables.binary_search_by_key(&base, |e| e.base)
    }

    fn containing(&self, ipa: u64) -> Option<usize> {
        let p = match self.find(ipa) {
            Ok(i) => return Some(i),
            Err(p) => p,
        };
        // Tables are at most 4 KiB: only bases in (ipa - 4 KiB, ipa] count.
        let lo = ipa.saturating_sub(PAGE_SIZE);
        let mut k = p;
        while k > 0 {
            k -= 1;
            let e = &self.tables[k];
            if e.base <= lo {
                break;
            }
            if e.info().contains(ipa) {
                return Some(k);
            }
        }
        None
    }

    fn page_used(&self, page: u64) -> bool {
        let i = match self.find(page) {
            Ok(i) | Err(i) => i,
        };
        self.tables.get(i).is_some_and(|e| e.base < page.saturating_add(PAGE_SIZE))
    }

    fn insert(&mut self, e: Entry, sink: &mut dyn FnMut(Action)) -> bool {
        if self.tables.is_full() && !self.evict_stale(sink) {
            return false;
        }
        let page = page_of(e.base);
        let fresh = !self.page_used(page);
        let Err(pos) = self.find(e.base) else {
            return false;
        };
        if self.tables.insert(pos, e).is_err() {
            return false;
        }
        if fresh {
            self.pages += 1;
            self.stats.max_pages = self.stats.max_pages.max(self.pages);
            sink(if self.is_leaf_page(page) { Action::ProtectLeaf(page) } else { Action::Protect(page) });
        }
        self.stats.max_tables = self.stats.max_tables.max(self.tables.len());
        true
    }

    fn remove_at(&mut self, i: usize, sink: &mut dyn FnMut(Action)) -> Option<Entry> {
        if i >= self.tables.len() {
            return None;
        }
        let e = self.tables.remove(i);
        let page = page_of(e.base);
        if !self.page_used(page) {
            self.pages = self.pages.saturating_sub(1);
            sink(Action::Unprotect(page));
        }
        Some(e)
    }

    /// During a rebuild, makes room by dropping a table not (yet) reached.
    fn evict_stale(&mut self, sink: &mut dyn FnMut(Action)) -> bool {
        let stale = self.tables.iter().position(|e| e.stale);
        match stale {
            Some(i) => self.remove_at(i, sink).is_some(),
            None => false,
        }
    }

    /// One more pointer to the table at `base`. Returns a frame to descend
    /// into when the table is newly tracked.
    fn link_one<M: GuestMem + ?Sized>(
        &mut self,
        mem: &M,
        base: u64,
        level: i8,
        entries: u16,
        roots: u32,
        sink: &mut dyn FnMut(Action),
    ) -> Option<Frame> {
        let frame = Frame { base, level, entries, next: 0, roots };
        match self.find(base) {
            Ok(i) => {
                let e = &mut self.tables[i];
                if e.stale {
                    *e = Entry { base, refs: 1, roots, entries, level, stale: false };
                    return (level < LAST_LEVEL).then_some(frame);
                }
                e.refs = e.refs.saturating_add(1);
                if e.level != level || e.entries != entries {
                    self.stats.level_conflicts = self.stats.level_conflicts.saturating_add(1);
                }
                let add = roots & !e.roots;
                if add != 0 {
                    self.propagate(mem, i, add);
                }
                None
            }
            Err(_) => {
                if mem.read_u64(base).is_none() {
                    self.stats.unreadable = self.stats.unreadable.saturating_add(1);
                    return None;
                }
                let e = Entry { base, refs: 1, roots, entries, level, stale: false };
                if !self.insert(e, sink) {
                    self.stats.overflows = self.stats.overflows.saturating_add(1);
                    self.incomplete = true;
                    sink(Action::Overflow { table_ipa: base, level });
                    return None;
                }
                (level < LAST_LEVEL).then_some(frame)
            }
        }
    }

    /// Tracks the table at `base` (one more reference) and, if it is new,
    /// everything below it.
    fn link<M: GuestMem + ?Sized>(
        &mut self,
        mem: &M,
        base: u64,
        level: i8,
        entries: u16,
        roots: u32,
        sink: &mut dyn FnMut(Action),
    ) {
        // Nothing to scan (a last-level table, or one already tracked):
        // skip setting up the walk and its 4 KiB buffer.
        let Some(first) = self.link_one(mem, base, level, entries, roots, sink) else { return };
        let mut walk = Walk::new(Some(first));
        let mut buf = TableBuf::new();
        loop {
            walk.skip_invalid(&mut buf, mem);
            let Some((top, at)) = walk.next_desc() else { break };
            let Some(d) = buf.get(mem, &top, at) else {
                self.stats.unreadable = self.stats.unreadable.saturating_add(1);
                walk.pop();
                continue;
            };
            let Some(child) = desc::next_table(d, top.level, self.ds) else {
                continue;
            };
            let f = self.link_one(mem, child, top.level + 1, ENTRIES, top.roots, sink);
            self.descend(&mut walk, f);
        }
    }

    /// One pointer fewer to the table at `base`; at zero it is untracked and
    /// its children released in turn.
    fn unlink<M: GuestMem + ?Sized>(&mut self, mem: &M, base: u64, sink: &mut dyn FnMut(Action)) {
        let Some(first) = self.release_one(base, sink) else { return };
        let mut walk = Walk::new(Some(first));
        let mut buf = TableBuf::new();
        loop {
            walk.skip_invalid(&mut buf, mem);
            let Some((top, at)) = walk.next_desc() else { break };
            let Some(d) = buf.get(mem, &top, at) else {
                self.stats.unreadable = self.stats.unreadable.saturating_add(1);
                self.incomplete = true;
                walk.pop();
                continue;
            };
            let Some(child) = desc::next_table(d, top.level, self.ds) else {
                continue;
            };
            let f = self.release_one(child, sink);
            self.descend(&mut walk, f);
        }
    }

    /// Continues `walk` into the table `f` (if any); if the walk is too deep,
    /// counts it and marks the tracker incomplete.
    fn descend(&mut self, walk: &mut Walk, f: Option<Frame>) {
        if let Some(f) = f {
            if !walk.push(f) {
                self.stats.depth_limited = self.stats.depth_limited.saturating_add(1);
                self.incomplete = true;
            }
        }
    }

    /// Drops one reference; returns a frame over the table's descriptors if
    /// it was untracked (its children must be released).
    fn release_one(&mut self, base: u64, sink: &mut dyn FnMut(Action)) -> Option<Frame> {
        let i = self.find(base).ok()?;
        let e = &mut self.tables[i];
        if e.stale {
            return None;
        }
        e.refs = e.refs.saturating_sub(1);
        if e.refs > 0 {
            return None;
        }
        let e = self.remove_at(i, sink)?;
        (e.level < LAST_LEVEL).then_some(Frame {
            base: e.base,
            level: e.level,
            entries: e.entries,
            next: 0,
            roots: e.roots,
        })
    }

    fn clear_roots(&mut self, bits: u32) {
        self.tables.for_each_mut(|e| e.roots &= !bits);
    }

    fn propagate_from<M: GuestMem + ?Sized>(&mut self, mem: &M, base: u64, bits: u32) {
        if let Ok(i) = self.find(base) {
            self.propagate(mem, i, bits);
        }
    }

    /// Adds root bits `add` to table `i` and its tracked subtree.
    fn propagate<M: GuestMem + ?Sized>(&mut self, mem: &M, i: usize, add: u32) {
        let Some(e) = self.tables.get_mut(i) else {
            return;
        };
        e.roots |= add;
        let e = *e;
        if e.level >= LAST_LEVEL {
            return;
        }
        let mut walk =
            Walk::new(Some(Frame { base: e.base, level: e.level, entries: e.entries, next: 0, roots: 0 }));
        while let Some((top, at)) = walk.next_desc() {
            let Some(d) = mem.read_u64(at) else {
                walk.pop();
                continue;
            };
            let Some(child) = desc::next_table(d, top.level, self.ds) else {
                continue;
            };
            let Ok(j) = self.find(child) else { continue };
            let c = &mut self.tables[j];
            if c.stale || c.roots & add == add {
                continue;
            }
            c.roots |= add;
            if c.level < LAST_LEVEL
                && !walk.push(Frame { base: c.base, level: c.level, entries: c.entries, next: 0, roots: 0 })
            {
                self.stats.depth_limited = self.stats.depth_limited.saturating_add(1);
            }
        }
    }
}

impl<const N: usize> Default for Tracker<N> {
    /// Eight TTBR0 roots.
    fn default() -> Self {
        Self::new(8)
    }
}

#[cfg(test)]
mod table_buf_tests {
    extern crate std;
    use super::*;
    use crate::s1::fixtures::FakeMem;

    /// The walks' skip lands on every valid descriptor, the first and the
    /// last included, and ends at `entries` past the last one.
    #[test]
    fn next_valid_stops_at_each_valid_descriptor() {
        let mut mem = FakeMem::low();
        let t = mem.alloc();
        for i in [0u64, 7, 511] {
            mem.write(t + i * DESC_BYTES, 0x4000_0003);
        }
        let mut buf = TableBuf::new();
        let mut f = Frame { base: t, level: 1, entries: ENTRIES, next: 0, roots: 0 };
        let mut seen = std::vec::Vec::new();
        loop {
            f.next = buf.next_valid(&mem, &f);
            if f.next >= f.entries {
                break;
            }
            seen.push(f.next);
            f.next += 1;
        }
        assert_eq!(seen, [0, 7, 511]);
        assert_eq!(f.next, ENTRIES);
        // A table with fewer entries (a root) ends at its own size.
        let f = Frame { base: t, level: 0, entries: 4, next: 1, roots: 0 };
        assert_eq!(buf.next_valid(&mem, &f), 4);
    }
}
