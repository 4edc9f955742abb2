//! The ID-register table: every field of every register in the TID3 space,
//! as Linux `arch/arm64/tools/sysreg` (linux-next, 2025) transcribes the
//! Arm ARM, with porwatch's rule for it. AArch64 registers come first: the
//! view is computed in this order, and a rule may depend on a field listed
//! before it ([`Rule::Needs`]).
//!
//! Why a rule is what it is, in short (docs/cpu.md has the long form):
//! * `PASS`: the feature needs nothing from EL2, or only traps porwatch
//!   leaves off for every guest (CPTR_EL2, the FGT "n" bits, MDCR_EL2.TTRF).
//! * `Enable`: porwatch sets the named control when it passes the feature.
//! * `EL2`: the field describes EL2, EL3 or stage 2 (the guest has no EL2).
//! * `NEEDS`: the feature's EL2 controls stay at their trapping or
//!   disabled value, or it needs work porwatch does not do.
//! * `WATCH`: the page-table watch cannot follow it.
use super::{Ctl, Field, FieldRef, Reason, Reg, Rule, Sign};
use crate::pgtable::regs::PA_RANGE_MAX_4K;
use crate::sysreg::*;

const PASS: Rule = Rule::Pass;
const EL2: Rule = Rule::Hide(Reason::El2Only);
const NEEDS: Rule = Rule::Hide(Reason::NeedsEl2);
const WATCH: Rule = Rule::Hide(Reason::PageTableWatch);
const IMPDEF: Rule = Rule::Hide(Reason::Unknown);

/// A 4-bit unsigned field.
const fn u(name: &'static str, lsb: u8, rule: Rule) -> Field {
    Field { name, lsb, width: 4, sign: Sign::Unsigned, rule }
}
/// A 4-bit signed field.
const fn s(name: &'static str, lsb: u8, rule: Rule) -> Field {
    Field { name, lsb, width: 4, sign: Sign::Signed, rule }
}
/// A 1-bit field.
const fn b(name: &'static str, lsb: u8, rule: Rule) -> Field {
    Field { name, lsb, width: 1, sign: Sign::Unsigned, rule }
}
/// An 8-bit count.
const fn w8(name: &'static str, lsb: u8, rule: Rule) -> Field {
    Field { name, lsb, width: 8, sign: Sign::Unsigned, rule }
}

// Fields other rules refer to.
pub const PFR0_SVE: FieldRef = FieldRef(ID_AA64PFR0_EL1, 32);
pub const PFR0_EL0: FieldRef = FieldRef(ID_AA64PFR0_EL1, 0);
pub const PFR1_SME: FieldRef = FieldRef(ID_AA64PFR1_EL1, 24);
pub const PFR1_MTE: FieldRef = FieldRef(ID_AA64PFR1_EL1, 8);
pub const PFR2_FPMR: FieldRef = FieldRef(ID_AA64PFR2_EL1, 32);
pub const DFR0_PMUVER: FieldRef = FieldRef(ID_AA64DFR0_EL1, 8);
pub const PFR0_AMU: FieldRef = FieldRef(ID_AA64PFR0_EL1, 44);
pub const MMFR0_FGT: FieldRef = FieldRef(ID_AA64MMFR0_EL1, 56);
pub const MMFR1_HCX: FieldRef = FieldRef(ID_AA64MMFR1_EL1, 40);
pub const MMFR1_HAFDBS: FieldRef = FieldRef(ID_AA64MMFR1_EL1, 0);
pub const MMFR3_TCRX: FieldRef = FieldRef(ID_AA64MMFR3_EL1, 0);
pub const MMFR3_SCTLRX: FieldRef = FieldRef(ID_AA64MMFR3_EL1, 4);
pub const MMFR3_S1PIE: FieldRef = FieldRef(ID_AA64MMFR3_EL1, 8);
pub const MMFR3_S1POE: FieldRef = FieldRef(ID_AA64MMFR3_EL1, 16);
pub const PFR0_CSV2: FieldRef = FieldRef(ID_AA64PFR0_EL1, 56);
pub const PFR1_CSV2_FRAC: FieldRef = FieldRef(ID_AA64PFR1_EL1, 32);

const SVE: &[FieldRef] = &[PFR0_SVE];
const SME: &[FieldRef] = &[PFR1_SME];
const SME_FP8: &[FieldRef] = &[PFR1_SME, PFR2_FPMR];
const MTE: &[FieldRef] = &[PFR1_MTE];
const FPMR: &[FieldRef] = &[PFR2_FPMR];
const SCTLRX: &[FieldRef] = &[MMFR3_SCTLRX];

