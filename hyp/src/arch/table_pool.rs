//! Memory for translation tables (hyp has no heap): a static pool, or a
//! region of hyp memory sized at boot. Tables are
//! handed out by physical address; hyp's EL2 map is an identity map, so a
//! table's PA is also where hyp reads and writes it.
use porwatch_monitor::pgtable::{Table, TableAlloc, ENTRIES_PER_TABLE};

const TABLE_BYTES: u64 = 4096;
/// The largest block alloc_tables() must align to (16 concatenated tables).
const MAX_ALIGN_TABLES: usize = 16;

#[repr(C, align(65536))]
pub struct TablePool<const N: usize> {
    tables: [Table; N],
    used: usize,
}

impl<const N: usize> TablePool<N> {
    pub const fn new() -> Self {
        Self { tables: [[0; ENTRIES_PER_TABLE]; N], used: 0 }
    }

    fn index_of(&self, pa: u64) -> Option<usize> {
        let base = self.tables.as_ptr() as u64;
        let off = pa.checked_sub(base)?;
        if off % TABLE_BYTES != 0 {
            return None;
        }
        let i = (off / TABLE_BYTES) as usize;
        (i < self.used).then_some(i)
    }
}

impl<const N: usize> TableAlloc for TablePool<N> {
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if count == 0 || count > MAX_ALIGN_TABLES || !count.is_power_of_two() {
            return None;
        }
        let start = self.used.next_multiple_of(count);
        let end = start.checked_add(count)?;
        if end > N {
            return None;
        }
        for t in &mut self.tables[start..end] {
            t.fill(0);
        }
        self.used = end;
        Some(self.tables[start].as_ptr() as u64)
    }

    fn table(&self, pa: u64) -> Option<&Table> {
        self.index_of(pa).map(|i| &self.tables[i])
    }

    fn table_mut(&mut self, pa: u64) -> Option<&mut Table> {
        self.index_of(pa).map(move |i| &mut self.tables[i])
    }
}

/// Tables in a region of hyp memory sized at boot: the stage-2 pool, whose
/// size follows the guest's RAM (porwatch_monitor::layout::stage2_tables).
pub struct RegionPool {
    base: u64,
    count: usize,
    used: usize,
}

impl RegionPool {
    /// # Safety
    /// `[base, base + count * 4 KiB)` is hyp memory that nothing else uses,
    /// identity mapped read-write at EL2, and `base` is aligned to
    /// `MAX_ALIGN_TABLES` tables.
    pub unsafe fn new(base: u64, count: usize) -> Self {
        Self { base, count, used: 0 }
    }

    fn index_of(&self, pa: u64) -> Option<usize> {
        let off = pa.checked_sub(self.base)?;
        if off % TABLE_BYTES != 0 {
            return None;
        }
        let i = usize::try_from(off / TABLE_BYTES).ok()?;
        (i < self.used).then_some(i)
    }

    fn ptr(&self, i: usize) -> *mut Table {
        (self.base + i as u64 * TABLE_BYTES) as *mut Table
    }
}

impl TableAlloc for RegionPool {
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if count == 0 || count > MAX_ALIGN_TABLES || !count.is_power_of_two() {
            return None;
        }
        let start = self.used.next_multiple_of(count);
        let end = start.checked_add(count)?;
        if end > self.count {
            return None;
        }
        for i in start..end {
            // SAFETY: inside the region `new` was given, not handed out yet.
            unsafe { self.ptr(i).write_bytes(0, 1) };
        }
        self.used = end;
        Some(self.ptr(start) as u64)
    }

    fn table(&self, pa: u64) -> Option<&Table> {
        // SAFETY: an allocated table of the region; borrows follow `self`'s.
        self.index_of(pa).map(|i| unsafe { &*self.ptr(i) })
    }

    fn table_mut(&mut self, pa: u64) -> Option<&mut Table> {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        self.index_of(pa).map(|i| unsafe { &mut *self.ptr(i) })
    }
}
