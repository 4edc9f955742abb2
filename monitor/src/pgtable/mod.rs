//! A 4 KiB-granule VMSAv8-64 translation-table builder, generic over the
//! memory that holds the tables.
//!
//! Used for porwatch's own EL2 stage-1 identity map ([`Regime::Stage1El2`])
//! and the guest's stage-2 map ([`Regime::Stage2`]): RAM at page
//! granularity, MMIO with the largest aligned blocks, and a hot-path
//! [`PageTable::update_page`] that flips one page's permissions and says
//! which TLB invalidation the caller must issue.
//!
//! Limits: 4 KiB granule, 48-bit input and output addresses (no FEAT_LPA2,
//! DS = 0), blocks at levels 1 (1 GiB) and 2 (2 MiB) only, no contiguous
//! hint, no hierarchical table attributes. Table pages are never freed.
//!
//! Every entry the builder changes is either invalid before (map), invalid
//! after (unmap), or changes only bits that need no break-before-make
//! (update_page), so no BBM sequence is ever required, except where the
//! caller asks for one: break_page and make_page are its two halves, with
//! the caller's TLB invalidation between them. Stores to live
//! entries are single 64-bit volatile writes. The caller issues the DSB /
//! TLBI / ISB.

pub mod desc;
mod private;
pub mod regs;
#[cfg(test)]
mod tests;

pub use desc::{Attrs, S1Ap, S1Attrs, S2Ap, S2Attrs, S2Xn, Shareability};
pub use private::PrivateRoot;

use desc::{is_leaf, is_table, is_valid, leaf_desc, output_address, table_desc, NO_BBM_CHANGE_MASK};

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
const PAGE_MASK: u64 = PAGE_SIZE - 1;
/// Descriptors per 4 KiB table.
pub const ENTRIES_PER_TABLE: usize = 512;
/// Address bits resolved per level (4 KiB / 8-byte descriptors).
pub const BITS_PER_LEVEL: u32 = 9;
/// Maximum input and output address size without FEAT_LPA2.
pub const MAX_ADDR_BITS: u32 = 48;
/// Maximum number of concatenated stage-2 root tables.
pub const MAX_CONCAT: u8 = 16;
/// The last (page) level.
pub const LAST_LEVEL: u8 = 3;

/// A 4 KiB translation table.
pub type Table = [u64; ENTRIES_PER_TABLE];

/// Input-address shift of a level's entries: 39, 30, 21, 12 for levels 0..=3.
#[inline]
pub const fn level_shift(level: u8) -> u32 {
    PAGE_SHIFT + BITS_PER_LEVEL * (LAST_LEVEL.saturating_sub(level) as u32)
}

/// Bytes mapped by one entry at `level`: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
#[inline]
pub const fn level_size(level: u8) -> u64 {
    1 << level_shift(level)
}

/// Memory that holds translation tables.
///
/// Implementations hand out zeroed, 4 KiB-aligned tables identified by
/// physical address, and give access to a table by that address. The
/// hypervisor implements it over a static pool (identity mapped at EL2);
/// host tests over a `Vec` of boxed tables.
pub trait TableAlloc {
    /// Allocates `count` physically contiguous zeroed tables, aligned to
    /// `count * 4 KiB`, and returns the PA of the first. `count` is a power
    /// of two in 1..=16 (more than one only for a concatenated stage-2
    /// root). `None` when out of memory.
    fn alloc_tables(&mut self, count: usize) -> Option<u64>;
    /// The table at `pa` (a PA returned by `alloc_tables`, possibly plus a
    /// multiple of 4 KiB within a multi-table allocation).
    fn table(&self, pa: u64) -> Option<&Table>;
    /// Mutable access to the table at `pa`.
    fn table_mut(&mut self, pa: u64) -> Option<&mut Table>;
}

impl<T: TableAlloc + ?Sized> TableAlloc for &mut T {
    #[inline]
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        (**self).alloc_tables(count)
    }
    #[inline]
    fn table(&self, pa: u64) -> Option<&Table> {
        (**self).table(pa)
    }
    #[inline]
    fn table_mut(&mut self, pa: u64) -> Option<&mut Table> {
        (**self).table_mut(pa)
    }
}

