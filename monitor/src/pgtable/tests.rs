extern crate std;

use std::boxed::Box;
use std::vec::Vec;

use super::desc::*;
use super::regs::*;
use super::*;

/// Host allocator: tables in a Vec, with fake PAs from `BASE`.
struct VecAlloc {
    tables: Vec<Box<Table>>,
    limit: usize,
}

const BASE: u64 = 0x8000_0000;

impl VecAlloc {
    fn new(limit: usize) -> Self {
        Self { tables: Vec::new(), limit }
    }
    fn used(&self) -> usize {
        self.tables.len()
    }
    fn index(&self, pa: u64) -> Option<usize> {
        if pa < BASE || pa & 0xFFF != 0 {
            return None;
        }
        let i = ((pa - BASE) / PAGE_SIZE) as usize;
        (i < self.tables.len()).then_some(i)
    }
}

impl TableAlloc for VecAlloc {
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        if count == 0 || count > 16 || !count.is_power_of_two() {
            return None;
        }
        // Align the index (BASE is 64 KiB aligned) by wasting tables.
        let pad = (count - self.tables.len() % count) % count;
        if self.tables.len() + pad + count > self.limit {
            return None;
        }
        for _ in 0..pad {
            self.tables.push(Box::new([0xDEAD; 512]));
        }
        let pa = BASE + self.tables.len() as u64 * PAGE_SIZE;
        for _ in 0..count {
            self.tables.push(Box::new([0; 512]));
        }
        Some(pa)
    }
    fn table(&self, pa: u64) -> Option<&Table> {
        self.index(pa).map(|i| &*self.tables[i])
    }
    fn table_mut(&mut self, pa: u64) -> Option<&mut Table> {
        self.index(pa).map(|i| &mut *self.tables[i])
    }
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn s2(ipa_bits: u32, pa_range: u8) -> PageTable<VecAlloc> {
    PageTable::new(VecAlloc::new(4096), stage2_regime(ipa_bits, pa_range).unwrap()).unwrap()
}

#[test]
fn design_descriptor_values() {
    // FWB=0 stage-2 page descriptors from the design.
    assert_eq!(leaf_desc(0x4000_0000, S2Attrs::NORMAL_RW.bits(), 3), 0x4000_07FF);
    assert_eq!(leaf_desc(0x4000_0000, S2Attrs::NORMAL_RO.bits(), 3), 0x4000_077F);
    assert_eq!(leaf_desc(0x0900_0000, S2Attrs::DEVICE_RW.bits(), 3), 0x0040_0000_0900_04C7);
    assert_eq!(leaf_desc(0x0800_0000, S2Attrs::DEVICE_RW.bits(), 2), 0x0040_0000_0800_04C5);
    assert_eq!(S2Attrs::NORMAL_RW.bits() & 0xFFF, 0x7FC);
    // Decoding back.
    assert_eq!(S2Attrs::from_desc(0x4000_07FF), S2Attrs::NORMAL_RW);
    assert_eq!(S2Attrs::from_desc(0x4000_077F), S2Attrs::NORMAL_RO);
    assert_eq!(S2Attrs::from_desc(0x0040_0000_0900_04C7), S2Attrs::DEVICE_RW);
    // Hot-path helpers.
    assert_eq!(with_s2ap(0x4000_07FF, S2Ap::ReadOnly), 0x4000_077F);
    assert_eq!(with_s2ap(0x4000_077F, S2Ap::ReadWrite), 0x4000_07FF);
    assert_eq!(with_s2ap(0x4000_07FF, S2Ap::None), 0x4000_073F);
    assert_eq!(with_s2xn(0x4000_07FF, S2Xn::NoExec), 0x0040_0000_4000_07FF);
    assert_eq!(with_s2xn(0x0040_0000_4000_07FF, S2Xn::Exec), 0x4000_07FF);
    assert_eq!(with_s2xn(0x4000_07FF, S2Xn::NoExecEl0), 0x0060_0000_4000_07FF);
}

#[test]
fn stage1_descriptor_values() {
    // Normal RW XN page: AttrIndx 0, AP[2:1]=01, SH=11, AF, XN(54), page.
    assert_eq!(leaf_desc(0x4020_0000, S1Attrs::NORMAL_RW.bits(), 3), 0x0040_0000_4020_0743);
    // Text: RO (AP=11), executable.
    assert_eq!(leaf_desc(0x4020_0000, S1Attrs::NORMAL_RX.bits(), 3), 0x4020_07C3);
    // Device block: AttrIndx 1, non-shareable.
    assert_eq!(leaf_desc(0x0800_0000, S1Attrs::DEVICE_RW.bits(), 2), 0x0040_0000_0800_0445);
    for a in [S1Attrs::NORMAL_RW, S1Attrs::NORMAL_RX, S1Attrs::NORMAL_RO, S1Attrs::DEVICE_RW] {
        assert_eq!(S1Attrs::from_desc(leaf_desc(0x1000, a.bits(), 3)), a);
    }
    assert_eq!(MAIR_EL2_VALUE, 0x4400_04FF);
}

