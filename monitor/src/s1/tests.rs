//! Walks, tracker and overlay rule over guest page tables built by
//! `fixtures`.

extern crate std;

use std::collections::{BTreeMap, BTreeSet};
use std::vec;
use std::vec::Vec;

use super::desc::{self, PAGE_SIZE};
use super::fixtures::*;
use super::overlay::{self, perm_field, OverlayRegs, Privilege, POE_RWX, TCR2_E0POE, TCR2_PIE, TCR2_POE};
use super::regime::{Half, Layout, Regime, Ttbr, Unsupported};
use super::tracker::{split_store, Action, RootMask, Tracker};
use super::walk::{for_each_table, walk, walk_regime, GuestMem, TablePage, Visit, WalkError};

const K: u64 = 0xFFFF_0000_0000_0000; // 48-bit kernel base
const K52: u64 = 0xFFF0_0000_0000_0000; // 52-bit kernel base

/// Every table reachable from `root` (each once).
fn tables_of(mem: &FakeMem, root: u64, l: &Layout) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    for_each_table(
        mem,
        root,
        l,
        100_000,
        |t: TablePage| {
            if seen.insert(t.ipa) {
                Visit::Descend
            } else {
                Visit::Skip
            }
        },
    );
    seen
}

fn pages(set: &BTreeSet<u64>) -> BTreeSet<u64> {
    set.iter().map(|t| t & !(PAGE_SIZE - 1)).collect()
}

// -------------------------------------------------------------------------
// Walks.

#[test]
fn walk_48bit_pages_and_blocks() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    let page_at = t.map(K + 0x4020_1000, 0x4020_1000, 3, KDATA | pkey(1));
    let pmd_at = t.map(K + 0x4060_0000, 0x4060_0000, 2, KDATA | pkey(2));
    let pud_at = t.map(K + 0x8000_0000, 0x8000_0000, 1, KDATA);
    let root = t.root;

    let leaf = walk(&mem, K + 0x4020_1234, root, &l).unwrap();
    assert_eq!((leaf.level, leaf.size), (3, 4096));
    assert_eq!(leaf.output_address, 0x4020_1234);
    assert_eq!(leaf.entry_ipa(), page_at);
    assert_eq!(leaf.index, 1);
    assert_eq!(leaf.table_ipa, page_at & !0xFFF);
    assert_eq!(leaf.poindex(), 1);
    assert_eq!(leaf.desc, mem.read(page_at));

    let leaf = walk(&mem, K + 0x4071_2345, root, &l).unwrap();
    assert_eq!((leaf.level, leaf.size, leaf.poindex()), (2, 2 << 20, 2));
    assert_eq!(leaf.output_address, 0x4071_2345);
    assert_eq!(leaf.entry_ipa(), pmd_at);

    let leaf = walk(&mem, K + 0xBFFF_FFF8, root, &l).unwrap();
    assert_eq!((leaf.level, leaf.size, leaf.poindex()), (1, 1 << 30, 0));
    assert_eq!(leaf.output_address, 0xBFFF_FFF8);
    assert_eq!(leaf.entry_ipa(), pud_at);
}

#[test]
fn walk_ttbr0_with_tbi_and_39bit() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let mut t = Tables::new(&mut mem, l);
    t.map(0x0000_7FFF_F000_0000, 0x4300_0000, 3, KDATA | pkey(3));
    let root = t.root;
    // TBI0: a tagged pointer walks like the untagged one.
    let leaf = walk(&mem, 0x3400_7FFF_F000_0010, root, &l).unwrap();
    assert_eq!((leaf.output_address, leaf.poindex()), (0x4300_0010, 3));
    // 39-bit, 3 levels: start at level 1.
    let l = l39(Half::Ttbr0);
    let mut t = Tables::new(&mut mem, l);
    t.map(0x0000_0040_0000_0000 - 0x1000, 0x4400_0000, 3, KDATA);
    t.map(0x20_0000, 0x4420_0000, 2, KDATA);
    let root = t.root;
    assert_eq!(walk(&mem, 0x0000_003F_FFFF_F008, root, &l).unwrap().output_address, 0x4400_0008);
    assert_eq!(walk(&mem, 0x2F_FFFF, root, &l).unwrap().level, 2);
    assert_eq!(tables_of(&mem, root, &l).len(), 4);
    // Beyond 39 bits is out of range.
    assert_eq!(walk(&mem, 0x0000_0080_0000_0000, root, &l), Err(WalkError::OutOfRange));
}

#[test]
fn walk_errors() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    t.map(K + 0x4020_1000, 0x4020_1000, 3, KDATA);
    let root = t.root;
    // Unmapped neighbour page: invalid level-3 descriptor.
    match walk(&mem, K + 0x4020_2000, root, &l) {
        Err(WalkError::Translation { level: 3, index: 2, desc: 0, .. }) => {}
        e => panic!("{e:?}"),
    }
    // Nothing at level 1 for another GiB; nothing at level 0 elsewhere.
    assert!(matches!(walk(&mem, K + 0x1_4020_0000, root, &l), Err(WalkError::Translation { level: 1, .. })));
    assert!(matches!(
        walk(&mem, 0xFFFF_8000_0000_0000, root, &l),
        Err(WalkError::Translation { level: 0, .. })
    ));
    // The other half and non-canonical addresses.
    assert_eq!(walk(&mem, 0x4020_1000, root, &l), Err(WalkError::OutOfRange));
    assert_eq!(walk(&mem, 0xFFFE_FFFF_FFFF_F000, root, &l), Err(WalkError::OutOfRange));
    assert_eq!(walk(&mem, 0x12FF_0000_4020_1000, root, &l), Err(WalkError::OutOfRange)); // no TBI1
                                                                                         // A level-0 block is reserved without DS; level-3 type 0b01 too.
    let l0e = root + l.index(K + 0x80_0000_0000, 0) as u64 * 8;
    mem.write(l0e, 0x0000_0080_0000_0401); // type 0b01 at level 0
    assert!(matches!(walk(&mem, K + 0x80_0000_0000, root, &l), Err(WalkError::Translation { level: 0, .. })));
    let mut t = Tables::at(&mut mem, l, root);
    let pte = t.entry(K + 0x4020_3000, 3);
    mem.write(pte, 0x4020_3000 | 0x401);
    assert!(matches!(walk(&mem, K + 0x4020_3000, root, &l), Err(WalkError::Translation { level: 3, .. })));
    // A table descriptor pointing outside RAM: the walk aborts there.
    let mut t = Tables::at(&mut mem, l, root);
    let pud = t.entry(K + 0x2_0000_0000, 1);
    mem.write(pud, desc::make_table(0x1000_0000, false));
    assert_eq!(
        walk(&mem, K + 0x2_0000_0000, root, &l),
        Err(WalkError::Unreadable { level: 2, ipa: 0x1000_0000 })
    );
    // EPD1: disabled.
    let mut off = l;
    off.enabled = false;
    assert_eq!(walk(&mem, K + 0x4020_1000, root, &off), Err(WalkError::Disabled));
    // IPS 40 bits: a table above 2^40 is an address size fault.
    let mut small = l;
    small.oa_bits = 40;
    mem.write(pud, desc::make_table(0x100_0000_0000, false));
    assert_eq!(walk(&mem, K + 0x2_0000_0000, root, &small), Err(WalkError::AddressSize { level: 1 }));
    assert_eq!(walk(&mem, K + 0x4020_1000, 1 << 41, &small), Err(WalkError::AddressSize { level: 0 }));
}

#[test]
fn walk_52bit_lpa2_five_levels() {
    let mut mem = FakeMem::high();
    let l = l52(Half::Ttbr1);
    assert_eq!((l.start_level, l.root_entries()), (-1, 16));
    let mut t = Tables::new(&mut mem, l);
    let va = K52 + 0x000F_8000_4020_1000;
    let oa = 0x000E_0000_0001_3000; // output bits [51:48] and [49:48] set
    let at = t.map(va, oa, 3, KDATA_LPA2 | pkey(1));
    let blk_va = K52 + 0x8_0000_0000_0000; // level-0 index 16 of root entry 8
    t.map(blk_va, 0x000B_0000_0000_0000, 0, KDATA_LPA2 | pkey(4));
    let root = t.root;
    // Tables live above 2^50: descriptor bits [9:8] carry address [51:50].
    let root_desc = mem.read(root + l.index(va, -1) as u64 * 8);
    assert_eq!(root_desc & (0b11 << 8), 0b11 << 8);
    let leaf = walk(&mem, va + 0x10, root, &l).unwrap();
    assert_eq!((leaf.level, leaf.output_address, leaf.poindex()), (3, oa + 0x10, 1));
    assert_eq!(leaf.entry_ipa(), at);
    let leaf = walk(&mem, blk_va + 0x1234_5678, root, &l).unwrap();
    assert_eq!((leaf.level, leaf.size, leaf.poindex()), (0, 512 << 30, 4));
    assert_eq!(leaf.output_address, 0x000B_0000_1234_5678);
    // Five levels of tables for the page, one more level-0 table for the block.
    assert_eq!(tables_of(&mem, root, &l).len(), 6);
    // The same tree through TTBR1_EL1 with bits [51:48] in TTBR[5:2].
    let regime = Regime::from_tcr(tcr(12, 12, true));
    let ttbr1 = Ttbr::encode(root, 0x42, true);
    assert_eq!(walk_regime(&mem, va, &regime, 0, ttbr1).unwrap().entry_ipa(), at);
    // A block at level -1 is reserved.
    mem.write(root + 15 * 8, 0x401);
    assert!(matches!(
        walk(&mem, K52 | (15 << 48), root, &l),
        Err(WalkError::Translation { level: -1, index: 15, .. })
    ));
}

#[test]
fn walk_52bit_sub_page_root() {
    // Two 16-entry (128-byte) PGDs in one page, as Linux allocates user
    // PGDs from a slab with 52-bit VAs.
    let mut mem = FakeMem::high();
    let l = l52(Half::Ttbr0);
    let page = mem.alloc();
    let (a, b) = (page, page + 0x80);
    Tables::at(&mut mem, l, a).map(0x1000, 0x000F_0000_3000_0000, 3, KDATA_LPA2);
    Tables::at(&mut mem, l, b).map(0x1000, 0x000F_0000_3100_0000, 3, KDATA_LPA2 | pkey(2));
    assert_eq!(walk(&mem, 0x1008, a, &l).unwrap().output_address, 0x000F_0000_3000_0008);
    let leaf = walk(&mem, 0x1008, b, &l).unwrap();
    assert_eq!((leaf.output_address, leaf.poindex()), (0x000F_0000_3100_0008, 2));
    // TTBR low bits are RES0 and ignored as the CPU does.
    assert_eq!(walk(&mem, 0x1008, b + 0x40, &l).unwrap().poindex(), 2);
}

