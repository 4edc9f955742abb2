//! porwatch-owned pages that stage 2 maps execute-only in place of guest
//! pages (the tap's trampoline, trampoline.rs; patched code pages,
//! code_shadow.rs): their storage, how they are written while the guest
//! may execute them, and how a guest page is read to build one.
use super::regs::{CTR_EL0, CTR_EL0_REG};
use super::stage2;
use core::cell::UnsafeCell;
use porwatch_monitor::trampoline::{PAGE_BYTES, PAGE_WORDS};
use tock_registers::interfaces::Readable;

#[repr(C, align(4096))]
struct Page([u32; PAGE_WORDS]);

/// `N` shadow pages in hyp's memory.
pub struct ShadowPages<const N: usize>(UnsafeCell<[Page; N]>);

// SAFETY: each owner writes a page only under its registry's lock; the
// guest only executes them.
unsafe impl<const N: usize> Sync for ShadowPages<N> {}

impl<const N: usize> ShadowPages<N> {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([const { Page([0; PAGE_WORDS]) }; N]))
    }

    /// The physical (= hyp) address of page `i`.
    pub fn pa(&self, i: usize) -> u64 {
        assert!(i < N);
        // SAFETY: in bounds; only the address is taken.
        unsafe { (self.0.get() as *mut Page).add(i) as u64 }
    }

    /// Writes page `i` with `words`, ready for instruction fetches. Only
    /// the words that change are written, one at a time: a word another CPU
    /// may be executing is only ever replaced by one that means the same
    /// to it (the callers' plans). The caller holds its registry's lock.
    pub fn write(&self, i: usize, words: &[u32; PAGE_WORDS]) {
        let page = self.pa(i) as *mut u32;
        for (w, &v) in words.iter().enumerate() {
            // SAFETY: in bounds; single 32-bit stores to porwatch's page.
            unsafe {
                let p = page.add(w);
                if p.read_volatile() != v {
                    p.write_volatile(v);
                }
            }
        }
        sync_icache(self.pa(i));
    }
}

/// The guest page at `ipa` (4 KiB aligned), read through hyp's identity
/// map of RAM; None if it is not guest RAM.
pub fn guest_page(ipa: u64) -> Option<&'static [u32; PAGE_WORDS]> {
    let pa = stage2::ram_pa(ipa, PAGE_BYTES as u64)?;
    // SAFETY: guest RAM, identity mapped at EL2, 4 KiB aligned.
    Some(unsafe { &*(pa as *const [u32; PAGE_WORDS]) })
}

/// Makes a page porwatch wrote visible to instruction fetches (D-cache
/// cleaned to the point of unification, every CPU's I-cache invalidated:
/// the guest fetches it through another translation).
fn sync_icache(pa: u64) {
    // CTR_EL0.DminLine [19:16]: log2 of the smallest D-cache line in words.
    let line = 4u64 << CTR_EL0_REG.read(CTR_EL0::DminLine);
    let mut a = pa;
    while a < pa + PAGE_BYTES as u64 {
        // SAFETY: cache maintenance on porwatch's own page.
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: barriers and an inner-shareable I-cache invalidation.
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}
