//! Where porwatch lives in RAM and how much of it it takes (pure,
//! host-tested; `hyp/src/boot.rs` and `boot.S` carry it out).
//!
//! A loader puts porwatch low in RAM: QEMU's `-kernel` at RAM base + 2 MiB,
//! as for a Linux Image; `porwatch run --secure` and `scripts/run-fvp` at
//! the same kind of place. Left there, porwatch would cut guest RAM in two,
//! and bare-metal guests that expect one RAM range starting at the RAM base
//! (a widely used EL1 test suite asserts it) stop. So porwatch first moves
//! to the **top of RAM**: boot.S asks [`plan`] where, copies the image
//! there and applies its relocations again. The guest gets everything from
//! the RAM base up to porwatch as one range, and porwatch's memory is simply
//! not RAM for it (not in `/memory`, not mapped at stage 2).
//!
//! [`plan`] decides, from the device tree and where the loader put the image:
//!
//! * `hyp`: porwatch's memory, 2 MiB aligned: its image, .bss and stack
//!   (`static_size`), then the pool for the guest's stage-2 tables, sized
//!   from RAM ([`stage2_tables`]). It goes at the top of the RAM range that
//!   ends highest; if something the loader or firmware placed is there (the
//!   loader's device tree, the initrd, `/memreserve/`, `/reserved-memory`),
//!   just below it: those are never overwritten.
//! * `dtb_window`: 2 MiB of guest RAM for the guest's device tree: where the
//!   loader put porwatch (the Image header's `image_size` made the loader
//!   keep that range free, and porwatch has left it), or just below `hyp`
//!   when that is the same place.
//!
//! Guest RAM larger than [`MAX_GUEST_RAM`] is refused ([`PlanError`]).

use core::fmt;

/// porwatch's placement granule: a stage-1 block, as an arm64 Image wants.
pub const HYP_ALIGN: u64 = 2 << 20;
/// The guest device tree window (QEMU limits its own DTBs to 2 MiB too).
pub const DTB_WINDOW: u64 = 2 << 20;
/// The most guest RAM porwatch accepts: what the page-table watch can
/// follow a Linux guest on. The stage-2 pool grows with RAM (2 MiB of
/// tables per GiB) and would allow more, but the watch tracks at most 4096
/// table pages, and Debian's kernels map their linear map with pages
/// (rodata=full): one table per 2 MiB of RAM. Measured (bookworm, the
/// initramfs workload): 595 tables at most with 1 GiB, 2132 with 4 GiB,
/// the set full and 583 coverage gaps with 8 GiB.
pub const MAX_GUEST_RAM: u64 = 4 << 30;

/// Bytes per translation table.
pub const TABLE_BYTES: u64 = 4096;
/// A concatenated stage-2 root: at most 16 tables.
const ROOT_TABLES: u64 = 16;
/// Reach of one table at levels 3, 2, 1 (4 KiB granule): what one entry of
/// the level above maps.
const L3_REACH: u64 = 2 << 20;
const L2_REACH: u64 = 1 << 30;
const L1_REACH: u64 = 512 << 30;
/// Each CPU's private stage-2 root (pgtable::PrivateRoot, the tap's
/// execute-never vector page): a root and one table per level below it.
const PRIVATE_ROOT_TABLES: u64 = (crate::cpus::MAX_CPUS as u64) * (ROOT_TABLES + 3);
/// Tables for pages hidden inside a device region (the trace UART): each
/// splits its region, needing at most a level-3 and a level-2 table.
const HIDDEN_PAGE_SLACK: u64 = 8;
/// Device regions [`stage2_tables`] tracks without losing precision.
const MAX_DEVICE_TABLES: usize = 512;
/// RAM ranges [`plan`] considers (fdt::platform::MAX_MEMORY).
const MAX_BANKS: usize = 16;

/// `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
}

impl Span {
    pub const fn new(start: u64, end: u64) -> Self {
        Span { start, end }
    }

    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub const fn overlaps(&self, o: &Span) -> bool {
        self.start < o.end && o.start < self.end
    }