#[test]
fn walk_regime_selects_half_and_reports_unsupported() {
    let mut mem = FakeMem::low();
    let (l0, l1) = (l48(Half::Ttbr0), l48(Half::Ttbr1));
    let mut u = Tables::new(&mut mem, l0);
    u.map(0x40_0000, 0x4500_0000, 3, KDATA | pkey(5));
    let uroot = u.root;
    let mut k = Tables::new(&mut mem, l1);
    k.map(K + 0x40_0000, 0x4600_0000, 3, KDATA | pkey(1));
    let kroot = k.root;
    let r = Regime::from_tcr(tcr(16, 16, false));
    let t0 = Ttbr::encode(uroot, 3, false);
    let t1 = Ttbr::encode(kroot, 0, false);
    assert_eq!(walk_regime(&mem, 0x40_0000, &r, t0, t1).unwrap().poindex(), 5);
    assert_eq!(walk_regime(&mem, K + 0x40_0000, &r, t0, t1).unwrap().poindex(), 1);
    // TG1 = 64 KiB: not walked.
    let r = Regime::from_tcr(tcr(16, 16, false) | (0b11 << 30));
    assert_eq!(
        walk_regime(&mem, K + 0x40_0000, &r, t0, t1),
        Err(WalkError::Unsupported(Unsupported::Granule64K))
    );
    // EPD0.
    let r = Regime::from_tcr(tcr(16, 16, false) | super::regime::TCR_EPD0);
    assert_eq!(walk_regime(&mem, 0x40_0000, &r, t0, t1), Err(WalkError::Disabled));
}

#[test]
fn for_each_table_bounds_and_sharing() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let mut t = Tables::new(&mut mem, l);
    t.map_pages(0x1000, 0x4500_0000, 4, KDATA);
    t.map(0x4000_0000, 0x4600_0000, 3, KDATA);
    let root = t.root;
    // Share the first PTE table from a second PMD entry.
    let pte = t.table(0x1000, 3);
    let pmd = t.table(0x1000, 2);
    mem.write(pmd + 8 * 5, desc::make_table(pte, false));
    let all = tables_of(&mem, root, &l);
    assert_eq!(all.len(), 6); // root, PUD, PMD, PTE, PMD', PTE'
                              // Without a visited check the shared table is offered twice.
    let mut n = 0;
    let r = for_each_table(&mem, root, &l, 100, |_| {
        n += 1;
        Visit::Descend
    });
    assert_eq!((n, r.visited, r.truncated, r.stopped), (7, 7, false, false));
    // The bound.
    let r = for_each_table(&mem, root, &l, 3, |_| Visit::Descend);
    assert_eq!((r.visited, r.truncated), (3, true));
    // Stop.
    let r = for_each_table(&mem, root, &l, 100, |t| if t.level == 2 { Visit::Stop } else { Visit::Descend });
    assert!(r.stopped);
    assert_eq!(r.visited, 3);
    // Parents are reported.
    let mut parents = Vec::new();
    for_each_table(&mem, root, &l, 100, |t| {
        parents.push((t.ipa, t.level, t.parent));
        Visit::Descend
    });
    assert_eq!(parents[0], (root, 0, None));
    assert!(parents.contains(&(pte, 3, Some((pmd, 5)))));
    // A table descriptor into non-RAM: offered, then abandoned when read.
    mem.write(root + 8 * 100, desc::make_table(0x1000, false));
    let r = for_each_table(&mem, root, &l, 100, |_| Visit::Descend);
    assert_eq!(r.unreadable, 1);
    // A loop (the root pointing at itself) terminates.
    mem.write(root + 8 * 101, desc::make_table(root, false));
    let r = for_each_table(&mem, root, &l, 10_000, |_| Visit::Descend);
    assert!(!r.truncated && r.visited < 100);
}

// -------------------------------------------------------------------------
// Tracker.

type T = Tracker<256>;

/// A kernel tree: linear map pages in two PTE tables, a 2 MiB and a 1 GiB
/// block.
fn kernel_tree(mem: &mut FakeMem) -> u64 {
    let mut t = Tables::new(mem, l48(Half::Ttbr1));
    t.map_pages(K + 0x4000_0000, 0x4000_0000, 8, KDATA);
    t.map_pages(K + 0x4020_0000, 0x4020_0000, 8, KDATA | pkey(1));
    t.map(K + 0x4060_0000, 0x4060_0000, 2, KDATA);
    t.map(K + 0xC000_0000, 0xC000_0000, 1, KDATA);
    t.root
}

#[test]
fn kernel_root_protects_every_table_once() {
    let mut mem = FakeMem::low();
    let root = kernel_tree(&mut mem);
    let l = l48(Half::Ttbr1);
    let mut tr = T::new(8);
    let mut log = Log::default();
    let c = tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    assert!(c.walked && c.slot.is_none() && c.evicted.is_none());
    let want = tables_of(&mem, root, &l);
    assert_eq!(want.len(), 5); // root, PUD, PMD, 2 PTE
    assert_eq!(log.protected, pages(&want));
    assert_eq!(log.count(|a| matches!(a, Action::Protect(_))), 5);
    let s = tr.stats();
    assert_eq!((s.tables, s.pages, s.max_tables, s.complete), (5, 5, 5, true));
    let info = tr.is_tracked(root + 0x808).unwrap();
    assert_eq!((info.ipa, info.level, info.entries, info.refs), (root, 0, 512, 1));
    assert!(info.roots.kernel() && !info.roots.user());
    assert_eq!(tr.kernel_root(), Some(root));
    let pte = Tables::at(&mut mem, l, root).table(K + 0x4020_0000, 3);
    assert_eq!(tr.is_tracked(pte + 0xFF8).unwrap().level, 3);
    assert!(tr.is_tracked(0x4000_0000).is_none());
    assert!(tr.is_page_protected(pte + 0x10));
    // An ASID change (same table) costs nothing.
    log.take();
    let c = tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    assert!(!c.walked);
    assert!(log.take().is_empty());
}

#[test]
fn link_unlink_relink_subtrees() {
    let mut mem = FakeMem::low();
    let root = kernel_tree(&mut mem);
    let l = l48(Half::Ttbr1);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    log.take();
    // The tree's last-level tables, and nothing else, came as ProtectLeaf.
    assert!(!log.leaf_protects.is_empty());
    assert!(log.leaf_protects.iter().all(|&p| tr.is_leaf_page(p) && tr.is_tracked(p).unwrap().level == 3));
    let upper = tr.tables().filter(|t| t.level < 3).count();
    assert_eq!(log.leaf_protects.len() + upper, tr.stats().pages);
    log.leaf_protects.clear();
    // Build a new PMD + PTE subtree off-line (unprotected pages), then link
    // it with one store into the tracked PUD.
    let pmd = mem.alloc();
    let pte = mem.alloc();
    mem.write(pmd + 8 * 3, desc::make_table(pte, false));
    mem.write(pte, desc::make_leaf(0x4800_0000, 3, KDATA, false));
    let pud = Tables::at(&mut mem, l, root).table(K + 0x4000_0000, 1);
    let slot = pud + 8 * 2; // K + 2 GiB
    let old = mem.read(slot);
    let new = desc::make_table(pmd, false);
    mem.write(slot, new);
    let eff = tr.on_write(pud, 2, old, new, &mem, &mut log.sink());
    assert_eq!(eff.linked, Some(pmd));
    assert_eq!(eff.unlinked, None);
    assert_eq!(eff.table.unwrap().level, 1);
    assert_eq!(log.take(), vec![Action::Protect(pmd), Action::Protect(pte)]);
    // Only the last-level table's page comes as ProtectLeaf (a hypervisor
    // may leave it writable while no overlay can deny a store).
    assert_eq!(log.leaf_protects, vec![pte]);
    assert_eq!(tr.is_tracked(pte).unwrap().level, 3);
    // Only the last-level table's page takes stores without the tracker.
    assert!(tr.is_leaf_page(pte) && !tr.is_leaf_page(pmd) && !tr.is_leaf_page(pud));
    assert!(!tr.is_leaf_page(pte + 8) && !tr.is_leaf_page(0x4000_0000));
    assert_eq!(tr.is_tracked(pmd).unwrap().roots, RootMask::KERNEL);
    // Attribute-only change of the table descriptor (PXNTable): nothing.
    let eff = tr.on_write(pud, 2, new, new | desc::PXN_TABLE, &mem, &mut log.sink());
    assert_eq!((eff.linked, eff.unlinked), (None, None));
    mem.write(slot, new | desc::PXN_TABLE);
    // Leaf writes in the PTE table: nothing.
    let eff = tr.on_write(pte, 0, mem.read(pte), 0, &mem, &mut log.sink());
    assert!(eff.table.is_some() && eff.unlinked.is_none());
    assert!(log.take().is_empty());
    // Clear the PUD entry: the whole subtree goes.
    let old = mem.read(slot);
    mem.write(slot, 0);
    let eff = tr.on_write(pud, 2, old, 0, &mem, &mut log.sink());
    assert_eq!(eff.unlinked, Some(pmd));
    assert_eq!(log.take(), vec![Action::Unprotect(pmd), Action::Unprotect(pte)]);
    assert!(tr.is_tracked(pmd).is_none() && tr.is_tracked(pte).is_none());
    assert!(!tr.is_leaf_page(pte));
    // Relink at another index.
    mem.write(pud + 8 * 7, new);
    tr.on_write(pud, 7, 0, new, &mem, &mut log.sink());
    assert_eq!(log.take().len(), 2);
    // Move it: link at 8 then unlink at 7 keeps it protected throughout.
    mem.write(pud + 8 * 8, new);
    tr.on_write(pud, 8, 0, new, &mem, &mut log.sink());
    assert_eq!(tr.is_tracked(pmd).unwrap().refs, 2);
    mem.write(pud + 8 * 7, 0);
    tr.on_write(pud, 7, new, 0, &mem, &mut log.sink());
    assert!(log.take().is_empty());
    assert_eq!(tr.is_tracked(pmd).unwrap().refs, 1);
    // Re-point a descriptor from one table to another in one store.
    let pmd2 = mem.alloc();
    let new2 = desc::make_table(pmd2, false);
    mem.write(pud + 8 * 8, new2);
    let eff = tr.on_write(pud, 8, new, new2, &mem, &mut log.sink());
    assert_eq!((eff.linked, eff.unlinked), (Some(pmd2), Some(pmd)));
    assert_eq!(log.take(), vec![Action::Protect(pmd2), Action::Unprotect(pmd), Action::Unprotect(pte)]);
    // Untracked table, out-of-range index: no effect.
    assert_eq!(tr.on_write(0x4000_0000, 0, 0, new, &mem, &mut log.sink()).table, None);
    assert!(tr.on_write(pud, 600, 0, new, &mem, &mut log.sink()).linked.is_none());
    assert!(tr.stats().complete);
}

