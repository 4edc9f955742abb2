//! The audit over guest page tables built by `s1::fixtures`, tracked by the
//! real tracker.

extern crate std;

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use super::*;
use crate::s1::desc::{self, AP2_RDONLY, PAGE_SIZE};
use crate::s1::fixtures::*;
use crate::s1::overlay::{OverlayRegs, TCR2_PIE, TCR2_POE};
use crate::s1::{Half, Layout, Tracker};

const K: u64 = 0xFFFF_0000_0000_0000; // 48-bit linear map base
/// The kpkeys default POR_EL1: pkey 0 RWX, pkey 1 R.
const POR_DEFAULT: u64 = 0x17;

fn rule(por: u64) -> AuditRule {
    AuditRule::new(OverlayRegs { por_el1: por, tcr2_el1: TCR2_POE, ..OverlayRegs::default() })
}

/// The tracker's tables under `root`, audited with one TTBR1 walk.
struct Run {
    audit: Audit<64>,
    stale: StaleList<4>,
    stats: WalkStats,
}

fn audit(mem: &FakeMem, root: u64, l: &Layout, por: u64) -> Run {
    let mut tr = Tracker::<64>::new(2);
    tr.set_root(Half::Ttbr1, root, l, mem, &mut |_| {});
    let mut audit = Audit::<64>::new();
    for t in tr.tables() {
        assert!(audit.add_table(&t));
    }
    let mut stale = StaleList::<4>::new();
    let mut budget = 1_000_000;
    let stats =
        audit.walk(mem, &Root { table: root, layout: l, leaves: true }, &rule(por), &mut budget, &mut |s| {
            stale.push(s)
        });
    Run { audit, stale, stats }
}

/// A kpkeys-like kernel half: a linear map (pages) of RAM
/// [0x4000_0000, +4 MiB) whose table pages carry `pkey_of(pa)`.
fn kernel(mem: &mut FakeMem, pkey_of: impl Fn(u64) -> u64) -> (u64, Vec<u64>) {
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(mem, l);
    // Build the structure first (the tables are then known), then the leaves.
    for pa in (0x4000_0000..0x4040_0000).step_by(PAGE_SIZE as usize) {
        t.table(K + pa, 3);
    }
    let root = t.root;
    let tables: Vec<u64> = {
        let mut tr = Tracker::<64>::new(2);
        tr.set_root(Half::Ttbr1, root, &l, &*t.mem, &mut |_| {});
        tr.tables().map(|x| x.ipa).collect()
    };
    for pa in (0x4000_0000..0x4040_0000).step_by(PAGE_SIZE as usize) {
        let pk = if tables.contains(&pa) { pkey_of(pa) } else { 0 };
        t.map(K + pa, pa, 3, KDATA | pkey(pk));
    }
    (root, tables)
}

#[test]
fn every_table_protected_by_its_pkey() {
    let mut mem = FakeMem::new(0x4010_0000);
    let (root, tables) = kernel(&mut mem, |_| 1);
    assert_eq!(tables.len(), 5, "PGD, PUD, PMD, two PTE tables");
    let r = audit(&mem, root, &l48(Half::Ttbr1), POR_DEFAULT);
    let t = r.audit.totals();
    assert_eq!((t.tables, t.unprotected, t.protected, t.unmapped), (5, 0, 5, 0));
    assert_eq!(t.table_pkeys, 0b10);
    for p in r.audit.pages() {
        let a = p.protected().unwrap();
        assert_eq!((a.va, a.level, a.poindex, a.perm), (K + p.ipa, 3, 1, 0x1));
        assert_eq!(p.aliases, 1);
    }
    assert_eq!(r.stats.leaves, 1024);
    assert_eq!(r.stats.tables, 5);
    assert_eq!((r.stats.untracked, r.stats.truncated), (0, false));
    assert_eq!(r.stale.count(0b10), (0, 0));
}

#[test]
fn a_forgotten_table_is_listed_with_its_writable_alias() {
    let mut mem = FakeMem::new(0x4010_0000);
    let forgotten = 0x4010_3000;
    let (root, tables) = kernel(&mut mem, |pa| u64::from(pa != forgotten));
    assert!(tables.contains(&forgotten));
    let r = audit(&mem, root, &l48(Half::Ttbr1), POR_DEFAULT);
    let t = r.audit.totals();
    assert_eq!((t.unprotected, t.protected), (1, 4));
    let p = r.audit.page(forgotten).unwrap();
    assert_eq!(p.state(), PageState::Unprotected);
    assert_eq!(p.writable(), Some(Alias { va: K + forgotten, level: 3, poindex: 0, perm: 0x7 }));
    // What the table maps: it is one of the linear map's PTE tables.
    let (half, va) = p.reached().unwrap();
    assert_eq!(half, Half::Ttbr1);
    assert_eq!(p.level, 3);
    assert_eq!(va & !0x1f_ffff, va, "a PTE table starts on 2 MiB");
    let (lo, hi) = p.used().unwrap();
    assert!(lo >= K + 0x4000_0000 && hi < K + 0x4040_0000, "{lo:#x}..{hi:#x}");
    // The same under a POR that grants pkey 1 write too: everything writable.
    let r = audit(&mem, root, &l48(Half::Ttbr1), 0x77);
    assert_eq!(r.audit.totals().unprotected, 5);
    assert_eq!(r.audit.totals().table_pkeys, 0);
}

