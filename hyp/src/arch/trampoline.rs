//! The tap's shadow pages (mechanism; the plan is
//! porwatch_monitor::trampoline, the rules in docs/tap.md): porwatch-owned
//! copies of guest vector pages with an HVC hook on each slot, which stage 2
//! maps execute-only in place of the guest's page. Data accesses to the page
//! never reach a shadow (tap.rs completes or redirects them to the guest's
//! page, then refreshes the shadow).
//!
//! A shadow belongs to a guest page (its IPA), not to a vCPU: stage 2 is
//! shared, so every vCPU whose VBAR_EL1 points into that page uses the same
//! shadow (`users`).
use super::regs::{CTR_EL0, CTR_EL0_REG};
use super::stage2;
use core::cell::UnsafeCell;
use porwatch_monitor::trampoline::{self, Plan, Refusal, PAGE_BYTES, PAGE_WORDS};
use spin::Mutex;
use tock_registers::interfaces::Readable;

/// Guest pages hooked at once (a vector page per distinct VBAR_EL1).
pub const MAX_SHADOWS: usize = 4;

/// Why a page is not hooked (the tap falls back to execute-never).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HookError {
    /// The page's slots cannot all be hooked.
    Plan(Refusal),
    /// The page is not guest RAM (or not mapped with 4 KiB pages).
    NotRam,
    /// Every shadow page is in use.
    NoShadow,
    /// `porwatch.tap=step` asks for the execute-never mechanism.
    Asked,
}

#[repr(C, align(4096))]
struct Page([u32; PAGE_WORDS]);

struct Pages(UnsafeCell<[Page; MAX_SHADOWS]>);
// SAFETY: a page is written only under REGISTRY's lock, by the vCPU that
// holds it; the guest only executes it.
unsafe impl Sync for Pages {}

static PAGES: Pages = Pages(UnsafeCell::new([const { Page([0; PAGE_WORDS]) }; MAX_SHADOWS]));

#[derive(Clone, Copy)]
struct Hooked {
    ipa: u64,
    users: u32,
    /// The page's own stage-2 descriptor (RAM, identity).
    own: u64,
    /// Stage 2 maps the page's own descriptor again (a data access is
    /// being single-stepped).
    open: bool,
    plan: Plan,
}

static REGISTRY: Mutex<[Option<Hooked>; MAX_SHADOWS]> = Mutex::new([None; MAX_SHADOWS]);

fn shadow_pa(i: usize) -> u64 {
    // SAFETY: in bounds; only the address is taken.
    unsafe { (PAGES.0.get() as *mut Page).add(i) as u64 }
}

/// The guest page at `ipa`, read through hyp's identity map of RAM.
fn guest_page(ipa: u64) -> Option<&'static [u32; PAGE_WORDS]> {
    let pa = stage2::ram_pa(ipa, PAGE_BYTES as u64)?;
    // SAFETY: guest RAM, identity mapped at EL2, 4 KiB aligned.
    Some(unsafe { &*(pa as *const [u32; PAGE_WORDS]) })
}

/// Plans the hooks for the guest page at `ipa` (its table at `table`) and
/// writes shadow `i`, ready for instruction fetches.
fn build(i: usize, ipa: u64, table: usize) -> Result<Plan, HookError> {
    let page = guest_page(ipa).ok_or(HookError::NotRam)?;
    let plan = trampoline::plan(page, table).map_err(HookError::Plan)?;
    // SAFETY: shadow i is ours (REGISTRY's lock); the guest may be
    // executing it, as it may its own code while it patches it.
    let shadow = unsafe { &mut (*PAGES.0.get())[i].0 };
    shadow.copy_from_slice(page);
    plan.apply(shadow);
    sync_icache(shadow_pa(i));
    Ok(plan)
}

/// Makes a page porwatch wrote visible to instruction fetches (D-cache
/// cleaned to the point of unification, every I-cache invalidated: the
/// guest fetches it through another translation).
fn sync_icache(pa: u64) {
    // CTR_EL0.DminLine [19:16]: log2 of the smallest D-cache line in words.
    let line = 4u64 << CTR_EL0_REG.read(CTR_EL0::DminLine);
    let mut a = pa;
    while a < pa + PAGE_BYTES as u64 {
        unsafe { core::arch::asm!("dc cvau, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack)) };
}

/// Hooks the guest page at `ipa`, whose vector table is at page offset
/// `table`: its shadow replaces it at stage 2. Returns the plan (where each
/// slot resumes).
pub fn hook(ipa: u64, table: usize) -> Result<Plan, HookError> {
    let mut reg = REGISTRY.lock();
    if let Some(h) = reg.iter_mut().flatten().find(|h| h.ipa == ipa) {
        h.users += 1;
        return Ok(h.plan);
    }
    let i = reg.iter().position(Option::is_none).ok_or(HookError::NoShadow)?;
    let plan = build(i, ipa, table)?;
    let own = stage2::move_page(ipa, stage2::execute_only_desc(shadow_pa(i))).ok_or(HookError::NotRam)?;
    reg[i] = Some(Hooked { ipa, users: 1, own, open: false, plan });
    Ok(plan)
}

/// Drops one user of the hooked page at `ipa`; the last one maps the
/// page's own descriptor back.
pub fn unhook(ipa: u64) {
    let mut reg = REGISTRY.lock();
    let Some(slot) = reg.iter_mut().find(|h| h.is_some_and(|h| h.ipa == ipa)) else { return };
    let Some(h) = slot.as_mut() else { return };
    h.users -= 1;
    if h.users == 0 {
        if !h.open {
            stage2::move_page(ipa, h.own);
        }
        *slot = None;
    }
}

/// A guest data access to the hooked page at `ipa` that porwatch does not
/// complete itself: stage 2 maps the page's own descriptor until `close`.
pub fn open(ipa: u64) {
    let mut reg = REGISTRY.lock();
    if let Some(h) = reg.iter_mut().flatten().find(|h| h.ipa == ipa && !h.open) {
        stage2::move_page(ipa, h.own);
        h.open = true;
    }
}

/// The guest may have changed its page at `ipa` (a write porwatch
/// completed, or a data access stepped while `open`): rebuild the shadow
/// from it and map the shadow (again). Err: the page can no longer be
/// hooked; it is left mapped as itself and unhooked for every user.
pub fn refresh(ipa: u64, table: usize) -> Result<Plan, HookError> {
    let mut reg = REGISTRY.lock();
    let Some(i) = reg.iter().position(|h| h.is_some_and(|h| h.ipa == ipa)) else {
        return Err(HookError::NotRam);
    };
    let Some(mut h) = reg[i] else { return Err(HookError::NotRam) };
    match build(i, ipa, table) {
        Ok(plan) => {
            if h.open {
                stage2::move_page(ipa, stage2::execute_only_desc(shadow_pa(i)));
                h.open = false;
            }
            h.plan = plan;
            reg[i] = Some(h);
            Ok(plan)
        }
        Err(e) => {
            if !h.open {
                stage2::move_page(ipa, h.own);
            }
            reg[i] = None;
            Err(e)
        }
    }
}