#[test]
fn shared_subtables_across_ttbr0_roots() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let mut a = Tables::new(&mut mem, l);
    a.map_pages(0x40_0000, 0x4500_0000, 2, KDATA);
    let (ra, pud_a) = (a.root, a.table(0x40_0000, 1));
    let mut b = Tables::new(&mut mem, l);
    b.map(0x7F00_0000_0000, 0x4600_0000, 3, KDATA);
    let rb = b.root;
    // B shares A's PUD (and everything below it) at its index 0.
    mem.write(rb, desc::make_table(pud_a, false));
    let mut tr = T::new(8);
    let mut log = Log::default();
    let ca = tr.set_root(Half::Ttbr0, ra, &l, &mem, &mut log.sink());
    let cb = tr.set_root(Half::Ttbr0, rb, &l, &mem, &mut log.sink());
    assert_eq!((ca.slot, cb.slot), (Some(0), Some(1)));
    let shared = tr.is_tracked(pud_a).unwrap();
    assert_eq!(shared.refs, 2);
    assert_eq!(shared.roots, RootMask(RootMask::ttbr0_slot(0).0 | RootMask::ttbr0_slot(1).0));
    assert_eq!(shared.roots.ttbr0_slots(), 0b11);
    let pte_a = Tables::at(&mut mem, l, ra).table(0x40_0000, 3);
    assert_eq!(tr.is_tracked(pte_a).unwrap().roots.ttbr0_slots(), 0b11);
    let all: BTreeSet<u64> = tables_of(&mem, ra, &l).union(&tables_of(&mem, rb, &l)).copied().collect();
    assert_eq!(log.protected, pages(&all));
    // Unlink the shared PUD from B: still referenced by A.
    log.take();
    mem.write(rb, 0);
    tr.on_write(rb, 0, desc::make_table(pud_a, false), 0, &mem, &mut log.sink());
    assert!(log.take().is_empty());
    assert_eq!(tr.is_tracked(pud_a).unwrap().refs, 1);
    // Relink into B, then drop A: the shared part stays (B), A's root goes.
    mem.write(rb, desc::make_table(pud_a, false));
    tr.on_write(rb, 0, 0, desc::make_table(pud_a, false), &mem, &mut log.sink());
    assert!(tr.drop_root(Half::Ttbr0, ra, &mem, &mut log.sink()));
    assert_eq!(log.take(), vec![Action::Unprotect(ra)]);
    let info = tr.is_tracked(pud_a).unwrap();
    assert_eq!(info.refs, 1);
    assert_eq!(info.roots.ttbr0_slots(), 0b10, "root bit of the dropped slot cleared");
    assert!(!tr.drop_root(Half::Ttbr0, ra, &mem, &mut log.sink()));
    // Drop B: everything goes.
    assert!(tr.drop_root(Half::Ttbr0, rb, &mem, &mut log.sink()));
    assert!(log.protected.is_empty());
    assert_eq!(tr.stats().tables, 0);
}

#[test]
fn ttbr0_lru_bound() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let roots: Vec<u64> = (0..4)
        .map(|i| {
            let mut t = Tables::new(&mut mem, l);
            t.map(0x40_0000 + i * 0x1000, 0x4500_0000, 3, KDATA);
            t.root
        })
        .collect();
    let mut tr = T::new(2);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, roots[0], &l, &mem, &mut log.sink());
    tr.set_root(Half::Ttbr0, roots[1], &l, &mem, &mut log.sink());
    assert_eq!(log.protected.len(), 8);
    log.take();
    // A third address space evicts the least recently used (roots[0]).
    let c = tr.set_root(Half::Ttbr0, roots[2], &l, &mem, &mut log.sink());
    assert_eq!((c.slot, c.evicted), (Some(0), Some(roots[0])));
    let acts = log.take();
    assert_eq!(acts[0], Action::RootDropped { root_ipa: roots[0], slot: 0 });
    assert_eq!(acts.iter().filter(|a| matches!(a, Action::Unprotect(_))).count(), 4);
    assert_eq!(acts.iter().filter(|a| matches!(a, Action::Protect(_))).count(), 4);
    assert!(tables_of(&mem, roots[0], &l).iter().all(|t| tr.is_tracked(*t).is_none()));
    // Switching back to a tracked space only refreshes its age.
    let c = tr.set_root(Half::Ttbr0, roots[1], &l, &mem, &mut log.sink());
    assert_eq!((c.slot, c.walked, c.evicted), (Some(1), false, None));
    assert!(log.take().is_empty());
    // roots[2] is now the oldest.
    let c = tr.set_root(Half::Ttbr0, roots[3], &l, &mem, &mut log.sink());
    assert_eq!(c.evicted, Some(roots[2]));
    let s = tr.stats();
    assert_eq!((s.dropped_roots, s.ttbr0_roots, s.ttbr0_bound), (2, 2, 2));
    let held: Vec<u64> = tr.ttbr0_roots().map(|(_, r)| r).collect();
    assert_eq!(held, vec![roots[3], roots[1]]);
    assert_eq!(tr.ttbr0_root(1), Some(roots[1]));
    assert_eq!(tr.ttbr0_root(5), None);
    // The bound is clamped to 1..=31.
    assert_eq!(Tracker::<4>::new(0).stats().ttbr0_bound, 1);
    assert_eq!(Tracker::<4>::new(1000).stats().ttbr0_bound, 31);
}

#[test]
fn capacity_overflow_is_explicit() {
    let mut mem = FakeMem::low();
    let root = kernel_tree(&mut mem); // 5 tables
    let l = l48(Half::Ttbr1);
    let mut tr = Tracker::<3>::new(1);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    let overflows: Vec<Action> =
        log.actions.iter().filter(|a| matches!(a, Action::Overflow { .. })).copied().collect();
    assert_eq!(overflows.len(), 2);
    assert!(matches!(overflows[0], Action::Overflow { level: 3, .. }));
    let s = tr.stats();
    assert_eq!((s.tables, s.capacity, s.overflows, s.complete), (3, 3, 2, false));
    assert_eq!(log.protected.len(), 3);
    // Unlink the PMD (with its two untracked PTE tables) and rebuild: the
    // smaller tree fits and the tracker is complete again.
    let pud = Tables::at(&mut mem, l, root).table(K + 0x4000_0000, 1);
    let old = mem.read(pud + 8);
    mem.write(pud + 8, 0);
    tr.on_write(pud, 1, old, 0, &mem, &mut log.sink());
    assert_eq!(tr.stats().tables, 2);
    tr.rebuild(&mem, &mut log.sink());
    assert!(tr.stats().complete);
    assert_eq!(log.protected, pages(&tables_of(&mem, root, &l)));
    // Tracker<0> overflows on the root itself, without panicking.
    let mut z = Tracker::<0>::new(1);
    let mut zl = Log::default();
    z.set_root(Half::Ttbr1, root, &l, &mem, &mut zl.sink());
    assert_eq!(zl.actions, vec![Action::Overflow { table_ipa: root, level: 0 }]);
}

#[test]
fn rebuild_after_overflow_uses_stale_slots() {
    // Full set, then the tree changes so that a rebuild needs different
    // tables: stale entries are evicted to make room, nothing duplicates.
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    t.map(K + 0x1000, 0x4000_0000, 3, KDATA);
    let root = t.root;
    let mut tr = Tracker::<4>::new(1);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    assert_eq!(tr.stats().tables, 4);
    // Replace the level-0 entry behind the tracker's back (as if missed).
    let mut t2 = Tables::at(&mut mem, l, root);
    t2.map(K + 0x80_0000_0000 + 0x1000, 0x4100_0000, 3, KDATA);
    mem.write(root + l.index(K, 0) as u64 * 8, 0);
    tr.rebuild(&mem, &mut log.sink());
    assert!(tr.stats().complete);
    assert_eq!(log.protected, pages(&tables_of(&mem, root, &l)));
    assert_eq!(tr.stats().tables, 4);
}

#[test]
fn stores_are_split_per_descriptor() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    t.map(K + 0x1000, 0x4000_0000, 3, KDATA);
    let root = t.root;
    let pud = t.table(K, 1);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    log.take();
    let tables: Vec<u64> = (0..4).map(|_| mem.alloc()).collect();

    // STP of two table descriptors into PUD entries 4 and 5 (16 bytes).
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&desc::make_table(tables[0], false).to_le_bytes());
    bytes.extend_from_slice(&desc::make_table(tables[1], false).to_le_bytes());
    let old = mem.store(pud + 32, &bytes);
    let e = tr.on_store(pud + 32, &old, &bytes, &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.tracked, e.linked, e.unlinked), (2, 2, 2, 0));
    assert_eq!(log.take(), vec![Action::Protect(tables[0]), Action::Protect(tables[1])]);

    // STR W to the lower half of entry 4: re-point it to tables[2]
    // (address bits [31:12] live in the low word).
    let lo = (desc::make_table(tables[2], false) as u32).to_le_bytes();
    let old = mem.store(pud + 32, &lo);
    let e = tr.on_store(pud + 32, &old, &lo, &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.linked, e.unlinked), (1, 1, 1));
    assert_eq!(log.take(), vec![Action::Protect(tables[2]), Action::Unprotect(tables[0])]);

    // STR W to the upper half of entry 5: set PXNTable/UXNTable only.
    let hi = (((mem.read(pud + 40) | desc::PXN_TABLE | desc::UXN_TABLE) >> 32) as u32).to_le_bytes();
    let old = mem.store(pud + 44, &hi);
    let e = tr.on_store(pud + 44, &old, &hi, &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.tracked, e.linked, e.unlinked), (1, 1, 0, 0));
    assert!(log.take().is_empty());

    // STRB clearing the valid bit of entry 5.
    let b = [(mem.read(pud + 40) as u8) & !1];
    let old = mem.store(pud + 40, &b);
    let e = tr.on_store(pud + 40, &old, &b, &mem, &mut log.sink());
    assert_eq!(e.unlinked, 1);
    assert_eq!(log.take(), vec![Action::Unprotect(tables[1])]);

    // Unaligned STP (16 bytes at +4): touches three descriptors (6, 7, 8).
    let mut img = [0u8; 24];
    img[..8].copy_from_slice(&mem.read(pud + 48).to_le_bytes());
    img[8..16].copy_from_slice(&desc::make_table(tables[3], false).to_le_bytes());
    img[16..].copy_from_slice(&desc::make_table(tables[0], false).to_le_bytes());
    // Entry 6 keeps its bytes [3:0]; the store writes bytes 4..20.
    let old = mem.store(pud + 52, &img[4..20]);
    let e = tr.on_store(pud + 52, &old, &img[4..20], &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.tracked), (3, 3));
    // Entry 7 got a full descriptor; entry 8 only its low half (bits 31:0)
    // on top of 0: that is still a valid table descriptor (addresses < 4 GiB).
    assert_eq!(e.linked, 2);
    assert_eq!(mem.read(pud + 64), desc::make_table(tables[0], false));
    assert_eq!(log.take(), vec![Action::Protect(tables[3]), Action::Protect(tables[0])]);

    // DC ZVA of 64 bytes over entries 0..8: entry 0 (the PMD of K+0x1000)
    // and entries 4, 7 are table descriptors; entry 5 is invalid now.
    let pmd = Tables::at(&mut mem, l, root).table(K, 2);
    let pte = Tables::at(&mut mem, l, root).table(K, 3);
    let zeros = [0u8; 64];
    let old = mem.store(pud, &zeros);
    let e = tr.on_store(pud, &old, &zeros, &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.tracked, e.unlinked, e.linked), (8, 8, 3, 0));
    let gone: BTreeSet<Action> = log.take().into_iter().collect();
    let want: BTreeSet<Action> =
        [pmd, pte, tables[2], tables[3]].iter().map(|&p| Action::Unprotect(p)).collect();
    assert_eq!(gone, want);
    // Entry 8 is outside the 64 bytes.
    assert!(tr.is_tracked(tables[0]).is_some());
    assert!(tr.stats().complete);

    // A store outside any tracked table, and mismatched lengths.
    let e = tr.on_store(0x4000_0000, &[0; 8], &[1; 4], &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.tracked, e.length_mismatch), (1, 0, true));
}

