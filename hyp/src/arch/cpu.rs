//! CPU identification and barriers.
use super::regs::ID_AA64MMFR3_EL1_REG;
use aarch64_cpu::registers::*;

/// The ID registers porwatch reads at boot (and puts in the trace header).
#[derive(Clone, Copy, Default)]
pub struct IdRegs {
    pub midr: u64,
    pub mpidr: u64,
    pub pfr0: u64,
    pub pfr1: u64,
    pub dfr0: u64,
    pub isar0: u64,
    pub isar1: u64,
    pub mmfr0: u64,
    pub mmfr1: u64,
    pub mmfr2: u64,
    pub mmfr3: u64,
}

impl IdRegs {
    pub fn read() -> Self {
        Self {
            midr: MIDR_EL1.get(),
            mpidr: MPIDR_EL1.get(),
            pfr0: ID_AA64PFR0_EL1.get(),
            pfr1: ID_AA64PFR1_EL1.get(),
            dfr0: ID_AA64DFR0_EL1.get(),
            isar0: ID_AA64ISAR0_EL1.get(),
            isar1: ID_AA64ISAR1_EL1.get(),
            mmfr0: ID_AA64MMFR0_EL1.get(),
            mmfr1: ID_AA64MMFR1_EL1.get(),
            mmfr2: ID_AA64MMFR2_EL1.get(),
            mmfr3: ID_AA64MMFR3_EL1_REG.get(),
        }
    }

    fn field(reg: u64, shift: u32) -> u64 {
        (reg >> shift) & 0xf
    }

    /// ID_AA64MMFR0_EL1.PARange [3:0].
    pub fn pa_range(&self) -> u64 {
        Self::field(self.mmfr0, 0)
    }
    /// FEAT_HCX: ID_AA64MMFR1_EL1.HCX [43:40].
    pub fn has_hcx(&self) -> bool {
        Self::field(self.mmfr1, 40) != 0
    }
    /// FEAT_FGT: ID_AA64MMFR0_EL1.FGT [59:56].
    pub fn has_fgt(&self) -> bool {
        Self::field(self.mmfr0, 56) != 0
    }
    /// FEAT_TCR2: ID_AA64MMFR3_EL1.TCRX [3:0].
    pub fn has_tcr2(&self) -> bool {
        Self::field(self.mmfr3, 0) != 0
    }
    /// GICv3 system registers: ID_AA64PFR0_EL1.GIC [27:24].
    pub fn has_gicv3_sysregs(&self) -> bool {
        Self::field(self.pfr0, 24) != 0
    }
}

#[inline(always)]
pub fn isb() {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

#[inline(always)]
pub fn dsb_ish() {
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::ISH);
}

impl IdRegs {
    /// All zero: stands in before the CPU has been read.
    pub const ZERO: Self = Self {
        midr: 0,
        mpidr: 0,
        pfr0: 0,
        pfr1: 0,
        dfr0: 0,
        isar0: 0,
        isar1: 0,
        mmfr0: 0,
        mmfr1: 0,
        mmfr2: 0,
        mmfr3: 0,
    };

    /// FEAT_MTE (any level): PSTATE.TCO is set on exception entry.
    pub fn has_mte(&self) -> bool {
        Self::field(self.pfr1, 8) != 0
    }

    /// FEAT_AMUv1: ID_AA64PFR0_EL1.AMU [47:44].
    pub fn has_amu(&self) -> bool {
        Self::field(self.pfr0, 44) != 0
    }
}
