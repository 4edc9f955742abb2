//! ESR_ELx decoding: exception-class names (Arm ARM, ESR_ELx.EC) and a
//! short description of the syndrome for the classes a hypervisor sees most.

/// Exception class, ESR[31:26].
pub const fn ec(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// Name of exception class `ec`, if allocated.
pub const fn ec_name(ec: u8) -> Option<&'static str> {
    Some(match ec {
        0x00 => "UNKNOWN",
        0x01 => "WFx",
        0x03 => "CP15_32",
        0x04 => "CP15_64",
        0x05 => "CP14_MR",
        0x06 => "CP14_LS",
        0x07 => "FP/SIMD",
        0x08 => "CP10_ID",
        0x09 => "PAC",
        0x0a => "LS64",
        0x0c => "CP14_64",
        0x0d => "BTI",
        0x0e => "ILL",
        0x11 => "SVC32",
        0x12 => "HVC32",
        0x13 => "SMC32",
        0x15 => "SVC64",
        0x16 => "HVC64",
        0x17 => "SMC64",
        0x18 => "SYS64",
        0x19 => "SVE",
        0x1a => "ERET",
        0x1b => "TSTART",
        0x1c => "FPAC",
        0x1d => "SME",
        0x1f => "IMP_DEF",
        0x20 => "IABT_LOW",
        0x21 => "IABT_CUR",
        0x22 => "PC_ALIGN",
        0x24 => "DABT_LOW",
        0x25 => "DABT_CUR",
        0x26 => "SP_ALIGN",
        0x27 => "MOPS",
        0x28 => "FP_EXC32",
        0x2c => "FP_EXC64",
        0x2d => "GCS",
        0x2f => "SERROR",
        0x30 => "BREAKPT_LOW",
        0x31 => "BREAKPT_CUR",
        0x32 => "SOFTSTP_LOW",
        0x33 => "SOFTSTP_CUR",
        0x34 => "WATCHPT_LOW",
        0x35 => "WATCHPT_CUR",
        0x38 => "BKPT32",
        0x3a => "VECTOR32",
        0x3c => "BRK64",
        0x3d => "PMU",
        _ => return None,
    })
}

/// The class name of a syndrome, `EC_0x..` if unallocated.
pub fn ec_label(esr: u64) -> String {
    let ec = ec(esr);
    match ec_name(ec) {
        Some(n) => n.to_string(),
        None => format!("EC_{ec:#04x}"),
    }
}

/// The interesting ISS bits of some classes: the HVC/SVC/SMC immediate
/// (when not 0), the register of an MRS/MSR, the access of a data abort.
pub fn detail(esr: u64) -> Option<String> {
    let iss = esr & 0x01ff_ffff;
    match ec(esr) {
        0x15..=0x17 if iss & 0xffff != 0 => Some(format!("#{:#x}", iss & 0xffff)),
        0x18 => Some(describe_sys64(iss)),
        0x24 | 0x25 => Some(describe_dabt(iss)),
        _ => None,
    }
}

/// Human description of a syndrome: the class name plus [`detail`], e.g.
/// `HVC64`, `SYS64 MRS x3, POR_EL0`, `DABT_LOW write 4B x1`, `EC_0x3e`.
pub fn describe(esr: u64) -> String {
    match detail(esr) {
        Some(d) => format!("{} {d}", ec_label(esr)),
        None => ec_label(esr),
    }
}

/// `MRS x3, POR_EL0` / `MSR POR_EL0, x3` from a SYS64 ISS.
fn describe_sys64(iss: u64) -> String {
    let field = |shift: u32, bits: u32| ((iss >> shift) & ((1 << bits) - 1)) as u8;
    let (op0, op2, op1, crn, rt, crm) =
        (field(20, 2), field(17, 3), field(14, 3), field(10, 4), field(5, 5), field(1, 4));
    let reg = sysreg_name(op0, op1, crn, crm, op2)
        .map(str::to_string)
        .unwrap_or_else(|| format!("S{op0}_{op1}_C{crn}_C{crm}_{op2}"));
    let rt = if rt == 31 { "xzr".to_string() } else { format!("x{rt}") };
    if iss & 1 == 1 {
        format!("MRS {rt}, {reg}")
    } else {
        format!("MSR {reg}, {rt}")
    }
}

/// `read` / `write`, and with a valid instruction syndrome the access size
/// and register.
fn describe_dabt(iss: u64) -> String {
    let dir = if iss & (1 << 6) != 0 { "write" } else { "read" };
    if iss & (1 << 24) == 0 {
        return dir.to_string();
    }
    let size = 1u32 << ((iss >> 22) & 3);
    let srt = (iss >> 16) & 0x1f;
    format!("{dir} {size}B x{srt}")
}