#[test]
fn split_store_merges_partial_descriptors() {
    let mut mem = FakeMem::low();
    let p = mem.alloc();
    mem.write(p, 0x1122_3344_5566_7788);
    mem.write(p + 8, 0x99AA_BBCC_DDEE_FF00);
    // STRH at +6: bytes 6 and 7 of the first descriptor.
    let w: Vec<_> = split_store(p + 6, &[0x22, 0x11], &[0xCD, 0xAB], &mem).collect();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].ipa, w[0].offset, w[0].len), (p, 6, 2));
    assert_eq!(w[0].old, 0x1122_3344_5566_7788);
    assert_eq!(w[0].new, 0xABCD_3344_5566_7788);
    // A 4-byte store straddling two descriptors.
    let w: Vec<_> = split_store(p + 6, &[0x22, 0x11, 0x00, 0xFF], &[1, 2, 3, 4], &mem).collect();
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].new, 0x0201_3344_5566_7788);
    assert_eq!((w[1].ipa, w[1].offset, w[1].len), (p + 8, 0, 2));
    assert_eq!(w[1].new, 0x99AA_BBCC_DDEE_0403);
    // Empty store; partial store to unreadable memory.
    assert_eq!(split_store(p, &[], &[], &mem).count(), 0);
    let w: Vec<_> = split_store(0x1000_0004, &[0; 4], &[0xFF; 4], &mem).collect();
    assert!(w[0].unreadable);
    assert_eq!(w[0].new, 0xFFFF_FFFF_0000_0000);
    // Full descriptors need no read.
    let w: Vec<_> = split_store(0x1000_0000, &[0; 8], &[0xFF; 8], &mem).collect();
    assert!(!w[0].unreadable);
    // Wrapping at the top of the address space does not panic.
    assert_eq!(split_store(u64::MAX - 3, &[0; 8], &[0; 8], &mem).count(), 2);
}

#[test]
fn lpa2_stores_to_upper_half_move_tables() {
    // With DS = 1 a table address above 4 GiB has bits in both halves and
    // bits [51:50] in descriptor bits [9:8].
    let mut mem = FakeMem::high();
    let l = l52(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    t.map(K52 + 0x1000, RAM_HI, 3, KDATA_LPA2);
    let root = t.root;
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    assert_eq!(log.protected.len(), 5);
    assert_eq!(tr.is_tracked(root).unwrap().level, -1);
    log.take();
    let l0 = Tables::at(&mut mem, l, root).table(K52, 0);
    let other = mem.alloc();
    // Entry 1 of the level -1 root: write the low word (valid/table bits,
    // address bits [31:12] and, in bits [9:8], address bits [51:50]) and
    // then the high word (address bits [49:32]) as two STR W.
    let d = desc::make_table(other, true);
    let lo = (d as u32).to_le_bytes();
    let hi = ((d >> 32) as u32).to_le_bytes();
    let old = mem.store(root + 8, &lo);
    let e = tr.on_store(root + 8, &old, &lo, &mem, &mut log.sink());
    // Halfway, the descriptor points at 0x000C_0000_xxxx_x000 (bits [51:50]
    // set, [49:48] not yet): not RAM, so nothing is tracked.
    assert_eq!(e.linked, 1);
    assert_eq!(tr.stats().unreadable, 1);
    assert!(log.actions.is_empty());
    let old = mem.store(root + 12, &hi);
    let e = tr.on_store(root + 12, &old, &hi, &mem, &mut log.sink());
    assert_eq!((e.linked, e.unlinked), (1, 1));
    assert_eq!(log.take(), vec![Action::Protect(other)]);
    assert_eq!(tr.is_tracked(other).unwrap().level, 0);
    assert!(tr.is_tracked(l0).is_some());
}

#[test]
fn a_root_set_inside_a_leaf_page_ends_its_leaf_status() {
    // 52-bit LPA2: TTBR0 roots are 16-entry tables at level -1, so one can
    // sit inside a page that already holds a full last-level table.
    let mut mem = FakeMem::high();
    let l = l52(Half::Ttbr0);
    let a = mem.alloc();
    Tables::at(&mut mem, l, a).map(0x1000, RAM_HI, 3, KDATA_LPA2);
    let mut tr = T::new(4);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, a, &l, &mem, &mut log.sink());
    let pte = Tables::at(&mut mem, l, a).table(0x1000, 3);
    assert!(tr.is_leaf_page(pte));
    // A second root in the PTE table's page (its bytes 0x800..0x880 are
    // zero: an empty PGD).
    tr.set_root(Half::Ttbr0, pte + 0x800, &l, &mem, &mut log.sink());
    assert_eq!(tr.is_tracked(pte + 0x800).unwrap().level, -1);
    assert!(!tr.is_leaf_page(pte));
}

#[test]
fn sub_page_roots_share_a_page() {
    let mut mem = FakeMem::high();
    let l = l52(Half::Ttbr0);
    let page = mem.alloc();
    let (a, b) = (page, page + 0x80);
    Tables::at(&mut mem, l, a).map(0x1000, RAM_HI, 3, KDATA_LPA2);
    Tables::at(&mut mem, l, b).map(0x1000, RAM_HI, 3, KDATA_LPA2);
    let mut tr = T::new(4);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, a, &l, &mem, &mut log.sink());
    tr.set_root(Half::Ttbr0, b, &l, &mem, &mut log.sink());
    assert_eq!(log.count(|a| *a == Action::Protect(page)), 1);
    assert_eq!(tr.is_tracked(b + 0x78).unwrap().ipa, b);
    assert_eq!(tr.is_tracked(a + 0x78).unwrap().ipa, a);
    assert_eq!(tr.is_tracked(b + 0x78).unwrap().entries, 16);
    assert!(tr.is_tracked(page + 0x100).is_none());
    // A store past both PGDs: a protected page, but no tracked table.
    let e = tr.on_store(page + 0x100, &[0; 8], &[1; 8], &mem, &mut log.sink());
    assert_eq!((e.descriptors, e.tracked), (1, 0));
    // A 16-byte store straddling the end of `a` and the start of `b`.
    let e = tr.on_store(a + 0x78, &[0; 16], &[0; 16], &mem, &mut log.sink());
    assert_eq!((e.tracked, e.table.unwrap().ipa), (2, a));
    log.take();
    tr.drop_root(Half::Ttbr0, a, &mem, &mut log.sink());
    assert!(!log.take().contains(&Action::Unprotect(page)));
    tr.drop_root(Half::Ttbr0, b, &mem, &mut log.sink());
    assert!(log.take().contains(&Action::Unprotect(page)));
    assert!(log.protected.is_empty());
}

#[test]
fn kernel_root_switch_keeps_shared_tables() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let old_root = kernel_tree(&mut mem);
    // A new root sharing the old root's PUD (like a replaced swapper_pg_dir
    // copy), plus one table of its own.
    let new_root = mem.alloc();
    let i = l.index(K + 0x4000_0000, 0) as u64;
    mem.write(new_root + i * 8, mem.read(old_root + i * 8));
    let mut t = Tables::at(&mut mem, l, new_root);
    t.map(0xFFFF_FF00_0000_0000, 0x4000_0000, 2, KDATA);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, old_root, &l, &mem, &mut log.sink());
    let before = log.protected.clone();
    log.take();
    tr.set_root(Half::Ttbr1, new_root, &l, &mem, &mut log.sink());
    let acts = log.take();
    // Only the old root page goes; the new root and its own table come.
    let unprot: Vec<_> = acts.iter().filter(|a| matches!(a, Action::Unprotect(_))).collect();
    assert_eq!(unprot, vec![&Action::Unprotect(old_root)]);
    assert_eq!(acts.iter().filter(|a| matches!(a, Action::Protect(_))).count(), 3);
    assert_eq!(log.protected, pages(&tables_of(&mem, new_root, &l)));
    assert_eq!(before.intersection(&log.protected).count(), 4);
    for t in tables_of(&mem, new_root, &l) {
        let info = tr.is_tracked(t).unwrap();
        assert_eq!((info.roots, info.refs), (RootMask::KERNEL, 1));
    }
    assert_eq!(tr.kernel_root(), Some(new_root));
}

#[test]
fn a_released_page_leaves_the_tracker_until_a_rebuild() {
    let mut mem = FakeMem::low();
    let root = kernel_tree(&mut mem);
    let l = l48(Half::Ttbr1);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    log.take();
    let pte = Tables::at(&mut mem, l, root).table(K + 0x4020_0000, 3);
    assert_eq!(tr.release_page(pte + 0x123, &mut log.sink()), 1);
    assert_eq!(log.take(), [Action::Unprotect(pte)]);
    assert!(!tr.is_page_protected(pte) && tr.is_tracked(pte).is_none());
    let s = tr.stats();
    assert_eq!((s.tables, s.pages, s.released_pages, s.complete), (4, 4, 1, false));
    // Nothing tracked there: nothing to do, nothing counted.
    assert_eq!(tr.release_page(pte, &mut log.sink()), 0);
    assert_eq!(tr.release_page(0x7000_0000, &mut log.sink()), 0);
    assert!(log.take().is_empty());
    assert_eq!(tr.stats().released_pages, 1);
    // A rebuild finds the table again and protects its page.
    tr.rebuild(&mem, &mut log.sink());
    assert_eq!(log.take(), [Action::Protect(pte)]);
    let s = tr.stats();
    assert_eq!((s.tables, s.complete), (5, true));
}