#[test]
fn read_only_and_missing_aliases() {
    let mut mem = FakeMem::new(0x4010_0000);
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    // One table maps two pages: one read-only alias of a table page (pkey
    // 0: still not writable), and nothing maps the other tables.
    let pte = t.table(K + 0x5000_0000, 3);
    t.map(K + 0x5000_0000, pte, 3, KDATA | AP2_RDONLY);
    let root = t.root;
    let r = audit(&mem, root, &l, POR_DEFAULT);
    let p = r.audit.page(pte).unwrap();
    assert_eq!((p.state(), p.aliases, p.writable(), p.protected()), (PageState::Protected, 1, None, None));
    let tt = r.audit.totals();
    assert_eq!((tt.tables, tt.unprotected, tt.protected, tt.unmapped), (4, 0, 1, 3));
    assert_eq!(tt.table_pkeys, 0, "no alias is protected by a pkey");
}

#[test]
fn a_block_aliases_every_table_inside_it() {
    let mut mem = FakeMem::new(0x4010_0000);
    let l = l48(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    // A 2 MiB block over the tables' own memory, pkey 0; a second alias of
    // the same memory with pkey 1.
    t.table(K + 0x6000_0000, 2);
    t.table(K + 0x8000_0000, 2);
    t.map(K + 0x6000_0000, 0x4000_0000, 2, KDATA);
    t.map(K + 0x8000_0000, 0x4000_0000, 2, KDATA | pkey(1));
    let root = t.root;
    let r = audit(&mem, root, &l, POR_DEFAULT);
    assert_eq!(r.audit.totals().tables, 4, "PGD, PUD, two PMDs");
    for p in r.audit.pages() {
        let off = p.ipa - 0x4000_0000;
        assert_eq!(p.aliases, 2);
        assert_eq!(p.writable(), Some(Alias { va: K + 0x6000_0000 + off, level: 2, poindex: 0, perm: 7 }));
        assert_eq!(p.protected(), Some(Alias { va: K + 0x8000_0000 + off, level: 2, poindex: 1, perm: 1 }));
    }
    // The pkey-1 block holds 512 - 4 pages that are not tables.
    assert_eq!(r.stale.count(0b10), (1, 508));
    let s: Vec<&Stale> = r.stale.listed(0b10).collect();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].va, s[0].oa, s[0].level, s[0].pages), (K + 0x8000_0000, 0x4000_0000, 2, 508));
    assert_eq!(r.stale.count(0b01), (0, 0), "pkey 0 is never denied under 0x17");
}

#[test]
fn stale_pkeys_and_their_bounded_list() {
    let mut mem = FakeMem::new(0x4010_0000);
    let (root, tables) = kernel(&mut mem, |_| 1);
    let l = l48(Half::Ttbr1);
    let mut t = Tables::at(&mut mem, l, root);
    // Six ordinary pages mapped with pkey 1 (a freed table whose pkey was
    // not reset, ...), one with pkey 2.
    for i in 0..6 {
        let pa = 0x4030_0000 + i * PAGE_SIZE;
        assert!(!tables.contains(&pa));
        t.map(K + pa, pa, 3, KDATA | pkey(1));
    }
    t.map(K + 0x4031_0000, 0x4031_0000, 3, KDATA | pkey(2));
    let r = audit(&mem, root, &l, POR_DEFAULT);
    assert_eq!(r.audit.totals().table_pkeys, 0b10);
    assert_eq!(r.stale.count(0b10), (6, 6));
    assert_eq!(r.stale.listed(0b10).count(), 4, "the list keeps K = 4, the count all");
    assert_eq!(r.stale.listed(0b10).next().unwrap().va, K + 0x4030_0000);
    assert_eq!(r.stale.count(0b100), (1, 1));
    assert_eq!(r.stale.listed(0b110).count(), 5);
}

