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

/// Linux's `esr_class_str[]` (arch/arm64/kernel/traps.c): the class name
/// `mem_abort_decode()` prints after `EC = 0x..:`.
pub const fn kernel_class_str(ec: u8) -> &'static str {
    match ec {
        0x00 => "Unknown/Uncategorized",
        0x01 => "WFI/WFE",
        0x03 => "CP15 MCR/MRC",
        0x04 => "CP15 MCRR/MRRC",
        0x05 => "CP14 MCR/MRC",
        0x06 => "CP14 LDC/STC",
        0x07 => "ASIMD",
        0x08 => "CP10 MRC/VMRS",
        0x09 => "PAC",
        0x0c => "CP14 MCRR/MRRC",
        0x0d => "BTI",
        0x0e => "PSTATE.IL",
        0x11 => "SVC (AArch32)",
        0x12 => "HVC (AArch32)",
        0x13 => "SMC (AArch32)",
        0x15 => "SVC (AArch64)",
        0x16 => "HVC (AArch64)",
        0x17 => "SMC (AArch64)",
        0x18 => "MSR/MRS (AArch64)",
        0x19 => "SVE",
        0x1a => "ERET/ERETAA/ERETAB",
        0x1c => "FPAC",
        0x1d => "SME",
        0x1f => "EL3 IMP DEF",
        0x20 => "IABT (lower EL)",
        0x21 => "IABT (current EL)",
        0x22 => "PC Alignment",
        0x24 => "DABT (lower EL)",
        0x25 => "DABT (current EL)",
        0x26 => "SP Alignment",
        0x27 => "MOPS",
        0x28 => "FP (AArch32)",
        0x2c => "FP (AArch64)",
        0x2d => "Guarded Control Stack",
        0x2f => "SError",
        0x30 => "Breakpoint (lower EL)",
        0x31 => "Breakpoint (current EL)",
        0x32 => "Software Step (lower EL)",
        0x33 => "Software Step (current EL)",
        0x34 => "Watchpoint (lower EL)",
        0x35 => "Watchpoint (current EL)",
        0x38 => "BKPT (AArch32)",
        0x3a => "Vector catch (AArch32)",
        0x3c => "BRK (AArch64)",
        _ => "UNRECOGNIZED EC",
    }
}

/// Linux's `fault_info[].name` (arch/arm64/mm/fault.c) for a 6-bit
/// IFSC/DFSC: `level 3 permission fault`, `unknown 18`, ...
pub fn kernel_fault_name(fsc: u8) -> String {
    let fsc = fsc & 0x3f;
    let level = |base: u8| fsc - base;
    match fsc {
        0x00 => "ttbr address size fault".into(),
        0x01..=0x03 => format!("level {} address size fault", level(0)),
        0x04..=0x07 => format!("level {} translation fault", level(4)),
        0x08..=0x0b => format!("level {} access flag fault", level(8)),
        0x0c..=0x0f => format!("level {} permission fault", level(0x0c)),
        0x10 => "synchronous external abort".into(),
        0x11 => "synchronous tag check fault".into(),
        0x13 => "level -1 (translation table walk)".into(),
        0x14..=0x17 => format!("level {} (translation table walk)", level(0x14)),
        0x18 => "synchronous parity or ECC error".into(),
        0x1b => "level -1 synchronous parity error (translation table walk)".into(),
        0x1c..=0x1f => {
            format!("level {} synchronous parity error (translation table walk)", level(0x1c))
        }
        0x21 => "alignment fault".into(),
        0x29 => "level -1 address size fault".into(),
        0x2b => "level -1 translation fault".into(),
        0x30 => "TLB conflict abort".into(),
        0x31 => "Unsupported atomic hardware update fault".into(),
        0x34 => "implementation fault (lockdown abort)".into(),
        0x35 => "implementation fault (unsupported exclusive)".into(),
        0x3d => "section domain fault".into(),
        0x3e => "page domain fault".into(),
        _ => format!("unknown {fsc}"),
    }
}