#[test]
fn tcr_change_rebuilds_without_churn() {
    let mut mem = FakeMem::low();
    let root = kernel_tree(&mut mem);
    let r48 = Regime::from_tcr(tcr(16, 16, false));
    let l = r48.layout(Half::Ttbr1).unwrap();
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    let u = Tables::new(&mut mem, r48.layout(Half::Ttbr0).unwrap()).root;
    tr.set_root(Half::Ttbr0, u, &r48.layout(Half::Ttbr0).unwrap(), &mem, &mut log.sink());
    log.take();
    // Same TCR (e.g. only TBI0/HA toggled): nothing.
    assert!(!tr.on_tcr_change(
        &Regime::from_tcr(tcr(16, 16, false) | super::regime::TCR_HA),
        &mem,
        &mut log.sink()
    ));
    assert!(log.take().is_empty());
    // EPD0 set: layout changes (disabled), same tables: rebuild, no actions.
    let epd = Regime::from_tcr(tcr(16, 16, false) | super::regime::TCR_EPD0);
    assert!(tr.on_tcr_change(&epd, &mem, &mut log.sink()));
    assert!(log.take().is_empty());
    assert_eq!(tr.stats().rebuilds, 1);
    assert_eq!(tr.stats().tables, 6);
    // T1SZ = 25: the kernel root is now a level-1 table (3 levels).
    let r39 = Regime::from_tcr(tcr(16, 25, false));
    assert!(tr.on_tcr_change(&r39, &mem, &mut log.sink()));
    let want = tables_of(&mem, root, &r39.layout(Half::Ttbr1).unwrap());
    assert_eq!(tr.is_tracked(root).unwrap().level, 1);
    let mut all = want.clone();
    all.insert(u);
    assert_eq!(log.protected, pages(&all));
    // TG0 = 64 KiB: the TTBR0 root is dropped and reported.
    log.take();
    let r64 = Regime::from_tcr(tcr(16, 25, false) | (0b01 << 14));
    assert!(tr.on_tcr_change(&r64, &mem, &mut log.sink()));
    let acts = log.take();
    assert_eq!(acts[0], Action::RootDropped { root_ipa: u, slot: 0 });
    assert!(acts.contains(&Action::Unprotect(u)));
    assert_eq!(tr.stats().unsupported_roots, 1);
    assert_eq!(tr.stats().ttbr0_roots, 0);
}

#[test]
fn level_conflicts_loops_and_unreadable_tables() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    t.map(K + 0x1000, 0x4000_0000, 3, KDATA);
    let root = t.root;
    let pte = t.table(K, 3);
    let pud = t.table(K, 1);
    // The PTE table also linked as a level-2 table from the PUD.
    mem.write(pud + 8 * 9, desc::make_table(pte, false));
    // The root points at itself (a recursive mapping).
    mem.write(root + 8 * 7, desc::make_table(root, false));
    // A table descriptor into non-RAM.
    mem.write(root + 8 * 8, desc::make_table(0x1000_0000, false));
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    let s = tr.stats();
    assert_eq!(s.level_conflicts, 2); // PTE at level 2; root at level 1
    assert_eq!(s.unreadable, 1);
    assert_eq!(s.tables, 4);
    assert_eq!(tr.is_tracked(pte).unwrap().level, 3, "first level wins");
    assert_eq!(tr.is_tracked(pte).unwrap().refs, 2);
    assert_eq!(tr.is_tracked(root).unwrap().refs, 2);
    // Dropping the root leaves the loop alive (a known leak) ...
    tr.drop_root(Half::Ttbr1, root, &mem, &mut log.sink());
    assert!(tr.is_tracked(root).is_some());
    // ... until a rebuild sweeps it.
    tr.rebuild(&mem, &mut log.sink());
    assert_eq!(tr.stats().tables, 0);
    assert!(log.protected.is_empty());
}

#[test]
fn disabled_half_is_still_tracked() {
    let mut mem = FakeMem::low();
    let r = Regime::from_tcr(tcr(16, 16, false) | super::regime::TCR_EPD0);
    let l = r.layout(Half::Ttbr0).unwrap();
    assert!(!l.enabled);
    let mut t = Tables::new(&mut mem, l);
    t.map(0x1000, 0x4000_0000, 3, KDATA);
    let root = t.root;
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, root, &l, &mem, &mut log.sink());
    assert_eq!(log.protected.len(), 4);
    assert_eq!(walk(&mem, 0x1000, root, &l), Err(WalkError::Disabled));
}

// -------------------------------------------------------------------------
// Overlay rule.

fn regs(por_el1: u64, tcr2: u64) -> OverlayRegs {
    OverlayRegs { por_el1, tcr2_el1: tcr2, ..OverlayRegs::default() }
}

#[test]
fn every_por_value_and_index() {
    for idx in 0..8u64 {
        for v in 0..16u64 {
            // v in field idx, RWX everywhere else.
            let por = (0x7777_7777u64 & !(0xF << (idx * 4))) | (v << (idx * 4));
            let r = regs(por, TCR2_POE);
            let v_ = overlay::verdict(&r, pkey(idx) | 0x403, Privilege::Privileged);
            assert!(v_.applies);
            assert_eq!((v_.poindex, v_.perm), (idx as u8, v as u8));
            let want_eff = if v >= 8 { 0 } else { v as u8 };
            assert_eq!(v_.effective, want_eff, "idx {idx} v {v:#x}");
            assert_eq!(v_.grants_write, v < 8 && v & 4 != 0, "idx {idx} v {v:#x}");
            assert_eq!(overlay::denies_kernel_write(&r, pkey(idx)), !v_.grants_write);
        }
    }
}

#[test]
fn overlay_off_or_other_register() {
    let leaf = pkey(1) | 0x403;
    // POE off: the overlay does not apply; perm is still reported.
    let v = overlay::verdict(&regs(0x17, 0), leaf, Privilege::Privileged);
    assert!(!v.applies && v.grants_write);
    assert_eq!((v.perm, v.effective), (1, POE_RWX));
    // E0POE alone does not enable privileged overlays...
    let v = overlay::verdict(&regs(0x17, TCR2_E0POE), leaf, Privilege::Privileged);
    assert!(!v.applies);
    // ... and unprivileged accesses use POR_EL0 with E0POE.
    let r = OverlayRegs { por_el1: 0x77, por_el0: 0x07, tcr2_el1: TCR2_E0POE, ..OverlayRegs::default() };
    let v = overlay::verdict(&r, leaf, Privilege::Unprivileged);
    assert!(v.applies && !v.grants_write);
    assert_eq!(v.perm, 0);
    let v = overlay::verdict(&r, 0x403, Privilege::Unprivileged);
    assert!(v.grants_write);
    // POE without E0POE: unprivileged accesses are not overlaid.
    let r = OverlayRegs { tcr2_el1: TCR2_POE, ..r };
    assert!(!overlay::verdict(&r, leaf, Privilege::Unprivileged).applies);
    assert!(overlay::verdict(&r, leaf, Privilege::Privileged).grants_write);
}

#[test]
fn s1pie_bit3_rule() {
    // Leaf with PIIndex 0b1011 (UXN, DBM, AP[1]) and POIndex 1; POR grants R only.
    let leaf = pkey(1) | desc::UXN | desc::DBM | desc::AP1_USER | 0x403;
    assert_eq!(desc::piindex(leaf), 0b1011);
    for pir in 0..16u64 {
        let r = OverlayRegs {
            por_el1: 0x17,
            por_el0: 0x17,
            tcr2_el1: TCR2_POE | TCR2_E0POE | TCR2_PIE,
            pir_el1: pir << (4 * 0b1011),
            pire0_el1: (pir ^ 0b1000) << (4 * 0b1011),
            wxn: false,
        };
        let p = overlay::verdict(&r, leaf, Privilege::Privileged);
        assert_eq!(p.applies, pir & 8 == 0, "PIR {pir:#x}");
        assert_eq!(p.grants_write, pir & 8 != 0);
        // PIRE0_EL1 is used for unprivileged accesses (bit 3 inverted here).
        let u = overlay::verdict(&r, leaf, Privilege::Unprivileged);
        assert_eq!(u.applies, pir & 8 != 0);
    }
    // Linux PIE_*_O values (0x0..0x7) apply the overlay; PIE_RW (0xc) does not.
    let r = |pir| OverlayRegs {
        por_el1: 0x17,
        tcr2_el1: TCR2_POE | TCR2_PIE,
        pir_el1: pir,
        ..OverlayRegs::default()
    };
    assert!(!overlay::verdict(&r(0x5 << 4), pkey(1) | desc::AP1_USER, Privilege::Privileged).grants_write);
    assert!(overlay::verdict(&r(0xC << 4), pkey(1) | desc::AP1_USER, Privilege::Privileged).grants_write);
    // PIE without POE: no overlay.
    let v = overlay::verdict(&OverlayRegs { tcr2_el1: TCR2_PIE, ..r(0) }, pkey(1), Privilege::Privileged);
    assert!(!v.applies);
}

#[test]
fn wxn_removes_overlay_write_when_overlay_grants_execute() {
    let leaf = 0x403; // POIndex 0
    for (perm, eff) in [(7u64, 3u8), (6, 2), (5, 5), (4, 4), (3, 3)] {
        let r = OverlayRegs { por_el1: perm, tcr2_el1: TCR2_POE, wxn: true, ..OverlayRegs::default() };
        let v = overlay::verdict(&r, leaf, Privilege::Privileged);
        assert_eq!(v.effective, eff, "perm {perm}");
        assert_eq!(v.grants_write, eff & 4 != 0);
    }
    // With PIE, SCTLR.WXN is not used; the PIR value 0b0110 means WXN.
    let base = OverlayRegs { por_el1: 7, tcr2_el1: TCR2_POE | TCR2_PIE, wxn: true, ..OverlayRegs::default() };
    assert!(
        overlay::verdict(&OverlayRegs { pir_el1: 0x7, ..base }, leaf, Privilege::Privileged).grants_write
    );
    assert!(
        !overlay::verdict(&OverlayRegs { pir_el1: 0x6, ..base }, leaf, Privilege::Privileged).grants_write
    );
}

#[test]
fn kpkeys_values() {
    // POR_EL1 default 0x17: pkey 0 RWX, pkey 1 R, others none.
    let def = regs(0x17, TCR2_POE);
    let pg = regs(0x57, TCR2_POE);
    let perm = |r: &OverlayRegs, k| overlay::verdict(r, pkey(k), Privilege::Privileged);
    assert!(perm(&def, 0).grants_write);
    assert!(!perm(&def, 1).grants_write);
    assert_eq!(overlay::perm_name(perm(&def, 1).perm), "r--");
    assert!(!perm(&def, 2).grants_write);
    assert_eq!(overlay::perm_name(perm(&def, 2).perm), "---");
    // Page-table level 0x57: pkey 1 RW.
    assert!(perm(&pg, 1).grants_write);
    assert_eq!(overlay::perm_name(perm(&pg, 1).perm), "rw-");
    assert_eq!(overlay::perm_name(perm(&pg, 0).perm), "rwx");
    // Framework-only builds: 0x7.
    assert!(!perm(&regs(0x7, TCR2_POE), 1).grants_write);
    assert_eq!(perm_field(0x57, 1), 5);
    assert_eq!(perm_field(0x57, 16), 0);
    // The seed's PTE under both values.
    let pte = 0x10e8_0008_ffbb_b707u64;
    assert!(overlay::denies_kernel_write(&def, pte));
    assert!(!overlay::denies_kernel_write(&pg, pte));
}

