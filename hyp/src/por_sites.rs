//! Patched POR_EL1 sites under virtual POE (docs/tap.md, "Patched POR_EL1
//! sites"; the decisions in porwatch_monitor::por_sites, the shadows in
//! arch/code_shadow.rs): when a CPU's fast path says a site is due (every
//! `PATCH_EVERY`-th POR_EL1 access that UNDEFs goes to Rust), the tap
//! completes the access and this patches its site; guest accesses to a
//! patched page are completed on the guest's own page. Each patch and each
//! page given up is traced (`por_site`).
use crate::arch::code_shadow::{self, AfterAccess, Refusal};
use crate::arch::frame::GuestRegs;
use crate::arch::{at, fast_path, percpu, stage2};
use crate::guest_access::{self, Completed};
use crate::trace_out;
use crate::traps::Handled;
use porwatch_monitor::cpus::MAX_CPUS;
use porwatch_monitor::esr::DataAbort;
use porwatch_monitor::por_sites::PATCH_EVERY;
use porwatch_monitor::tap::page_of;
use porwatch_trace::{Event, PorSiteState};

const PAGE_OFFSET_MASK: u64 = 0xfff;

fn enabled() -> bool {
    crate::cpu_view::get().por_carrier
}

/// Boot, before the guest runs: every CPU's fast path learns whether the
/// carrier is in use and counts down to its first site.
pub fn configure() {
    let on = enabled();
    for cpu in 0..MAX_CPUS {
        fast_path::configure_carrier(cpu, on, on.then_some(PATCH_EVERY));
    }
}

/// The tap completed a POR_EL1 access that UNDEFed at `pc` (from EL1): if
/// this CPU's countdown ran out, patch that site. `vector_page`: the IPA of
/// the page the tap watches on this CPU (never patched: the tap maps it).
pub fn after_undef(pc: u64, vector_page: Option<u64>) {
    if !enabled() || !fast_path::take_patch_due(percpu::index(), PATCH_EVERY) {
        return;
    }
    let Some(ipa) = at::va_to_ipa(pc) else { return };
    let page = page_of(ipa);
    if Some(page) == vector_page {
        // The tap's page: its trampoline shadow carries the site (with the
        // execute-never tap there is no shadow: the site keeps UNDEFing).
        if let Some(sites) = crate::arch::trampoline::add_site(ipa) {
            emit(pc, page, PorSiteState::Patched, sites);
        }
        return;
    }
    match code_shadow::patch(ipa) {
        Ok(sites) => emit(pc, page, PorSiteState::Patched, sites),
        // Said once, when the page was given up.
        Err(Refusal::GivenUp | Refusal::NotASite) => {}
        Err(Refusal::NotRam | Refusal::NoShadow | Refusal::Moved) => {
            // Not tried again (code_shadow remembers it for Moved; the
            // others are remembered here).
            code_shadow::give_up(ipa);
            emit(pc, page, PorSiteState::Refused, 0);
        }
    }
}

/// The tap is about to watch the page at `ipa` (a VBAR_EL1 write): a code
/// shadow there is given up first.
pub fn release_for_tap(ipa: u64, pc: u64) {
    if enabled() && code_shadow::give_up(ipa) {
        emit(pc, page_of(ipa), PorSiteState::Released, 0);
    }
}

/// A stage-2 data abort: ours if the guest read or wrote a patched code
/// page (through any VA). It sees and changes its own page, never the
/// shadow.
pub fn on_data_abort(regs: &mut GuestRegs, da: &DataAbort, far: u64) -> Option<Handled> {
    if !enabled() || da.fnv() {
        return None;
    }
    let ipa = at::va_to_ipa(far).or_else(|| at::va_to_ipa_write(far, false).ok())?;
    if !code_shadow::is_shadowed(ipa) {
        return None;
    }
    let pa = stage2::ram_pa(page_of(ipa), PAGE_OFFSET_MASK + 1)? | (far & PAGE_OFFSET_MASK);
    let pc = regs.elr;
    let after = match guest_access::complete(regs, da, pa) {
        Some(done) => code_shadow::after_access(ipa, done == Completed::Wrote),
        // An access the CPU does not describe: the page goes back to the
        // guest for good, and the access runs again on it.
        None => code_shadow::give_up(ipa).then_some(AfterAccess::Released),
    };
    if after == Some(AfterAccess::Released) {
        emit(pc, page_of(ipa), PorSiteState::Released, 0);
    }
    Some(Handled::Machinery)
}

fn emit(pc: u64, page: u64, state: PorSiteState, sites: u32) {
    trace_out::emit(Event::PorSite { pc, page, state: state as u64, sites: u64::from(sites) });
}
