//! The tap's shadow pages (mechanism; the plan is
//! porwatch_monitor::trampoline, the rules in docs/tap.md): porwatch-owned
//! copies of guest vector pages with an HVC hook on each slot, which stage 2
//! maps execute-only in place of the guest's page, in the shared tables, so
//! every CPU (and every private root, arch/stage2.rs) fetches the shadow.
//! Data accesses to the page never reach a shadow (tap.rs completes them on
//! the guest's page, or steps one with the page mapped as itself in that
//! CPU's private root only), then the shadow is refreshed.
//!
//! A shadow belongs to a guest page (its IPA) and the table in it, not to a
//! CPU: every CPU whose VBAR_EL1 points at that table uses the same shadow,
//! counted in `users` (refcounted: a CPU that moves its VBAR_EL1 drops its
//! use, the last one maps the page as itself again). A CPU whose table is
//! another one in an already hooked page cannot share the shadow (its slots
//! would need other hooks) and takes the execute-never tap instead.
//!
//! Each CPU keeps its own copy of the resume addresses (its fast-path
//! block). So a refresh that would move a displaced instruction while other
//! CPUs use the shadow does not rewrite it: the page is mapped as itself,
//! execute-never for everyone ([`Refreshed::Withdrawn`]), and every user
//! moves to the execute-never tap on its next fetch there (tap.rs).
use super::shadow_pages::{guest_page, ShadowPages};
use super::stage2;
use porwatch_monitor::por_sites::Sites;
use porwatch_monitor::trampoline::{self, Plan, Refusal, PAGE_BYTES, PAGE_WORDS, SLOTS};
use spin::Mutex;

/// Guest pages hooked at once (a vector page per distinct VBAR_EL1).
pub const MAX_SHADOWS: usize = stage2::MAX_TRAMPOLINES;

/// Why a page is not hooked (the tap falls back to execute-never).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HookError {
    /// The page's slots cannot all be hooked.
    Plan(Refusal),
    /// The page is not guest RAM (or not mapped with 4 KiB pages).
    NotRam,
    /// Every shadow page is in use.
    NoShadow,
    /// Another CPU's hooked table is in the same page (one shadow per page).
    OtherTable,
    /// The page was withdrawn from the trampoline for every CPU (a refresh
    /// with other users that would move a hook).
    Withdrawn,
    /// `porwatch.tap=step` asks for the execute-never mechanism.
    Asked,
}

static PAGES: ShadowPages<MAX_SHADOWS> = ShadowPages::new();

#[derive(Clone, Copy)]
struct Hooked {
    ipa: u64,
    /// CPUs whose tap uses the shadow (or, `withdrawn`, has not yet left it).
    users: u32,
    plan: Plan,
    /// Mapped as itself, execute-never in the shared tables, until the
    /// last user has left.
    withdrawn: bool,
    /// Patched POR_EL1 sites in the page (por_sites.rs), outside the hooks.
    sites: Sites,
}

static REGISTRY: Mutex<[Option<Hooked>; MAX_SHADOWS]> = Mutex::new([None; MAX_SHADOWS]);

/// Plans the hooks for the guest page at `ipa` (its table at `table`),
/// and carries its patched POR_EL1 `sites` (those left are kept in it).
fn plan(ipa: u64, table: usize, sites: &mut Sites) -> Result<(Plan, [u32; PAGE_WORDS]), HookError> {
    let page = guest_page(ipa).ok_or(HookError::NotRam)?;
    let mut words = [0u32; PAGE_WORDS];
    words.copy_from_slice(page);
    let plan = trampoline::plan(&words, table).map_err(HookError::Plan)?;
    plan.apply(&mut words);
    sites.apply(page, &mut words);
    Ok((plan, words))
}

/// Hooks the guest page at `ipa`, whose vector table is at page offset
/// `table`, for one more CPU: its shadow replaces it at stage 2 (once, for
/// every CPU). Returns the plan (where each slot resumes).
pub fn hook(ipa: u64, table: usize) -> Result<Plan, HookError> {
    let mut reg = REGISTRY.lock();
    if let Some(h) = reg.iter_mut().flatten().find(|h| h.ipa == ipa) {
        if h.withdrawn {
            return Err(HookError::Withdrawn);
        }
        if h.plan.table != table {
            return Err(HookError::OtherTable);
        }
        h.users += 1;
        return Ok(h.plan);
    }
    let i = reg.iter().position(Option::is_none).ok_or(HookError::NoShadow)?;
    let mut sites = Sites::NONE;
    let (plan, words) = plan(ipa, table, &mut sites)?;
    PAGES.write(i, &words);
    if !stage2::move_to_shadow(ipa, PAGES.pa(i)) {
        return Err(HookError::NotRam);
    }
    reg[i] = Some(Hooked { ipa, users: 1, plan, withdrawn: false, sites });
    Ok(plan)
}