#[test]
fn perm_names() {
    let names = ["---", "r--", "--x", "r-x", "-w-", "rw-", "-wx", "rwx"];
    for (i, n) in names.iter().enumerate() {
        assert_eq!(overlay::perm_name(i as u8), *n);
    }
    for v in 8..=255u8 {
        assert_eq!(overlay::perm_name(v), "res");
    }
}

// -------------------------------------------------------------------------
// The seed scenario end to end: a kpkeys kernel's page tables live in the
// linear map with pkey 1; a PTE store under POR_EL1 = 0x17 is a hazard.

#[test]
fn seed_hazard_end_to_end() {
    // Tables are allocated inside the linear-mapped first 4 MiB.
    let mut mem = FakeMem::new(0x4010_0000);
    let l = l48(Half::Ttbr1);
    let lin = |pa: u64| K + pa; // linear map VA of a PA
    let mut t = Tables::new(&mut mem, l);
    // Linear map of the first 4 MiB of RAM at 4 KiB (rodata=full).
    t.map_pages(lin(0x4000_0000), 0x4000_0000, 1024, KDATA);
    let root = t.root;
    // kpkeys: every page-table page gets pkey 1 in the linear map.
    let tabs = tables_of(&mem, root, &l);
    for &tp in &tabs {
        let at = Tables::at(&mut mem, l, root).entry(lin(tp), 3);
        let d = mem.read(at);
        if desc::is_valid(d) {
            mem.write(at, (d & !desc::POINDEX_MASK) | pkey(1));
        }
    }
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, root, &l, &mem, &mut log.sink());
    // set_memory_pkey() rewrites a linear-map PTE (here: the PTE of a page
    // being freed) from an IRQ-exit path under the default POR_EL1.
    let pte_at = Tables::at(&mut mem, l, root).entry(lin(0x4020_0000), 3);
    assert!(tabs.contains(&(pte_at & !0xFFF)));
    let far = lin(pte_at); // the store goes through the linear map
    let old = mem.read(pte_at);
    let new = (old & !desc::POINDEX_MASK) | pkey(0);
    let before = mem.store(pte_at, &new.to_le_bytes());
    let eff = tr.on_store(pte_at, &before, &new.to_le_bytes(), &mem, &mut log.sink());
    let table = eff.table.expect("a page-table write");
    assert_eq!((table.level, table.roots), (3, RootMask::KERNEL));
    let regime = Regime::from_tcr(tcr(16, 16, false));
    let leaf = walk_regime(&mem, far, &regime, 0, Ttbr::encode(root, 0, false)).unwrap();
    assert_eq!(leaf.poindex(), 1);
    let v = overlay::verdict(&regs(0x17, TCR2_POE), leaf.desc, Privilege::Privileged);
    assert!(v.applies && !v.grants_write);
    assert_eq!((v.poindex, overlay::perm_name(v.perm)), (1, "r--"));
    // Inside the lazy-MMU batch (POR_EL1 = 0x57) the same store is fine.
    assert!(overlay::verdict(&regs(0x57, TCR2_POE), leaf.desc, Privilege::Privileged).grants_write);
}

// -------------------------------------------------------------------------
// Property test: the tracker against a reference model.

mod model {
    use super::*;
    use proptest::prelude::*;

    /// 12 table pages; page k sits at level k / 3; table descriptors only
    /// point one level down, so the graph is a DAG with sharing.
    const PAGES: usize = 12;
    const BASE: u64 = 0x4100_0000;

    fn page(k: usize) -> u64 {
        BASE + k as u64 * PAGE_SIZE
    }

    fn level(k: usize) -> i8 {
        (k / 3) as i8
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Store descriptor value kind `kind` (0 invalid, 1 table to page of
        /// the next level `target`, 2 leaf, 3 table with attributes) at
        /// `page`[idx], writing only bytes `off..off+len`.
        Write {
            page: usize,
            idx: u16,
            kind: u8,
            target: usize,
            off: u8,
            len: u8,
        },
        /// A store the tracker does not see (as if a trap were missed):
        /// only a rebuild makes the tracker exact again.
        Silent {
            page: usize,
            idx: u16,
            kind: u8,
            target: usize,
        },
        SetRoot {
            kernel: bool,
            page: usize,
        },
        DropRoot {
            kernel: bool,
            page: usize,
        },
        Rebuild,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..PAGES, 0..4u16, 0..4u8, 0..3usize, bytes()).prop_map(
                |(page, idx, kind, target, (off, len))| Op::Write { page, idx, kind, target, off, len }
            ),
            1 => (0..PAGES, 0..4u16, 0..4u8, 0..3usize).prop_map(
                |(page, idx, kind, target)| Op::Silent { page, idx, kind, target }
            ),
            2 => (any::<bool>(), 0..3usize).prop_map(|(kernel, page)| Op::SetRoot { kernel, page }),
            1 => (any::<bool>(), 0..3usize).prop_map(|(kernel, page)| Op::DropRoot { kernel, page }),
            1 => Just(Op::Rebuild),
        ]
    }

    /// Mostly whole-descriptor stores (STR X); sometimes any byte range.
    fn bytes() -> impl Strategy<Value = (u8, u8)> {
        prop_oneof![3 => Just((0u8, 8u8)), 1 => (0..8u8, 1..=8u8)]
    }

    /// Reachable tables from the tracker's current roots: table -> (refs,
    /// roots).
    fn reference(mem: &FakeMem, roots: &[(u64, u32)]) -> BTreeMap<u64, (u32, u32)> {
        let mut out: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
        for &(r, bit) in roots {
            let mut stack = vec![(r, 0i8)];
            out.entry(r).or_default().0 += 1;
            let mut seen = BTreeSet::new();
            while let Some((t, lvl)) = stack.pop() {
                out.entry(t).or_default().1 |= bit;
                if !seen.insert(t) || lvl >= 3 {
                    continue;
                }
                for i in 0..512u64 {
                    if let Some(c) = desc::next_table(mem.read(t + i * 8), lvl, false) {
                        stack.push((c, lvl + 1));
                    }
                }
            }
        }
        // refs: root slots + descriptors inside reachable tables.
        let reach: Vec<(u64, i8)> =
            out.keys().map(|&t| (t, level(((t - BASE) / PAGE_SIZE) as usize))).collect();
        for (t, lvl) in reach {
            if lvl >= 3 {
                continue;
            }
            for i in 0..512u64 {
                if let Some(c) = desc::next_table(mem.read(t + i * 8), lvl, false) {
                    out.entry(c).or_default().0 += 1;
                }
            }
        }
        out
    }

    /// Every value stored in a level-L page carries the address of a
    /// level-(L+1) pool page (invalid ones too), so any byte-wise merge of
    /// two values (a partial store) is again such a value: the graph stays
    /// level-consistent whatever bytes a store writes.
    fn value(kind: u8, lvl: i8, target: usize) -> u64 {
        let next = page((lvl as usize + 1) * 3 + target);
        match kind {
            0 => next | 0b10,                        // invalid
            1 => next | 0b11,                        // table
            3 => next | 0b11 | desc::PXN_TABLE,      // table + attrs
            _ if lvl == 3 => next | desc::AF | 0b11, // page
            _ => next | desc::AF | 0b01,             // block (reserved at L0)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn tracker_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut mem = FakeMem::low();
            for k in 0..PAGES {
                for i in 0..4 {
                    mem.write(page(k) + i * 8, value(0, level(k), 0));
                }
            }
            let l = l48(Half::Ttbr1);
            let l0 = l48(Half::Ttbr0);
            let mut tr = Tracker::<64>::new(2);
            let mut log = Log::default();
            // A silent store happened and no rebuild since: only the
            // action stream's own consistency (checked by Log) holds.
            let mut dirty = false;
            for op in ops {
                let mut exact_roots = false;
                match op {
                    Op::Write { page: k, idx, kind, target, off, len } => {
                        let at = page(k) + idx as u64 * 8;
                        let new = value(kind, level(k), target).to_le_bytes();
                        let off = off as usize;
                        let end = (off + len as usize).min(8);
                        let ipa = at + off as u64;
                        let old = mem.store(ipa, &new[off..end]);
                        if log.protected.contains(&page(k)) {
                            let e = tr.on_store(ipa, &old, &new[off..end], &mem, &mut log.sink());
                            prop_assert_eq!(e.tracked, 1);
                        }
                    }
                    Op::Silent { page: k, idx, kind, target } => {
                        let at = page(k) + idx as u64 * 8;
                        mem.write(at, value(kind, level(k), target));
                        dirty = true;
                    }
                    Op::SetRoot { kernel, page: k } => {
                        let (h, lay) = if kernel { (Half::Ttbr1, &l) } else { (Half::Ttbr0, &l0) };
                        tr.set_root(h, page(k), lay, &mem, &mut log.sink());
                    }
                    Op::DropRoot { kernel, page: k } => {
                        let h = if kernel { Half::Ttbr1 } else { Half::Ttbr0 };
                        tr.drop_root(h, page(k), &mem, &mut log.sink());
                    }
                    Op::Rebuild => {
                        tr.rebuild(&mem, &mut log.sink());
                        exact_roots = true;
                        dirty = false;
                    }
                }
                prop_assert_eq!(log.protected.len(), tr.stats().pages);
                if dirty {
                    continue;
                }
                let mut roots = Vec::new();
                if let Some(k) = tr.kernel_root() {
                    roots.push((k, 1u32));
                }
                for (s, r) in tr.ttbr0_roots() {
                    roots.push((r, RootMask::ttbr0_slot(s).0));
                }
                let want = reference(&mem, &roots);
                let got: BTreeMap<u64, (u32, u32)> =
                    tr.tables().map(|t| (t.ipa, (t.refs, t.roots.0))).collect();
                prop_assert!(tr.stats().complete);
                prop_assert_eq!(tr.stats().level_conflicts, 0);
                prop_assert_eq!(
                    got.iter().map(|(k, v)| (*k, v.0)).collect::<Vec<_>>(),
                    want.iter().map(|(k, v)| (*k, v.0)).collect::<Vec<_>>()
                );
                for (t, (_, bits)) in &want {
                    let have = got[t].1;
                    if exact_roots {
                        prop_assert_eq!(have, *bits);
                    } else {
                        prop_assert_eq!(have & bits, *bits, "root bits are a superset");
                    }
                }
                let want_pages: BTreeSet<u64> = want.keys().copied().collect();
                prop_assert_eq!(&log.protected, &want_pages);
                prop_assert_eq!(tr.stats().pages, want_pages.len());
                for t in tr.tables() {
                    prop_assert_eq!(t.level, level(((t.ipa - BASE) / PAGE_SIZE) as usize));
                }
            }
        }
    }
}