/// `esr` decoded the way Linux prints a fault (`mem_abort_decode()` and
/// `data_abort_decode()` in arch/arm64/mm/fault.c), one string per printk
/// line without the log prefix:
///
/// ```text
/// Mem abort info:
///   ESR = 0x000000409600004f
///   EC = 0x25: DABT (current EL), IL = 32 bits
///   SET = 0, FnV = 0
///   EA = 0, S1PTW = 0
///   FSC = 0x0f: level 3 permission fault
/// Data abort info:
///   ISV = 0, ISS = 0x0000004f, ISS2 = 0x00000040
///   CM = 0, WnR = 1, TnD = 0, TagAccess = 0
///   GCS = 0, Overlay = 1, DirtyBit = 0, Xs = 0
/// ```
///
/// The data-abort block is printed for EC 0x24/0x25 only, the abort lines
/// (SET ... FSC) for instruction and data aborts. Other classes, which the
/// kernel does not decode this way, get `Exception info:` with the ESR, EC
/// and `ISS = 0x........, ISS2 = 0x........` in the same style.
pub fn kernel_decode(esr: u64) -> Vec<String> {
    let bit = |n: u32| (esr >> n) & 1;
    let class = ec(esr);
    let iss = esr & 0x01ff_ffff;
    let iss2 = (esr >> 32) & 0x00ff_ffff;
    let is_abort = matches!(class, 0x20 | 0x21 | 0x24 | 0x25);
    let is_dabt = matches!(class, 0x24 | 0x25);
    let mut out = vec![
        if is_abort { "Mem abort info:" } else { "Exception info:" }.to_string(),
        format!("  ESR = {esr:#018x}"),
        format!(
            "  EC = {class:#04x}: {}, IL = {} bits",
            kernel_class_str(class),
            if bit(25) != 0 { 32 } else { 16 }
        ),
    ];
    if !is_abort {
        out.push(format!("  ISS = {iss:#010x}, ISS2 = {iss2:#010x}"));
        return out;
    }
    out.push(format!("  SET = {}, FnV = {}", (esr >> 11) & 3, bit(10)));
    out.push(format!("  EA = {}, S1PTW = {}", bit(9), bit(7)));
    let fsc = (esr & 0x3f) as u8;
    out.push(format!("  FSC = {fsc:#04x}: {}", kernel_fault_name(fsc)));
    if !is_dabt {
        return out;
    }
    out.push("Data abort info:".to_string());
    if bit(24) != 0 {
        out.push(format!("  Access size = {} byte(s)", 1u32 << ((esr >> 22) & 3)));
        out.push(format!("  SSE = {}, SRT = {}", bit(21), (esr >> 16) & 0x1f));
        out.push(format!("  SF = {}, AR = {}", bit(15), bit(14)));
    } else {
        out.push(format!("  ISV = 0, ISS = {iss:#010x}, ISS2 = {iss2:#010x}"));
    }
    let bit2 = |n: u32| (iss2 >> n) & 1;
    out.push(format!("  CM = {}, WnR = {}, TnD = {}, TagAccess = {}", bit(8), bit(6), bit2(10), bit2(9)));
    out.push(format!(
        "  GCS = {}, Overlay = {}, DirtyBit = {}, Xs = {}",
        bit2(8),
        bit2(6),
        bit2(5),
        iss2 & 0x1f
    ));
    out
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
    /// The seed splat's `Mem abort info` / `Data abort info` lines
    /// (../shared/seed), log prefix stripped.
    #[test]
    fn kernel_decode_matches_the_seed_splat() {
        assert_eq!(
            kernel_decode(0x0000_0040_9600_004f),
            [
                "Mem abort info:",
                "  ESR = 0x000000409600004f",
                "  EC = 0x25: DABT (current EL), IL = 32 bits",
                "  SET = 0, FnV = 0",
                "  EA = 0, S1PTW = 0",
                "  FSC = 0x0f: level 3 permission fault",
                "Data abort info:",
                "  ISV = 0, ISS = 0x0000004f, ISS2 = 0x00000040",
                "  CM = 0, WnR = 1, TnD = 0, TagAccess = 0",
                "  GCS = 0, Overlay = 1, DirtyBit = 0, Xs = 0",
            ]
        );
    }

    #[test]
    fn kernel_decode_other_classes() {
        // Valid instruction syndrome: access size, SRT, SF/AR instead of ISS.
        let esr = (0x24 << 26) | (1 << 25) | (1 << 24) | (3 << 22) | (5 << 16) | (1 << 15) | 0x07;
        let l = kernel_decode(esr);
        assert_eq!(l[2], "  EC = 0x24: DABT (lower EL), IL = 32 bits");
        assert_eq!(l[5], "  FSC = 0x07: level 3 translation fault");
        assert_eq!(&l[7..10], ["  Access size = 8 byte(s)", "  SSE = 0, SRT = 5", "  SF = 1, AR = 0"]);
        // Instruction abort: no data-abort block.
        let l = kernel_decode((0x21 << 26) | (1 << 25) | 0x0e);
        assert_eq!(l.last().unwrap(), "  FSC = 0x0e: level 2 permission fault");
        assert_eq!(l.len(), 6);
        // Not an abort: class and ISS only.
        assert_eq!(
            kernel_decode(0x5600_0001),
            [
                "Exception info:",
                "  ESR = 0x0000000056000001",
                "  EC = 0x15: SVC (AArch64), IL = 32 bits",
                "  ISS = 0x00000001, ISS2 = 0x00000000"
            ]
        );
        assert_eq!(kernel_decode(0x3e << 26)[2], "  EC = 0x3e: UNRECOGNIZED EC, IL = 16 bits");
        assert_eq!(kernel_fault_name(0x12), "unknown 18");
        assert_eq!(kernel_fault_name(0x21), "alignment fault");
        assert_eq!(kernel_fault_name(0x13), "level -1 (translation table walk)");
    }
}
