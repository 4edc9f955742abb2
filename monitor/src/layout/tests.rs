extern crate std;

use super::*;
use crate::fdt::{discover, Platform};
use crate::pgtable::regs::stage2_regime;
use crate::pgtable::{Granularity, PageTable, S2Attrs, Table, TableAlloc};
use std::boxed::Box;
use std::vec::Vec;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const VIRT: &[u8] = include_bytes!("../../testdata/virt-gicv3.dtb");
const FVP: &[u8] = include_bytes!("../../testdata/fvp-base-revc.dtb");
/// QEMU's -kernel: porwatch at RAM base + 2 MiB; `image_size` 2 MiB.
const LOADED: Span = Span::new(0x4020_0000, 0x4040_0000);
const STATIC: u64 = 2 * MIB;

fn dtb_at(base: u64) -> Occupied {
    Occupied { span: Span::new(base, base + 0x10_0000), what: Occupant::LoaderDtb }
}

fn devices(dtb: &[u8]) -> Vec<Span> {
    let mut p = Platform::new();
    discover(dtb, &mut p).unwrap();
    p.mmio.iter().map(|r| Span::new(r.base, r.base + r.size)).collect()
}

fn req<'a>(ram: &'a [Span], devices: &'a [Span], keep: &'a [Occupied]) -> Request<'a> {
    Request { ram, loaded: LOADED, static_size: STATIC, devices, keep }
}

#[test]
fn qemu_virt_porwatch_goes_to_the_top_and_the_dtb_where_it_was_loaded() {
    let dev = devices(VIRT);
    for gib in [1u64, 2, 3, MAX_GUEST_RAM / GIB] {
        let ram = [Span::new(0x4000_0000, 0x4000_0000 + gib * GIB)];
        // -kernel: the DTB after the initrd; --secure: at the RAM base.
        for keep in [[dtb_at(0x4800_0000)], [dtb_at(0x4000_0000)]] {
            let p = plan(&req(&ram, &dev, &keep)).unwrap();
            assert_eq!(p.hyp.end, ram[0].end, "{gib} GiB");
            assert_eq!(p.hyp.start % HYP_ALIGN, 0);
            assert_eq!(p.pool, Span::new(p.hyp.start + STATIC, p.hyp.end));
            assert!(p.pool.len() >= stage2_tables(&ram, &dev) * TABLE_BYTES);
            // 2 MiB of tables per GiB of RAM, plus the devices' few: the pool
            // is within one 2 MiB block of that.
            assert!(p.pool.len() <= (2 * gib + 2) * MIB, "{gib} GiB: pool {:#x}", p.pool.len());
            assert_eq!(p.dtb_window, Span::new(0x4020_0000, 0x4040_0000));
        }
    }
}

#[test]
fn too_much_ram_is_refused_and_the_maximum_is_accepted() {
    let ram = [Span::new(0x4000_0000, 0x4000_0000 + MAX_GUEST_RAM)];
    assert!(plan(&req(&ram, &[], &[])).is_ok());
    let ram = [Span::new(0x4000_0000, 0x4000_0000 + MAX_GUEST_RAM + 4096)];
    assert_eq!(plan(&req(&ram, &[], &[])), Err(PlanError::TooMuchRam { ram: MAX_GUEST_RAM + 4096 }));
    // Counted over every range.
    let half = MAX_GUEST_RAM / 2;
    let ram = [Span::new(GIB, GIB + half), Span::new(64 * GIB, 64 * GIB + half + 4096)];
    assert!(matches!(plan(&req(&ram, &[], &[])), Err(PlanError::TooMuchRam { .. })));
    assert_eq!(plan(&req(&[], &[], &[])), Err(PlanError::NoRam));
    assert_eq!(plan(&req(&[Span::new(GIB, GIB)], &[], &[])), Err(PlanError::NoRam));
}

#[test]
fn what_the_loader_and_firmware_placed_at_the_top_is_kept() {
    let ram = [Span::new(0x4000_0000, 0x8000_0000)];
    for what in [Occupant::LoaderDtb, Occupant::Initrd, Occupant::MemReserve, Occupant::ReservedMemory] {
        let keep = [Occupied { span: Span::new(0x7ff0_0000, 0x7ff1_0000), what }];
        let p = plan(&req(&ram, &[], &keep)).unwrap();
        assert_eq!(p.hyp.end, 0x7fe0_0000, "{what:?}: just below, 2 MiB aligned");
        assert!(!p.hyp.overlaps(&keep[0].span));
    }
    // Several, one below the other: the highest place clear of all.
    let need = plan(&req(&ram, &[], &[])).unwrap().hyp.len();
    let keep = [
        Occupied { span: Span::new(0x7ff0_0000, 0x8000_0000), what: Occupant::Initrd },
        Occupied {
            span: Span::new(0x7fe0_0000 - need + 4096, 0x7fe0_0000 - need + 8192),
            what: Occupant::MemReserve,
        },
    ];
    let p = plan(&req(&ram, &[], &keep)).unwrap();
    assert!(keep.iter().all(|k| !k.span.overlaps(&p.hyp)));
    assert_eq!(p.hyp.end, align_down(keep[1].span.start, HYP_ALIGN));
}