// -------------------------------------------------------------------------
// Robustness: arbitrary register values and memory never panic.

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Memory where every aligned address reads a pseudo-random value.
    struct Noise(u64);
    impl GuestMem for Noise {
        fn read_u64(&self, ipa: u64) -> Option<u64> {
            let x = ipa.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.0;
            (!x.is_multiple_of(7)).then_some(x.rotate_left(17) | 1)
        }
    }

    proptest! {
        #[test]
        fn walks_and_tracking_never_panic(tcr_v in any::<u64>(), va in any::<u64>(),
                                          t0 in any::<u64>(), t1 in any::<u64>(), seed in any::<u64>(),
                                          store_at in any::<u64>(), bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mem = Noise(seed);
            let r = Regime::from_tcr(tcr_v);
            let _ = walk_regime(&mem, va, &r, t0, t1);
            let _ = r.oa_bits();
            let mut tr = Tracker::<16>::new(2);
            let mut sink = |_a: Action| {};
            for h in [Half::Ttbr0, Half::Ttbr1] {
                if let Ok(l) = r.layout(h) {
                    let _ = walk(&mem, va, t0, &l);
                    let _ = for_each_table(&mem, t1, &l, 50, |_| Visit::Descend);
                    tr.set_root(h, t0, &l, &mem, &mut sink);
                    tr.set_root(h, t1, &l, &mem, &mut sink);
                }
            }
            let old = bytes.iter().map(|b| b ^ 0x5A).collect::<Vec<u8>>();
            let _ = tr.on_store(store_at, &old, &bytes, &mem, &mut sink);
            let _ = tr.on_tcr_change(&Regime::from_tcr(tcr_v ^ t0), &mem, &mut sink);
            tr.rebuild(&mem, &mut sink);
            let _ = tr.stats();
            let regs = OverlayRegs { por_el1: t0, por_el0: t1, tcr2_el1: tcr_v, pir_el1: seed, pire0_el1: va, wxn: seed & 1 != 0 };
            let _ = overlay::verdict(&regs, va, Privilege::Privileged);
            let _ = overlay::verdict(&regs, va, Privilege::Unprivileged);
        }

        #[test]
        fn arbitrary_layouts_never_panic(ia in any::<u8>(), sl in any::<i8>(), oa in any::<u8>(), va in any::<u64>(), root in any::<u64>()) {
            let l = Layout { half: Half::of(va), ia_bits: ia, start_level: sl, ds: ia & 1 != 0, oa_bits: oa, enabled: true, tbi: false };
            let mem = Noise(root);
            let _ = walk(&mem, va, root, &l);
            let _ = l.va_range();
            let _ = l.levels();
            let _ = l.root_table(root);
            let _ = l.index(va, sl);
            let _ = for_each_table(&mem, root, &l, 20, |_| Visit::Descend);
            let mut tr = Tracker::<8>::new(1);
            tr.set_root(Half::Ttbr0, root, &l, &mem, &mut |_a| {});
            let _ = desc::Desc::decode(va, sl, l.ds);
        }
    }
}

/// Clears every valid descriptor of the root table at `root` through the
/// tracker, as Linux's free_pgtables does before the root is freed.
fn tear_down(tr: &mut T, mem: &mut FakeMem, root: u64, log: &mut Log) {
    for k in 0..desc::ENTRIES as u64 {
        let at = root + k * 8;
        if mem.read(at) & desc::VALID != 0 {
            let old = mem.store(at, &0u64.to_le_bytes());
            tr.on_store(at, &old, &[0; 8], &*mem, &mut log.sink());
        }
    }
}

#[test]
fn an_exited_address_space_is_released_once_empty_and_not_installed() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let roots: Vec<u64> = (0..2)
        .map(|i| {
            let mut t = Tables::new(&mut mem, l);
            t.map(0x40_0000 + i * 0x1000, 0x4500_0000, 3, KDATA);
            t.root
        })
        .collect();
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, roots[0], &l, &mem, &mut log.sink());
    tr.set_root(Half::Ttbr0, roots[1], &l, &mem, &mut log.sink());
    assert_eq!(tr.stats().tables, 8);
    log.take();
    // roots[0] is idle: tearing its tree down releases the root too.
    tear_down(&mut tr, &mut mem, roots[0], &mut log);
    assert!(tr.is_tracked(roots[0]).is_none(), "freed root no longer trapped");
    assert!(log.take().contains(&Action::Unprotect(roots[0])));
    let s = tr.stats();
    assert_eq!((s.released_roots, s.ttbr0_roots, s.tables, s.dropped_roots), (1, 1, 4, 0));
    // The installed root torn down stays tracked (the CPU still walks it)
    // until TTBR0 moves on.
    tear_down(&mut tr, &mut mem, roots[1], &mut log);
    assert!(tr.is_tracked(roots[1]).is_some());
    assert_eq!(tr.stats().released_roots, 1);
    let idle = {
        let mut t = Tables::new(&mut mem, l);
        t.map(0x50_0000, 0x4500_0000, 3, KDATA);
        t.root
    };
    tr.set_root(Half::Ttbr0, idle, &l, &mem, &mut log.sink());
    assert!(tr.is_tracked(roots[1]).is_none(), "released on switch-away");
    assert_eq!(tr.stats().released_roots, 2);
    assert_eq!(tr.ttbr0_roots().map(|(_, r)| r).collect::<Vec<_>>(), vec![idle]);
}

/// A TTBR0 root `ra` mapping one page at each VA of `vas`, installed and
/// then replaced by another root: idle, still tracked.
fn idle_root(mem: &mut FakeMem, vas: &[u64]) -> (T, Log, u64) {
    let l = l48(Half::Ttbr0);
    let mut a = Tables::new(mem, l);
    for &va in vas {
        a.map(va, 0x4500_0000, 3, KDATA);
    }
    let ra = a.root;
    let mut b = Tables::new(mem, l);
    b.map(0x40_0000, 0x4500_0000, 3, KDATA);
    let rb = b.root;
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, ra, &l, mem, &mut log.sink());
    tr.set_root(Half::Ttbr0, rb, &l, mem, &mut log.sink());
    (tr, log, ra)
}

#[test]
fn a_root_whose_only_entry_is_its_last_is_kept_when_idle() {
    // any_valid scans the root in chunks: the last entry counts too.
    let mut mem = FakeMem::low();
    for index in [0u64, 15, 16, 255, 511] {
        let (mut tr, mut log, ra) = idle_root(&mut mem, &[index << 39]);
        assert!(tr.is_tracked(ra).is_some(), "root entry {index}");
        assert_eq!(tr.stats().released_roots, 0, "root entry {index}");
        // Emptied while idle, it goes at once.
        let at = ra + 8 * index;
        let old = mem.store(at, &0u64.to_le_bytes());
        tr.on_store(at, &old, &[0; 8], &mem, &mut log.sink());
        assert!(tr.is_tracked(ra).is_none(), "root entry {index}: released once empty");
        assert_eq!(tr.stats().released_roots, 1, "root entry {index}");
    }
}

#[test]
fn a_root_with_live_entries_is_kept_when_idle() {
    let mut mem = FakeMem::low();
    // A second root entry besides the first.
    let (mut tr, mut log, ra) = idle_root(&mut mem, &[0x40_0000, 0x80_0000_0000]);
    // Clearing one of two root entries (munmap of a region) keeps it.
    let old = mem.store(ra, &0u64.to_le_bytes());
    tr.on_store(ra, &old, &[0; 8], &mem, &mut log.sink());
    assert!(tr.is_tracked(ra).is_some());
    assert_eq!(tr.stats().released_roots, 0);
}

#[test]
fn release_idle_roots_keeps_the_installed_tree_and_the_kernel() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let roots: Vec<u64> = (0..3)
        .map(|i| {
            let mut t = Tables::new(&mut mem, l);
            t.map(0x40_0000 + i * 0x1000, 0x4500_0000, 3, KDATA);
            t.root
        })
        .collect();
    let kroot = kernel_tree(&mut mem);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr1, kroot, &l48(Half::Ttbr1), &mem, &mut log.sink());
    for r in &roots {
        tr.set_root(Half::Ttbr0, *r, &l, &mem, &mut log.sink());
    }
    assert_eq!(tr.release_idle_roots(&mem, &mut log.sink()), 2);
    assert_eq!(tr.ttbr0_roots().map(|(_, r)| r).collect::<Vec<_>>(), vec![roots[2]]);
    assert!(tr.is_tracked(roots[0]).is_none() && tr.is_tracked(roots[1]).is_none());
    assert_eq!(tr.kernel_root(), Some(kroot));
    assert_eq!(tr.stats().released_roots, 2);
    assert_eq!(tr.release_idle_roots(&mem, &mut log.sink()), 0);
}

mod may_deny_write_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Skipping the walk is sound: when the overlay cannot deny a write,
        /// no leaf descriptor gets a denial from `verdict`.
        #[test]
        fn no_denial_when_may_deny_write_is_false(
            por_el1 in any::<u64>(), por_el0 in any::<u64>(), tcr2 in 0u64..16,
            pir in any::<u64>(), pire0 in any::<u64>(), wxn in any::<bool>(),
            leaf in any::<u64>(), unpriv in any::<bool>(), all_w in any::<bool>(),
        ) {
            // Half the cases: every field W (0x4..0x7), so "false" is common.
            let w = |v: u64| if all_w { (v & 0x3333_3333) | 0x4444_4444 } else { v };
            let r = OverlayRegs {
                por_el1: w(por_el1), por_el0: w(por_el0), tcr2_el1: tcr2,
                pir_el1: pir, pire0_el1: pire0, wxn,
            };
            let p = if unpriv { Privilege::Unprivileged } else { Privilege::Privileged };
            if !overlay::may_deny_write(&r, p) {
                prop_assert!(overlay::verdict(&r, leaf, p).grants_write);
            }
        }

        /// The store fast path's test is sound: a leaf whose POIndex bit is
        /// clear in `write_deny_mask` is granted write by `verdict`; and
        /// without S1PIE the mask is exact (a set bit means some leaf with
        /// that POIndex is denied).
        #[test]
        fn deny_mask_covers_every_denial(
            por_el1 in any::<u64>(), por_el0 in any::<u64>(), tcr2 in 0u64..16,
            pir in any::<u64>(), pire0 in any::<u64>(), wxn in any::<bool>(),
            leaf in any::<u64>(), unpriv in any::<bool>(), all_w in any::<bool>(),
        ) {
            let w = |v: u64| if all_w { (v & 0x3333_3333) | 0x4444_4444 } else { v };
            let r = OverlayRegs {
                por_el1: w(por_el1), por_el0: w(por_el0), tcr2_el1: tcr2,
                pir_el1: pir, pire0_el1: pire0, wxn,
            };
            let p = if unpriv { Privilege::Unprivileged } else { Privilege::Privileged };
            let mask = overlay::write_deny_mask(&r, p);
            let v = overlay::verdict(&r, leaf, p);
            if mask & (1 << v.poindex) == 0 {
                prop_assert!(v.grants_write);
            } else if tcr2 & overlay::TCR2_PIE == 0 {
                prop_assert!(!v.grants_write);
            }
            prop_assert_eq!(mask != 0, overlay::may_deny_write(&r, p));
        }
    }
}

