//! Stage-1 translation at EL1 for the kpkeys test kernels (`seed`,
//! `pt_stress`): 4 KiB granule, 48-bit VAs, 4 levels (L0..L3) in both
//! halves, MAIR Attr0 = Normal WB (0xff), Attr1 = Device-nGnRE (0x04).
//!
//! * **TTBR0**: an identity map of the kernel image (text, rodata and data
//!   EL1 RWX; bss and stack EL1 RW, execute-never), the device tree (RO)
//!   and the MMIO the kernel uses (Device-nGnRE) — all pkey 0. The
//!   page-table pool ([`POOL_PAGES`] pages in the image's bss) is **not**
//!   identity-mapped: its only mapping is the linear map.
//! * **TTBR1**: a Linux-like linear map at [`LINEAR_MAP_BASE`] + PA covering
//!   exactly the pool, in 4 KiB pages: a pool page in use as a page table
//!   has POIndex (bits [62:60]) = [`kpkeys::PKEY_PGTABLES`], a free one 0.
//!
//! Every table page comes from the pool. [`Setup`] builds the tables with
//! the MMU off (plain stores to physical addresses, before TTBR0/TTBR1 are
//! written: nothing is a translation table yet); once [`Setup::enable`] has
//! turned the MMU on, every table write goes through the linear map (the
//! kernels' own store primitives). Free pool pages are kept all-zero, so a
//! table page needs no zeroing when it is allocated.
use crate::kpkeys;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const PAGE_SIZE: u64 = 4096;
pub const ENTRIES: usize = 512;

/// Valid bit; with bit 1 a table (L0..L2) or page (L3) descriptor.
pub const DESC_VALID: u64 = 1 << 0;
pub const DESC_TABLE: u64 = 0b11;
pub const DESC_PAGE: u64 = 0b11;
/// AttrIndx (bits [4:2]) = 0: Normal WB.
pub const ATTR_NORMAL: u64 = 0 << 2;
/// AttrIndx = 1: Device-nGnRE.
pub const ATTR_DEVICE: u64 = 1 << 2;
/// AP[1]: EL0 access (never set here).
pub const AP_EL0: u64 = 1 << 6;
/// AP[2]: read-only.
pub const AP_RO: u64 = 1 << 7;
pub const SH_INNER: u64 = 3 << 8;
pub const AF: u64 = 1 << 10;
pub const NG: u64 = 1 << 11;
pub const PXN: u64 = 1 << 53;
pub const UXN: u64 = 1 << 54;
/// A software bit (Linux PTE_DIRTY).
pub const SW_DIRTY: u64 = 1 << 55;
pub const POINDEX_SHIFT: u32 = 60;
pub const POINDEX_MASK: u64 = 7 << POINDEX_SHIFT;
/// Output address, 48-bit PAs.
pub const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// EL1 data: RW, execute-never, pkey 0.
pub const PROT_DATA: u64 = DESC_PAGE | ATTR_NORMAL | SH_INNER | AF | PXN | UXN;
/// EL1 read-only data.
pub const PROT_RODATA: u64 = PROT_DATA | AP_RO;
/// EL1 RWX (text, rodata and data share these: no linker symbols split them).
pub const PROT_KERNEL_EXEC: u64 = DESC_PAGE | ATTR_NORMAL | SH_INNER | AF | UXN;
/// Device-nGnRE, EL1 RW, execute-never.
pub const PROT_DEVICE: u64 = DESC_PAGE | ATTR_DEVICE | AF | PXN | UXN;

/// POIndex field value for `pkey`.
pub const fn pkey_bits(pkey: u64) -> u64 {
    (pkey << POINDEX_SHIFT) & POINDEX_MASK
}

/// The POIndex of a block/page descriptor.
pub const fn poindex(desc: u64) -> u64 {
    (desc & POINDEX_MASK) >> POINDEX_SHIFT
}

/// Linear map: VA = LINEAR_MAP_BASE + PA (TTBR1, L0 index 0).
pub const LINEAR_MAP_BASE: u64 = 0xffff_0000_0000_0000;

pub const fn lm_va(pa: u64) -> u64 {
    LINEAR_MAP_BASE + pa
}

pub const fn lm_pa(va: u64) -> u64 {
    va - LINEAR_MAP_BASE
}

/// Index into the level-`level` table for `va`.
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (3 - level))) & 0x1ff) as usize
}

/// MAIR_EL1: Attr0 Normal WB RW-allocate, Attr1 Device-nGnRE.
pub const MAIR: u64 = 0x04_ff;