#[test]
fn tables_of_both_halves_and_roots_sharing_a_page() {
    let mut mem = FakeMem::new(0x4010_0000);
    let (root, _) = kernel(&mut mem, |_| 1);
    let l0 = l48(Half::Ttbr0);
    let mut u = Tables::new(&mut mem, l0);
    u.map(0x40_0000, 0x4030_0000, 3, KDATA | desc::AP1_USER);
    let uroot = u.root;
    let mut tr = Tracker::<64>::new(2);
    tr.set_root(Half::Ttbr1, root, &l48(Half::Ttbr1), &mem, &mut |_| {});
    tr.set_root(Half::Ttbr0, uroot, &l0, &mem, &mut |_| {});
    let mut a = Audit::<64>::new();
    for t in tr.tables() {
        a.add_table(&t);
    }
    // The same table twice (a root slot and a descriptor): one page.
    let first = tr.tables().next().unwrap();
    assert!(a.add_table(&first));
    assert_eq!(a.pages().len(), 9, "5 kernel + 4 user tables");
    let mut budget = 1_000_000;
    let rl = rule(POR_DEFAULT);
    a.walk(
        &mem,
        &Root { table: root, layout: &l48(Half::Ttbr1), leaves: true },
        &rl,
        &mut budget,
        &mut |_| {},
    );
    // The user tables' placement only (the process is not installed).
    a.walk(&mem, &Root { table: uroot, layout: &l0, leaves: false }, &rl, &mut budget, &mut |_| {});
    let user: Vec<&TablePage> = a.pages().iter().filter(|p| p.roots.user()).collect();
    assert_eq!(user.len(), 4);
    for p in &user {
        assert_eq!(p.reached().unwrap().0, Half::Ttbr0);
        // Their linear-map alias was found by the kernel walk: pkey 0.
        assert!(p.writable().is_none() || p.writable().unwrap().va >= K);
    }
    let pte = user.iter().find(|p| p.level == 3).unwrap();
    assert_eq!(pte.used(), Some((0x40_0000, 0x40_0fff)));
    assert_eq!(pte.reached(), Some((Half::Ttbr0, 0x40_0000)));
}

#[test]
fn full_array_is_counted() {
    let mut mem = FakeMem::new(0x4010_0000);
    let (root, _) = kernel(&mut mem, |_| 1);
    let mut tr = Tracker::<64>::new(2);
    tr.set_root(Half::Ttbr1, root, &l48(Half::Ttbr1), &mem, &mut |_| {});
    let mut a = Audit::<3>::new();
    let added = tr.tables().filter(|t| a.add_table(t)).count();
    assert_eq!(added, 3);
    assert_eq!(a.totals().not_audited, 2);
    a.clear();
    assert_eq!(a.totals(), Totals::default());
}

#[test]
fn budget_bounds_a_hostile_graph() {
    // Every entry of every table points at the next table, and the last
    // at a fresh one: without the visited marks the walk would read 512^4
    // descriptors; untracked tables are bounded by the budget.
    let mut mem = FakeMem::new(0x4010_0000);
    let l = l48(Half::Ttbr1);
    let t: Vec<u64> = (0..4).map(|_| mem.alloc()).collect();
    for lvl in 0..3 {
        for i in 0..512 {
            mem.write(t[lvl] + i * 8, desc::make_table(t[lvl + 1], false));
        }
    }
    for i in 0..512 {
        mem.write(t[3] + i * 8, desc::make_leaf(0x4000_0000, 3, KDATA, false));
    }
    let r = audit(&mem, t[0], &l, POR_DEFAULT);
    assert_eq!(r.stats.tables, 4, "each tracked table entered once");
    assert_eq!(r.stats.descriptors, 4 * 512);
    // Untracked: nothing marks them, the budget ends the walk.
    let mut a = Audit::<4>::new();
    let mut budget = 10_000;
    let st = a.walk(
        &mem,
        &Root { table: t[0], layout: &l, leaves: true },
        &rule(POR_DEFAULT),
        &mut budget,
        &mut |_| {},
    );
    assert!(st.truncated);
    assert!(st.descriptors <= 10_000 && budget < 512, "{st:?} {budget}");
}