    pub const fn contains_span(&self, o: &Span) -> bool {
        o.start >= self.start && o.end <= self.end
    }
}

/// Something already in RAM that porwatch must not overwrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occupant {
    /// The device tree the loader passed (read while the guest's is written).
    LoaderDtb,
    /// `/chosen/linux,initrd-start..end`.
    Initrd,
    /// An entry of the device tree's memory reservation block.
    MemReserve,
    /// A `/reserved-memory` child with a `reg`.
    ReservedMemory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occupied {
    pub span: Span,
    pub what: Occupant,
}

/// What [`plan`] needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// RAM ranges from the device tree.
    pub ram: &'a [Span],
    /// Where the loader put porwatch: its load address and the Image
    /// header's `image_size` (kept free by the loader).
    pub loaded: Span,
    /// porwatch's image, .bss and stack: a multiple of [`HYP_ALIGN`].
    pub static_size: u64,
    /// Device MMIO regions passed through at stage 2.
    pub devices: &'a [Span],
    /// What must stay where it is.
    pub keep: &'a [Occupied],
}

/// Where porwatch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// porwatch's memory (image, .bss, stack, then `pool`).
    pub hyp: Span,
    /// The stage-2 table pool, inside `hyp`.
    pub pool: Span,
    /// Guest RAM for the guest's device tree.
    pub dtb_window: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The device tree describes no RAM.
    NoRam,
    /// More RAM than [`MAX_GUEST_RAM`] (`ram` bytes in all).
    TooMuchRam { ram: u64 },
    /// No 2 MiB-aligned `need` bytes of RAM clear of what must be kept.
    NoRoom { need: u64 },
    /// No 2 MiB of RAM left for the guest's device tree.
    NoDtbWindow,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::NoRam => f.write_str("the device tree describes no RAM"),
            PlanError::TooMuchRam { ram } => write!(
                f,
                "{} MiB of RAM is more than porwatch supports ({} MiB): give the machine less memory",
                ram >> 20,
                MAX_GUEST_RAM >> 20
            ),
            PlanError::NoRoom { need } => write!(
                f,
                "no room for porwatch ({} MiB) in RAM clear of the device tree, initrd and reserved memory",
                need >> 20
            ),
            PlanError::NoDtbWindow => f.write_str("no 2 MiB of RAM left for the guest's device tree"),
        }
    }
}

const fn align_down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}

const fn align_up(v: u64, a: u64) -> Option<u64> {
    match v.checked_add(a - 1) {
        Some(x) => Some(align_down(x, a)),
        None => None,
    }
}

/// How many `reach`-sized, `reach`-aligned slots `[s, e)` touches.
fn slots(s: &Span, reach: u64) -> u64 {
    if s.is_empty() {
        return 0;
    }
    let hi = align_up(s.end, reach).unwrap_or(u64::MAX);
    (hi - align_down(s.start, reach)).div_ceil(reach)
}

/// An upper bound on the translation tables stage 2 needs for `ram` mapped
/// in 4 KiB pages and `devices` mapped with blocks where aligned (how
/// `hyp/src/arch/stage2.rs` maps them), any stage-2 geometry (start level
/// 0 or 1, concatenated root). RAM: one level-3 table per 2 MiB, one
/// level-2 per GiB, one level-1 per 512 GiB touched. A device region only
/// needs tables where its ends are not block-aligned; those are counted
/// once however many regions share them.
pub fn stage2_tables(ram: &[Span], devices: &[Span]) -> u64 {
    let mut n = ROOT_TABLES + HIDDEN_PAGE_SLACK + PRIVATE_ROOT_TABLES;
    for r in ram {
        n += slots(r, L3_REACH) + slots(r, L2_REACH) + slots(r, L1_REACH);
    }
    // (level, slot) of every table a device region needs, deduplicated.
    let mut seen: heapless::Vec<(u8, u64), MAX_DEVICE_TABLES> = heapless::Vec::new();
    let mut extra = 0u64;
    for d in devices.iter().filter(|d| !d.is_empty()) {
        // A level-1 table under a level-0 root for each 512 GiB touched.
        let mut keys: heapless::Vec<(u8, u64), 8> = heapless::Vec::new();
        // Those between its first and last are its own.
        let first = d.start / L1_REACH;
        let last = (d.end - 1) / L1_REACH;
        let _ = keys.push((1, first));
        let _ = keys.push((1, last));
        extra += (last - first).saturating_sub(1);
        // Level 2 and 3: where an end is not aligned to the level above's
        // block, the slot holding it needs a table.
        for (level, reach) in [(2u8, L2_REACH), (3, L3_REACH)] {
            for edge in [d.start, d.end - 1] {
                let block = Span::new(align_down(edge, reach), align_down(edge, reach).saturating_add(reach));
                if !d.contains_span(&block) {
                    let _ = keys.push((level, edge / reach));
                }
            }
        }
        for k in keys {
            if !seen.contains(&k) && seen.push(k).is_err() {
                extra += 1;
            }
        }
    }
    n + seen.len() as u64 + extra
}