#[test]
fn vtcr_reproduces_prototype() {
    // Prototype: T0SZ=32, SL0=1 (start level 1), PS=0b010 (40-bit PA).
    assert_eq!(vtcr_el2(32, 2), Some((0x8002_3560, 1, 1)));
    // 40-bit IPA: T0SZ=24, start level 1 with 2 concatenated tables.
    assert_eq!(vtcr_el2(40, 2), Some((0x8002_3558, 1, 2)));
    // 44-bit IPA on a 44-bit PA: start level 0, SL0=2, PS=4.
    let (v, sl, c) = vtcr_el2(44, 4).unwrap();
    assert_eq!((sl, c), (0, 1));
    assert_eq!(v & VTCR_SL0_MASK, 2 << VTCR_SL0_SHIFT);
    assert_eq!(v & 0x3F, 20);
    assert_eq!((v & TCR_PS_MASK) >> TCR_PS_SHIFT, 4);
    // 43 bits: level 1 with 16 tables.
    assert_eq!(vtcr_el2(43, 5).map(|x| (x.1, x.2)), Some((1, 16)));
    // 48 bits on a 52-bit PA: PS clamped to 48 bits.
    let (v, sl, c) = vtcr_el2(48, 6).unwrap();
    assert_eq!((sl, c, (v & TCR_PS_MASK) >> TCR_PS_SHIFT), (0, 1, 5));
    // Small IPA spaces start at level 2.
    assert_eq!(vtcr_el2(30, 0).map(|x| (x.0 & VTCR_SL0_MASK, x.1, x.2)), Some((0, 2, 1)));
    // Invalid: IPA larger than PA, too small, too large.
    assert_eq!(vtcr_el2(41, 2), None);
    assert_eq!(vtcr_el2(24, 2), None);
    assert_eq!(vtcr_el2(49, 7), None);
}

#[test]
fn tcr_values() {
    // 40-bit PA: T0SZ=24, RES1 31 and 23, PS=2, SH0 inner, WBWA.
    assert_eq!(tcr_el2(2), 0x8082_3518);
    // 32-bit PA.
    assert_eq!(tcr_el2(0), 0x8080_3520);
    // 48-bit and larger PA (clamped).
    assert_eq!(tcr_el2(5), 0x8085_3510);
    assert_eq!(tcr_el2(6), 0x8085_3510);
    assert_eq!(tcr_el2(0xFF), 0x8085_3510);
    assert_eq!(stage1_el2_regime(2), Regime::Stage1El2 { t0sz: 24 });
    assert_eq!(pa_range_bits(3), Some(42));
    assert_eq!(pa_range_bits(8), None);
}

#[test]
fn regime_validation() {
    let bad = [
        Regime::Stage2 { t0sz: 24, start_level: 1, concat: 1 },
        Regime::Stage2 { t0sz: 24, start_level: 0, concat: 2 },
        Regime::Stage2 { t0sz: 40, start_level: 1, concat: 1 },
        Regime::Stage2 { t0sz: 16, start_level: 3, concat: 1 },
        Regime::Stage1El2 { t0sz: 15 },
        Regime::Stage1El2 { t0sz: 40 },
        Regime::Stage1El2 { t0sz: 200 },
    ];
    for r in bad {
        assert_eq!(r.geometry(), None, "{r:?}");
        assert_eq!(PageTable::new(VecAlloc::new(64), r).err(), Some(MapError::InvalidRegime));
    }
    assert_eq!(Regime::Stage1El2 { t0sz: 16 }.geometry(), Some((0, 1)));
    assert_eq!(Regime::Stage1El2 { t0sz: 32 }.geometry(), Some((1, 1)));
    assert_eq!(Regime::Stage1El2 { t0sz: 39 }.geometry(), Some((2, 1)));
    // Root allocation failure.
    assert_eq!(
        PageTable::new(VecAlloc::new(1), stage2_regime(40, 2).unwrap()).err(),
        Some(MapError::OutOfTables)
    );
}

