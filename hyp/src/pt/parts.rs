//! A plain store that crosses from one page into the next, one of them a
//! tracked table page (an unaligned `STR X`/`STP` whose last bytes land in
//! a table): both pages are translated for a write as the CPU would
//! (`AT S1E1W`, `AT S1E0W` for STTR), checked against the overlay, and the
//! whole store is emulated, each table part fed to the tracker.
//!
//! What the hardware would do decides the outcome, in address order:
//! a part that does not translate gets its stage-1 fault (or the external
//! abort on the walk) with FAR = the part's first byte; a table part the
//! overlay denies is a hazard. Fault policy injects the overlay fault at
//! the lowest part the overlay denies (FAR = that part's first byte: the
//! Arm ARM reports "the lower address that gave rise to the fault" and
//! leaves the choice between two faulting parts open) and writes nothing;
//! report policy writes both parts. Overlays on the ordinary part are the
//! hardware's business only where it has FEAT_S1POE: under virtual POE
//! porwatch enforces them on table pages only (docs/pagetables.md).
use super::{
    apply, overlay_verdict, read_bytes, read_u64_at, record_hazard, set_reg_or_sp, unemulated, walk_abort,
    write_bytes, HazardInfo, Origin, Ram, Unemulated, Watch, FSC_PERMISSION_L0, INSN_LEN, ISS2_OVERLAY,
};
use crate::arch::at::{self, WriteFault};
use crate::arch::frame::GuestRegs;
use crate::arch::{inject, stage2};
use crate::boot::config;
use crate::traps::Handled;
use porwatch_monitor::cmdline::Policy;
use porwatch_monitor::inject::WalkAccess;
use porwatch_monitor::store::{self, Plan};
use porwatch_monitor::tap::page_of;
use porwatch_trace::{HazardAction, TrapOutcome};

/// The overlay's verdict for a privileged or unprivileged write to `va`
/// (native POE: the CPU denied it; the walk gives the leaf for the record).
fn overlay_verdict_now(
    va: u64,
    unprivileged: bool,
) -> Option<(porwatch_monitor::s1::OverlayVerdict, u64, i8)> {
    let regime = *super::WATCH.lock().current_regime();
    overlay_verdict(&regime, va, unprivileged, true)
}

/// The store `plan` (a [`Plan::Write`] crossing a page boundary, FAR in
/// one of its parts).
pub(super) fn store(
    mut w: spin::MutexGuard<'_, Watch>,
    regs: &mut GuestRegs,
    plan: &Plan,
    u: Unemulated,
    origin: Origin,
) -> Handled {
    let Plan::Write { addr, len, data, writeback, .. } = *plan else {
        return unemulated(w, regs, u, origin);
    };
    let pc = regs.elr;
    let parts = store::page_parts(addr, len);
    // Where each part goes (PA = IPA: guest RAM is identity-mapped).
    let mut pa = [0u64; 2];
    for (i, part) in parts.iter().enumerate() {
        let ipa = if page_of(part.va) == page_of(u.far) {
            Ok(u.ipa - (u.far - part.va))
        } else {
            at::va_to_ipa_write(part.va, u.unprivileged)
        };
        if ipa.is_err() && origin == Origin::HardwareOverlay {
            // The CPU's own overlay fault stands (the architecture does
            // not say which of two faults it reports); the guest's handler
            // runs. Only what the hazard record needs is left to do.
            let d = u.ipa & !7;
            let old = read_u64_at(d);
            let level = w.table_level(u.ipa);
            w.hazards += 1;
            drop(w);
            let verdict = overlay_verdict_now(u.far, u.unprivileged);
            let h = HazardInfo {
                va: u.far,
                ipa: u.ipa,
                level,
                old,
                new: old,
                pc,
                verdict,
                unprivileged: u.unprivileged,
            };
            record_hazard(&h, HazardAction::HardwareFault);
            return Handled::Done(TrapOutcome::Forwarded);
        }
        match ipa {
            Ok(ipa) => match stage2::ram_pa(ipa, part.len as u64) {
                Some(p) => pa[i] = p,
                None => {
                    // Outside guest RAM (porwatch's memory, a hole): what
                    // stage 2 answers there.
                    drop(w);
                    inject::external_data_abort(regs, 0, true, part.va);
                    return Handled::Done(TrapOutcome::AbortInjected);
                }
            },
            Err(WriteFault::Stage1 { fsc }) => {
                drop(w);
                inject::data_abort(regs, fsc, true, 0, part.va);
                return Handled::Done(TrapOutcome::AbortInjected);
            }
            Err(WriteFault::Walk) => {
                drop(w);
                return walk_abort::inject_for(regs, part.va, WalkAccess::Write);
            }
        }
    }
    // The overlay, part by part, on the state before the write.
    let mut tracked = [false; 2];
    let mut first_denied: Option<(u64, i8)> = None;
    let mut hazards: heapless::Vec<(usize, HazardInfo), 2> = heapless::Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let hw = origin == Origin::HardwareOverlay && page_of(part.va) == page_of(u.far);
        let verdict = overlay_verdict(w.current_regime(), part.va, u.unprivileged, hw);
        let denied = hw || matches!(verdict, Some((v, _, _)) if !v.grants_write);
        if denied && first_denied.is_none() {
            first_denied = Some((part.va, verdict.map_or(3, |v| v.2)));
        }
        tracked[i] = w.tracker.is_page_protected(pa[i]);
        if tracked[i] && denied {
            // The descriptor holding the part's first byte, before and after.
            let d = pa[i] & !7;
            let old = read_u64_at(d);
            let new = store::descriptor_after(d, old, pa[i], &data[part.offset..part.offset + part.len]);
            let info = HazardInfo {
                va: part.va,
                ipa: pa[i],
                level: w.table_level(pa[i]),
                old,
                new,
                pc,
                verdict,
                unprivileged: u.unprivileged,
            };
            let _ = hazards.push((i, info));
        }
    }
    if !hazards.is_empty() && config().opts.policy == Policy::Fault {
        w.hazards += hazards.len() as u64;
        drop(w);
        if origin == Origin::HardwareOverlay {
            for (_, h) in hazards.iter() {
                record_hazard(h, HazardAction::HardwareFault);
            }
            return Handled::Done(TrapOutcome::Forwarded);
        }
        for (_, h) in hazards.iter() {
            record_hazard(h, HazardAction::FaultInjected);
        }
        let (va, level) = first_denied.unwrap_or((u.far, 3));
        inject::data_abort(regs, FSC_PERMISSION_L0 + level.clamp(0, 3) as u8, true, ISS2_OVERLAY, va);
        return Handled::Done(TrapOutcome::AbortInjected);
    }
    // Both parts, in address order; the table parts through the tracker.
    w.stores += 1;
    for (i, part) in parts.iter().enumerate() {
        let mut old = [0u8; store::MAX_WRITE_BYTES];
        let new = &data[part.offset..part.offset + part.len];
        read_bytes(pa[i], &mut old[..part.len]);
        write_bytes(pa[i], new);
        if tracked[i] {
            let e = w.tracker.on_store(pa[i], &old[..part.len], new, &Ram, &mut apply);
            w.table_writes += e.descriptors as u64;
        }
    }
    if let Some((rn, v)) = writeback {
        set_reg_or_sp(regs, rn, v);
    }
    w.hazards += hazards.len() as u64;
    drop(w);
    let action =
        if origin == Origin::HardwareOverlay { HazardAction::HardwareFault } else { HazardAction::Performed };
    for (_, h) in hazards.iter() {
        record_hazard(h, action);
    }
    regs.elr += INSN_LEN;
    Handled::Machinery
}
