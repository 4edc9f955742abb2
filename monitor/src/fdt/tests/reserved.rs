use super::*;
use crate::fdt::reserved::reservations;
use crate::fdt::FdtError;
use std::vec::Vec;

fn all(dtb: &[u8]) -> Result<Vec<(u64, u64)>, FdtError> {
    let mut v = Vec::new();
    reservations(dtb, |b, s| v.push((b, s)))?;
    Ok(v)
}

#[test]
fn memreserve_then_static_reserved_memory_children() {
    // The dynamic `cma` (size only) and the disabled child are not reported.
    assert_eq!(
        all(RESERVED).unwrap(),
        [(0x7fe0_0000, 0x1_0000), (0x7f00_0000, 0x40_0000), (0x5000_0000, 0x1000), (0x5010_0000, 0x2000)]
    );
}

#[test]
fn real_trees() {
    // QEMU virt has neither. The FVP reserves the first 64 KiB of DRAM
    // (/memreserve/) and a frame buffer outside RAM (reported as the tree
    // says). tiny.dts has one /memreserve/.
    assert_eq!(all(VIRT_GICV3).unwrap(), []);
    assert_eq!(all(FVP_BASE_REVC).unwrap(), [(0x8000_0000, 0x1_0000), (0x1800_0000, 0x80_0000)]);
    assert_eq!(all(TINY).unwrap(), [(0x4100_0000, 0x1000)]);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(all(&RESERVED[..40]).is_err());
    for cut in (0..RESERVED.len()).step_by(7) {
        let mut b = RESERVED.to_vec();
        b[cut] ^= 0xff;
        let _ = all(&b);
    }
}