#[test]
fn may_deny_write_cases() {
    let p = Privilege::Privileged;
    assert!(!overlay::may_deny_write(&regs(0x17, 0), p), "POE off");
    assert!(overlay::may_deny_write(&regs(0x17, TCR2_POE), p), "pkey 1 read-only");
    assert!(!overlay::may_deny_write(&regs(0x5555_5555, TCR2_POE), p), "all RW");
    assert!(!overlay::may_deny_write(&regs(0x7777_7777, TCR2_POE), p), "all RWX, no WXN");
    let wxn = OverlayRegs { wxn: true, ..regs(0x7777_7777, TCR2_POE) };
    assert!(overlay::may_deny_write(&wxn, p), "RWX loses W under WXN");
    assert!(overlay::may_deny_write(&regs(0x8555_5555, TCR2_POE), p), "reserved value");
    assert!(!overlay::may_deny_write(&regs(0, TCR2_POE), Privilege::Unprivileged), "E0POE off");
}

#[test]
fn deny_mask_cases() {
    let p = Privilege::Privileged;
    assert_eq!(overlay::write_deny_mask(&regs(0x17, 0), p), 0, "POE off");
    // seed/kpkeys: default 0x17 (pkey 0 RWX, pkey 1 R, 2..7 none).
    assert_eq!(overlay::write_deny_mask(&regs(0x17, TCR2_POE), p), 0b1111_1110);
    // page-table level 0x57: pkey 1 RW.
    assert_eq!(overlay::write_deny_mask(&regs(0x57, TCR2_POE), p), 0b1111_1100);
    let wxn = OverlayRegs { wxn: true, ..regs(0x57, TCR2_POE) };
    assert_eq!(overlay::write_deny_mask(&wxn, p), 0b1111_1101, "pkey 0 RWX loses W");
    assert_eq!(overlay::write_deny_mask(&regs(0x8555_5555, TCR2_POE), p), 0b1000_0000, "reserved");
}

#[test]
fn an_empty_root_that_never_held_entries_is_kept_across_switches() {
    // Linux installs its empty reserved_pg_dir for every kernel thread.
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let reserved = mem.alloc();
    let proc_root = {
        let mut t = Tables::new(&mut mem, l);
        t.map(0x40_0000, 0x4500_0000, 3, KDATA);
        t.root
    };
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root(Half::Ttbr0, reserved, &l, &mem, &mut log.sink());
    tr.set_root(Half::Ttbr0, proc_root, &l, &mem, &mut log.sink());
    log.take();
    // Back and forth: no release, no walk, no stage-2 change.
    for _ in 0..3 {
        let c = tr.set_root(Half::Ttbr0, reserved, &l, &mem, &mut log.sink());
        assert!(!c.walked);
        let c = tr.set_root(Half::Ttbr0, proc_root, &l, &mem, &mut log.sink());
        assert!(!c.walked);
    }
    assert!(log.take().is_empty());
    assert_eq!(tr.stats().released_roots, 0);

    // Once it has held an entry, emptying it while idle releases it.
    let child = mem.alloc();
    let old = mem.store(reserved, &desc::make_table(child, false).to_le_bytes());
    let new = mem.read_bytes(reserved, 8);
    tr.on_store(reserved, &old, &new, &mem, &mut log.sink());
    let old = mem.store(reserved, &0u64.to_le_bytes());
    tr.on_store(reserved, &old, &[0; 8], &mem, &mut log.sink());
    assert!(tr.is_tracked(reserved).is_none());
    assert_eq!(tr.stats().released_roots, 1);
}

// -------------------------------------------------------------------------
// Several CPUs: roots are installed per CPU.

/// A process tree for `user_tree`: one page mapped, its root returned.
fn user_tree(mem: &mut FakeMem, l: Layout, va: u64) -> u64 {
    let mut t = Tables::new(mem, l);
    t.map(va, 0x4500_0000, 3, KDATA);
    t.root
}

/// Another CPU's installed TTBR0 root is never the LRU victim, nor
/// released as idle: both CPUs' running address spaces stay tracked.
#[test]
fn roots_installed_on_other_cpus_stay() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let roots: Vec<u64> = (0..4).map(|i| user_tree(&mut mem, l, 0x40_0000 + i * 0x1000)).collect();
    let mut tr = T::new(2);
    let mut log = Log::default();
    tr.set_root_on(0, Half::Ttbr0, roots[0], &l, &mem, &mut log.sink());
    tr.set_root_on(1, Half::Ttbr0, roots[1], &l, &mem, &mut log.sink());
    // CPU 1 switches twice: the LRU victim is never CPU 0's root (the
    // oldest), always CPU 1's previous one.
    let c = tr.set_root_on(1, Half::Ttbr0, roots[2], &l, &mem, &mut log.sink());
    assert_eq!(c.evicted, Some(roots[1]));
    let c = tr.set_root_on(1, Half::Ttbr0, roots[3], &l, &mem, &mut log.sink());
    assert_eq!(c.evicted, Some(roots[2]));
    assert!(tables_of(&mem, roots[0], &l).iter().all(|t| tr.is_tracked(*t).is_some()));
    assert_eq!(tr.installed_root(0), Some(roots[0]));
    assert_eq!(tr.installed_root(1), Some(roots[3]));
    // Idle roots are released, installed ones (any CPU) are not.
    assert_eq!(tr.release_idle_roots(&mem, &mut log.sink()), 0);
    tr.set_root_on(1, Half::Ttbr0, roots[0], &l, &mem, &mut log.sink());
    assert_eq!(tr.release_idle_roots(&mem, &mut log.sink()), 1);
    assert!(tables_of(&mem, roots[3], &l).iter().all(|t| tr.is_tracked(*t).is_none()));
    assert!(tables_of(&mem, roots[0], &l).iter().all(|t| tr.is_tracked(*t).is_some()));
}

/// A torn-down root (every entry cleared) is released when no CPU has it
/// installed; while another CPU runs on it, it stays.
#[test]
fn emptied_root_stays_while_another_cpu_runs_it() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr0);
    let a = user_tree(&mut mem, l, 0x40_0000);
    let b = user_tree(&mut mem, l, 0x80_0000);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root_on(0, Half::Ttbr0, a, &l, &mem, &mut log.sink());
    tr.set_root_on(1, Half::Ttbr0, a, &l, &mem, &mut log.sink());
    tr.set_root_on(0, Half::Ttbr0, b, &l, &mem, &mut log.sink());
    // CPU 0 tears `a` down (it is still CPU 1's).
    let e = Tables::at(&mut mem, l, a).entry(0x40_0000, 0);
    let old = mem.read(e);
    mem.write(e, 0);
    tr.on_store(e, &old.to_le_bytes(), &0u64.to_le_bytes(), &mem, &mut log.sink());
    assert!(tr.is_tracked(a).is_some(), "still installed on CPU 1");
    // CPU 1 moves on: now `a` is released (empty, not installed).
    tr.set_root_on(1, Half::Ttbr0, b, &l, &mem, &mut log.sink());
    assert!(tr.is_tracked(a).is_none());
    assert_eq!(tr.stats().released_roots, 1);
}

/// CPUs may hold different TTBR1 trees for a while: both are tracked as
/// kernel trees; one no CPU holds any more is released.
#[test]
fn kernel_roots_per_cpu() {
    let mut mem = FakeMem::low();
    let l = l48(Half::Ttbr1);
    let mut k1 = Tables::new(&mut mem, l);
    k1.map(K + 0x4020_1000, 0x4020_1000, 3, KDATA);
    let k1 = k1.root;
    let mut k2 = Tables::new(&mut mem, l);
    k2.map(K + 0x4040_0000, 0x4040_0000, 3, KDATA);
    let k2 = k2.root;
    let mut tr = T::new(8);
    let mut log = Log::default();
    for cpu in 0..4 {
        tr.set_root_on(cpu, Half::Ttbr1, k1, &l, &mem, &mut log.sink());
    }
    let c = tr.set_root_on(2, Half::Ttbr1, k2, &l, &mem, &mut log.sink());
    assert!(c.walked);
    let roots: Vec<u64> = tr.kernel_roots().collect();
    assert_eq!(roots, [k1, k2]);
    for t in tables_of(&mem, k1, &l).iter().chain(tables_of(&mem, k2, &l).iter()) {
        assert!(tr.is_tracked(*t).is_some_and(|i| i.roots.kernel()), "{t:#x}");
    }
    // CPU 2 back on k1: k2 is nobody's, released.
    let c = tr.set_root_on(2, Half::Ttbr1, k1, &l, &mem, &mut log.sink());
    assert!(!c.walked);
    assert_eq!(tr.kernel_roots().collect::<Vec<_>>(), [k1]);
    assert!(tables_of(&mem, k2, &l).iter().all(|t| tr.is_tracked(*t).is_none()));
    assert!(tables_of(&mem, k1, &l).iter().all(|t| tr.is_tracked(*t).is_some_and(|i| i.roots.kernel())));
    // Every CPU moving to k2 releases k1.
    for cpu in 0..4 {
        tr.set_root_on(cpu, Half::Ttbr1, k2, &l, &mem, &mut log.sink());
    }
    assert_eq!(tr.kernel_roots().collect::<Vec<_>>(), [k2]);
    assert!(tables_of(&mem, k1, &l).iter().all(|t| tr.is_tracked(*t).is_none()));
}

/// One CPU's TCR_EL1 (Linux: a secondary's idmap T0SZ while it boots) does
/// not re-read the roots another CPU runs on.
#[test]
fn tcr_change_on_one_cpu_keeps_the_others_roots() {
    let mut mem = FakeMem::low();
    let l48 = l48(Half::Ttbr0);
    let a = user_tree(&mut mem, l48, 0x40_0000);
    let mut tr = T::new(8);
    let mut log = Log::default();
    tr.set_root_on(0, Half::Ttbr0, a, &l48, &mem, &mut log.sink());
    let before = tr.stats().rebuilds;
    // CPU 1: 39-bit TTBR0 (another level count).
    assert!(!tr.on_tcr_change_on(1, &Regime::from_tcr(tcr(25, 16, false)), &mem, &mut log.sink()));
    assert_eq!(tr.stats().rebuilds, before);
    assert!(tables_of(&mem, a, &l48).iter().all(|t| tr.is_tracked(*t).is_some()));
    // CPU 0's own change does re-read its root.
    assert!(tr.on_tcr_change_on(0, &Regime::from_tcr(tcr(25, 16, false)), &mem, &mut log.sink()));
}
