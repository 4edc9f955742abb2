//! Private roots: one page translated differently for one user.
//!
//! porwatch's exception-entry tap makes the guest's vector page
//! execute-never at stage 2 and, while one CPU steps through it, executable
//! again. With one stage 2 for every CPU, that would open the page for all
//! of them: their exception entries would go unseen. So each CPU gets a
//! [`PrivateRoot`]: a second root for the same tables in which the path to
//! its vector page (the root, then one table per level down to the page's
//! leaf table) is a copy. Every other translation is the shared one; the
//! page's descriptor in the copy may differ in the bits the owner controls
//! (XN), and everything else in the copied leaf table follows the shared
//! table ([`PageTable::update_page_mirrored`]).
//!
//! The intermediate tables of a stage 2 never change after it is built
//! (runtime changes are [`PageTable::update_page`]'s, leaf permissions
//! only), so a copied path stays right as long as its leaf table is kept in
//! step with the shared one.

use super::desc::{is_table, output_address};
use super::{MapError, PageTable, PageUpdate, Table, TableAlloc, Tlbi, ENTRIES_PER_TABLE, LAST_LEVEL};
use super::{NO_BBM_CHANGE_MASK, PAGE_MASK, PAGE_SIZE};

/// Tables below the root on a path: levels 1..=3 at most.
const PATH: usize = LAST_LEVEL as usize;

/// A second root for a [`PageTable`]'s tables whose path to one page is
/// its own (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateRoot {
    /// The root (the concatenated tables of the shared root's size): what
    /// VTTBR_EL2 points at to use it.
    root: u64,
    /// Copies of the path's tables below the root, by level - start - 1.
    path: [u64; PATH],
    /// The page whose path is private, and the shared leaf table its copy
    /// follows.
    page: Option<(u64, u64)>,
}

impl PrivateRoot {
    /// A placeholder (no tables): for arrays.
    pub const EMPTY: Self = Self { root: 0, path: [0; PATH], page: None };

    /// Its root table (VTTBR_EL2.BADDR).
    pub const fn root(&self) -> u64 {
        self.root
    }

    /// The page whose translation is private, if one is set.
    pub const fn page(&self) -> Option<u64> {
        match self.page {
            Some((p, _)) => Some(p),
            None => None,
        }
    }

    fn leaf(&self, start_level: u8) -> u64 {
        self.path[(LAST_LEVEL - start_level - 1) as usize]
    }
}

impl<A: TableAlloc> PageTable<A> {
    /// Tables a [`PrivateRoot`] takes: the root's (1..=16) and one per level
    /// below it.
    pub fn private_root_tables(&self) -> usize {
        let concat = self.regime.geometry().map_or(1, |(_, c)| c as usize);
        concat + (LAST_LEVEL - self.start_level) as usize
    }

    /// Allocates a private root, a copy of the shared one with no private
    /// page yet (every translation shared).
    pub fn new_private(&mut self) -> Result<PrivateRoot, MapError> {
        let (_, concat) = self.regime.geometry().ok_or(MapError::InvalidRegime)?;
        let root = self.alloc.alloc_tables(concat as usize).ok_or(MapError::OutOfTables)?;
        let mut path = [0; PATH];
        for p in path.iter_mut().take((LAST_LEVEL - self.start_level) as usize) {
            *p = self.alloc.alloc_tables(1).ok_or(MapError::OutOfTables)?;
        }
        let mut p = PrivateRoot { root, path, page: None };
        self.copy_root(&p)?;
        p.page = None;
        Ok(p)
    }

    /// Where `va`'s entry at `level` is, in the table `table` of the tree
    /// rooted at `root` (the root may be several concatenated tables).
    fn locate_under(&self, root: u64, table: u64, level: u8, va: u64) -> (u64, usize) {
        if level == self.start_level {
            let idx = (va >> super::level_shift(level)) as usize;
            (root + (idx / ENTRIES_PER_TABLE) as u64 * PAGE_SIZE, idx % ENTRIES_PER_TABLE)
        } else {
            self.locate(table, level, va)
        }
    }

