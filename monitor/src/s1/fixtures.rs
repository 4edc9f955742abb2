//! Test fixtures: guest page tables built in a fake guest memory, for the
//! 48-bit/4-level, 39-bit/3-level and 52-bit/5-level (LPA2) layouts, and an
//! action log that checks the tracker's protect/unprotect stream.

extern crate std;

use std::collections::{BTreeSet, HashMap};
use std::vec::Vec;

use super::desc::{self, PAGE_SIZE};
use super::regime::{Half, Layout, Regime, TCR_DS, TCR_TBI0};
use super::tracker::Action;
use super::walk::GuestMem;

/// Guest RAM by IPA: reads inside `ram` give the stored value (0 if never
/// written); reads outside any RAM range give `None`.
pub struct FakeMem {
    pages: HashMap<u64, [u64; 512]>,
    ram: Vec<(u64, u64)>,
    /// Bump allocator for table pages.
    next: u64,
}

/// Low RAM, as on QEMU virt.
pub const RAM_LO: u64 = 0x4000_0000;
pub const RAM_LO_END: u64 = 0x8000_0000;
/// High RAM above 2^50, to exercise LPA2 address bits [51:48].
pub const RAM_HI: u64 = 0x000F_0000_0000_0000;
pub const RAM_HI_END: u64 = 0x000F_0000_4000_0000;

impl FakeMem {
    /// RAM at [RAM_LO, RAM_LO_END) and [RAM_HI, RAM_HI_END); tables are
    /// allocated from `alloc_base`.
    pub fn new(alloc_base: u64) -> Self {
        Self {
            pages: HashMap::new(),
            ram: std::vec![(RAM_LO, RAM_LO_END), (RAM_HI, RAM_HI_END)],
            next: alloc_base,
        }
    }

    pub fn low() -> Self {
        Self::new(0x4100_0000)
    }

    pub fn high() -> Self {
        Self::new(RAM_HI + 0x10_0000)
    }

    pub fn in_ram(&self, ipa: u64) -> bool {
        self.ram.iter().any(|&(a, b)| ipa >= a && ipa < b)
    }

    /// A fresh zeroed page.
    pub fn alloc(&mut self) -> u64 {
        let p = self.next;
        self.next += PAGE_SIZE;
        assert!(self.in_ram(p), "fixture allocator ran out of RAM");
        self.pages.insert(p, [0; 512]);
        p
    }

    pub fn write(&mut self, ipa: u64, v: u64) {
        assert_eq!(ipa % 8, 0);
        assert!(self.in_ram(ipa), "write outside RAM {ipa:#x}");
        let page = ipa & !(PAGE_SIZE - 1);
        let t = self.pages.entry(page).or_insert([0; 512]);
        t[((ipa - page) / 8) as usize] = v;
    }

    pub fn read(&self, ipa: u64) -> u64 {
        self.read_u64(ipa).expect("read outside RAM")
    }

    pub fn write_bytes(&mut self, ipa: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = ipa + i as u64;
            let slot = a & !7;
            let mut v = self.read(slot).to_le_bytes();
            v[(a - slot) as usize] = *b;
            self.write(slot, u64::from_le_bytes(v));
        }
    }

    pub fn read_bytes(&self, ipa: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                let a = ipa + i as u64;
                self.read(a & !7).to_le_bytes()[(a & 7) as usize]
            })
            .collect()
    }

    /// Performs a store the way the hypervisor would (after the trap) and
    /// returns the old bytes.
    pub fn store(&mut self, ipa: u64, new: &[u8]) -> Vec<u8> {
        let old = self.read_bytes(ipa, new.len());
        self.write_bytes(ipa, new);
        old
    }
}

impl GuestMem for FakeMem {
    fn read_u64(&self, ipa: u64) -> Option<u64> {
        if !ipa.is_multiple_of(8) || !self.in_ram(ipa) {
            return None;
        }
        let page = ipa & !(PAGE_SIZE - 1);
        Some(self.pages.get(&page).map_or(0, |t| t[((ipa - page) / 8) as usize]))
    }
}

/// TCR_EL1 for 4 KiB granules in both halves, IPS = 52/48 bits.
pub fn tcr(t0sz: u64, t1sz: u64, ds: bool) -> u64 {
    t0sz | (t1sz << 16) | (0b10 << 30) | (0b110 << 32) | TCR_TBI0 | if ds { TCR_DS } else { 0 }
}

pub fn layout(t0sz: u64, t1sz: u64, ds: bool, half: Half) -> Layout {
    Regime::from_tcr(tcr(t0sz, t1sz, ds)).layout(half).unwrap()
}

