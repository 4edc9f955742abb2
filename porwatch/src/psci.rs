//! PSCI / SMCCC function IDs and PSCI return codes.

/// Name of a PSCI or SMCCC function ID (w0; upper bits ignored). 64-bit
/// calling-convention IDs get the plain name, their SMC32 twins a `_32` suffix.
pub fn function_name(id: u64) -> Option<&'static str> {
    Some(match id as u32 {
        0x8400_0000 => "PSCI_VERSION",
        0x8400_0001 => "CPU_SUSPEND_32",
        0xc400_0001 => "CPU_SUSPEND",
        0x8400_0002 => "CPU_OFF",
        0x8400_0003 => "CPU_ON_32",
        0xc400_0003 => "CPU_ON",
        0x8400_0004 => "AFFINITY_INFO_32",
        0xc400_0004 => "AFFINITY_INFO",
        0x8400_0005 => "MIGRATE_32",
        0xc400_0005 => "MIGRATE",
        0x8400_0006 => "MIGRATE_INFO_TYPE",
        0x8400_0007 => "MIGRATE_INFO_UP_CPU_32",
        0xc400_0007 => "MIGRATE_INFO_UP_CPU",
        0x8400_0008 => "SYSTEM_OFF",
        0x8400_0009 => "SYSTEM_RESET",
        0x8400_000a => "PSCI_FEATURES",
        0x8400_000b => "CPU_FREEZE",
        0x8400_000c => "CPU_DEFAULT_SUSPEND_32",
        0xc400_000c => "CPU_DEFAULT_SUSPEND",
        0x8400_000d => "NODE_HW_STATE_32",
        0xc400_000d => "NODE_HW_STATE",
        0x8400_000e => "SYSTEM_SUSPEND_32",
        0xc400_000e => "SYSTEM_SUSPEND",
        0x8400_000f => "PSCI_SET_SUSPEND_MODE",
        0x8400_0010 => "PSCI_STAT_RESIDENCY_32",
        0xc400_0010 => "PSCI_STAT_RESIDENCY",
        0x8400_0011 => "PSCI_STAT_COUNT_32",
        0xc400_0011 => "PSCI_STAT_COUNT",
        0x8400_0012 => "SYSTEM_RESET2_32",
        0xc400_0012 => "SYSTEM_RESET2",
        0x8400_0013 => "MEM_PROTECT",
        0x8400_0014 => "MEM_PROTECT_CHECK_RANGE_32",
        0xc400_0014 => "MEM_PROTECT_CHECK_RANGE",
        0x8400_0015 => "SYSTEM_OFF2_32",
        0xc400_0015 => "SYSTEM_OFF2",
        0x8000_0000 => "SMCCC_VERSION",
        0x8000_0001 => "SMCCC_ARCH_FEATURES",
        0x8000_0002 => "SMCCC_ARCH_SOC_ID",
        0x8000_3fff => "SMCCC_ARCH_WORKAROUND_3",
        0x8000_7fff => "SMCCC_ARCH_WORKAROUND_2",
        0x8000_8000 => "SMCCC_ARCH_WORKAROUND_1",
        porwatch_monitor::psci::PORWATCH_TEST_EXIT => "PORWATCH_TEST_EXIT",
        _ => return None,
    })
}

/// Name of a (negative) PSCI return code.
pub fn error_name(result: i64) -> Option<&'static str> {
    Some(match result {
        -1 => "NOT_SUPPORTED",
        -2 => "INVALID_PARAMETERS",
        -3 => "DENIED",
        -4 => "ALREADY_ON",
        -5 => "ON_PENDING",
        -6 => "INTERNAL_FAILURE",
        -7 => "NOT_PRESENT",
        -8 => "DISABLED",
        -9 => "INVALID_ADDRESS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(function_name(0x8400_0000), Some("PSCI_VERSION"));
        assert_eq!(function_name(0xc400_0001), Some("CPU_SUSPEND"));
        assert_eq!(function_name(0x8400_0002), Some("CPU_OFF"));
        assert_eq!(function_name(0xc400_0003), Some("CPU_ON"));
        assert_eq!(function_name(0x8400_0006), Some("MIGRATE_INFO_TYPE"));
        assert_eq!(function_name(0x8400_0008), Some("SYSTEM_OFF"));
        assert_eq!(function_name(0xc600_0050), Some("PORWATCH_TEST_EXIT"));
        assert_eq!(function_name(0x8400_0009), Some("SYSTEM_RESET"));
        assert_eq!(function_name(0x8400_000a), Some("PSCI_FEATURES"));
        assert_eq!(function_name(0x8000_0000), Some("SMCCC_VERSION"));
        assert_eq!(function_name(0x1234), None);
        assert_eq!(error_name(-2), Some("INVALID_PARAMETERS"));
        assert_eq!(error_name(0), None);
        assert_eq!(error_name(i64::MIN), None);
    }
}
