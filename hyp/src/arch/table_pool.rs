//! Static memory for translation tables (hyp has no heap). Tables are
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