/// Which translation regime a table set serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Regime {
    /// EL2 stage 1 (HCR_EL2.E2H = 0, TTBR0_EL2). The start level follows
    /// from T0SZ (16..=39): level 0 above 39 bits, 1 above 30, else 2.
    Stage1El2 { t0sz: u8 },
    /// Stage 2 (VTTBR_EL2). `start_level` as encoded by VTCR_EL2.SL0 and
    /// `concat` root tables (1, or 2..=16 concatenated), as produced by
    /// [`regs::vtcr_el2`] / [`regs::stage2_regime`].
    Stage2 { t0sz: u8, start_level: u8, concat: u8 },
}

impl Regime {
    /// Input address bits (64 − T0SZ), saturating for bogus T0SZ values.
    #[inline]
    pub const fn ia_bits(&self) -> u32 {
        let t0sz = match *self {
            Regime::Stage1El2 { t0sz } => t0sz,
            Regime::Stage2 { t0sz, .. } => t0sz,
        };
        64u32.saturating_sub(t0sz as u32)
    }

    /// `(start_level, root table count)` if the regime is valid for a
    /// 4 KiB granule with 48-bit addresses.
    #[inline]
    pub const fn geometry(&self) -> Option<(u8, u8)> {
        let ia = self.ia_bits();
        match *self {
            Regime::Stage1El2 { .. } => {
                if ia < 25 || ia > MAX_ADDR_BITS {
                    None
                } else if ia > 39 {
                    Some((0, 1))
                } else if ia > 30 {
                    Some((1, 1))
                } else {
                    Some((2, 1))
                }
            }
            Regime::Stage2 { start_level, concat, .. } => match regs::stage2_concat(ia, start_level) {
                Some(c) if c == concat => Some((start_level, concat)),
                _ => None,
            },
        }
    }

    #[inline]
    const fn is_stage2(&self) -> bool {
        matches!(self, Regime::Stage2 { .. })
    }
}

/// How [`PageTable::map`] may lay out a range.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Granularity {
    /// Use 1 GiB / 2 MiB blocks wherever VA, PA and remaining size allow.
    AllowBlocks,
    /// 4 KiB pages only (so single pages can later be changed in place).
    PagesOnly,
}

/// Errors from building or changing tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// Address or size not 4 KiB aligned.
    Misaligned,
    /// Size is zero.
    EmptyRange,
    /// Input range beyond the regime's input size, or output beyond 48 bits.
    OutOfRange,
    /// Part of the range is already mapped.
    Overlap,
    /// The allocator has no table left (the range was rolled back).
    OutOfTables,
    /// The allocator returned a misaligned table, or could not resolve a
    /// table address found in a descriptor.
    BadTable,
    /// The regime's T0SZ / start level / concatenation are inconsistent.
    InvalidRegime,
    /// Stage-1 attributes for a stage-2 table or vice versa.
    WrongRegime,
    /// `unmap` range cuts through a block.
    PartialBlock,
    /// `update_page`: nothing mapped there.
    NotMapped,
    /// `update_page`: mapped by a block at this level, not a page.
    NotAPage { level: u8 },
    /// `update_page`: the new descriptor changes bits that need
    /// break-before-make (address, type, memory type, shareability).
    NeedsBreakBeforeMake,
}

/// A resolved leaf.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Leaf {
    /// Output address of the looked-up input address (offset included).
    pub pa: u64,
    /// Level of the leaf: 1 or 2 (block) or 3 (page).
    pub level: u8,
    /// The leaf descriptor.
    pub desc: u64,
}

/// TLB maintenance the caller must perform after a descriptor change.
///
/// The descriptor store must be made visible first (`DSB ISHST`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tlbi {
    /// The descriptor did not change.
    None,
    /// Stage 2: `TLBI IPAS2E1IS, <ipa >> 12>`; `DSB ISH`; `TLBI VMALLE1IS`;
    /// `DSB ISH`; `ISB` (KVM `__kvm_tlb_flush_vmid_ipa`: combined
    /// stage-1+2 entries are only removed by the stage-1 invalidation),
    /// with VTTBR_EL2 holding the guest's VMID.
    Stage2Ipa { ipa: u64 },
    /// EL2 stage 1: `TLBI VAE2IS, <va >> 12>`; `DSB ISH`; `ISB`.
    El2Va { va: u64 },
}

