//! A software stage-1 walk of the guest's tables, and enumeration of every
//! table reachable from a root.
//!
//! The hypervisor needs the walk because PAR_EL1 (after `AT S1E1W`) reports
//! the output address and attributes but not the leaf's POIndex. The walk
//! follows Linux `arch/arm64/kvm/at.c` `setup_s1_walk`/`walk_s1`: VA range
//! check (after TBI), EPDn, start level, index per level, block levels,
//! output-size check against IPS. It does not check the access flag or
//! permissions (the caller gets the leaf descriptor and decides), and it
//! reads descriptors as the CPU does with SCTLR_EL1.EE = 0 (the
//! [`GuestMem`] implementation returns descriptor values).

use super::desc::{self, Kind, DESC_BYTES, LAST_LEVEL};
use super::regime::{Half, Layout, Regime, Ttbr, Unsupported};

/// Guest memory by IPA, as the table walker sees it.
pub trait GuestMem {
    /// The 64-bit value at `ipa` (8-byte aligned), or `None` if `ipa` is
    /// not readable guest RAM.
    fn read_u64(&self, ipa: u64) -> Option<u64>;

    /// Fills `out` with the descriptors from `ipa` on; false if any is not
    /// readable (then `out` is unspecified). Implementations can check the
    /// range once: the tracker reads whole tables with it.
    fn read_table(&self, ipa: u64, out: &mut [u64]) -> bool {
        for (i, o) in out.iter_mut().enumerate() {
            match self.read_u64(ipa.wrapping_add(i as u64 * DESC_BYTES)) {
                Some(v) => *o = v,
                None => return false,
            }
        }
        true
    }
}

impl<T: GuestMem + ?Sized> GuestMem for &T {
    #[inline]
    fn read_u64(&self, ipa: u64) -> Option<u64> {
        (**self).read_u64(ipa)
    }

    #[inline]
    fn read_table(&self, ipa: u64, out: &mut [u64]) -> bool {
        (**self).read_table(ipa, out)
    }
}

/// The block or page descriptor that maps a VA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Leaf {
    /// Lookup level of the leaf (0..=3).
    pub level: i8,
    pub desc: u64,
    /// The table holding the leaf descriptor.
    pub table_ipa: u64,
    /// Index of the leaf in that table.
    pub index: u16,
    /// The output address of the VA (block base plus the VA's offset).
    pub output_address: u64,
    /// Bytes mapped by the leaf (4 KiB, 2 MiB, 1 GiB, 512 GiB).
    pub size: u64,
}

impl Leaf {
    /// The IPA of the leaf descriptor itself.
    #[inline]
    pub const fn entry_ipa(&self) -> u64 {
        self.table_ipa.wrapping_add(self.index as u64 * DESC_BYTES)
    }

    /// POIndex of the leaf, bits [62:60].
    #[inline]
    pub const fn poindex(&self) -> u8 {
        desc::poindex(self.desc)
    }
}

/// Why a walk did not reach a leaf. Levels are the lookup level at which
/// the CPU would report the fault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WalkError {
    /// The half cannot be walked (granule, TxSZ, D128).
    Unsupported(Unsupported),
    /// EPDn = 1: level-0 translation fault without a walk.
    Disabled,
    /// The VA is outside the half's range (level-0 translation fault).
    OutOfRange,
    /// Invalid descriptor, or a block/page type not allowed at `level`.
    Translation { level: i8, table_ipa: u64, index: u16, desc: u64 },
    /// A table or output address beyond the IPS output size.
    AddressSize { level: i8 },
    /// A descriptor could not be read (external abort on the walk).
    Unreadable { level: i8, ipa: u64 },
}

/// Walks `va` from the root table at `root_ipa` (a table address; low
/// alignment bits are ignored as the CPU does).
pub fn walk<M: GuestMem + ?Sized>(
    mem: &M,
    va: u64,
    root_ipa: u64,
    layout: &Layout,
) -> Result<Leaf, WalkError> {
    if !layout.enabled {
        return Err(WalkError::Disabled);
    }
    if Half::of(va) != layout.half || !layout.contains(va) {
        return Err(WalkError::OutOfRange);
    }
    let va = layout.untag(va);
    let mut level = layout.start_level;
    let mut table = layout.root_table(root_ipa);
    if layout.oa_too_large(table) {
        return Err(WalkError::AddressSize { level });
    }
    // At most 5 lookups; the bound also guards against a bad layout.
    for _ in 0..5 {
        let index = layout.index(va, level);
        let ipa = table.wrapping_add(index as u64 * DESC_BYTES);
        let d = mem.read_u64(ipa).ok_or(WalkError::Unreadable { level, ipa })?;
        match desc::kind(d, level, layout.ds) {
            Kind::Table => {
                let next = desc::table_address(d, layout.ds);
                if layout.oa_too_large(next) {
                    return Err(WalkError::AddressSize { level });
                }
                table = next;
                level += 1;
            }
            Kind::Block | Kind::Page => {
                let base = desc::output_address(d, level, layout.ds);
                if layout.oa_too_large(base) {
                    return Err(WalkError::AddressSize { level });
                }
                let size = desc::level_size(level);
                return Ok(Leaf {
                    level,
                    desc: d,
                    table_ipa: table,
                    index,
                    output_address: base | (va & (size - 1)),
                    size,
                });
            }
            Kind::Invalid | Kind::Reserved => {
                return Err(WalkError::Translation { level, table_ipa: table, index, desc: d })
            }
        }
    }
    Err(WalkError::Translation { level, table_ipa: table, index: 0, desc: 0 })
}