    fn copy_table(&mut self, from: u64, to: u64) -> Result<(), MapError> {
        let src: Table = *self.alloc.table(from).ok_or(MapError::BadTable)?;
        let dst = self.alloc.table_mut(to).ok_or(MapError::BadTable)?;
        for (d, s) in dst.iter_mut().zip(src.iter()) {
            // SAFETY: a valid exclusive reference; one 64-bit store each,
            // as the MMU may walk this table (see `write`).
            unsafe { core::ptr::write_volatile(d, *s) };
        }
        Ok(())
    }

    fn copy_root(&mut self, p: &PrivateRoot) -> Result<(), MapError> {
        let (_, concat) = self.regime.geometry().ok_or(MapError::InvalidRegime)?;
        for i in 0..concat as u64 {
            self.copy_table(self.root + i * PAGE_SIZE, p.root + i * PAGE_SIZE)?;
        }
        Ok(())
    }

    /// Makes `va`'s page (mapped by a 4 KiB page descriptor) the private
    /// page of `p`, or none: the root and path are copied afresh from the
    /// shared tables, so the page's descriptor starts as the shared one.
    /// Descriptors of the old page's path become shared ones again: the
    /// caller invalidates the TLB entries made through `p` (its user's
    /// TLB: only that CPU walks `p`).
    pub fn set_private_page(&mut self, p: &mut PrivateRoot, va: Option<u64>) -> Result<(), MapError> {
        self.copy_root(p)?;
        p.page = None;
        let Some(va) = va else { return Ok(()) };
        if va >> self.ia_bits != 0 {
            return Err(MapError::OutOfRange);
        }
        let page = va & !PAGE_MASK;
        // Walk the shared tables; at each level copy the next table into
        // the path and point the private copy at it.
        let mut level = self.start_level;
        let (mut shared, mut private) = (self.root, p.root);
        loop {
            let (t, index) = self.locate_under(self.root, shared, level, page);
            let (pt, _) = self.locate_under(p.root, private, level, page);
            let desc = self.read(t, index)?;
            if level == LAST_LEVEL {
                if !super::desc::is_leaf(desc, level) {
                    return Err(MapError::NotMapped);
                }
                p.page = Some((page, shared));
                return Ok(());
            }
            if !is_table(desc, level) {
                return Err(if super::desc::is_valid(desc) {
                    MapError::NotAPage { level }
                } else {
                    MapError::NotMapped
                });
            }
            let next = output_address(desc);
            let copy = p.path[(level - self.start_level) as usize];
            self.copy_table(next, copy)?;
            // Same table descriptor attributes, the copy's address.
            self.write(pt, index, (desc & !super::desc::DESC_OA_MASK) | copy)?;
            shared = next;
            private = copy;
            level += 1;
        }
    }

    /// Rewrites `p`'s private page descriptor with `f(old)` (permission-like
    /// bits only, as [`PageTable::update_page`]). The TLB entries to drop
    /// are those of `p`'s user only.
    pub fn update_private_page(
        &mut self,
        p: &PrivateRoot,
        f: impl FnOnce(u64) -> u64,
    ) -> Result<PageUpdate, MapError> {
        let (page, _) = p.page.ok_or(MapError::NotMapped)?;
        let leaf = p.leaf(self.start_level);
        let index = ((page >> super::level_shift(LAST_LEVEL)) as usize) % ENTRIES_PER_TABLE;
        let old = self.read(leaf, index)?;
        let new = f(old);
        if (old ^ new) & !NO_BBM_CHANGE_MASK != 0 {
            return Err(MapError::NeedsBreakBeforeMake);
        }
        if new == old {
            return Ok(PageUpdate { old, new, tlbi: Tlbi::None });
        }
        self.write(leaf, index, new)?;
        Ok(PageUpdate { old, new, tlbi: Tlbi::Stage2Ipa { ipa: page } })
    }

    /// [`PageTable::update_page`] on the shared tables, carried into every
    /// private root whose copied leaf table is the one changed: there the
    /// descriptor becomes the shared one, except for the private page, which
    /// keeps its own `private_bits` (e.g. XN).
    pub fn update_page_mirrored(
        &mut self,
        va: u64,
        f: impl FnOnce(u64) -> u64,
        privates: &[PrivateRoot],
        private_bits: u64,
    ) -> Result<PageUpdate, MapError> {
        let u = self.update_page(va, f)?;
        if u.new == u.old {
            return Ok(u);
        }
        let page = va & !PAGE_MASK;
        let slot = self.find(page)?;
        let index = slot.index;
        for p in privates {
            let Some((own, shared_leaf)) = p.page else { continue };
            if shared_leaf != slot.table {
                continue;
            }
            let leaf = p.leaf(self.start_level);
            let value = if own == page {
                let mine = self.read(leaf, index)?;
                (u.new & !private_bits) | (mine & private_bits)
            } else {
                u.new
            };
            self.write(leaf, index, value)?;
        }
        Ok(u)
    }