const IF_SVE: Rule = Rule::Needs(SVE, &PASS);
const IF_SME: Rule = Rule::Needs(SME, &PASS);
const IF_SME_FP8: Rule = Rule::Needs(SME_FP8, &PASS);
const IF_FPMR: Rule = Rule::Needs(FPMR, &PASS);
const IF_MTE: Rule = Rule::Needs(MTE, &PASS);
const PAUTH: Rule = Rule::Enable(&[Ctl::PAuth], 1);

pub static REGS: &[Reg] = &[
    Reg {
        id: ID_AA64PFR0_EL1,
        name: "ID_AA64PFR0_EL1",
        fields: &[
            u("CSV3", 60, PASS),
            // CSV2_2 and up: SCXTNUM_EL0/EL1 trap unless HCR_EL2.EnSCXT.
            // Lowered to 1 (no SCXTNUM) while SCXTNUM_EL1 carries POR_EL1.
            u("CSV2", 56, Rule::Carrier(1, &Rule::Enable(&[Ctl::Scxtnum], 2))),
            u("RME", 52, EL2),
            u("DIT", 48, PASS),
            // CPTR_EL2.TAM = 0 and HAFGRTR_EL2 = 0 for every guest.
            u("AMU", 44, PASS),
            // MPAM1_EL1 traps to EL2/EL3 until MPAM2_EL2/MPAM3_EL3 allow it.
            u("MPAM", 40, NEEDS),
            u("SEL2", 36, EL2),
            u("SVE", 32, Rule::Enable(&[Ctl::Sve], 1)),
            // RASv1p1: ERXPFG*_EL1 trap unless HCR_EL2.FIEN.
            u("RAS", 28, Rule::Enable(&[Ctl::RasFaultInjection], 2)),
            // 3 = GICv4.1 system registers: virtual LPIs are EL2's.
            u("GIC", 24, Rule::Max(1, Reason::El2Only)),
            s("AdvSIMD", 20, PASS),
            s("FP", 16, PASS),
            // SMC reaches porwatch (PSCI) or the firmware.
            u("EL3", 12, PASS),
            u("EL2", 8, EL2),
            // HCR_EL2.RW = 1: EL1 is AArch64 only.
            u("EL1", 4, Rule::Max(1, Reason::El2Config)),
            u("EL0", 0, PASS),
        ],
    },
    Reg {
        id: ID_AA64PFR1_EL1,
        name: "ID_AA64PFR1_EL1",
        fields: &[
            // PFAR_EL1 traps with FEAT_FGT2 (HFGRTR2_EL2.nPFAR_EL1 = 0),
            // which porwatch does not program; SCR_EL3.PFAREn.
            u("PFAR", 60, NEEDS),
            // SError/IRQ routing controls in HCRX_EL2/SCTLR2 left at reset.
            u("DF2", 56, NEEDS),
            // TCR_EL1.MTX changes the tag bits of addresses: porwatch's
            // stage-1 regime does not decode it.
            u("MTEX", 52, WATCH),
            // RCW* instructions write descriptors; the store emulation does
            // not decode them (and TCR2_EL1.PnCH changes bit 52).
            u("THE", 48, WATCH),
            // HCRX_EL2.GCSEn stays 0: porwatch's exception injection and
            // ERET emulation do not implement PSTATE.EXLOCK.
            u("GCS", 44, NEEDS),
            u("MTE_frac", 40, PASS),
            // Exceptions porwatch injects do not set PSTATE.ALLINT.
            u("NMI", 36, NEEDS),
            u("CSV2_frac", 32, Rule::Carrier(1, &Rule::Enable(&[Ctl::Scxtnum], 2))),
            // SCR_EL3.TRNDR describes EL3.
            u("RNDR_trap", 28, EL2),
            u("SME", 24, Rule::Enable(&[Ctl::Sme], 1)),
            u("MPAM_frac", 16, NEEDS),
            u("RAS_frac", 12, Rule::Enable(&[Ctl::RasFaultInjection], 1)),
            // MTE2 and up: tag accesses trap unless HCR_EL2.ATA.
            u("MTE", 8, Rule::Enable(&[Ctl::MteTags], 2)),
            u("SSBS", 4, PASS),
            u("BT", 0, PASS),
        ],
    },
    Reg {
        id: ID_AA64PFR2_EL1,
        name: "ID_AA64PFR2_EL1",
        fields: &[
            // FPMR accesses trap unless HCRX_EL2.EnFPM (QEMU 11, Linux 6.12).
            u("FPMR", 32, Rule::Enable(&[Ctl::Fpmr], 1)),
            u("UINJ", 16, EL2),
            u("MTEFAR", 8, IF_MTE),
            u("MTESTOREONLY", 4, IF_MTE),
            // Allocation-tag access permission in stage 2.
            u("MTEPERM", 0, EL2),
        ],
    },
    Reg {
        id: ID_AA64ZFR0_EL1,
        name: "ID_AA64ZFR0_EL1",
        fields: &[
            u("F64MM", 56, IF_SVE),
            u("F32MM", 52, IF_SVE),
            u("F16MM", 48, IF_SVE),
            u("I8MM", 44, IF_SVE),
            u("SM4", 40, IF_SVE),
            u("SHA3", 32, IF_SVE),
            u("B16B16", 24, IF_SVE),
            u("BF16", 20, IF_SVE),
            u("BitPerm", 16, IF_SVE),
            u("EltPerm", 12, IF_SVE),
            u("AES", 4, IF_SVE),
            u("SVEver", 0, IF_SVE),
        ],
    },
    Reg {
        id: ID_AA64SMFR0_EL1,
        name: "ID_AA64SMFR0_EL1",
        fields: &[
            // FA64 in streaming mode needs SMCR_EL2.FA64.
            b("FA64", 63, Rule::Needs(SME, &Rule::Enable(&[Ctl::SmeFa64], 1))),
            b("LUTv2", 60, IF_SME),
            // SME2's ZT0 traps unless SMCR_EL2.EZT0.
            u("SMEver", 56, Rule::Needs(SME, &Rule::Enable(&[Ctl::SmeZt0], 1))),
            u("I16I64", 52, IF_SME),
            b("F64F64", 48, IF_SME),
            u("I16I32", 44, IF_SME),
            b("B16B16", 43, IF_SME),
            b("F16F16", 42, IF_SME),
            b("F8F16", 41, IF_SME_FP8),
            b("F8F32", 40, IF_SME_FP8),
            u("I8I32", 36, IF_SME),
            b("F16F32", 35, IF_SME),
            b("B16F32", 34, IF_SME),
            b("BI32I32", 33, IF_SME),
            b("F32F32", 32, IF_SME),
            b("SF8FMA", 30, IF_SME_FP8),
            b("SF8DP4", 29, IF_SME_FP8),
            b("SF8DP2", 28, IF_SME_FP8),
            b("SBitPerm", 25, IF_SME),
            b("AES", 24, IF_SME),
            b("SFEXPA", 23, IF_SME),
            b("STMOP", 16, IF_SME),
            b("SMOP4", 0, IF_SME),
        ],
    },
    Reg {
        id: ID_AA64FPFR0_EL1,
        name: "ID_AA64FPFR0_EL1",
        fields: &[
            b("F8CVT", 31, IF_FPMR),
            b("F8FMA", 30, IF_FPMR),
            b("F8DP4", 29, IF_FPMR),
            b("F8DP2", 28, IF_FPMR),
            b("F8MM8", 27, IF_FPMR),
            b("F8MM4", 26, IF_FPMR),
            b("F8E4M3", 1, IF_FPMR),
            b("F8E5M2", 0, IF_FPMR),
        ],
    },
    Reg {
        id: ID_AA64MMFR0_EL1,
        name: "ID_AA64MMFR0_EL1",
        fields: &[
            // 1: self-synchronized counter views at EL0/EL1; 2 adds
            // CNTPOFF_EL2, an EL2 register.
            u("ECV", 60, Rule::Max(1, Reason::El2Only)),
            u("FGT", 56, EL2),
            u("EXS", 44, PASS),
            // Stage-2 granules: 1 = not supported (0 means "as TGRANx").
            u("TGRAN4_2", 40, Rule::Fixed(1, Reason::El2Only)),
            u("TGRAN64_2", 36, Rule::Fixed(1, Reason::El2Only)),
            u("TGRAN16_2", 32, Rule::Fixed(1, Reason::El2Only)),
            s("TGRAN4", 28, PASS),
            // 16K/64K granules: the page-table watch reports a coverage
            // gap for them rather than the guest failing to boot.
            s("TGRAN64", 24, PASS),
            u("TGRAN16", 20, PASS),
            u("BIGENDEL0", 16, PASS),
            u("SNSMEM", 12, PASS),
            u("BIGEND", 8, PASS),
            u("ASIDBITS", 4, PASS),
            // porwatch's stage 2 gives the guest a 48-bit IPA space.
            u("PARANGE", 0, Rule::Max(PA_RANGE_MAX_4K, Reason::El2Config)),
        ],
    },
    Reg {
        id: ID_AA64MMFR1_EL1,
        name: "ID_AA64MMFR1_EL1",
        fields: &[
            u("ECBHB", 60, PASS),
            u("CMOW", 56, PASS),
            u("TIDCP1", 52, PASS),
            u("nTLBPA", 48, PASS),
            u("AFP", 44, PASS),
            u("HCX", 40, EL2),
            u("ETS", 36, PASS),
            // SCTLR_EL1.TWEDEn: EL0's WFE traps to EL1.
            u("TWED", 32, PASS),
            u("XNX", 28, EL2),
            u("SpecSEI", 24, PASS),
            u("PAN", 20, PASS),
            // HCR_EL2.TLOR = 0.
            u("LO", 16, PASS),
            u("HPDS", 12, PASS),
            u("VH", 8, EL2),
            u("VMIDBits", 4, EL2),
            // The stage-1 walker must not update tracked descriptors itself
            // (its writes would fault at stage 2 with S1PTW). Untracked,
            // HAFT (3) needs TCR2_EL1.HAFT and HDBSS (4) is stage 2's.
            u("HAFDBS", 0, Rule::Watch { tracked: &WATCH, untracked: &Rule::Max(2, Reason::NeedsEl2) }),
        ],
    },
    Reg {
        id: ID_AA64MMFR2_EL1,
        name: "ID_AA64MMFR2_EL1",
        fields: &[
            u("E0PD", 60, PASS),
            // HCR_EL2.{TTLBIS, TTLBOS, TICAB, TOCU, TID4} are EL2 traps.
            u("EVT", 56, EL2),
            u("BBM", 52, PASS),
            u("TTL", 48, PASS),
            u("FWB", 40, EL2),
            u("IDS", 36, PASS),
            u("AT", 32, PASS),
            u("ST", 28, PASS),
            u("NV", 24, EL2),
            u("CCIDX", 20, PASS),
            u("VARange", 16, PASS),
            u("IESB", 12, PASS),
            u("LSM", 8, PASS),
            u("UAO", 4, PASS),
            u("CnP", 0, PASS),
        ],
    },
    Reg {
        id: ID_AA64MMFR3_EL1,
        name: "ID_AA64MMFR3_EL1",
        fields: &[
            u("Spec_FPACC", 60, PASS),
            // FEAT_ADERR/ANERR (2, 3) need HCRX_EL2.EnSDERR/EnSNERR.
            u("ADERR", 56, Rule::Max(1, Reason::NeedsEl2)),
            u("SDERR", 52, Rule::Max(1, Reason::NeedsEl2)),
            u("ANERR", 44, Rule::Max(1, Reason::NeedsEl2)),
            u("SNERR", 40, Rule::Max(1, Reason::NeedsEl2)),
            u("D128_2", 36, EL2),
            // 128-bit descriptors: the walker and tracker read 64-bit ones.
            u("D128", 32, WATCH),
            u("MEC", 28, EL2),
            u("AIE", 24, Rule::Tcr2Hw(&Rule::Enable(&[Ctl::Aie], 1))),
            u("S2POE", 20, EL2),
            u("S1POE", 16, Rule::S1Poe),
            u("S2PIE", 12, EL2),
            // TCR2_EL1.PIE must reach the hardware (HCRX_EL2.TCR2En = 1).
            u("S1PIE", 8, Rule::Tcr2Hw(&Rule::Enable(&[Ctl::Pie], 1))),
            u("SCTLRX", 4, Rule::Enable(&[Ctl::Sctlr2], 1)),
            // Emulated under virtual POE (HCRX_EL2.TCR2En follows the path,
            // controls.rs).
            u("TCRX", 0, PASS),
        ],
    },
    Reg {
        id: ID_AA64MMFR4_EL1,
        name: "ID_AA64MMFR4_EL1",
        fields: &[
            u("E3DSE", 36, EL2),
            s("E2H0", 24, Rule::Fixed(0, Reason::El2Only)),
            u("NV_frac", 20, EL2),
            u("FGWTE3", 16, EL2),
            u("HACDBS", 12, EL2),
            // TCR2_EL1.{A2, FNG0, FNG1}.
            u("ASID2", 8, Rule::Tcr2Hw(&Rule::Enable(&[Ctl::Asid2], 1))),
            s("EIESB", 4, PASS),
        ],
    },
    Reg {
        id: ID_AA64DFR0_EL1,
        name: "ID_AA64DFR0_EL1",
        fields: &[
            // MDCR_EL2.HPMN = 0 is an EL2 setting.
            u("HPMN0", 60, EL2),
            u("ExtTrcBuff", 56, NEEDS),
            // BRBCR_EL2 and MDCR_EL3.SBRBE are not set up.
            u("BRBE", 52, NEEDS),
            // MDCR_EL2.MTPME = 0: PMEVTYPER<n>_EL0.MT reads as 0.
            s("MTPMU", 48, NEEDS),
            // MDCR_EL2.E2TB = 0: the trace buffer is EL2's.
            u("TraceBuffer", 44, NEEDS),
            // MDCR_EL2.TTRF = 0: TRFCR_EL1 does not trap.
            u("TraceFilt", 40, PASS),
            u("DoubleLock", 36, PASS),
            // MDCR_EL2.E2PB = 0: the profiling buffer is EL2's.
            u("PMSVer", 32, NEEDS),
            u("CTX_CMPs", 28, PASS),
            // PMU exceptions (MDCR_EL2.PMEE) and PSTATE.PM on injection.
            u("SEBEP", 24, NEEDS),
            u("WRPs", 20, PASS),
            u("PMSS", 16, NEEDS),
            u("BRPs", 12, PASS),
            // MDCR_EL2.HPMN = PMCR_EL0.N. PMUv3p9 adds PMUACR_EL1, which
            // FEAT_FGT2's traps (HDFGRTR2_EL2, reset UNKNOWN) would catch:
            // porwatch does not program FGT2.
            u("PMUVer", 8, Rule::Max(8, Reason::NeedsEl2)),
            // CPTR_EL2.TTA = 0.
            u("TraceVer", 4, PASS),
            // Debugv8p9 adds MDSELR_EL1 (FGT2 trap, as above).
            u("DebugVer", 0, Rule::Max(0xa, Reason::NeedsEl2)),
        ],
    },
    Reg {
        id: ID_AA64DFR1_EL1,
        name: "ID_AA64DFR1_EL1",
        fields: &[
            w8("ABL_CMPs", 56, PASS),
            u("DPFZS", 52, PASS),
            u("EBEP", 48, NEEDS),
            u("ITE", 44, NEEDS),
            u("ABLE", 40, PASS),
            u("PMICNTR", 36, NEEDS),
            // MDCR_EL2.EnSPM = 0: System PMU registers trap.
            u("SPMU", 32, NEEDS),
            // More than 16 breakpoints/watchpoints need MDSELR_EL1
            // (Debugv8p9, not passed).
            w8("CTX_CMPs", 24, NEEDS),
            w8("WRPs", 16, NEEDS),
            w8("BRPs", 8, NEEDS),
            w8("SYSPMUID", 0, NEEDS),
        ],
    },
    Reg {
        id: ID_AA64DFR2_EL1,
        name: "ID_AA64DFR2_EL1",
        fields: &[
            u("TRBE_EXC", 24, NEEDS),
            u("SPE_nVM", 20, NEEDS),
            u("SPE_EXC", 16, NEEDS),
            // MDCR_EL2.EBWE = 0.
            u("BWE", 4, NEEDS),
            // MDCR_EL2.EnSTEPOP = 0: MDSTEPOP_EL1 traps.
            u("STEP", 0, NEEDS),
        ],
    },
    Reg {
        id: ID_AA64AFR0_EL1,
        name: "ID_AA64AFR0_EL1",
        fields: &[
            u("IMPDEF7", 28, IMPDEF),
            u("IMPDEF6", 24, IMPDEF),
            u("IMPDEF5", 20, IMPDEF),
            u("IMPDEF4", 16, IMPDEF),
            u("IMPDEF3", 12, IMPDEF),
            u("IMPDEF2", 8, IMPDEF),
            u("IMPDEF1", 4, IMPDEF),
            u("IMPDEF0", 0, IMPDEF),
        ],
    },
    Reg { id: ID_AA64AFR1_EL1, name: "ID_AA64AFR1_EL1", fields: &[] },
    Reg {
        id: ID_AA64ISAR0_EL1,
        name: "ID_AA64ISAR0_EL1",
        fields: &[
            u("RNDR", 60, PASS),
            u("TLB", 56, PASS),
            u("TS", 52, PASS),
            u("FHM", 48, PASS),
            u("DP", 44, PASS),
            u("SM4", 40, PASS),
            u("SM3", 36, PASS),
            u("SHA3", 32, PASS),
            u("RDM", 28, PASS),
            // HCR_EL2.TME = 0 (TSTART UNDEFs); every trap aborts a
            // transaction.
            u("TME", 24, NEEDS),
            // 3 = LSE128: 128-bit atomics the store emulation does not
            // decode.
            u("ATOMIC", 20, Rule::Max(2, Reason::PageTableWatch)),
            u("CRC32", 16, PASS),
            u("SHA2", 12, PASS),
            u("SHA1", 8, PASS),
            u("AES", 4, PASS),
        ],
    },
    Reg {
        id: ID_AA64ISAR1_EL1,
        name: "ID_AA64ISAR1_EL1",
        fields: &[
            // HCRX_EL2.{EnALS, EnASR, EnAS0} stay 0: LD64B/ST64B* trap.
            u("LS64", 60, NEEDS),
            u("XS", 56, PASS),
            u("I8MM", 52, PASS),
            u("DGH", 48, PASS),
            u("BF16", 44, PASS),
            u("SPECRES", 40, PASS),
            u("SB", 36, PASS),
            u("FRINTTS", 32, PASS),
            u("GPI", 28, PAUTH),
            u("GPA", 24, PAUTH),
            u("LRCPC", 20, PASS),
            u("FCMA", 16, PASS),
            u("JSCVT", 12, PASS),
            u("API", 8, PAUTH),
            u("APA", 4, PAUTH),
            u("DPB", 0, PASS),
        ],
    },
    Reg {
        id: ID_AA64ISAR2_EL1,
        name: "ID_AA64ISAR2_EL1",
        fields: &[
            u("ATS1A", 60, PASS),
            u("LUT", 56, PASS),
            u("CSSC", 52, PASS),
            u("RPRFM", 48, PASS),
            u("PCDPHINT", 44, PASS),
            u("PRFMSLC", 40, PASS),
            // HCRX_EL2.EnIDCP128 stays 0; 128-bit registers come with D128.
            u("SYSINSTR_128", 36, NEEDS),
            u("SYSREG_128", 32, NEEDS),
            u("CLRBHB", 28, PASS),
            u("PAC_frac", 24, PAUTH),
            u("BC", 20, PASS),
            // CPY*/SET* UNDEF at EL1/EL0 unless HCRX_EL2.MSCEn.
            u("MOPS", 16, Rule::Enable(&[Ctl::Mops], 1)),
            u("APA3", 12, PAUTH),
            u("GPA3", 8, PAUTH),
            u("RPRES", 4, PASS),
            u("WFxT", 0, PASS),
        ],
    },
    Reg {
        id: ID_AA64ISAR3_EL1,
        name: "ID_AA64ISAR3_EL1",
        fields: &[
            u("FPRCVT", 28, PASS),
            u("LSUI", 24, PASS),
            u("OCCMO", 20, PASS),
            u("LSFE", 16, PASS),
            // HCRX_EL2.PACMEn stays 0.
            u("PACM", 12, NEEDS),
            // TLBI VMALLWS2E1*: EL2 instructions.
            u("TLBIW", 8, EL2),
            u("FAMINMAX", 4, PASS),
            // Checked pointer arithmetic is controlled in SCTLR2_EL1.
            u("CPA", 0, Rule::Needs(SCTLRX, &PASS)),
        ],
    },
    // AArch32 (EL0 only: HCR_EL2.RW = 1 keeps EL1 AArch64).
    Reg {
        id: ID_PFR0_EL1,
        name: "ID_PFR0_EL1",
        fields: &[
            u("RAS", 28, PASS),
            u("DIT", 24, PASS),
            u("AMU", 20, PASS),
            u("CSV2", 16, PASS),
            u("State3", 12, PASS),
            u("State2", 8, PASS),
            u("State1", 4, PASS),
            u("State0", 0, PASS),
        ],
    },
    Reg {
        id: ID_PFR1_EL1,
        name: "ID_PFR1_EL1",
        fields: &[
            u("GIC", 28, Rule::Max(1, Reason::El2Only)),
            u("Virt_frac", 24, EL2),
            u("Sec_frac", 20, EL2),
            u("GenTimer", 16, PASS),
            u("Virtualization", 12, EL2),
            u("MProgMod", 8, PASS),
            u("Security", 4, EL2),
            u("ProgMod", 0, PASS),
        ],
    },
    Reg {
        id: ID_DFR0_EL1,
        name: "ID_DFR0_EL1",
        fields: &[
            u("TraceFilt", 28, PASS),
            // As ID_AA64DFR0_EL1.PMUVer / DebugVer.
            u("PerfMon", 24, Rule::Max(8, Reason::NeedsEl2)),
            u("MProfDbg", 20, PASS),
            u("MMapTrc", 16, PASS),
            u("CopTrc", 12, PASS),
            u("MMapDbg", 8, PASS),
            u("CopSDbg", 4, PASS),
            u("CopDbg", 0, Rule::Max(0xa, Reason::NeedsEl2)),
        ],
    },
    Reg {
        id: ID_AFR0_EL1,
        name: "ID_AFR0_EL1",
        fields: &[
            u("IMPDEF3", 12, IMPDEF),
            u("IMPDEF2", 8, IMPDEF),
            u("IMPDEF1", 4, IMPDEF),
            u("IMPDEF0", 0, IMPDEF),
        ],
    },
    Reg {
        id: ID_MMFR0_EL1,
        name: "ID_MMFR0_EL1",
        fields: &[
            u("InnerShr", 28, PASS),
            u("FCSE", 24, PASS),
            u("AuxReg", 20, PASS),
            u("TCM", 16, PASS),
            u("ShareLvl", 12, PASS),
            u("OuterShr", 8, PASS),
            u("PMSA", 4, PASS),
            u("VMSA", 0, PASS),
        ],
    },
    Reg {
        id: ID_MMFR1_EL1,
        name: "ID_MMFR1_EL1",
        fields: &[
            u("BPred", 28, PASS),
            u("L1TstCln", 24, PASS),
            u("L1Uni", 20, PASS),
            u("L1Hvd", 16, PASS),
            u("L1UniSW", 12, PASS),
            u("L1HvdSW", 8, PASS),
            u("L1UniVA", 4, PASS),
            u("L1HvdVA", 0, PASS),
        ],
    },
    Reg {
        id: ID_MMFR2_EL1,
        name: "ID_MMFR2_EL1",
        fields: &[
            u("HWAccFlg", 28, PASS),
            u("WFIStall", 24, PASS),
            u("MemBarr", 20, PASS),
            u("UniTLB", 16, PASS),
            u("HvdTLB", 12, PASS),
            u("L1HvdRng", 8, PASS),
            u("L1HvdBG", 4, PASS),
            u("L1HvdFG", 0, PASS),
        ],
    },
    Reg {
        id: ID_MMFR3_EL1,
        name: "ID_MMFR3_EL1",
        fields: &[
            u("Supersec", 28, PASS),
            u("CMemSz", 24, PASS),
            u("CohWalk", 20, PASS),
            u("PAN", 16, PASS),
            u("MaintBcst", 12, PASS),
            u("BPMaint", 8, PASS),
            u("CMaintSW", 4, PASS),
            u("CMaintVA", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR0_EL1,
        name: "ID_ISAR0_EL1",
        fields: &[
            u("Divide", 24, PASS),
            u("Debug", 20, PASS),
            u("Coproc", 16, PASS),
            u("CmpBranch", 12, PASS),
            u("BitField", 8, PASS),
            u("BitCount", 4, PASS),
            u("Swap", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR1_EL1,
        name: "ID_ISAR1_EL1",
        fields: &[
            u("Jazelle", 28, PASS),
            u("Interwork", 24, PASS),
            u("Immediate", 20, PASS),
            u("IfThen", 16, PASS),
            u("Extend", 12, PASS),
            u("Except_AR", 8, PASS),
            u("Except", 4, PASS),
            u("Endian", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR2_EL1,
        name: "ID_ISAR2_EL1",
        fields: &[
            u("Reversal", 28, PASS),
            u("PSR_AR", 24, PASS),
            u("MultU", 20, PASS),
            u("MultS", 16, PASS),
            u("Mult", 12, PASS),
            u("MultiAccessInt", 8, PASS),
            u("MemHint", 4, PASS),
            u("LoadStore", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR3_EL1,
        name: "ID_ISAR3_EL1",
        fields: &[
            u("T32EE", 28, PASS),
            u("TrueNOP", 24, PASS),
            u("T32Copy", 20, PASS),
            u("TabBranch", 16, PASS),
            u("SynchPrim", 12, PASS),
            u("SVC", 8, PASS),
            u("SIMD", 4, PASS),
            u("Saturate", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR4_EL1,
        name: "ID_ISAR4_EL1",
        fields: &[
            u("SWP_frac", 28, PASS),
            u("PSR_M", 24, PASS),
            u("SynchPrim_frac", 20, PASS),
            u("Barrier", 16, PASS),
            u("SMC", 12, PASS),
            u("Writeback", 8, PASS),
            u("WithShifts", 4, PASS),
            u("Unpriv", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR5_EL1,
        name: "ID_ISAR5_EL1",
        fields: &[
            u("VCMA", 28, PASS),
            u("RDM", 24, PASS),
            u("CRC32", 16, PASS),
            u("SHA2", 12, PASS),
            u("SHA1", 8, PASS),
            u("AES", 4, PASS),
            u("SEVL", 0, PASS),
        ],
    },
    Reg {
        id: ID_MMFR4_EL1,
        name: "ID_MMFR4_EL1",
        fields: &[
            u("EVT", 28, EL2),
            u("CCIDX", 24, PASS),
            u("LSM", 20, PASS),
            u("HPDS", 16, PASS),
            u("CnP", 12, PASS),
            u("XNX", 8, EL2),
            u("AC2", 4, PASS),
            u("SpecSEI", 0, PASS),
        ],
    },
    Reg {
        id: ID_ISAR6_EL1,
        name: "ID_ISAR6_EL1",
        fields: &[
            u("I8MM", 24, PASS),
            u("BF16", 20, PASS),
            u("SPECRES", 16, PASS),
            u("SB", 12, PASS),
            u("FHM", 8, PASS),
            u("DP", 4, PASS),
            u("JSCVT", 0, PASS),
        ],
    },
    Reg {
        id: MVFR0_EL1,
        name: "MVFR0_EL1",
        fields: &[
            u("FPRound", 28, PASS),
            u("FPShVec", 24, PASS),
            u("FPSqrt", 20, PASS),
            u("FPDivide", 16, PASS),
            u("FPTrap", 12, PASS),
            u("FPDP", 8, PASS),
            u("FPSP", 4, PASS),
            u("SIMDReg", 0, PASS),
        ],
    },
    Reg {
        id: MVFR1_EL1,
        name: "MVFR1_EL1",
        fields: &[
            u("SIMDFMAC", 28, PASS),
            u("FPHP", 24, PASS),
            u("SIMDHP", 20, PASS),
            u("SIMDSP", 16, PASS),
            u("SIMDInt", 12, PASS),
            u("SIMDLS", 8, PASS),
            u("FPDNaN", 4, PASS),
            u("FPFtZ", 0, PASS),
        ],
    },
    Reg { id: MVFR2_EL1, name: "MVFR2_EL1", fields: &[u("FPMisc", 4, PASS), u("SIMDMisc", 0, PASS)] },
    Reg {
        id: ID_PFR2_EL1,
        name: "ID_PFR2_EL1",
        fields: &[u("RAS_frac", 8, PASS), u("SSBS", 4, PASS), u("CSV3", 0, PASS)],
    },
    Reg { id: ID_DFR1_EL1, name: "ID_DFR1_EL1", fields: &[u("HPMN0", 4, EL2), s("MTPMU", 0, NEEDS)] },
    Reg { id: ID_MMFR5_EL1, name: "ID_MMFR5_EL1", fields: &[u("nTLBPA", 4, PASS), u("ETS", 0, PASS)] },
];

/// The register and field `r` names, if the table has them.
pub fn lookup(r: FieldRef) -> Option<(&'static Reg, &'static Field)> {
    let reg = REGS.iter().find(|g| g.id == r.0)?;
    let f = reg.fields.iter().find(|f| f.lsb == r.1)?;
    Some((reg, f))
}
