//! Trapped guest MSR/MRS (EC 0x18). What traps is chosen in arch/el2.rs:
//! VBAR_EL1 writes (the tap follows the vector table), ID registers (TID3,
//! virtual POE advertises S1POE), TCR2_EL1 (HCRX_EL2.TCR2En = 0 where
//! FEAT_TCR2 exists, virtual POE), CPACR_EL1 (FGT, virtual E0POE), POR_EL1
//! writes (native POE, logged), MDSCR_EL1 and other debug registers (only
//! while porwatch single-steps with MDCR_EL2.TDE), IMPLEMENTATION DEFINED
//! registers (TIDCP). Anything else is answered with an UNDEF.
use crate::arch::frame::GuestRegs;
use crate::arch::{idregs, inject, regs::POR_EL1_REG};
use crate::boot::config;
use crate::pt;
use crate::tap;
use crate::traps::Handled;
use aarch64_cpu::registers::{Readable, Writeable, CPACR_EL1};
use porwatch_monitor::esr::SysRegAccess;
use porwatch_monitor::s1::Half;
use porwatch_monitor::sysreg::{self, SysRegId};
use porwatch_monitor::vpoe::{self, Mode, VReg, CPACR_E0POE};
use porwatch_trace::TrapOutcome;

/// The trapped MSR/MRS completes; the guest continues after it.
const INSN_LEN: u64 = 4;

pub fn handle(regs: &mut GuestRegs, esr: u64, acc: SysRegAccess) -> Handled {
    let id = acc.id;
    let mode = config().poe;
    let value = if acc.is_read { None } else { Some(regs.get(acc.rt)) };
    let result: Option<u64> = match (id, value) {
        (sysreg::VBAR_EL1, Some(v)) => {
            let h = tap::on_vbar_write(regs, v);
            regs.elr += INSN_LEN;
            return h;
        }
        (id, None) if sysreg::is_tid3_space(id) => Some(read_id(id, mode)),
        (sysreg::TCR2_EL1, v) if mode == Mode::Virtual => Some(tap::with_vpoe(|p| match v {
            Some(v) => {
                let old = p.set(VReg::Tcr2El1, v);
                if old != v {
                    crate::trace_out::emit(porwatch_trace::Event::Tcr2Write { pc: regs.elr, old, new: v });
                }
                0
            }
            None => p.tcr2_el1,
        })),
        (sysreg::CPACR_EL1, v) if mode == Mode::Virtual => Some(tap::with_vpoe(|p| match v {
            Some(v) => {
                // The CPU has no E0POE bit: keep it virtual, write the rest.
                p.cpacr_e0poe = v & CPACR_E0POE != 0;
                CPACR_EL1.set(v & !CPACR_E0POE);
                0
            }
            None => CPACR_EL1.get() | if p.cpacr_e0poe { CPACR_E0POE } else { 0 },
        })),
        (sysreg::POR_EL1, Some(v)) if mode == Mode::Native => {
            let old = POR_EL1_REG.get();
            POR_EL1_REG.set(v);
            tap::record_por_change(VReg::PorEl1, regs.elr, old, v);
            Some(0)
        }
        // Virtual POE forced on a CPU that has FEAT_S1POE: the accesses do
        // not UNDEF there, FGT traps them (arch/el2.rs) and they land here.
        (sysreg::POR_EL1 | sysreg::POR_EL0, v) if mode == Mode::Virtual => {
            let reg = if id == sysreg::POR_EL1 { VReg::PorEl1 } else { VReg::PorEl0 };
            Some(tap::with_vpoe(|p| match v {
                Some(v) => {
                    let old = p.set(reg, v);
                    (old, Some(v))
                }
                None => (p.get(reg), None),
            }))
            .map(|(old, new)| {
                if let Some(new) = new {
                    tap::record_por_change(reg, regs.elr, old, new);
                }
                old
            })
        }
        (sysreg::MDSCR_EL1, v) => Some(tap::guest_mdscr(v)),
        // The page-table watch follows the guest's translation regime.
        (sysreg::TTBR0_EL1, Some(v)) if config().opts.track => {
            pt::on_ttbr_write(Half::Ttbr0, v);
            Some(0)
        }
        (sysreg::TTBR1_EL1, Some(v)) if config().opts.track => {
            pt::on_ttbr_write(Half::Ttbr1, v);
            Some(0)
        }
        (sysreg::TCR_EL1, Some(v)) if config().opts.track => {
            pt::on_tcr_write(v);
            Some(0)
        }
        // FGT's TCR_EL1 write trap covers TCR2_EL1 too (FEAT_TCR2): when it
        // is not virtual, write it through.
        (sysreg::TCR2_EL1, Some(v)) if config().opts.track => {
            unsafe { core::arch::asm!("msr s3_0_c2_c0_3, {}", in(reg) v, options(nomem, nostack)) };
            Some(0)
        }
        _ => None,
    };
    match result {
        // Linux reads CPACR_EL1 on every syscall (fpsimd/SVE state): under
        // virtual POE that read only merges a virtual bit, so it counts as
        // porwatch's machinery and leaves no trap record.
        Some(v) if id == sysreg::CPACR_EL1 && acc.is_read => {
            regs.set(acc.rt, v);
            regs.elr += INSN_LEN;
            Handled::Machinery
        }
        Some(v) => {
            if acc.is_read {
                regs.set(acc.rt, v);
            }
            regs.elr += INSN_LEN;
            Handled::Done(TrapOutcome::Emulated)
        }
        None => {
            inject::undef(regs, esr);
            Handled::Refused(TrapOutcome::UndefInjected)
        }
    }
}

/// An ID register as the guest sees it: the CPU's, except that virtual POE
/// advertises FEAT_S1POE; unallocated encodings read as zero.
fn read_id(id: SysRegId, mode: Mode) -> u64 {
    if sysreg::is_unallocated_raz(id) {
        return 0;
    }
    let real = idregs::read(id.crm(), id.op2()).unwrap_or(0);
    match id {
        sysreg::ID_AA64MMFR3_EL1 if mode == Mode::Virtual => vpoe::virtual_mmfr3(real),
        // The page-table watch cannot let the stage-1 walker update
        // descriptors in tracked tables itself (hardware AF/dirty updates
        // would fault at stage 2 with S1PTW): hide FEAT_HAFDBS.
        sysreg::ID_AA64MMFR1_EL1 if config().opts.track => real & !MMFR1_HAFDBS_MASK,
        _ => real,
    }
}

/// ID_AA64MMFR1_EL1.HAFDBS, bits [3:0].
const MMFR1_HAFDBS_MASK: u64 = 0xf;