/// Walks `va` in the guest's regime: picks the half by VA bit 55 and the
/// root from the TTBR value.
pub fn walk_regime<M: GuestMem + ?Sized>(
    mem: &M,
    va: u64,
    regime: &Regime,
    ttbr0_el1: u64,
    ttbr1_el1: u64,
) -> Result<Leaf, WalkError> {
    let half = Half::of(va);
    let layout = regime.layout(half).map_err(WalkError::Unsupported)?;
    let ttbr = match half {
        Half::Ttbr0 => Ttbr(ttbr0_el1),
        Half::Ttbr1 => Ttbr(ttbr1_el1),
    };
    walk(mem, va, ttbr.table(&layout), &layout)
}

/// A translation table reached from a root.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TablePage {
    /// Table address (a full 4 KiB page except for small roots).
    pub ipa: u64,
    pub level: i8,
    /// Number of descriptors (512, fewer for a small root).
    pub entries: u16,
    /// The table descriptor that led here: `(table, index)`; `None` for the
    /// root.
    pub parent: Option<(u64, u16)>,
}

/// What [`for_each_table`] does after visiting a table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Visit {
    /// Read its descriptors and visit the tables they point at.
    Descend,
    /// Already seen (or not wanted): do not look inside.
    Skip,
    /// End the enumeration.
    Stop,
}

/// Result of [`for_each_table`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TableWalk {
    /// Tables passed to the callback.
    pub visited: usize,
    /// Descriptors that could not be read (their table was abandoned).
    pub unreadable: usize,
    /// The `max` bound was reached; tables were left out.
    pub truncated: bool,
    /// The callback returned [`Visit::Stop`].
    pub stopped: bool,
}

/// Depth of the explicit stack: tables at levels -1..=2 have children.
const STACK: usize = 5;

#[derive(Clone, Copy)]
struct Frame {
    ipa: u64,
    level: i8,
    entries: u16,
    next: u16,
}

/// Calls `f` for every table reachable from the root table at `root_ipa`,
/// depth first, the root first, at most `max` times. A table shared by
/// several parents is offered once per parent: return [`Visit::Skip`] for
/// tables already seen (the visited check) to enumerate each once. Depth is
/// bounded by the level structure (a level-L table's children are read as
/// level L+1), so a loop in guest memory cannot make this run forever.
pub fn for_each_table<M, F>(mem: &M, root_ipa: u64, layout: &Layout, max: usize, mut f: F) -> TableWalk
where
    M: GuestMem + ?Sized,
    F: FnMut(TablePage) -> Visit,
{
    let mut out = TableWalk::default();
    let mut stack = [Frame { ipa: 0, level: 0, entries: 0, next: 0 }; STACK];

    // Offers one table to `f`; returns whether to descend into it.
    let mut offer = |page: TablePage, out: &mut TableWalk| -> Option<bool> {
        if out.visited >= max {
            out.truncated = true;
            return None;
        }
        out.visited += 1;
        match f(page) {
            Visit::Descend => Some(page.level < LAST_LEVEL),
            Visit::Skip => Some(false),
            Visit::Stop => {
                out.stopped = true;
                None
            }
        }
    };

    let root = TablePage {
        ipa: layout.root_table(root_ipa),
        level: layout.start_level,
        entries: layout.root_entries(),
        parent: None,
    };
    if offer(root, &mut out) != Some(true) {
        return out;
    }
    stack[0] = Frame { ipa: root.ipa, level: root.level, entries: root.entries, next: 0 };
    let mut depth = 1usize;

    while depth > 0 {
        let top = &mut stack[depth - 1];
        if top.next >= top.entries {
            depth -= 1;
            continue;
        }
        let index = top.next;
        top.next += 1;
        let (ipa, level) = (top.ipa, top.level);
        let Some(d) = mem.read_u64(ipa.wrapping_add(index as u64 * DESC_BYTES)) else {
            out.unreadable += 1;
            depth -= 1;
            continue;
        };
        let Some(child) = desc::next_table(d, level, layout.ds) else {
            continue;
        };
        let page =
            TablePage { ipa: child, level: level + 1, entries: desc::ENTRIES, parent: Some((ipa, index)) };
        match offer(page, &mut out) {
            None => return out,
            Some(false) => {}
            Some(true) => {
                if depth < STACK {
                    stack[depth] = Frame { ipa: child, level: level + 1, entries: desc::ENTRIES, next: 0 };
                    depth += 1;
                }
            }
        }
    }
    out
}