/// Names of the system registers relevant to porwatch (POE and ID registers).
pub fn sysreg_name(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Option<&'static str> {
    Some(match (op0, op1, crn, crm, op2) {
        (3, 0, 0, 0, 0) => "MIDR_EL1",
        (3, 0, 0, 0, 5) => "MPIDR_EL1",
        (3, 0, 0, 0, 6) => "REVIDR_EL1",
        (3, 0, 0, 4, 0) => "ID_AA64PFR0_EL1",
        (3, 0, 0, 4, 1) => "ID_AA64PFR1_EL1",
        (3, 0, 0, 4, 2) => "ID_AA64PFR2_EL1",
        (3, 0, 0, 4, 4) => "ID_AA64ZFR0_EL1",
        (3, 0, 0, 4, 5) => "ID_AA64SMFR0_EL1",
        (3, 0, 0, 5, 0) => "ID_AA64DFR0_EL1",
        (3, 0, 0, 5, 1) => "ID_AA64DFR1_EL1",
        (3, 0, 0, 5, 4) => "ID_AA64AFR0_EL1",
        (3, 0, 0, 5, 5) => "ID_AA64AFR1_EL1",
        (3, 0, 0, 6, 0) => "ID_AA64ISAR0_EL1",
        (3, 0, 0, 6, 1) => "ID_AA64ISAR1_EL1",
        (3, 0, 0, 6, 2) => "ID_AA64ISAR2_EL1",
        (3, 0, 0, 7, 0) => "ID_AA64MMFR0_EL1",
        (3, 0, 0, 7, 1) => "ID_AA64MMFR1_EL1",
        (3, 0, 0, 7, 2) => "ID_AA64MMFR2_EL1",
        (3, 0, 0, 7, 3) => "ID_AA64MMFR3_EL1",
        (3, 0, 0, 7, 4) => "ID_AA64MMFR4_EL1",
        (3, 0, 1, 0, 0) => "SCTLR_EL1",
        (3, 0, 2, 0, 0) => "TTBR0_EL1",
        (3, 0, 2, 0, 1) => "TTBR1_EL1",
        (3, 0, 2, 0, 2) => "TCR_EL1",
        (3, 0, 2, 0, 3) => "TCR2_EL1",
        (3, 0, 10, 2, 0) => "MAIR_EL1",
        (3, 0, 10, 2, 2) => "PIRE0_EL1",
        (3, 0, 10, 2, 3) => "PIR_EL1",
        (3, 0, 10, 2, 4) => "POR_EL1",
        (3, 3, 10, 2, 4) => "POR_EL0",
        (3, 4, 10, 2, 4) => "POR_EL2",
        (3, 5, 10, 2, 4) => "POR_EL12",
        (3, 5, 2, 0, 3) => "TCR2_EL12",
        (3, 5, 1, 0, 0) => "SCTLR_EL12",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESR of an MRS/MSR trap.
    fn sys64(read: bool, op0: u64, op1: u64, crn: u64, crm: u64, op2: u64, rt: u64) -> u64 {
        (0x18 << 26)
            | (1 << 25)
            | (op0 << 20)
            | (op2 << 17)
            | (op1 << 14)
            | (crn << 10)
            | (rt << 5)
            | (crm << 1)
            | u64::from(read)
    }

    #[test]
    fn ec_names() {
        // EC 0x16 with IL set: HVC #0 from AArch64.
        assert_eq!(ec(0x5a00_0000), 0x16);
        assert_eq!(describe(0x5a00_0000), "HVC64");
        assert_eq!(describe(0x5a00_0001), "HVC64 #0x1");
        // 0x5e000000 is EC 0x17: SMC #0.
        assert_eq!(ec(0x5e00_0000), 0x17);
        assert_eq!(describe(0x5e00_0000), "SMC64");
        assert_eq!(detail(0x5e00_0000), None);
        assert_eq!(ec_label(0x5e00_0001), "SMC64");
        assert_eq!(detail(0x5e00_0001).as_deref(), Some("#0x1"));
        assert_eq!(describe(0x5600_0000), "SVC64");
        assert_eq!(describe(0), "UNKNOWN");
        assert_eq!(describe(0x3e << 26), "EC_0x3e");
        assert_eq!(ec_name(0x01), Some("WFx"));
        assert_eq!(ec_name(0x07), Some("FP/SIMD"));
        assert_eq!(ec_name(0x2f), Some("SERROR"));
        assert_eq!(ec_name(0x3c), Some("BRK64"));
        assert_eq!(ec_name(0x02), None);
        // Bits above ESR[31:26] (ISS2) do not change the class.
        assert_eq!(describe((0xffu64 << 32) | 0x5a00_0000), "HVC64");
    }

    #[test]
    fn sys64_decoding() {
        assert_eq!(describe(sys64(true, 3, 3, 10, 2, 4, 3)), "SYS64 MRS x3, POR_EL0");
        assert_eq!(describe(sys64(false, 3, 0, 10, 2, 4, 31)), "SYS64 MSR POR_EL1, xzr");
        assert_eq!(describe(sys64(true, 3, 0, 0, 7, 3, 0)), "SYS64 MRS x0, ID_AA64MMFR3_EL1");
        assert_eq!(describe(sys64(true, 2, 1, 9, 8, 7, 5)), "SYS64 MRS x5, S2_1_C9_C8_7");
    }

    #[test]
    fn dabt_decoding() {
        // ISV, SAS=2 (4 bytes), SRT=1, WnR.
        let esr = (0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (1 << 16) | (1 << 6);
        assert_eq!(describe(esr), "DABT_LOW write 4B x1");
        assert_eq!(describe(0x25 << 26), "DABT_CUR read");
    }
}