/// Pages in the page-table pool.
pub const POOL_PAGES: usize = 64;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[[u64; ENTRIES]; POOL_PAGES]>);
// SAFETY: accessed only through raw pointers (physical before the MMU is on,
// through the linear map after), one CPU.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([[0; ENTRIES]; POOL_PAGES]));
/// Bit i: pool page i is in use.
static POOL_USED: AtomicU64 = AtomicU64::new(0);
const _: () = assert!(POOL_PAGES <= 64);

static MMU_ON: AtomicBool = AtomicBool::new(false);
static TTBR0_ROOT: AtomicU64 = AtomicU64::new(0);
static TTBR1_ROOT: AtomicU64 = AtomicU64::new(0);
static TCR: AtomicU64 = AtomicU64::new(0);

/// The pool's first page (physical = identity address).
pub fn pool_base() -> u64 {
    POOL.0.get() as u64
}

pub fn pool_end() -> u64 {
    pool_base() + POOL_PAGES as u64 * PAGE_SIZE
}

pub fn in_pool(pa: u64) -> bool {
    (pool_base()..pool_end()).contains(&pa)
}

fn pool_index(pa: u64) -> usize {
    assert!(in_pool(pa) && pa.is_multiple_of(PAGE_SIZE), "not a pool page");
    ((pa - pool_base()) / PAGE_SIZE) as usize
}

/// Takes the lowest free pool page (bookkeeping only: the page is all-zero
/// and still has pkey 0 in the linear map). None when the pool is empty.
pub fn pool_alloc() -> Option<u64> {
    let used = POOL_USED.load(Ordering::Relaxed);
    let i = (!used).trailing_zeros() as usize;
    if i >= POOL_PAGES {
        return None;
    }
    POOL_USED.store(used | 1 << i, Ordering::Relaxed);
    Some(pool_base() + i as u64 * PAGE_SIZE)
}

/// Returns a page to the pool (it must be all-zero again).
pub fn pool_free(pa: u64) {
    let bit = 1u64 << pool_index(pa);
    let used = POOL_USED.load(Ordering::Relaxed);
    assert!(used & bit != 0, "pool page freed twice");
    POOL_USED.store(used & !bit, Ordering::Relaxed);
}

pub fn pool_is_used(pa: u64) -> bool {
    POOL_USED.load(Ordering::Relaxed) & 1 << pool_index(pa) != 0
}

pub fn pool_used_count() -> u32 {
    POOL_USED.load(Ordering::Relaxed).count_ones()
}

pub fn mmu_on() -> bool {
    MMU_ON.load(Ordering::Relaxed)
}

/// The address through which this kernel reaches pool page `pa`: the page
/// itself with the MMU off, its linear-map alias with the MMU on.
pub fn table_va(pa: u64) -> u64 {
    if mmu_on() {
        lm_va(pa)
    } else {
        pa
    }
}

/// The address of descriptor `idx` of the table at `table_pa`, as
/// [`table_va`].
pub fn desc_va(table_pa: u64, idx: usize) -> u64 {
    table_va(table_pa) + 8 * idx as u64
}

/// Reads descriptor `idx` of the table at `table_pa`.
pub fn read_desc(table_pa: u64, idx: usize) -> u64 {
    unsafe { (desc_va(table_pa, idx) as *const u64).read_volatile() }
}

/// TTBR0's and TTBR1's root tables (valid after [`Setup::enable`]).
pub fn roots() -> (u64, u64) {
    (TTBR0_ROOT.load(Ordering::Relaxed), TTBR1_ROOT.load(Ordering::Relaxed))
}

/// The root table translating `va` (TTBR1 for the upper half).
pub fn root_for(va: u64) -> u64 {
    let (r0, r1) = roots();
    if va >> 63 != 0 {
        r1
    } else {
        r0
    }
}

/// The TCR_EL1 value [`Setup::enable`] wrote.
pub fn tcr() -> u64 {
    TCR.load(Ordering::Relaxed)
}

/// Where a leaf (page or block) descriptor lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub table_pa: u64,
    pub idx: usize,
    pub level: u32,
    pub desc: u64,
}

impl Leaf {
    /// The address this kernel writes the descriptor through.
    pub fn va(&self) -> u64 {
        desc_va(self.table_pa, self.idx)
    }
}

/// Walks `root` for `va` (reads only); None if `va` is not mapped.
pub fn walk(root: u64, va: u64) -> Option<Leaf> {
    let mut table = root;
    for level in 0..=3u32 {
        let idx = index(va, level);
        let desc = read_desc(table, idx);
        if desc & DESC_VALID == 0 {
            return None;
        }
        let leaf = Leaf { table_pa: table, idx, level, desc };
        if level == 3 {
            // 0b01 at level 3 is reserved (invalid).
            return (desc & 0b10 != 0).then_some(leaf);
        }
        if desc & 0b10 == 0 {
            // A block (level 1 or 2; level 0 has none with 4 KiB pages).
            return (level > 0).then_some(leaf);
        }
        table = desc & OA_MASK;
    }
    None
}