#[test]
fn ram_pages_level3() {
    let mut pt = s2(40, 2);
    assert_eq!(pt.start_level(), 1);
    assert_eq!(pt.root() % (2 * PAGE_SIZE), 0);
    assert_eq!(pt.alloc().used(), 2);
    pt.map(0x4000_0000, 0x4000_0000, 16 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    // 1 level-2 table + 8 level-3 tables.
    assert_eq!(pt.alloc().used(), 2 + 1 + 8);
    for va in [0x4000_0000, 0x4000_0FFF, 0x407F_F123, 0x40FF_F000] {
        let leaf = pt.lookup(va).unwrap();
        assert_eq!(leaf.level, 3);
        assert_eq!(leaf.pa, va);
        assert_eq!(leaf.desc, (va & !0xFFF) | 0x7FF);
    }
    assert_eq!(pt.lookup(0x3FFF_FFFF), None);
    assert_eq!(pt.lookup(0x4100_0000), None);
    assert_eq!(pt.lookup(1 << 40), None);
}

#[test]
fn device_blocks_level2_and_level1() {
    let mut pt = s2(40, 2);
    // 16 MiB of MMIO, 2 MiB aligned: eight level-2 blocks, no level-3 table.
    pt.map(0x0800_0000, 0x0800_0000, 16 * MIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.alloc().used(), 3);
    let leaf = pt.lookup(0x08E0_1234).unwrap();
    assert_eq!(pt.lookup(0x0900_0000), None);
    assert_eq!(leaf.level, 2);
    assert_eq!(leaf.pa, 0x08E0_1234);
    assert_eq!(leaf.desc, 0x0040_0000_08E0_04C5);
    // 1 GiB aligned: a level-1 block, no new table.
    pt.map(0x80_0000_0000 - GIB, 0x80_0000_0000 - GIB, GIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks)
        .unwrap();
    assert_eq!(pt.alloc().used(), 3);
    let leaf = pt.lookup(0x80_0000_0000 - 1).unwrap();
    assert_eq!((leaf.level, leaf.pa), (1, 0x80_0000_0000 - 1));
    assert!(is_block(leaf.desc, 1));
    // The same with PagesOnly uses pages.
    pt.map(0x1_0000_0000, 0x1_0000_0000, 2 * MIB, S2Attrs::DEVICE_RW, Granularity::PagesOnly).unwrap();
    assert_eq!(pt.lookup(0x1_0000_0000).unwrap().level, 3);
}

#[test]
fn mixed_alignment_uses_pages_then_blocks_then_pages() {
    let mut pt = s2(40, 2);
    // Starts 4 KiB below a 2 MiB boundary, ends 4 KiB past the next one.
    let va = 0x4020_0000 - 0x1000;
    let size = 0x1000 + 2 * MIB + 0x1000;
    pt.map(va, va, size, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.lookup(va).unwrap().level, 3);
    assert_eq!(pt.lookup(0x4020_0000).unwrap().level, 2);
    assert_eq!(pt.lookup(0x403F_FFFF).unwrap().level, 2);
    assert_eq!(pt.lookup(0x4040_0000).unwrap().level, 3);
    assert_eq!(pt.lookup(0x4040_1000), None);
    assert_eq!(pt.lookup(va - 1), None);
    // PA not congruent with VA modulo 2 MiB: no blocks possible.
    let mut pt = s2(40, 2);
    pt.map(0x4000_0000, 0x5000_1000, 4 * MIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    let leaf = pt.lookup(0x4030_0010).unwrap();
    assert_eq!((leaf.level, leaf.pa), (3, 0x5030_1010));
}

#[test]
fn level0_start_48bit() {
    let mut pt = s2(48, 5);
    assert_eq!(pt.start_level(), 0);
    let top = (1u64 << 48) - PAGE_SIZE;
    pt.map(top, 0x1234_5000, PAGE_SIZE, S2Attrs::NORMAL_RW, Granularity::AllowBlocks).unwrap();
    let leaf = pt.lookup(top + 0x10).unwrap();
    assert_eq!((leaf.level, leaf.pa), (3, 0x1234_5010));
    // L0 root + L1 + L2 + L3 tables.
    assert_eq!(pt.alloc().used(), 4);
    // Level-1 block under a level-0 table.
    pt.map(0x80_0000_0000, 0, GIB, S2Attrs::NORMAL_RW, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.lookup(0x80_0000_0000).unwrap().level, 1);
    assert_eq!(
        pt.map(top, 0, PAGE_SIZE * 2, S2Attrs::NORMAL_RW, Granularity::PagesOnly),
        Err(MapError::OutOfRange)
    );
}

#[test]
fn level2_start_small_ipa() {
    let mut pt = s2(30, 0);
    assert_eq!(pt.start_level(), 2);
    pt.map(0x3FE0_0000, 0x3FE0_0000, 2 * MIB, S2Attrs::NORMAL_RW, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.lookup(0x3FFF_FFFF).unwrap().level, 2);
    assert_eq!(pt.alloc().used(), 1);
}

#[test]
fn concatenated_root_second_table() {
    // 40-bit IPA: root = 2 tables; IPA >= 512 GiB lands in the second one.
    let mut pt = s2(40, 2);
    let va = 0x80_0000_0000 + 0x4000_0000; // 513 GiB
    pt.map(va, 0x4000_0000, PAGE_SIZE, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    let second = pt.alloc().table(pt.root() + PAGE_SIZE).unwrap();
    assert!(is_table(second[1], 1));
    let first = pt.alloc().table(pt.root()).unwrap();
    assert!(first.iter().all(|&d| d == 0));
    assert_eq!(pt.lookup(va).unwrap().pa, 0x4000_0000);
}

#[test]
fn stage1_el2_identity_map() {
    // 40-bit PA: stage 1 cannot concatenate, so the walk starts at level 0.
    let mut pt = PageTable::new(VecAlloc::new(64), stage1_el2_regime(2)).unwrap();
    assert_eq!(pt.start_level(), 0);
    // Text RX, data RW, UART device.
    pt.map(0x4020_0000, 0x4020_0000, 64 * 1024, S1Attrs::NORMAL_RX, Granularity::PagesOnly).unwrap();
    pt.map(0x4021_0000, 0x4021_0000, 0x1F_0000, S1Attrs::NORMAL_RW, Granularity::AllowBlocks).unwrap();
    pt.map(0x0900_0000, 0x0900_0000, PAGE_SIZE, S1Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    let t = pt.lookup(0x4020_0000).unwrap();
    assert_eq!(t.desc, 0x4020_07C3);
    let d = pt.lookup(0x4021_0000).unwrap();
    assert_eq!(d.desc, 0x0040_0000_4021_0743);
    let u = pt.lookup(0x0900_0000).unwrap();
    assert_eq!(S1Attrs::from_desc(u.desc), S1Attrs::DEVICE_RW);
    // Stage-2 attributes are refused.
    assert_eq!(
        pt.map(0, 0, PAGE_SIZE, S2Attrs::NORMAL_RW, Granularity::PagesOnly),
        Err(MapError::WrongRegime)
    );
    // 32-bit PA: 4-entry level-1 root.
    let mut pt = PageTable::new(VecAlloc::new(64), stage1_el2_regime(0)).unwrap();
    assert_eq!(pt.start_level(), 1);
    pt.map(0xC000_0000, 0xC000_0000, GIB, S1Attrs::NORMAL_RW, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.lookup(0xFFFF_FFFF).unwrap().level, 1);
    assert_eq!(
        pt.map(0xFFFF_F000, 0, 2 * PAGE_SIZE, S1Attrs::NORMAL_RW, Granularity::PagesOnly),
        Err(MapError::OutOfRange)
    );
    // Update on the EL2 table asks for a VAE2IS.
    let mut pt = PageTable::new(VecAlloc::new(64), stage1_el2_regime(2)).unwrap();
    pt.map(0x4000_0000, 0x4000_0000, PAGE_SIZE, S1Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    let u = pt.update_page(0x4000_0010, |d| d | S1_AP2_RDONLY).unwrap();
    assert_eq!(u.tlbi, Tlbi::El2Va { va: 0x4000_0000 });
    assert_eq!(u.tlbi.operand(), 0x4_0000);
    assert_eq!(S1Attrs::from_desc(u.new).ap, S1Ap::ReadOnly);
}

#[test]
fn alignment_and_range_errors() {
    let mut pt = s2(40, 2);
    let a = S2Attrs::NORMAL_RW;
    let g = Granularity::PagesOnly;
    assert_eq!(pt.map(0x1001, 0x1000, PAGE_SIZE, a, g), Err(MapError::Misaligned));
    assert_eq!(pt.map(0x1000, 0x1800, PAGE_SIZE, a, g), Err(MapError::Misaligned));
    assert_eq!(pt.map(0x1000, 0x1000, 0x800, a, g), Err(MapError::Misaligned));
    assert_eq!(pt.map(0x1000, 0x1000, 0, a, g), Err(MapError::EmptyRange));
    assert_eq!(pt.map(1 << 40, 0, PAGE_SIZE, a, g), Err(MapError::OutOfRange));
    assert_eq!(pt.map((1 << 40) - PAGE_SIZE, 0, 2 * PAGE_SIZE, a, g), Err(MapError::OutOfRange));
    assert_eq!(pt.map(!0xFFFu64, 0, PAGE_SIZE, a, g), Err(MapError::OutOfRange));
    assert_eq!(pt.map(0, 1 << 48, PAGE_SIZE, a, g), Err(MapError::OutOfRange));
    assert_eq!(pt.map(0, !0xFFFu64, PAGE_SIZE, a, g), Err(MapError::OutOfRange));
    assert_eq!(pt.map(0, 0, 1 << 40, a, Granularity::AllowBlocks), Ok(()));
    assert_eq!(pt.lookup((1 << 40) - 1).unwrap().level, 1);
    // Nothing was allocated for the failed attempts (root + nothing).
    assert_eq!(pt.alloc().used(), 2);
}

#[test]
fn overlap_errors_leave_no_trace() {
    let mut pt = s2(40, 2);
    let a = S2Attrs::NORMAL_RW;
    pt.map(0x4000_0000, 0x4000_0000, 4 * MIB, a, Granularity::PagesOnly).unwrap();
    pt.map(0x0800_0000, 0x0800_0000, 2 * MIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    let used = pt.alloc().used();
    // Exact same range; overlapping the end; a page inside a block; a block
    // over existing pages; a large range with a hole and a mapped tail.
    for (va, size) in [
        (0x4000_0000, 4 * MIB),
        (0x403F_F000, 2 * PAGE_SIZE),
        (0x0810_0000, PAGE_SIZE),
        (0x4000_0000 - 2 * MIB, 4 * MIB),
        (0x3000_0000, 0x1000_1000),
    ] {
        assert_eq!(
            pt.map(va, va, size, a, Granularity::AllowBlocks),
            Err(MapError::Overlap),
            "{va:#x}+{size:#x}"
        );
    }
    assert_eq!(pt.alloc().used(), used);
    assert_eq!(pt.lookup(0x3FFF_F000), None);
    assert_eq!(pt.lookup(0x3000_0000), None);
    // Adjacent ranges are fine.
    pt.map(0x4040_0000, 0x4040_0000, PAGE_SIZE, a, Granularity::PagesOnly).unwrap();
    pt.map(0x3FFF_F000, 0x3FFF_F000, PAGE_SIZE, a, Granularity::PagesOnly).unwrap();
}

#[test]
fn update_page_hot_path() {
    let mut pt = s2(40, 2);
    pt.map(0x4000_0000, 0x4000_0000, 2 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    pt.map(0x0800_0000, 0x0800_0000, 2 * MIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    // RW -> RO.
    let u = pt.update_page(0x4000_5123, |d| with_s2ap(d, S2Ap::ReadOnly)).unwrap();
    assert_eq!(u.old, 0x4000_57FF);
    assert_eq!(u.new, 0x4000_577F);
    assert_eq!(u.tlbi, Tlbi::Stage2Ipa { ipa: 0x4000_5000 });
    assert_eq!(u.tlbi.operand(), 0x4_0005);
    assert_eq!(pt.lookup(0x4000_5000).unwrap().desc, 0x4000_577F);
    // Neighbours untouched.
    assert_eq!(pt.lookup(0x4000_4000).unwrap().desc, 0x4000_47FF);
    assert_eq!(pt.lookup(0x4000_6000).unwrap().desc, 0x4000_67FF);
    // XN.
    let u = pt.update_page(0x4000_5000, |d| with_s2xn(d, S2Xn::NoExec)).unwrap();
    assert_eq!(u.new, 0x0040_0000_4000_577F);
    // Back to RW + exec.
    let u = pt.update_page(0x4000_5000, |d| with_s2xn(with_s2ap(d, S2Ap::ReadWrite), S2Xn::Exec)).unwrap();
    assert_eq!(u.new, 0x4000_57FF);
    // No change: no TLBI.
    let u = pt.update_page(0x4000_5000, |d| d).unwrap();
    assert_eq!(u.tlbi, Tlbi::None);
    assert_eq!(u.tlbi.operand(), 0);
    // Refusals, with nothing written.
    assert_eq!(pt.update_page(0x0800_0000, |d| d), Err(MapError::NotAPage { level: 2 }));
    assert_eq!(pt.update_page(0x5000_0000, |d| d), Err(MapError::NotMapped));
    assert_eq!(pt.update_page(1 << 40, |d| d), Err(MapError::OutOfRange));
    for f in [
        (|d: u64| d + 0x1000) as fn(u64) -> u64, // new output address
        |d| d & !0b10,                           // page -> block type
        |_| 0,                                   // invalidate
        |d| d & !S2_MEMATTR_MASK,                // memory type
        |d| d & !SH_MASK,                        // shareability
    ] {
        assert_eq!(pt.update_page(0x4000_5000, f), Err(MapError::NeedsBreakBeforeMake));
    }
    assert_eq!(pt.lookup(0x4000_5000).unwrap().desc, 0x4000_57FF);
}

#[test]
fn unmap_and_remap() {
    let mut pt = s2(40, 2);
    pt.map(0x4000_0000, 0x4000_0000, 4 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    pt.map(0x0800_0000, 0x0800_0000, 4 * MIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    // Partial block refused, nothing changed.
    assert_eq!(pt.unmap(0x0800_0000, PAGE_SIZE), Err(MapError::PartialBlock));
    assert_eq!(pt.unmap(0x0700_0000, 0x0110_0000), Err(MapError::PartialBlock));
    assert!(pt.lookup(0x0800_0000).is_some());
    // Whole block with holes around it.
    assert_eq!(pt.unmap(0x0600_0000, 0x0220_0000), Ok(2 * MIB));
    assert_eq!(pt.lookup(0x0800_0000), None);
    assert!(pt.lookup(0x0820_0000).is_some());
    // Some pages.
    assert_eq!(pt.unmap(0x4000_1000, 3 * PAGE_SIZE), Ok(3 * PAGE_SIZE));
    assert!(pt.lookup(0x4000_0000).is_some());
    assert_eq!(pt.lookup(0x4000_1000), None);
    assert_eq!(pt.lookup(0x4000_3FFF), None);
    assert!(pt.lookup(0x4000_4000).is_some());
    // Remap the hole with other attributes.
    pt.map(0x4000_1000, 0x4000_1000, 3 * PAGE_SIZE, S2Attrs::NORMAL_RO, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.lookup(0x4000_2000).unwrap().desc, 0x4000_277F);
    // Unmap all 4 MiB of RAM, then map it as blocks: tables remain, so the
    // mapping falls back to pages under the existing level-3 tables.
    assert_eq!(pt.unmap(0x4000_0000, 4 * MIB), Ok(4 * MIB));
    pt.map(0x4000_0000, 0x4000_0000, 4 * MIB, S2Attrs::NORMAL_RW, Granularity::AllowBlocks).unwrap();
    assert_eq!(pt.lookup(0x4000_0000).unwrap().level, 3);
    // Empty / unmapped ranges.
    assert_eq!(pt.unmap(0x10_0000_0000, GIB), Ok(0));
    assert_eq!(pt.unmap(0x1000, 0), Err(MapError::EmptyRange));
    assert_eq!(pt.unmap(0x1001, PAGE_SIZE), Err(MapError::Misaligned));
}

#[test]
fn out_of_tables_rolls_back() {
    // Root (2) + L2 + one L3 table only.
    let mut pt = PageTable::new(VecAlloc::new(4), stage2_regime(40, 2).unwrap()).unwrap();
    let r = pt.map(0x4000_0000, 0x4000_0000, 4 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly);
    assert_eq!(r, Err(MapError::OutOfTables));
    assert_eq!(pt.lookup(0x4000_0000), None);
    assert_eq!(pt.lookup(0x401F_F000), None);
    // What fits still maps.
    pt.map(0x4000_0000, 0x4000_0000, 2 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    assert!(pt.lookup(0x401F_F000).is_some());
}

/// Allocator handing out garbage addresses.
struct BadAlloc(VecAlloc, bool);
impl TableAlloc for BadAlloc {
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        let pa = self.0.alloc_tables(count)?;
        Some(if self.1 { pa + 8 } else { pa })
    }
    fn table(&self, pa: u64) -> Option<&Table> {
        self.0.table(pa)
    }
    fn table_mut(&mut self, pa: u64) -> Option<&mut Table> {
        self.0.table_mut(pa)
    }
}

#[test]
fn bad_allocator_is_reported() {
    let r = PageTable::new(BadAlloc(VecAlloc::new(8), true), stage2_regime(40, 2).unwrap());
    assert_eq!(r.err(), Some(MapError::BadTable));
    let mut pt = PageTable::new(BadAlloc(VecAlloc::new(8), false), stage2_regime(40, 2).unwrap()).unwrap();
    pt.alloc_mut().1 = true;
    assert_eq!(pt.map(0, 0, PAGE_SIZE, S2Attrs::NORMAL_RW, Granularity::PagesOnly), Err(MapError::BadTable));
    // A corrupted table descriptor pointing outside the pool.
    let mut pt = s2(40, 2);
    let root = pt.root();
    pt.alloc_mut().table_mut(root).unwrap()[0] = table_desc(0x10_0000);
    assert_eq!(pt.lookup(0), None);
    assert_eq!(pt.update_page(0, |d| d), Err(MapError::BadTable));
    assert_eq!(pt.map(0, 0, PAGE_SIZE, S2Attrs::NORMAL_RW, Granularity::PagesOnly), Err(MapError::BadTable));
}

#[test]
fn allocator_by_reference() {
    // Two table sets sharing one pool, one after the other.
    let mut pool = VecAlloc::new(64);
    {
        let mut el2 = PageTable::new(&mut pool, stage1_el2_regime(2)).unwrap();
        el2.map(0, 0, PAGE_SIZE, S1Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    }
    let used = pool.used();
    let mut s2 = PageTable::new(&mut pool, stage2_regime(40, 2).unwrap()).unwrap();
    s2.map(0, 0, PAGE_SIZE, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    assert!(s2.root() >= BASE + used as u64 * PAGE_SIZE);
}

#[test]
fn randomized_map_lookup_consistency() {
    // Deterministic LCG; map random disjoint 2 MiB-slot ranges and check
    // every page through lookup against a simple model.
    let mut seed: u64 = 0x1234_5678_9ABC_DEF1;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut pt = s2(40, 2);
    let mut model: Vec<(u64, u64, u64)> = Vec::new(); // (va, pa, size)
    for _ in 0..200 {
        let slot = next() % 512; // 2 MiB slots in the first GiB
        let va = slot * 2 * MIB + (next() % 4) * PAGE_SIZE;
        let size = (1 + next() % 600) * PAGE_SIZE;
        let pa = 0x10_0000_0000 + (next() % 1024) * 2 * MIB + (va & (2 * MIB - 1));
        let gran = if next() % 2 == 0 { Granularity::AllowBlocks } else { Granularity::PagesOnly };
        if va + size > GIB {
            continue;
        }
        let overlaps = model.iter().any(|&(v, _, s)| va < v + s && v < va + size);
        let r = pt.map(va, pa, size, S2Attrs::NORMAL_RW, gran);
        if overlaps {
            assert_eq!(r, Err(MapError::Overlap));
        } else {
            r.unwrap();
            model.push((va, pa, size));
        }
    }
    assert!(model.len() > 20);
    for page in (0..GIB).step_by(PAGE_SIZE as usize) {
        let expect =
            model.iter().find(|&&(v, _, s)| page >= v && page < v + s).map(|&(v, p, _)| p + (page - v));
        assert_eq!(pt.lookup(page).map(|l| l.pa), expect, "{page:#x}");
    }
}

/// A private root translates like the shared tables except its page, whose
/// private bits (XN) only it sees; shared changes reach its copied leaf
/// table; clearing the page makes it a plain copy again. For a one-table
/// root (48-bit IPA) and a concatenated one (40-bit: level 1, 2 tables).
#[test]
fn private_roots_share_all_but_their_page() {
    for (ipa_bits, pa_range) in [(48u32, 5u8), (40, 2), (43, 5)] {
        let mut pt = s2(ipa_bits, pa_range);
        let ram = 0x4000_0000;
        pt.map(ram, ram, 8 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
        let (a, b, c) = (ram + 0x5000, ram + 0x7000, ram + 4 * MIB + 0x1000); // a, b: one leaf table
        let before = pt.alloc().used();
        let mut p0 = pt.new_private().unwrap();
        let mut p1 = pt.new_private().unwrap();
        // (The test allocator may waste tables to align a concatenated root.)
        let used = pt.alloc().used() - before;
        assert!(
            (2 * pt.private_root_tables()..=4 * pt.private_root_tables()).contains(&used),
            "{ipa_bits}: {used}"
        );
        let same = |pt: &PageTable<VecAlloc>, p: &PrivateRoot, va: u64| {
            pt.private_lookup(p, va) == pt.lookup(va).map(|l| l.desc)
        };
        for va in [a, b, c, ram, ram + 8 * MIB - 0x1000] {
            assert!(same(&pt, &p0, va), "{ipa_bits}: {va:#x}");
        }
        pt.set_private_page(&mut p0, Some(a)).unwrap();
        pt.set_private_page(&mut p1, Some(c)).unwrap();
        assert_eq!(p0.page(), Some(a));
        assert_ne!(p0.root(), pt.root());
        let xn = |d: u64| d & S2_XN_MASK != 0;
        // XN on p0's page: only p0 sees it.
        let u = pt.update_private_page(&p0, |d| with_s2xn(d, S2Xn::NoExec)).unwrap();
        assert_eq!(u.tlbi, Tlbi::Stage2Ipa { ipa: a });
        assert!(xn(pt.private_lookup(&p0, a).unwrap()));
        assert!(!xn(pt.lookup(a).unwrap().desc));
        assert!(!xn(pt.private_lookup(&p1, a).unwrap()));
        assert!(same(&pt, &p0, b) && same(&pt, &p0, c) && same(&pt, &p1, a));
        // A shared change (read-only) on p0's page and its neighbour reaches
        // p0's copy; p0's XN stays.
        let privs = [p0, p1];
        for va in [a, b] {
            pt.update_page_mirrored(va, |d| with_s2ap(d, S2Ap::ReadOnly), &privs, S2_XN_MASK).unwrap();
            assert_eq!(S2Attrs::from_desc(pt.lookup(va).unwrap().desc).s2ap, S2Ap::ReadOnly);
        }
        let d = pt.private_lookup(&p0, a).unwrap();
        assert!(xn(d), "{ipa_bits}: XN kept");
        assert_eq!(S2Attrs::from_desc(d).s2ap, S2Ap::ReadOnly, "{ipa_bits}");
        assert!(same(&pt, &p0, b) && same(&pt, &p1, a) && same(&pt, &p1, b), "{ipa_bits}");
        // On p1's own page too.
        pt.update_page_mirrored(c, |d| with_s2ap(d, S2Ap::ReadOnly), &privs, S2_XN_MASK).unwrap();
        assert!(same(&pt, &p1, c) && same(&pt, &p0, c));
        // Off again; then no private page: a plain copy.
        pt.update_private_page(&p0, |d| with_s2xn(d, S2Xn::Exec)).unwrap();
        assert!(same(&pt, &p0, a));
        pt.update_private_page(&p0, |d| with_s2xn(d, S2Xn::NoExec)).unwrap();
        pt.set_private_page(&mut p0, None).unwrap();
        assert!(same(&pt, &p0, a), "{ipa_bits}");
        assert_eq!(pt.update_private_page(&p0, |d| d), Err(MapError::NotMapped));
        // Unmapped pages cannot be private.
        assert_eq!(pt.set_private_page(&mut p0, Some(ram + 64 * MIB)), Err(MapError::NotMapped));
        // A permission-only change is all a private page takes.
        pt.set_private_page(&mut p0, Some(a)).unwrap();
        assert_eq!(pt.update_private_page(&p0, |d| d ^ (1 << 20)), Err(MapError::NeedsBreakBeforeMake));
    }
}

#[test]
fn break_before_make_moves_a_page() {
    let mut pt = s2(40, 2);
    pt.map(0x4000_0000, 0x4000_0000, 2 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    pt.map(0x0800_0000, 0x0800_0000, 2 * MIB, S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
    let (old, tlbi) = pt.break_page(0x4000_5123).unwrap();
    assert_eq!(old, 0x4000_57FF);
    assert_eq!(tlbi, Tlbi::Stage2Ipa { ipa: 0x4000_5000 });
    assert_eq!(pt.lookup(0x4000_5000), None, "invalid between the two steps");
    assert_eq!(pt.break_page(0x4000_5000), Err(MapError::NotMapped));
    // Execute-only at another output address (the tap's shadow page).
    let xo = S2Attrs { s2ap: S2Ap::None, ..S2Attrs::NORMAL_RW };
    let shadow = leaf_desc(0x7fe0_3000, xo.bits(), LAST_LEVEL);
    pt.make_page(0x4000_5000, shadow).unwrap();
    let l = pt.lookup(0x4000_5010).unwrap();
    assert_eq!((l.pa, l.desc), (0x7FE0_3010, 0x7FE0_373F));
    assert_eq!(S2Attrs::from_desc(l.desc).xn, S2Xn::Exec);
    assert_eq!(pt.make_page(0x4000_5000, old), Err(MapError::Overlap), "only over an invalid entry");
    // And back.
    pt.break_page(0x4000_5000).unwrap();
    pt.make_page(0x4000_5000, old).unwrap();
    assert_eq!(pt.lookup(0x4000_5000).unwrap().desc, 0x4000_57FF);
    // Neighbours untouched; blocks, holes and non-leaf descriptors refused.
    assert_eq!(pt.lookup(0x4000_4000).unwrap().desc, 0x4000_47FF);
    assert_eq!(pt.break_page(0x0800_0000), Err(MapError::NotAPage { level: 2 }));
    assert_eq!(pt.break_page(0x5000_0000), Err(MapError::NotMapped));
    assert_eq!(pt.make_page(0x5000_0000, old), Err(MapError::NotMapped));
    assert_eq!(pt.break_page(1 << 40), Err(MapError::OutOfRange));
    pt.break_page(0x4000_5000).unwrap();
    assert_eq!(pt.make_page(0x4000_5000, 0x4000_5001), Err(MapError::BadTable));
}

/// The tap's trampoline on several CPUs: a page moved in the shared tables
/// (break-before-make) is moved in every private copy of its leaf table
/// too, except in a private root whose own page it is (that CPU's own
/// descriptor: the guest's page, execute-never); a private root's own page
/// can point elsewhere (break-before-make on that root alone).
#[test]
fn moved_pages_reach_private_roots() {
    let mut pt = s2(40, 2);
    let ram = 0x4000_0000;
    pt.map(ram, ram, 4 * MIB, S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    let (v, q, far) = (ram + 0x5000, ram + 0x9000, ram + 2 * MIB + 0x3000); // v, q: one leaf table
    let own = pt.lookup(v).unwrap().desc;
    let xo = S2Attrs { s2ap: S2Ap::None, ..S2Attrs::NORMAL_RW };
    let shadow = leaf_desc(0x7fe0_3000, xo.bits(), LAST_LEVEL);
    // p0: no private page; p1: private page q (same leaf table as v); p2: v
    // itself, execute-never; p3: a page in another leaf table.
    let (mut p0, mut p1, mut p2, mut p3) = (
        pt.new_private().unwrap(),
        pt.new_private().unwrap(),
        pt.new_private().unwrap(),
        pt.new_private().unwrap(),
    );
    pt.set_private_page(&mut p0, None).unwrap();
    pt.set_private_page(&mut p1, Some(q)).unwrap();
    pt.update_private_page(&p1, |d| with_s2xn(d, S2Xn::NoExec)).unwrap();
    pt.set_private_page(&mut p2, Some(v)).unwrap();
    pt.update_private_page(&p2, |d| with_s2xn(d, S2Xn::NoExec)).unwrap();
    pt.set_private_page(&mut p3, Some(far)).unwrap();
    let privs = [p0, p1, p2, p3];
    let (old, tlbi) = pt.break_page_mirrored(v, &privs).unwrap();
    assert_eq!((old, tlbi), (own, Tlbi::Stage2Ipa { ipa: v }));
    for p in [&p0, &p1, &p3] {
        assert_eq!(pt.private_lookup(p, v), Some(0), "invalid everywhere between the steps");
    }
    assert_eq!(pt.private_lookup(&p2, v), Some(with_s2xn(own, S2Xn::NoExec)), "p2's own page is its own");
    pt.make_page_mirrored(v, shadow, &privs).unwrap();
    for p in [&p0, &p1, &p3] {
        assert_eq!(pt.private_lookup(p, v), Some(shadow));
    }
    assert_eq!(pt.lookup(v).unwrap().desc, shadow);
    assert_eq!(pt.private_lookup(&p2, v), Some(with_s2xn(own, S2Xn::NoExec)));
    // p1's own page keeps its XN; its neighbours are the shared ones.
    assert_ne!(pt.private_lookup(&p1, q).unwrap() & S2_XN_MASK, 0);
    assert_eq!(pt.private_lookup(&p1, ram + 0x6000), pt.lookup(ram + 0x6000).map(|l| l.desc));
    // A CPU's private copy of the moved page, as the guest's own page (a
    // CPU in the execute-never fallback or stepping one access there).
    let mut p4 = pt.new_private().unwrap();
    pt.set_private_page(&mut p4, Some(v)).unwrap();
    assert_eq!(pt.private_lookup(&p4, v), Some(shadow), "starts as the shared one");
    let (was, t) = pt.break_private_page(&p4).unwrap();
    assert_eq!((was, t), (shadow, Tlbi::Stage2Ipa { ipa: v }));
    assert_eq!(pt.private_lookup(&p4, v), Some(0));
    assert_eq!(pt.lookup(v).unwrap().desc, shadow, "the shared tables untouched");
    pt.make_private_page(&p4, own).unwrap();
    assert_eq!(pt.private_lookup(&p4, v), Some(own));
    assert_eq!(pt.make_private_page(&p4, own), Err(MapError::Overlap), "only over an invalid entry");
    // And back for everyone.
    let privs = [p0, p1, p2, p3, p4];
    pt.break_page_mirrored(v, &privs).unwrap();
    pt.make_page_mirrored(v, own, &privs).unwrap();
    for p in [&p0, &p1, &p3] {
        assert_eq!(pt.private_lookup(p, v), Some(own));
    }
    assert_eq!(pt.private_lookup(&p4, v), Some(own));
    assert_eq!(pt.break_private_page(&p0), Err(MapError::NotMapped), "no private page");
}