/// Drops one CPU's use of the hooked page at `ipa`; the last one maps the
/// page as itself again (executable).
pub fn unhook(ipa: u64) {
    let mut reg = REGISTRY.lock();
    let Some(slot) = reg.iter_mut().find(|h| h.is_some_and(|h| h.ipa == ipa)) else { return };
    let Some(h) = slot.as_mut() else { return };
    h.users = h.users.saturating_sub(1);
    if h.users == 0 {
        if h.withdrawn {
            stage2::clear_shared_xn(ipa);
        } else {
            stage2::restore_from_shadow(ipa, false);
        }
        *slot = None;
    }
}

/// The hooks of the page at `ipa`, if its shadow is mapped.
pub fn plan_of(ipa: u64) -> Option<Plan> {
    REGISTRY.lock().iter().flatten().find(|h| h.ipa == ipa && !h.withdrawn).map(|h| h.plan)
}

/// True if the page at `ipa` was withdrawn from the trampoline and users
/// still have to leave it.
pub fn is_withdrawn(ipa: u64) -> bool {
    REGISTRY.lock().iter().flatten().any(|h| h.ipa == ipa && h.withdrawn)
}

/// Patches the POR_EL1 access at `ipa`, in a hooked page (por_sites.rs):
/// its shadow carries it from now on (the hooks' words are left alone).
/// Returns the page's site count; None if the page is not hooked or the
/// word cannot be carried.
pub fn add_site(ipa: u64) -> Option<u32> {
    let page = ipa & !(PAGE_BYTES as u64 - 1);
    let mut reg = REGISTRY.lock();
    let i = reg.iter().position(|h| h.is_some_and(|h| h.ipa == page && !h.withdrawn))?;
    let mut h = reg[i]?;
    let word = (ipa - page) as usize / 4;
    h.sites.add(word);
    let (_, words) = plan(page, h.plan.table, &mut h.sites).ok()?;
    if !h.sites.contains(word) {
        return None;
    }
    // The plan is unchanged (the guest's page is): only the site's word
    // differs.
    PAGES.write(i, &words);
    let n = h.sites.count();
    reg[i] = Some(h);
    Some(n)
}

/// Why [`refresh`] left the shadow.
pub enum Lost {
    /// The page is no longer hooked for anyone (mapped as itself,
    /// executable): the caller was its only user.
    Unhooked(HookError),
    /// The page is mapped as itself, execute-never for every CPU, until
    /// every user has left (tap.rs moves them to the execute-never tap).
    Withdrawn(HookError),
}

/// The guest may have changed its page at `ipa` (a write porwatch
/// completed, or a data access stepped): rebuild the shadow from it.
pub fn refresh(ipa: u64) -> Result<Plan, Lost> {
    let mut reg = REGISTRY.lock();
    let Some(i) = reg.iter().position(|h| h.is_some_and(|h| h.ipa == ipa)) else {
        return Err(Lost::Unhooked(HookError::NotRam));
    };
    let Some(mut h) = reg[i] else { return Err(Lost::Unhooked(HookError::NotRam)) };
    if h.withdrawn {
        return Err(Lost::Withdrawn(HookError::Withdrawn));
    }
    let planned = plan(ipa, h.plan.table, &mut h.sites);
    let same_resume = |p: &Plan| (0..SLOTS as u8).all(|s| p.resume(0, s) == h.plan.resume(0, s));
    match planned {
        Ok((plan, words)) if h.users == 1 || same_resume(&plan) => {
            PAGES.write(i, &words);
            h.plan = plan;
            reg[i] = Some(h);
            Ok(plan)
        }
        Ok(_) | Err(_) if h.users > 1 => {
            let why = planned.err().unwrap_or(HookError::Withdrawn);
            stage2::restore_from_shadow(ipa, true);
            h.withdrawn = true;
            reg[i] = Some(h);
            Err(Lost::Withdrawn(why))
        }
        Ok(_) | Err(_) => {
            stage2::restore_from_shadow(ipa, false);
            reg[i] = None;
            Err(Lost::Unhooked(planned.err().unwrap_or(HookError::NotRam)))
        }
    }
}