/// The level-`level` (0..=3) table translating `va` under `root` (reads
/// only); None if a table on the way is missing.
pub fn walk_table(root: u64, va: u64, level: u32) -> Option<u64> {
    let mut table = root;
    for l in 0..level {
        let d = read_desc(table, index(va, l));
        if d & DESC_TABLE != DESC_TABLE {
            return None;
        }
        table = d & OA_MASK;
    }
    Some(table)
}

/// The linear-map PTE of pool page `pa`.
pub fn lm_pte(pa: u64) -> Leaf {
    let (_, r1) = roots();
    match walk(r1, lm_va(pa)) {
        Some(l) if l.level == 3 => l,
        _ => panic!("pool page {:#x} has no linear-map PTE", pa),
    }
}

/// TLBI VMALLE1IS with the barriers around it.
pub fn flush_tlb_all() {
    unsafe { asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack)) };
}

/// TLBI VAAE1IS for one page (flush_tlb_kernel_range of one page).
pub fn flush_tlb_page(va: u64) {
    let arg = (va >> 12) & ((1 << 44) - 1);
    unsafe { asm!("dsb ishst", "tlbi vaae1is, {}", "dsb ish", "isb", in(reg) arg, options(nostack)) };
}

/// Tables built with the MMU off.
pub struct Setup {
    pub ttbr0: u64,
    pub ttbr1: u64,
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

impl Setup {
    /// Allocates the two roots (pool pages 0 and 1 when nothing was
    /// allocated before).
    pub fn new() -> Self {
        assert!(!mmu_on());
        let ttbr0 = pool_alloc().expect("pool");
        let ttbr1 = pool_alloc().expect("pool");
        Setup { ttbr0, ttbr1 }
    }

    fn root(&self, va: u64) -> u64 {
        if va >> 63 != 0 {
            self.ttbr1
        } else {
            self.ttbr0
        }
    }

    fn write(table: u64, idx: usize, v: u64) {
        unsafe { ((table + 8 * idx as u64) as *mut u64).write_volatile(v) };
    }

    /// The level-`level` (1..=3) table covering `va`, created (allocated
    /// from the pool and linked) where missing.
    pub fn table_for(&mut self, va: u64, level: u32) -> u64 {
        assert!((1..=3).contains(&level));
        let mut table = self.root(va);
        for l in 0..level {
            let idx = index(va, l);
            let d = read_desc(table, idx);
            table = if d & DESC_VALID == 0 {
                let t = pool_alloc().expect("page-table pool exhausted");
                Self::write(table, idx, t | DESC_TABLE);
                t
            } else {
                assert!(d & 0b10 != 0, "block where a table is needed");
                d & OA_MASK
            };
        }
        table
    }

    /// Maps one 4 KiB page (the PTE must be empty or identical).
    pub fn map_page(&mut self, va: u64, pa: u64, prot: u64) {
        let t = self.table_for(va, 3);
        let idx = index(va, 3);
        let v = (pa & OA_MASK) | prot;
        let old = read_desc(t, idx);
        assert!(old == 0 || old == v, "conflicting mapping");
        Self::write(t, idx, v);
    }

    /// Identity-maps the pages overlapping `[pa, pa + size)`, except pool
    /// pages.
    pub fn identity(&mut self, pa: u64, size: u64, prot: u64) {
        let mut p = pa & !(PAGE_SIZE - 1);
        while p < pa + size {
            if !in_pool(p) {
                self.map_page(p, p, prot);
            }
            p += PAGE_SIZE;
        }
    }

    /// Identity-maps the kernel image (everything but the pool): pages below
    /// the one holding `__bss_start` (text, rodata, data) EL1 RWX, the rest
    /// (bss, stack) EL1 RW execute-never.
    pub fn identity_image(&mut self) {
        unsafe extern "C" {
            static __guest_start: u8;
            static __bss_start: u8;
            static __guest_end: u8;
        }
        let start = &raw const __guest_start as u64;
        let bss = (&raw const __bss_start as u64) & !(PAGE_SIZE - 1);
        let end = &raw const __guest_end as u64;
        self.identity(start, bss - start, PROT_KERNEL_EXEC);
        self.identity(bss, end - bss, PROT_DATA);
    }

    /// Builds the linear map of the pool (call last: it maps every pool
    /// page, with pkey 1 for the pages in use, which are all tables).
    pub fn linear_map(&mut self) {
        let mut pa = pool_base();
        while pa < pool_end() {
            self.table_for(lm_va(pa), 3);
            pa += PAGE_SIZE;
        }
        let mut pa = pool_base();
        while pa < pool_end() {
            let pkey = if pool_is_used(pa) { kpkeys::PKEY_PGTABLES } else { kpkeys::PKEY_DEFAULT };
            self.map_page(lm_va(pa), pa, PROT_DATA | pkey_bits(pkey));
            pa += PAGE_SIZE;
        }
    }