impl Tlbi {
    /// The Xt operand of the by-address TLBI (address bits [55:12] in
    /// [43:0]); 0 for [`Tlbi::None`].
    #[inline]
    pub const fn operand(&self) -> u64 {
        match *self {
            Tlbi::None => 0,
            Tlbi::Stage2Ipa { ipa } => ipa >> PAGE_SHIFT,
            Tlbi::El2Va { va } => va >> PAGE_SHIFT,
        }
    }
}

/// Result of [`PageTable::update_page`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PageUpdate {
    pub old: u64,
    pub new: u64,
    pub tlbi: Tlbi,
}

/// Where a walk stopped: the entry at `index` of the table at `table`.
#[derive(Clone, Copy)]
struct Slot {
    level: u8,
    table: u64,
    index: usize,
    desc: u64,
}

/// A set of translation tables for one regime.
pub struct PageTable<A: TableAlloc> {
    alloc: A,
    regime: Regime,
    root: u64,
    start_level: u8,
    ia_bits: u32,
}

impl<A: TableAlloc> PageTable<A> {
    /// Creates an empty table set, allocating its (possibly concatenated)
    /// root.
    pub fn new(mut alloc: A, regime: Regime) -> Result<Self, MapError> {
        let (start_level, concat) = regime.geometry().ok_or(MapError::InvalidRegime)?;
        let root = alloc.alloc_tables(concat as usize).ok_or(MapError::OutOfTables)?;
        let align = PAGE_SIZE * concat as u64;
        if root & (align - 1) != 0 || root & !desc::DESC_OA_MASK != 0 {
            return Err(MapError::BadTable);
        }
        Ok(Self { alloc, regime, root, start_level, ia_bits: regime.ia_bits() })
    }

    /// PA of the root table: TTBR0_EL2.BADDR / VTTBR_EL2.BADDR.
    #[inline]
    pub fn root(&self) -> u64 {
        self.root
    }

    #[inline]
    pub fn regime(&self) -> Regime {
        self.regime
    }

    #[inline]
    pub fn start_level(&self) -> u8 {
        self.start_level
    }

    #[inline]
    pub fn alloc(&self) -> &A {
        &self.alloc
    }

    #[inline]
    pub fn alloc_mut(&mut self) -> &mut A {
        &mut self.alloc
    }

    pub fn into_alloc(self) -> A {
        self.alloc
    }

    /// The table PA and index holding `va`'s entry at `level`, given the
    /// table (or root block) `table` at that level.
    #[inline]
    fn locate(&self, table: u64, level: u8, va: u64) -> (u64, usize) {
        let idx = (va >> level_shift(level)) as usize;
        if level == self.start_level {
            // Root: possibly several concatenated tables; `va` is in range,
            // so `idx` < 512 * concat.
            let page = (idx / ENTRIES_PER_TABLE) as u64;
            (self.root + page * PAGE_SIZE, idx % ENTRIES_PER_TABLE)
        } else {
            (table, idx % ENTRIES_PER_TABLE)
        }
    }

    #[inline]
    fn read(&self, table: u64, index: usize) -> Result<u64, MapError> {
        let t = self.alloc.table(table).ok_or(MapError::BadTable)?;
        Ok(t[index % ENTRIES_PER_TABLE])
    }

    #[inline]
    fn write(&mut self, table: u64, index: usize, value: u64) -> Result<(), MapError> {
        let t = self.alloc.table_mut(table).ok_or(MapError::BadTable)?;
        let entry = &mut t[index % ENTRIES_PER_TABLE];
        // SAFETY: `entry` is a valid, aligned, exclusive reference. A
        // volatile store keeps it one 64-bit write that the compiler cannot
        // split, elide or merge while the MMU may be walking this table.
        unsafe { core::ptr::write_volatile(entry, value) };
        Ok(())
    }

    /// Walks to the leaf or invalid entry covering `va` (`va` in range).
    #[inline]
    fn find(&self, va: u64) -> Result<Slot, MapError> {
        let mut level = self.start_level;
        let mut table = self.root;
        loop {
            let (t, index) = self.locate(table, level, va);
            let desc = self.read(t, index)?;
            if is_table(desc, level) {
                table = output_address(desc);
                level += 1;
                continue;
            }
            return Ok(Slot { level, table: t, index, desc });
        }
    }

    #[inline]
    fn check_range(&self, va: u64, size: u64) -> Result<u64, MapError> {
        if size == 0 {
            return Err(MapError::EmptyRange);
        }
        if va & PAGE_MASK != 0 || size & PAGE_MASK != 0 {
            return Err(MapError::Misaligned);
        }
        let end = va.checked_add(size).ok_or(MapError::OutOfRange)?;
        if end > 1u64 << self.ia_bits {
            return Err(MapError::OutOfRange);
        }
        Ok(end)
    }