#[test]
fn no_room_and_no_window() {
    // RAM too small for porwatch at all.
    let ram = [Span::new(0x4000_0000, 0x4040_0000)];
    assert!(matches!(plan(&req(&ram, &[], &[])), Err(PlanError::NoRoom { .. })));
    // Reserved everywhere above the loaded image.
    let ram = [Span::new(0x4000_0000, 0x4400_0000)];
    let keep = [Occupied { span: Span::new(0x4040_0000, 0x4400_0000), what: Occupant::ReservedMemory }];
    assert!(matches!(plan(&req(&ram, &[], &keep)), Err(PlanError::NoRoom { .. })));
    // Loaded exactly where it will run (the top): the window goes below,
    // and fails when that is taken.
    let ram = [Span::new(0x4000_0000, 0x4080_0000)];
    let mut r = req(&ram, &[], &[]);
    let need = plan(&r).unwrap().hyp.len();
    r.loaded = Span::new(0x4080_0000 - need, 0x4080_0000 - need + STATIC);
    let p = plan(&r).unwrap();
    assert_eq!(p.hyp.start, r.loaded.start, "no move");
    assert_eq!(p.dtb_window, Span::new(p.hyp.start - DTB_WINDOW, p.hyp.start));
    let keep = [dtb_at(p.hyp.start - MIB)];
    r.keep = &keep;
    assert_eq!(plan(&r), Err(PlanError::NoDtbWindow));
}

#[test]
fn the_loaded_image_is_never_partly_overwritten() {
    // RAM so small that the top overlaps the loaded image: porwatch does
    // not copy onto itself; it goes below, or stays exactly where it is.
    let ram = [Span::new(0x4000_0000, 0x4080_0000)];
    let mut r = req(&ram, &[], &[]);
    r.loaded = Span::new(0x4060_0000, 0x4080_0000);
    let p = plan(&r).unwrap();
    assert!(p.hyp.start == r.loaded.start || !p.hyp.overlaps(&r.loaded), "{p:?}");
}

#[test]
fn fvp_base_two_banks_porwatch_at_the_top_of_the_high_one() {
    let mut plat = Platform::new();
    discover(FVP, &mut plat).unwrap();
    let ram: Vec<Span> = plat.memory.iter().map(|m| Span::new(m.base, m.base + m.size)).collect();
    let dev = devices(FVP);
    // scripts/run-fvp: porwatch at 0x80200000, the DTB at 0x87f00000, and the
    // FVP's own /memreserve/ of the first 64 KiB of DRAM.
    let keep = [
        dtb_at(0x87f0_0000),
        Occupied { span: Span::new(0x8000_0000, 0x8001_0000), what: Occupant::MemReserve },
    ];
    let r = Request {
        ram: &ram,
        loaded: Span::new(0x8020_0000, 0x8040_0000),
        static_size: STATIC,
        devices: &dev,
        keep: &keep,
    };
    let p = plan(&r).unwrap();
    assert_eq!(p.hyp.end, 0x9_0000_0000);
    assert_eq!(p.dtb_window, Span::new(0x8020_0000, 0x8040_0000));
}

/// Tables in a Vec with fake PAs; counts what PageTable allocates.
struct Counting {
    tables: Vec<Box<Table>>,
}

/// Below 2^40, so a descriptor holds it in every geometry tested.
const FAKE_BASE: u64 = 0x10_0000_0000;

impl TableAlloc for Counting {
    fn alloc_tables(&mut self, count: usize) -> Option<u64> {
        // Like hyp's pool: aligned by index, the padding counts as used.
        while !self.tables.len().is_multiple_of(count) {
            self.tables.push(Box::new([0; 512]));
        }
        let pa = FAKE_BASE + self.tables.len() as u64 * TABLE_BYTES;
        for _ in 0..count {
            self.tables.push(Box::new([0; 512]));
        }
        Some(pa)
    }
    fn table(&self, pa: u64) -> Option<&Table> {
        self.tables.get(((pa - FAKE_BASE) / TABLE_BYTES) as usize).map(|t| &**t)
    }
    fn table_mut(&mut self, pa: u64) -> Option<&mut Table> {
        self.tables.get_mut(((pa - FAKE_BASE) / TABLE_BYTES) as usize).map(|t| &mut **t)
    }
}

