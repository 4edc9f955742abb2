//! Trapped guest MSR/MRS (EC 0x18). What traps is chosen in arch/el2.rs:
//! VBAR_EL1 writes (the tap follows the vector table), ID registers (TID3:
//! the guest's CPU, cpu_view.rs), TCR2_EL1 under virtual POE (with FGT
//! while the guest's value also drives the hardware, e.g. PIE; with
//! HCRX_EL2.TCR2En = 0 where porwatch cannot), TCR_EL1 (FGT: the
//! page-table watch, and reads under virtual POE since the same FGT bit
//! traps TCR2_EL1), CPACR_EL1 (FGT, virtual E0POE), POR_EL1 writes (native
//! POE, logged), SCXTNUM_EL1/EL0 writes (FGT: patched POR_EL1/POR_EL0
//! sites, por_sites.rs), MDSCR_EL1 and other debug registers (only while porwatch
//! single-steps with MDCR_EL2.TDE), IMPLEMENTATION DEFINED registers
//! (TIDCP). Anything else is answered with an UNDEF.
use crate::arch::frame::GuestRegs;
use crate::arch::{inject, regs::POR_EL1_REG, regs::TCR2_EL1_REG};
use crate::boot::config;
use crate::cpu_view;
use crate::pt;
use crate::tap;
use crate::traps::Handled;
use aarch64_cpu::registers::{Readable, Writeable, CPACR_EL1, TCR_EL1};
use porwatch_monitor::esr::SysRegAccess;
use porwatch_monitor::idregs::Tcr2Path;
use porwatch_monitor::s1::Half;
use porwatch_monitor::sysreg;
use porwatch_monitor::vpoe::{self, Mode, VReg, CPACR_E0POE};
use porwatch_trace::TrapOutcome;

/// SPSR_EL2.M[3:0] = EL0t: the access came from EL0.
const SPSR_M_MASK: u64 = 0xf;
const SPSR_M_EL0T: u64 = 0;

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
        (id, None) if sysreg::is_tid3_space(id) => Some(cpu_view::read_id(id)),
        (sysreg::TCR2_EL1, v) if mode == Mode::Virtual => Some(match v {
            Some(v) => {
                tap::write_virtual_tcr2(regs.elr, v);
                0
            }
            None => tap::with_vpoe(|p| p.tcr2_el1),
        }),
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
        // A patched POR_EL1 site (por_sites.rs) that vectors.S left to Rust
        // (a step in progress, the audit learning, ...): a POR_EL1 write at
        // the site's PC; the carrier follows at the tap's next publish.
        (sysreg::SCXTNUM_EL1, Some(v)) if cpu_view::get().por_carrier => {
            let old = tap::with_vpoe(|p| p.set(VReg::PorEl1, v));
            tap::record_por_change(VReg::PorEl1, regs.elr, old, v);
            regs.elr += INSN_LEN;
            return Handled::Machinery;
        }
        // A patched POR_EL0 site, or EL0 writing SCXTNUM_EL0 (hidden from
        // the guest: it stands for POR_EL0, with POR_EL0's permission).
        (sysreg::SCXTNUM_EL0, Some(v)) if cpu_view::get().por_carrier => {
            let from_el0 = regs.spsr & SPSR_M_MASK == SPSR_M_EL0T;
            let permitted = tap::with_vpoe(|p| vpoe::permitted(VReg::PorEl0, from_el0, p.cpacr_e0poe));
            if !permitted {
                inject::undef(regs, esr);
                return Handled::Refused(TrapOutcome::UndefInjected);
            }
            let old = tap::with_vpoe(|p| p.set(VReg::PorEl0, v));
            tap::record_por_change(VReg::PorEl0, regs.elr, old, v);
            regs.elr += INSN_LEN;
            return Handled::Machinery;
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
        (sysreg::TCR_EL1, Some(v)) => {
            if config().opts.track {
                pt::on_tcr_write(v);
            } else {
                TCR_EL1.set(v);
            }
            Some(0)
        }
        // Trapped only because the FGT bit also covers TCR2_EL1.
        (sysreg::TCR_EL1, None) => Some(TCR_EL1.get()),
        // FGT's TCR_EL1 write trap covers TCR2_EL1 too (FEAT_TCR2): when it
        // is not virtual, write through the bits the guest may set.
        (sysreg::TCR2_EL1, Some(v)) if cpu_view::get().controls.tcr2 == Tcr2Path::Hardware => {
            let c = &cpu_view::get().controls;
            TCR2_EL1_REG.set(v & c.tcr2_hw);
            pt::on_tcr2(crate::arch::percpu::index(), v & c.tcr2_guest);
            Some(0)
        }
        _ => None,
    };
    match result {
        // Linux reads CPACR_EL1 on every syscall (fpsimd/SVE state): under
        // virtual POE that read only merges a virtual bit, so it counts as
        // porwatch's machinery and leaves no trap record. Likewise TCR_EL1
        // reads, trapped only because the same FGT bit traps TCR2_EL1.
        // vectors.S completes most of both itself (lower_sync_sysreg,
        // lower_sync_cpacr); these are the rest (e.g. while stepping).
        Some(v) if matches!(id, sysreg::CPACR_EL1 | sysreg::TCR_EL1) && acc.is_read => {
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