    /// MAIR, TCR (T0SZ = T1SZ = 16, 4 KiB granules, inner-shareable WB
    /// walks, IPS from ID_AA64MMFR0_EL1.PARange capped at 48 bits), TTBR0,
    /// TTBR1, TLBI, then SCTLR_EL1 |= M | C | I. Returns TCR_EL1.
    pub fn enable(self) -> u64 {
        let tcr = tcr_value();
        TTBR0_ROOT.store(self.ttbr0, Ordering::Relaxed);
        TTBR1_ROOT.store(self.ttbr1, Ordering::Relaxed);
        TCR.store(tcr, Ordering::Relaxed);
        let m_c_i: u64 = 1 | 1 << 2 | 1 << 12;
        unsafe {
            asm!(
                "dsb ish",
                "msr mair_el1, {mair}",
                "msr tcr_el1, {tcr}",
                "msr ttbr0_el1, {t0}",
                "msr ttbr1_el1, {t1}",
                "isb",
                "tlbi vmalle1",
                "dsb nsh",
                "isb",
                "mrs {s}, sctlr_el1",
                "orr {s}, {s}, {mci}",
                "msr sctlr_el1, {s}",
                "isb",
                mair = in(reg) MAIR,
                tcr = in(reg) tcr,
                t0 = in(reg) self.ttbr0,
                t1 = in(reg) self.ttbr1,
                mci = in(reg) m_c_i,
                s = out(reg) _,
                options(nostack)
            );
        }
        MMU_ON.store(true, Ordering::Relaxed);
        tcr
    }
}

/// TCR_EL1 as [`Setup::enable`] writes it: T0SZ = T1SZ = 16, 4 KiB
/// granules, inner-shareable WB walks, IPS from ID_AA64MMFR0_EL1.PARange
/// capped at 48 bits.
pub fn tcr_value() -> u64 {
    let mmfr0: u64;
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    let ips = (mmfr0 & 0xf).min(5);
    16 // T0SZ
        | 1 << 8 | 1 << 10 | 3 << 12 // IRGN0, ORGN0 WBWA, SH0 inner; TG0 = 4K
        | 16 << 16 // T1SZ
        | 1 << 24 | 1 << 26 | 3 << 28 // IRGN1, ORGN1, SH1
        | 2 << 30 // TG1 = 4K
        | ips << 32
}

/// FNV-1a 64 step over the 8 bytes of `w`, least significant first.
pub fn fnv1a_fold(h: u64, w: u64) -> u64 {
    w.to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

pub const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// Statistics of [`snapshot`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub tables: u32,
    pub valid_descs: u32,
    pub checksum: u64,
    /// Table descriptors pointing outside the pool, tables not marked in
    /// use, or tables whose linear-map PTE lacks pkey 1.
    pub bad: u32,
}

/// Walks every table reachable from `root` (root at level 0) and folds
/// (level, index, descriptor) of every valid descriptor into a checksum;
/// checks each table is a used pool page with pkey 1 in the linear map.
pub fn snapshot(root: u64, s: &mut Snapshot) {
    fn visit(table: u64, level: u32, s: &mut Snapshot) {
        s.tables += 1;
        if !in_pool(table) || !pool_is_used(table) || poindex(lm_pte(table).desc) != kpkeys::PKEY_PGTABLES {
            s.bad += 1;
            return;
        }
        for idx in 0..ENTRIES {
            let d = read_desc(table, idx);
            if d & DESC_VALID == 0 {
                continue;
            }
            s.valid_descs += 1;
            s.checksum = fnv1a_fold(s.checksum, (level as u64) << 16 | idx as u64);
            s.checksum = fnv1a_fold(s.checksum, d);
            if level < 3 && d & 0b10 != 0 {
                visit(d & OA_MASK, level + 1, s);
            }
        }
    }
    if s.checksum == 0 {
        s.checksum = FNV_BASIS;
    }
    visit(root, 0, s);
}

/// Checks that every free pool page is all-zero and has pkey 0 in the
/// linear map; returns the number of bad pages.
pub fn check_free_pages() -> u32 {
    let mut bad = 0;
    let mut pa = pool_base();
    while pa < pool_end() {
        if !pool_is_used(pa) {
            let zero = (0..ENTRIES).all(|i| read_desc(pa, i) == 0);
            if !zero || poindex(lm_pte(pa).desc) != kpkeys::PKEY_DEFAULT {
                bad += 1;
            }
        }
        pa += PAGE_SIZE;
    }
    bad
}