/// 48-bit VA, 4 levels (Linux 6.1 on QEMU, the seed's FVP kernel).
pub fn l48(half: Half) -> Layout {
    layout(16, 16, false, half)
}

/// 39-bit VA, 3 levels.
pub fn l39(half: Half) -> Layout {
    layout(25, 25, false, half)
}

/// 52-bit VA with LPA2, 5 levels (Linux 6.12 on QEMU max).
pub fn l52(half: Half) -> Layout {
    layout(12, 12, true, half)
}

/// Kernel data page attributes: AF, inner shareable, AttrIndx 1, UXN|PXN.
pub const KDATA: u64 = desc::AF | (0b11 << 8) | (1 << 2) | desc::UXN | desc::PXN;
pub const KDATA_LPA2: u64 = desc::AF | (1 << 2) | desc::UXN | desc::PXN;

/// POIndex bits for `pkey`.
pub const fn pkey(p: u64) -> u64 {
    (p & 7) << 60
}

/// A page-table tree under construction in `mem`.
pub struct Tables<'a> {
    pub mem: &'a mut FakeMem,
    pub layout: Layout,
    pub root: u64,
}

impl<'a> Tables<'a> {
    /// A new tree with a freshly allocated root page.
    pub fn new(mem: &'a mut FakeMem, layout: Layout) -> Self {
        let root = mem.alloc();
        Self { mem, layout, root }
    }

    /// A tree rooted at an existing table.
    pub fn at(mem: &'a mut FakeMem, layout: Layout, root: u64) -> Self {
        Self { mem, layout, root }
    }

    /// The table at `level` on `va`'s path, creating missing tables.
    pub fn table(&mut self, va: u64, level: i8) -> u64 {
        let mut t = self.root;
        let mut l = self.layout.start_level;
        while l < level {
            let at = t + self.layout.index(va, l) as u64 * 8;
            let d = self.mem.read(at);
            t = match desc::next_table(d, l, self.layout.ds) {
                Some(n) => n,
                None => {
                    let n = self.mem.alloc();
                    self.mem.write(at, desc::make_table(n, self.layout.ds));
                    n
                }
            };
            l += 1;
        }
        t
    }

    /// The IPA of `va`'s descriptor at `level`.
    pub fn entry(&mut self, va: u64, level: i8) -> u64 {
        let t = self.table(va, level);
        t + self.layout.index(va, level) as u64 * 8
    }

    /// Maps `va` to `oa` with a block (levels 0..=2) or page (level 3).
    pub fn map(&mut self, va: u64, oa: u64, level: i8, attrs: u64) -> u64 {
        let at = self.entry(va, level);
        let d = desc::make_leaf(oa, level, attrs, self.layout.ds);
        self.mem.write(at, d);
        at
    }

    /// Maps `n` consecutive 4 KiB pages.
    pub fn map_pages(&mut self, va: u64, oa: u64, n: u64, attrs: u64) {
        for i in 0..n {
            self.map(va + i * PAGE_SIZE, oa + i * PAGE_SIZE, 3, attrs);
        }
    }
}

/// Records the tracker's actions and checks the stream: no Protect of a
/// protected page, no Unprotect of an unprotected one. `actions` keeps a
/// ProtectLeaf as Protect (what most tests compare); `leaf_protects` lists
/// the pages that came as ProtectLeaf.
#[derive(Default)]
pub struct Log {
    pub protected: BTreeSet<u64>,
    pub actions: Vec<Action>,
    pub leaf_protects: Vec<u64>,
}

impl Log {
    pub fn apply(&mut self, a: Action) {
        let a = match a {
            Action::ProtectLeaf(p) => {
                self.leaf_protects.push(p);
                Action::Protect(p)
            }
            a => a,
        };
        match a {
            Action::Protect(p) | Action::ProtectLeaf(p) => {
                assert_eq!(p % PAGE_SIZE, 0, "unaligned Protect {p:#x}");
                assert!(self.protected.insert(p), "duplicate Protect({p:#x})");
            }
            Action::Unprotect(p) => {
                assert!(self.protected.remove(&p), "Unprotect({p:#x}) of an unprotected page");
            }
            Action::Overflow { .. } | Action::RootDropped { .. } => {}
        }
        self.actions.push(a);
    }

    pub fn sink(&mut self) -> impl FnMut(Action) + '_ {
        move |a| self.apply(a)
    }

    /// Actions since the last call.
    pub fn take(&mut self) -> Vec<Action> {
        core::mem::take(&mut self.actions)
    }

    pub fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.actions.iter().filter(|a| f(a)).count()
    }
}