/// Decides where porwatch runs (see the module doc).
pub fn plan(req: &Request<'_>) -> Result<Plan, PlanError> {
    let mut total = 0u64;
    for r in req.ram {
        total = total.saturating_add(r.len());
    }
    if total == 0 {
        return Err(PlanError::NoRam);
    }
    if total > MAX_GUEST_RAM {
        return Err(PlanError::TooMuchRam { ram: total });
    }
    let pool_bytes = stage2_tables(req.ram, req.devices) * TABLE_BYTES;
    let pool_bytes = align_up(pool_bytes, HYP_ALIGN).ok_or(PlanError::NoRoom { need: u64::MAX })?;
    let need = req.static_size.checked_add(pool_bytes).ok_or(PlanError::NoRoom { need: u64::MAX })?;

    let mut banks: heapless::Vec<Span, MAX_BANKS> = heapless::Vec::new();
    for r in req.ram.iter().filter(|r| !r.is_empty()) {
        if banks.push(*r).is_err() {
            break;
        }
    }
    banks.sort_unstable_by_key(|b| core::cmp::Reverse(b.end));
    let hyp = banks.iter().find_map(|bank| place_in(bank, need, req)).ok_or(PlanError::NoRoom { need })?;
    let pool = Span::new(hyp.start + req.static_size, hyp.end);
    let dtb_window = window(req, &hyp).ok_or(PlanError::NoDtbWindow)?;
    Ok(Plan { hyp, pool, dtb_window })
}

/// The highest 2 MiB-aligned `need` bytes of `bank` that overlap nothing
/// kept (nor the loaded image, unless porwatch is already exactly there).
fn place_in(bank: &Span, need: u64, req: &Request<'_>) -> Option<Span> {
    let mut top = align_down(bank.end, HYP_ALIGN);
    loop {
        let start = top.checked_sub(need)?;
        if start < bank.start {
            return None;
        }
        let cand = Span::new(start, top);
        let loaded = (start != req.loaded.start).then_some(req.loaded);
        let blocker = req.keep.iter().map(|k| k.span).chain(loaded).find(|b| b.overlaps(&cand));
        match blocker {
            None => return Some(cand),
            // Strictly lower each time: the blocker starts below `top`.
            Some(b) => top = align_down(b.start, HYP_ALIGN),
        }
    }
}

/// The guest DTB window: the loaded image's place, else just below `hyp`.
fn window(req: &Request<'_>, hyp: &Span) -> Option<Span> {
    let at_load =
        (req.loaded.len() >= DTB_WINDOW).then(|| Span::new(req.loaded.start, req.loaded.start + DTB_WINDOW));
    let below = hyp.start.checked_sub(DTB_WINDOW).map(|s| Span::new(s, hyp.start));
    [at_load, below].into_iter().flatten().find(|w| {
        req.ram.iter().any(|r| r.contains_span(w))
            && !w.overlaps(hyp)
            && !req.keep.iter().any(|k| k.span.overlaps(w))
    })
}

#[cfg(test)]
mod tests;