    /// Fails with `Overlap` if anything in `[va, end)` is mapped.
    fn check_free(&self, va: u64, end: u64) -> Result<(), MapError> {
        let mut cur = va;
        while cur < end {
            let slot = self.find(cur)?;
            if is_valid(slot.desc) {
                return Err(MapError::Overlap);
            }
            let size = level_size(slot.level);
            cur = (cur & !(size - 1)) + size;
        }
        Ok(())
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)` with `attrs`.
    ///
    /// All of VA, PA and size must be 4 KiB aligned; the range must be
    /// unmapped (else `Overlap`, nothing changed). On `OutOfTables` the part
    /// already mapped is unmapped again (allocated tables stay, empty).
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        attrs: impl Into<Attrs>,
        granularity: Granularity,
    ) -> Result<(), MapError> {
        let attrs = attrs.into();
        match attrs {
            Attrs::Stage1(_) if self.regime.is_stage2() => return Err(MapError::WrongRegime),
            Attrs::Stage2(_) if !self.regime.is_stage2() => return Err(MapError::WrongRegime),
            _ => {}
        }
        let end = self.check_range(va, size)?;
        if pa & PAGE_MASK != 0 {
            return Err(MapError::Misaligned);
        }
        match pa.checked_add(size) {
            Some(pa_end) if pa_end <= 1u64 << MAX_ADDR_BITS => {}
            _ => return Err(MapError::OutOfRange),
        }
        self.check_free(va, end)?;
        let bits = attrs.bits();
        let mut done = 0;
        while done < size {
            match self.map_one(va + done, pa + done, size - done, bits, granularity) {
                Ok(step) => done += step,
                Err(e) => {
                    if done > 0 {
                        let _ = self.unmap(va, done);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Installs one leaf at `va` (the largest allowed), allocating tables on
    /// the way; returns the bytes it maps.
    fn map_one(
        &mut self,
        va: u64,
        pa: u64,
        remaining: u64,
        bits: u64,
        gran: Granularity,
    ) -> Result<u64, MapError> {
        let mut level = self.start_level;
        let mut table = self.root;
        loop {
            let (t, index) = self.locate(table, level, va);
            let desc = self.read(t, index)?;
            if is_table(desc, level) {
                table = output_address(desc);
                level += 1;
                continue;
            }
            if is_valid(desc) {
                return Err(MapError::Overlap);
            }
            let size = level_size(level);
            let block_ok = gran == Granularity::AllowBlocks
                && (level == 1 || level == 2)
                && (va | pa) & (size - 1) == 0
                && remaining >= size;
            if level == LAST_LEVEL || block_ok {
                self.write(t, index, leaf_desc(pa, bits, level))?;
                return Ok(size);
            }
            let next = self.alloc.alloc_tables(1).ok_or(MapError::OutOfTables)?;
            if next & PAGE_MASK != 0 || next & !desc::DESC_OA_MASK != 0 {
                return Err(MapError::BadTable);
            }
            self.write(t, index, table_desc(next))?;
            table = next;
            level += 1;
        }
    }

    /// Looks up the leaf covering `va`: its output address, level and
    /// descriptor. `None` if unmapped (or out of range).
    #[inline]
    pub fn lookup(&self, va: u64) -> Option<Leaf> {
        if va >> self.ia_bits != 0 {
            return None;
        }
        let slot = self.find(va).ok()?;
        if !is_leaf(slot.desc, slot.level) {
            return None;
        }
        let offset = va & (level_size(slot.level) - 1);
        Some(Leaf { pa: output_address(slot.desc) | offset, level: slot.level, desc: slot.desc })
    }

    /// Hot path: rewrites the page descriptor mapping `va` with `f(old)`.
    ///
    /// Only permission-like bits may change (AP/S2AP, XN, AF, DBM, software
    /// bits — [`desc::NO_BBM_CHANGE_MASK`]); anything else is refused with
    /// `NeedsBreakBeforeMake` and nothing is written. Returns the old and
    /// new descriptors and the TLB invalidation to perform (none if
    /// unchanged). Does not execute any barrier or TLBI.
    #[inline]
    pub fn update_page(&mut self, va: u64, f: impl FnOnce(u64) -> u64) -> Result<PageUpdate, MapError> {
        if va >> self.ia_bits != 0 {
            return Err(MapError::OutOfRange);
        }
        let slot = self.find(va)?;
        if !is_valid(slot.desc) {
            return Err(MapError::NotMapped);
        }
        if slot.level != LAST_LEVEL || !is_leaf(slot.desc, slot.level) {
            return Err(MapError::NotAPage { level: slot.level });
        }
        let old = slot.desc;
        let new = f(old);
        if (old ^ new) & !NO_BBM_CHANGE_MASK != 0 {
            return Err(MapError::NeedsBreakBeforeMake);
        }
        if new == old {
            return Ok(PageUpdate { old, new, tlbi: Tlbi::None });
        }
        self.write(slot.table, slot.index, new)?;
        let page = va & !PAGE_MASK;
        let tlbi =
            if self.regime.is_stage2() { Tlbi::Stage2Ipa { ipa: page } } else { Tlbi::El2Va { va: page } };
        Ok(PageUpdate { old, new, tlbi })
    }

    /// Break-before-make, step 1 of 2 (changing a page's output address,
    /// e.g. the tap's trampoline: docs/tap.md): makes the page entry for
    /// `va` invalid and returns the old descriptor and the TLB invalidation
    /// the caller must complete before [`PageTable::make_page`].
    pub fn break_page(&mut self, va: u64) -> Result<(u64, Tlbi), MapError> {
        let slot = self.page_slot(va)?;
        if !is_valid(slot.desc) {
            return Err(MapError::NotMapped);
        }
        self.write(slot.table, slot.index, 0)?;
        let page = va & !PAGE_MASK;
        let tlbi =
            if self.regime.is_stage2() { Tlbi::Stage2Ipa { ipa: page } } else { Tlbi::El2Va { va: page } };
        Ok((slot.desc, tlbi))
    }

    /// Break-before-make, step 2 of 2: installs the page descriptor `desc`
    /// (from [`PageTable::break_page`], or [`desc::leaf_desc`] at level 3)
    /// where `va`'s entry was made invalid. The entry must be invalid.
    pub fn make_page(&mut self, va: u64, desc: u64) -> Result<(), MapError> {
        let slot = self.page_slot(va)?;
        if is_valid(slot.desc) {
            return Err(MapError::Overlap);
        }
        if !is_leaf(desc, LAST_LEVEL) {
            return Err(MapError::BadTable);
        }
        self.write(slot.table, slot.index, desc)
    }

    /// The level-3 entry for `va` (valid or not); a block or a missing
    /// table is refused.
    fn page_slot(&self, va: u64) -> Result<Slot, MapError> {
        if va >> self.ia_bits != 0 {
            return Err(MapError::OutOfRange);
        }
        let slot = self.find(va)?;
        if slot.level != LAST_LEVEL {
            return Err(if is_valid(slot.desc) {
                MapError::NotAPage { level: slot.level }
            } else {
                MapError::NotMapped
            });
        }
        Ok(slot)
    }

    /// Removes every leaf in `[va, va + size)`; holes are fine, but a block
    /// that is only partly inside the range is refused (`PartialBlock`,
    /// nothing changed). Returns the number of bytes unmapped. Tables are
    /// kept. The caller invalidates (e.g. `TLBI VMALLS12E1IS` for stage 2,
    /// `TLBI ALLE2IS` for EL2, or per-page TLBIs).
    pub fn unmap(&mut self, va: u64, size: u64) -> Result<u64, MapError> {
        let end = self.check_range(va, size)?;
        // Pass 1: validate.
        let mut cur = va;
        while cur < end {
            let slot = self.find(cur)?;
            let lsize = level_size(slot.level);
            let start = cur & !(lsize - 1);
            if is_valid(slot.desc) && (start < va || start + lsize > end) {
                return Err(MapError::PartialBlock);
            }
            cur = start + lsize;
        }
        // Pass 2: clear.
        let mut cur = va;
        let mut unmapped = 0;
        while cur < end {
            let slot = self.find(cur)?;
            let lsize = level_size(slot.level);
            if is_valid(slot.desc) {
                self.write(slot.table, slot.index, 0)?;
                unmapped += lsize;
            }
            cur = (cur & !(lsize - 1)) + lsize;
        }
        Ok(unmapped)
    }
}
