//! FEAT_MOPS stores to tracked tables (`SET*`, `CPY*`, `CPYF*`): one
//! restartable step (the bytes of the faulting destination page) is
//! emulated, checked against the overlay and fed to the tracker; the
//! registers move in the instruction's own format and the guest re-executes
//! the same instruction, which carries on natively (porwatch_monitor::store
//! `mops_step` says why that is the architecture's contract).
use super::{
    apply, overlay_verdict, read_bytes, record_hazard, unemulated, write_bytes, HazardInfo, Origin, Ram,
    Unemulated, Watch, CHUNK, FSC_PERMISSION_L0, ISS2_OVERLAY,
};
use crate::arch::frame::GuestRegs;
use crate::arch::{at, inject, stage2};
use crate::boot::config;
use crate::traps::Handled;
use porwatch_monitor::cmdline::Policy;
use porwatch_monitor::store::{mops_step, Mops, MopsFill, MopsOp, MopsRegs};
use porwatch_monitor::tap::page_of;
use porwatch_trace::{HazardAction, TrapOutcome};

const PAGE: u64 = 4096;
/// SPSR_EL2.NZCV, bits [31:28].
const SPSR_NZCV_SHIFT: u32 = 28;
const NZCV_MASK: u64 = 0xf;

/// The trapped MOPS instruction `m` wrote the tracked table page holding
/// `ipa` (at `far`): emulate one step. `w` is the locked watch.
pub(super) fn store(
    mut w: spin::MutexGuard<'_, Watch>,
    regs: &mut GuestRegs,
    m: &Mops,
    far: u64,
    ipa: u64,
    origin: Origin,
) -> Handled {
    let pc = regs.elr;
    let xs = match m.op {
        MopsOp::Set { data_reg: 31 } => 0,
        MopsOp::Set { data_reg } => regs.get(data_reg),
        MopsOp::Copy { src_reg, .. } => regs.get(src_reg),
    };
    let r = MopsRegs {
        xd: regs.get(m.rd),
        xs,
        xn: regs.get(m.rn),
        nzcv: ((regs.spsr >> SPSR_NZCV_SHIFT) & NZCV_MASK) as u8,
    };
    let u = Unemulated { far, ipa, span: None, unprivileged: m.write_unprivileged };
    let Some(step) = mops_step(m, &r, PAGE) else {
        return unemulated(w, regs, u, origin);
    };
    // The registers say which bytes are left; the fault must be among the
    // step's (every implementation writes a page's bytes before moving on).
    if far < step.dst || far - step.dst >= step.len {
        return unemulated(w, regs, u, origin);
    }
    let dst_pa = ipa - (far - step.dst);
    let source = match step.fill {
        MopsFill::Byte(b) => Source::Byte(b),
        // The source is guest memory the CPU could read (stage 1, then
        // guest RAM only); the step never crosses a source page.
        MopsFill::CopyFrom(src) => match at::va_to_ipa(src).and_then(|i| stage2::ram_pa(i, step.len)) {
            Some(pa) => Source::Pa(pa),
            None => return unemulated(w, regs, u, origin),
        },
    };
    if stage2::ram_pa(dst_pa, step.len).is_none() {
        return unemulated(w, regs, u, origin);
    }

    let verdict =
        overlay_verdict(w.current_regime(), far, m.write_unprivileged, origin == Origin::HardwareOverlay);
    let hazard = origin == Origin::HardwareOverlay || matches!(verdict, Some((v, _, _)) if !v.grants_write);
    let level = if hazard { w.table_level(ipa) } else { (0, porwatch_monitor::s1::Half::Ttbr1) };
    // The descriptor holding FAR (guest RAM is identity-mapped: its PA).
    let desc = ipa & !7;
    let old_d = read_u64(desc);
    if hazard && config().opts.policy == Policy::Fault {
        // Nothing written: the registers still describe the work left, as
        // the hardware leaves them at the fault.
        let new_d = would_write(desc, old_d, dst_pa, step.len, source);
        w.hazards += 1;
        drop(w);
        let h = HazardInfo {
            va: far,
            ipa,
            level,
            old: old_d,
            new: new_d,
            pc,
            verdict,
            unprivileged: m.write_unprivileged,
        };
        if origin == Origin::HardwareOverlay {
            record_hazard(&h, HazardAction::HardwareFault);
            return Handled::Done(TrapOutcome::Forwarded);
        }
        record_hazard(&h, HazardAction::FaultInjected);
        let leaf_level = verdict.map_or(3, |v| v.2);
        inject::data_abort(regs, FSC_PERMISSION_L0 + leaf_level.clamp(0, 3) as u8, true, ISS2_OVERLAY, far);
        return Handled::Done(TrapOutcome::AbortInjected);
    }

    // In 32-byte pieces on destination boundaries, in the copy's direction
    // (a memmove's source may overlap the destination within the step).
    w.stores += 1;
    w.mops_steps += 1;
    let len = step.len;
    let first = dst_pa & !(CHUNK as u64 - 1);
    let pieces = (dst_pa + len - first).div_ceil(CHUNK as u64);
    for k in 0..pieces {
        let i = if step.backward { pieces - 1 - k } else { k };
        let lo = (first + i * CHUNK as u64).max(dst_pa);
        let hi = (first + (i + 1) * CHUNK as u64).min(dst_pa + len);
        let n = (hi - lo) as usize;
        let (mut old, mut new) = ([0u8; CHUNK], [0u8; CHUNK]);
        read_bytes(lo, &mut old[..n]);
        match source {
            Source::Byte(b) => new[..n].fill(b),
            Source::Pa(s) => read_bytes(s + (lo - dst_pa), &mut new[..n]),
        }
        write_bytes(lo, &new[..n]);
        let effect = w.tracker.on_store(lo, &old[..n], &new[..n], &Ram, &mut apply);
        w.table_writes += effect.descriptors as u64;
    }
    let new_d = read_u64(desc);
    regs.set(m.rd, step.xd);
    if let MopsOp::Copy { src_reg, .. } = m.op {
        regs.set(src_reg, step.xs);
    }
    regs.set(m.rn, step.xn);
    // Under the lock (the tracker may not change the page in between).
    w.refresh_leaf(page_of(ipa));
    if hazard {
        w.hazards += 1;
    }
    drop(w);
    if hazard {
        let performed = if origin == Origin::HardwareOverlay {
            HazardAction::HardwareFault
        } else {
            HazardAction::Performed
        };
        let h = HazardInfo {
            va: far,
            ipa,
            level,
            old: old_d,
            new: new_d,
            pc,
            verdict,
            unprivileged: m.write_unprivileged,
        };
        record_hazard(&h, performed);
    }
    // The same instruction again: it continues from the registers.
    Handled::Machinery
}

/// Where a step's bytes come from.
#[derive(Clone, Copy)]
enum Source {
    Byte(u8),
    /// The source's PA (guest RAM).
    Pa(u64),
}

fn read_u64(pa: u64) -> u64 {
    stage2::ram_pa(pa, 8).map_or(0, |p| unsafe { core::ptr::read_volatile(p as *const u64) })
}

/// The descriptor at `desc` (now `old`) as the step `[dst_pa, dst_pa +
/// len)` would leave it (fault policy: nothing is written).
fn would_write(desc: u64, old: u64, dst_pa: u64, len: u64, source: Source) -> u64 {
    let mut b = old.to_le_bytes();
    for (k, byte) in b.iter_mut().enumerate() {
        let a = desc + k as u64;
        if a < dst_pa || a >= dst_pa + len {
            continue;
        }
        *byte = match source {
            Source::Byte(v) => v,
            Source::Pa(s) => {
                let mut one = [0u8; 1];
                read_bytes(s + (a - dst_pa), &mut one);
                one[0]
            }
        };
    }
    u64::from_le_bytes(b)
}