/// Maps `ram` in pages and `devices` with blocks, as
/// hyp/src/arch/stage2.rs does (with `hide`, one page hidden in the first
/// device region, like the trace UART); returns the tables used below the
/// root.
fn tables_used(ipa_bits: u32, ram: &[Span], devices: &[Span], hide: bool) -> u64 {
    tables_used_with(ipa_bits, ram, devices, hide, 0)
}

/// [`tables_used`], then `privates` private roots (one per CPU).
fn tables_used_with(ipa_bits: u32, ram: &[Span], devices: &[Span], hide: bool, privates: usize) -> u64 {
    let regime = stage2_regime(ipa_bits, 5).unwrap();
    let crate::pgtable::Regime::Stage2 { concat, .. } = regime else { unreachable!() };
    let mut pt = PageTable::new(Counting { tables: Vec::new() }, regime).unwrap();
    for r in ram {
        pt.map(r.start, r.start, r.len(), S2Attrs::NORMAL_RW, Granularity::PagesOnly).unwrap();
    }
    for (i, d) in devices.iter().enumerate() {
        let hidden = if hide && i == 0 && d.len() > 4096 { Some(d.start + 4096) } else { None };
        let pieces = match hidden {
            Some(h) => [Span::new(d.start, h), Span::new(h + 4096, d.end)],
            None => [*d, Span::new(d.end, d.end)],
        };
        for p in pieces.iter().filter(|p| !p.is_empty()) {
            pt.map(p.start, p.start, p.len(), S2Attrs::DEVICE_RW, Granularity::AllowBlocks).unwrap();
        }
    }
    for _ in 0..privates {
        pt.new_private().unwrap();
    }
    pt.into_alloc().tables.len() as u64 - u64::from(concat)
}

#[test]
fn the_stage2_bound_holds_for_real_and_awkward_layouts() {
    let virt = devices(VIRT);
    let fvp = devices(FVP);
    // Awkward: unaligned ends, several GiB, crossing 512 GiB, shared slots.
    let awkward = [
        Span::new(0x0900_0000, 0x0900_1000),
        Span::new(0x0900_3000, 0x0920_5000),
        Span::new(0x3fff_f000, 0x4000_1000 + 3 * GIB),
        Span::new(0x7f_ffe0_0000, 0x80_4000_0000),
        Span::new(0x100_0000_0000, 0x100_0000_0000 + GIB),
    ];
    let cases: [(&[Span], &[Span]); 5] = [
        (&[Span::new(0x4000_0000, 0x8000_0000)], &virt),
        (&[Span::new(0x4000_0000, 0x1_0000_0000)], &virt),
        (&[Span::new(0x4000_1000, 0x2_3fff_f000)], &virt),
        (&[Span::new(0x8000_0000, 0x1_0000_0000), Span::new(0x8_8000_0000, 0x9_0000_0000)], &fvp),
        (&[Span::new(0x2_0000_0000, 0x2_0010_0000)], &awkward),
    ];
    for (ram, dev) in cases {
        for ipa_bits in [40, 44, 48] {
            let fits = |v: &[Span]| v.iter().copied().filter(|s| s.end <= 1 << ipa_bits).collect::<Vec<_>>();
            let (ram, dev) = (fits(ram), fits(dev));
            let bound = stage2_tables(&ram, &dev);
            // Below the root, without hidden pages: within the bound less
            // its fixed allowances; with the hidden page: within the bound.
            let used = tables_used(ipa_bits, &ram, &dev, false);
            let tight = bound - ROOT_TABLES - HIDDEN_PAGE_SLACK - PRIVATE_ROOT_TABLES;
            assert!(used <= tight, "{ipa_bits} bits: {used} tables used, bound {tight}; ram {ram:x?}");
            // Not wasteful: a level-1 table per 512 GiB counted under a
            // level-1 root, and RAM and devices sharing a slot.
            assert!(tight - used <= 3, "{ipa_bits} bits: {used} used, bound {tight}");
            let hidden = tables_used(ipa_bits, &ram, &dev, true);
            assert!(
                hidden <= bound - ROOT_TABLES - PRIVATE_ROOT_TABLES,
                "{ipa_bits} bits: {hidden} used, bound {bound}"
            );
            // Every CPU's private root fits too.
            let all = tables_used_with(ipa_bits, &ram, &dev, true, crate::cpus::MAX_CPUS);
            assert!(
                all <= bound - ROOT_TABLES,
                "{ipa_bits} bits: {all} used with private roots, bound {bound}"
            );
        }
    }
}

#[test]
fn messages_name_the_cause() {
    let s = std::format!("{}", PlanError::TooMuchRam { ram: 5 * GIB });
    assert!(s.contains("5120 MiB") && s.contains(&std::format!("({} MiB)", MAX_GUEST_RAM >> 20)), "{s}");
    assert!(std::format!("{}", PlanError::NoRoom { need: 6 * MIB }).contains("6 MiB"));
}