#[test]
fn s1pie_base_permissions() {
    // PIR_EL1 entry per PIIndex: index 0 -> 0x5 (RW, overlay), index 1 ->
    // 0x1 (R), index 2 -> 0xc (RW, no overlay), index 3 -> 0x7 (RWX) with
    // PIRE0 index 3 = 0x5: EL1 X with EL0 W gives no access.
    let pir = 0x5 | 0x1 << 4 | 0xc << 8 | 0x7 << 12;
    let pire0 = 0x5 << 12;
    let regs = OverlayRegs {
        por_el1: POR_DEFAULT,
        tcr2_el1: TCR2_POE | TCR2_PIE,
        pir_el1: pir,
        pire0_el1: pire0,
        ..OverlayRegs::default()
    };
    let r = AuditRule::new(regs);
    let leaf = |pi: u64, pk: u64| {
        let bits = [6u32, 51, 53, 54];
        let mut d = desc::make_leaf(0x4000_0000, 3, desc::AF, false) | pkey(pk);
        for (i, b) in bits.iter().enumerate() {
            if pi >> i & 1 != 0 {
                d |= 1 << b;
            }
        }
        d
    };
    assert!(r.alias(leaf(0, 0)).writable());
    assert!(r.alias(leaf(0, 1)).protected_by_pkey());
    assert!(!r.alias(leaf(1, 0)).base_write);
    let v = r.alias(leaf(2, 1));
    assert!(v.writable(), "0xc: the overlay does not apply");
    assert!(!r.alias(leaf(3, 0)).base_write);
    // Without PIE, AP[2] decides.
    let plain = rule(POR_DEFAULT);
    assert!(plain.alias(leaf(0, 0)).writable());
    assert!(!plain.alias(leaf(0, 0) | AP2_RDONLY).base_write);
    assert_eq!(plain.deny_mask, 0xfe);
    assert!(!rule(0x7777_7777).can_protect());
    let off = AuditRule::new(OverlayRegs { por_el1: POR_DEFAULT, ..OverlayRegs::default() });
    assert!(!off.can_protect(), "TCR2_EL1.POE = 0: the overlay never applies");
}

#[test]
fn lpa2_52_bit_kernel() {
    const K52: u64 = 0xFFF0_0000_0000_0000;
    let mut mem = FakeMem::high();
    let l = l52(Half::Ttbr1);
    let mut t = Tables::new(&mut mem, l);
    let pte = t.table(K52 + RAM_HI, 3);
    t.map(K52 + pte, pte, 3, KDATA_LPA2 | pkey(1));
    let pmd = t.table(K52 + RAM_HI, 2);
    t.map(K52 + pmd, pmd, 3, KDATA_LPA2);
    let root = t.root;
    let r = audit(&mem, root, &l, POR_DEFAULT);
    assert_eq!(r.audit.totals().tables, 5, "5 levels");
    assert!(r.audit.page(pte).unwrap().protected().is_some());
    assert_eq!(r.audit.page(pmd).unwrap().writable().unwrap().va, K52 + pmd);
    assert_eq!(r.audit.page(root).unwrap().reached(), Some((Half::Ttbr1, K52)));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Against a model: pages of RAM mapped at random VAs (pages, with a
        /// random pkey and AP[2]); for every tracked table page, the aliases
        /// counted and whether a writable one exists follow from the mapping
        /// list alone.
        #[test]
        fn aliases_match_the_mappings(maps in proptest::collection::vec((0u64..64, 0u64..24, 0u64..3, any::<bool>()), 1..40)) {
            let mut mem = FakeMem::new(0x4010_0000);
            let l = l48(Half::Ttbr1);
            let mut t = Tables::new(&mut mem, l);
            // Slots of 4 KiB in two 1 GiB areas; targets: the first 24 pages
            // from 0x4010_0000 (where the tables are allocated).
            let mut model: BTreeMap<u64, (u64, u64, bool)> = BTreeMap::new();
            for &(slot, target, pk, ro) in &maps {
                let va = K + 0x8000_0000 + (slot % 32) * PAGE_SIZE + (slot / 32) * (1 << 30);
                model.insert(va, (0x4010_0000 + target * PAGE_SIZE, pk, ro));
            }
            for (&va, &(oa, pk, ro)) in &model {
                t.map(va, oa, 3, KDATA | pkey(pk) | if ro { AP2_RDONLY } else { 0 });
            }
            let root = t.root;
            let r = audit(&mem, root, &l, POR_DEFAULT);
            let pages: BTreeSet<u64> = r.audit.pages().iter().map(|p| p.ipa).collect();
            for p in r.audit.pages() {
                let aliases: Vec<_> = model.iter().filter(|(_, m)| m.0 == p.ipa).collect();
                prop_assert_eq!(p.aliases as usize, aliases.len());
                let writable = aliases.iter().any(|(_, m)| !m.2 && m.1 == 0);
                prop_assert_eq!(p.writable().is_some(), writable);
                if let Some(a) = p.writable() {
                    prop_assert!(model.get(&a.va).is_some_and(|m| m.0 == p.ipa && !m.2 && m.1 == 0));
                }
                let protected = aliases.iter().any(|(_, m)| !m.2 && m.1 != 0);
                prop_assert_eq!(p.protected().is_some(), protected);
            }
            // Stale: every mapped non-table page whose pkey is denied.
            let (_, stale_pages) = r.stale.count(0xfe);
            let expect = model.values().filter(|m| m.1 != 0 && !pages.contains(&m.0)).count() as u64;
            prop_assert_eq!(stale_pages, expect);
        }
    }
}
