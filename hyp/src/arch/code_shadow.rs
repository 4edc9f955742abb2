//! Shadows of guest code pages with patched POR_EL1 sites (mechanism; the
//! decisions are porwatch_monitor::por_sites, the glue hyp/src/por_sites.rs,
//! the rules docs/tap.md "Patched POR_EL1 sites").
//!
//! As the tap's trampoline (trampoline.rs): a porwatch-owned copy of the
//! guest's page that stage 2 maps execute-only in place of it, in the
//! shared tables, so every CPU (and every private root) fetches the copy.
//! The copy differs only at the patched sites. The guest's own reads and
//! writes of the page fault at stage 2 and are completed on its page
//! (guest_access.rs); after a write the copy is rebuilt from it, and a site
//! the guest rewrote is dropped. Words change one at a time, so another CPU
//! executing the page sees either the site or its carrier form, which mean
//! the same.
use super::shadow_pages::{guest_page, ShadowPages};
use super::stage2;
use porwatch_monitor::por_sites::{Sites, MAX_DATA_ACCESSES, PAGE_WORDS};
use spin::Mutex;

/// Code pages patched at once.
pub const MAX_CODE_SHADOWS: usize = 64;
/// Pages given up for good that are remembered (so they are not patched
/// again); beyond it the oldest is forgotten.
const MAX_REFUSED: usize = 64;
const PAGE: u64 = (PAGE_WORDS * 4) as u64;

static PAGES: ShadowPages<MAX_CODE_SHADOWS> = ShadowPages::new();

#[derive(Clone, Copy)]
struct Shadow {
    ipa: u64,
    sites: Sites,
    data_accesses: u32,
}

struct Registry {
    shadows: [Option<Shadow>; MAX_CODE_SHADOWS],
    refused: heapless::Deque<u64, MAX_REFUSED>,
}

static REGISTRY: Mutex<Registry> =
    Mutex::new(Registry { shadows: [None; MAX_CODE_SHADOWS], refused: heapless::Deque::new() });

/// Why a site is not patched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    /// The page was given up before.
    GivenUp,
    /// Not guest RAM.
    NotRam,
    /// Every shadow is in use.
    NoShadow,
    /// Stage 2 maps the page to another shadow (the tap's), or not with a
    /// 4 KiB page.
    Moved,
    /// The word is not an `MRS/MSR POR_EL1`.
    NotASite,
}

/// What became of the page after a guest access to it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AfterAccess {
    /// Still shadowed; `sites` patched.
    Kept { sites: u32 },
    /// Mapped as itself again and given up (too many accesses, or no
    /// site left).
    Released,
}

impl Registry {
    fn find(&self, page: u64) -> Option<usize> {
        self.shadows.iter().position(|s| s.is_some_and(|s| s.ipa == page))
    }

    fn give_up(&mut self, page: u64) {
        if self.refused.is_full() {
            self.refused.pop_front();
        }
        let _ = self.refused.push_back(page);
    }

    /// Maps page `i` as itself again and forgets it (given up if `refuse`).
    fn release(&mut self, i: usize, refuse: bool) {
        if let Some(s) = self.shadows[i].take() {
            stage2::restore_from_shadow(s.ipa, false);
            if refuse {
                self.give_up(s.ipa);
            }
        }
    }
}

/// Patches the POR_EL1 access at `ipa` in the guest's code: its page is
/// shadowed (once) and the site carried. Returns the page's site count.
pub fn patch(ipa: u64) -> Result<u32, Refusal> {
    let page = ipa & !(PAGE - 1);
    let word = ((ipa & (PAGE - 1)) / 4) as usize;
    let mut reg = REGISTRY.lock();
    if reg.refused.iter().any(|&p| p == page) {
        return Err(Refusal::GivenUp);
    }
    let guest = guest_page(page).ok_or(Refusal::NotRam)?;
    let (i, mut shadow) = match reg.find(page) {
        Some(i) => (i, reg.shadows[i].ok_or(Refusal::NoShadow)?),
        None => {
            let i = reg.shadows.iter().position(Option::is_none).ok_or(Refusal::NoShadow)?;
            (i, Shadow { ipa: page, sites: Sites::NONE, data_accesses: 0 })
        }
    };
    let new = reg.shadows[i].is_none();
    shadow.sites.add(word);
    let mut words = [0u32; PAGE_WORDS];
    shadow.sites.build(guest, &mut words);
    if !shadow.sites.contains(word) {
        return Err(Refusal::NotASite);
    }
    PAGES.write(i, &words);
    if new {
        if !stage2::move_to_shadow(page, PAGES.pa(i)) {
            reg.give_up(page);
            return Err(Refusal::Moved);
        }
        // A write that reached the page before the move (it still mapped
        // itself) is in the shadow now too; later ones fault and rebuild it.
        shadow.sites.build(guest, &mut words);
        PAGES.write(i, &words);
        if shadow.sites.is_empty() {
            stage2::restore_from_shadow(page, false);
            return Err(Refusal::NotASite);
        }
    }
    reg.shadows[i] = Some(shadow);
    Ok(shadow.sites.count())
}

/// True if stage 2 maps the guest page at `ipa` to a code shadow.
pub fn is_shadowed(ipa: u64) -> bool {
    REGISTRY.lock().find(ipa & !(PAGE - 1)).is_some()
}

/// The guest completed an access to its shadowed page at `ipa` (`wrote`:
/// its page changed): the shadow is rebuilt, or given up once the page
/// has taken too many accesses or has no site left. None: not a shadowed
/// page.
pub fn after_access(ipa: u64, wrote: bool) -> Option<AfterAccess> {
    let page = ipa & !(PAGE - 1);
    let mut reg = REGISTRY.lock();
    let i = reg.find(page)?;
    let mut s = reg.shadows[i]?;
    s.data_accesses += 1;
    if s.data_accesses > MAX_DATA_ACCESSES {
        reg.release(i, true);
        return Some(AfterAccess::Released);
    }
    if wrote {
        let Some(guest) = guest_page(page) else {
            reg.release(i, true);
            return Some(AfterAccess::Released);
        };
        let mut words = [0u32; PAGE_WORDS];
        s.sites.build(guest, &mut words);
        if s.sites.is_empty() {
            reg.release(i, false);
            return Some(AfterAccess::Released);
        }
        PAGES.write(i, &words);
    }
    reg.shadows[i] = Some(s);
    Some(AfterAccess::Kept { sites: s.sites.count() })
}

/// Maps the guest page at `ipa` as itself again, for good (an access
/// porwatch cannot complete, or the tap needs the page). False: it was not
/// shadowed.
pub fn give_up(ipa: u64) -> bool {
    let page = ipa & !(PAGE - 1);
    let mut reg = REGISTRY.lock();
    match reg.find(page) {
        Some(i) => {
            reg.release(i, true);
            true
        }
        None => false,
    }
}