    /// Break-before-make, step 1 of 2, of `va`'s page in the shared tables
    /// and in every private copy of its leaf table (the tap's trampoline:
    /// every CPU sees the move), except in a private root whose own page it
    /// is: that descriptor is its owner's. Returns the shared descriptor
    /// and the TLB invalidation to complete (on every CPU) before
    /// [`PageTable::make_page_mirrored`].
    pub fn break_page_mirrored(
        &mut self,
        va: u64,
        privates: &[PrivateRoot],
    ) -> Result<(u64, Tlbi), MapError> {
        let (old, tlbi) = self.break_page(va)?;
        self.write_mirrored(va, 0, privates)?;
        Ok((old, tlbi))
    }

    /// Break-before-make, step 2 of 2: `desc` at `va`'s page, shared and
    /// mirrored as [`PageTable::break_page_mirrored`].
    pub fn make_page_mirrored(
        &mut self,
        va: u64,
        desc: u64,
        privates: &[PrivateRoot],
    ) -> Result<(), MapError> {
        self.make_page(va, desc)?;
        self.write_mirrored(va, desc, privates)
    }

    /// `desc` at `va`'s entry in each private copy of its (shared) leaf
    /// table, but not where `va` is the private page.
    fn write_mirrored(&mut self, va: u64, desc: u64, privates: &[PrivateRoot]) -> Result<(), MapError> {
        let page = va & !PAGE_MASK;
        let slot = self.find(page)?;
        for p in privates {
            match p.page {
                Some((own, shared_leaf)) if shared_leaf == slot.table && own != page => {
                    self.write(p.leaf(self.start_level), slot.index, desc)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Break-before-make on `p`'s private page alone, step 1 of 2 (its
    /// descriptor is to point elsewhere, e.g. the guest's own page where the
    /// shared tables map the tap's shadow). Returns the old descriptor and
    /// the TLB invalidation, for `p`'s user only.
    pub fn break_private_page(&mut self, p: &PrivateRoot) -> Result<(u64, Tlbi), MapError> {
        let (page, _) = p.page.ok_or(MapError::NotMapped)?;
        let (leaf, index) = (p.leaf(self.start_level), Self::leaf_index(page));
        let old = self.read(leaf, index)?;
        self.write(leaf, index, 0)?;
        Ok((old, Tlbi::Stage2Ipa { ipa: page }))
    }

    /// Step 2 of 2: `desc` (a page descriptor) as `p`'s private page, whose
    /// entry must be invalid.
    pub fn make_private_page(&mut self, p: &PrivateRoot, desc: u64) -> Result<(), MapError> {
        let (page, _) = p.page.ok_or(MapError::NotMapped)?;
        let (leaf, index) = (p.leaf(self.start_level), Self::leaf_index(page));
        if super::desc::is_valid(self.read(leaf, index)?) {
            return Err(MapError::Overlap);
        }
        if !super::desc::is_leaf(desc, LAST_LEVEL) {
            return Err(MapError::BadTable);
        }
        self.write(leaf, index, desc)
    }

    fn leaf_index(page: u64) -> usize {
        ((page >> super::level_shift(LAST_LEVEL)) as usize) % ENTRIES_PER_TABLE
    }

    /// The descriptor `p` translates `va`'s page with (a walk from `p`'s
    /// root), for checks.
    pub fn private_lookup(&self, p: &PrivateRoot, va: u64) -> Option<u64> {
        let mut level = self.start_level;
        let mut table = p.root;
        loop {
            let (t, index) = self.locate_under(p.root, table, level, va);
            let desc = self.read(t, index).ok()?;
            if is_table(desc, level) {
                table = output_address(desc);
                level += 1;
                continue;
            }
            return Some(desc);
        }
    }
}
