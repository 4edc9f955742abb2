//! RAM a device tree says is already taken: the memory reservation block
//! (`/memreserve/`) and the static regions of `/reserved-memory`.
//!
//! porwatch moves itself to the top of RAM at boot ([`crate::layout`]) and
//! must not land on any of these. A `/reserved-memory` child with `reg` is a
//! fixed region (firmware, a frame buffer, shared memory); one with only
//! `size` (and perhaps `alloc-ranges`) is placed by the OS inside `/memory`,
//! which no longer contains porwatch, so it is not reported. Disabled
//! children are skipped. The devicetree specification requires
//! `/reserved-memory` to have an empty `ranges` (same address space as the
//! root), so `reg` is read with its `#address-cells`/`#size-cells` and not
//! translated further.

use super::address::{child_cells, RawReg};
use super::reader::Fdt;
use super::FdtError;

/// Calls `f(base, size)` for every reservation of `dtb` (size > 0): first the
/// reservation block, then `/reserved-memory`'s children in tree order.
pub fn reservations(dtb: &[u8], mut f: impl FnMut(u64, u64)) -> Result<(), FdtError> {
    let fdt = Fdt::new(dtb)?;
    for (base, size) in fdt.reservations() {
        if size != 0 {
            f(base, size);
        }
    }
    let Some(parent) = fdt.find_node("/reserved-memory")? else {
        return Ok(());
    };
    let cells = child_cells(&parent)?;
    for child in parent.children() {
        let child = child?;
        if !child.is_enabled()? {
            continue;
        }
        let Some(reg) = child.prop("reg")? else {
            continue;
        };
        for (base, size) in RawReg::new(reg, cells)? {
            let base = u64::try_from(base).map_err(|_| FdtError::AddressOverflow)?;
            let size = u64::try_from(size).map_err(|_| FdtError::AddressOverflow)?;
            if size != 0 {
                base.checked_add(size).ok_or(FdtError::AddressOverflow)?;
                f(base, size);
            }
        }
    }
    Ok(())
}
