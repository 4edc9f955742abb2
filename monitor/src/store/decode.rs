//! Top-level A64 decode: which encoding group an instruction word is in.

use super::bits::{bit, field};
use super::types::{Addressing, Base, Kind, Offset, RegView, Store, Unsupported};
use super::{decode_ldst, decode_other};

/// Decodes the A64 instruction `insn` (as read from memory, little-endian)
/// as a store. Total: every `u32` gives a `Store` or a reason.
///
/// Top-level groups (Arm ARM C4.1, `op0` = bits `[28:25]`):
/// `x1x0` loads and stores, `101x` branches/exceptions/system (SYS: DC ZVA
/// and friends), `0010` SVE, `0000` with bit 31 set SME. Nothing else
/// accesses memory.
#[inline]
pub fn decode(insn: u32) -> Result<Store, Unsupported> {
    match field(insn, 25, 4) {
        0b0100 | 0b0110 | 0b1100 | 0b1110 => decode_ldst::decode(insn),
        0b1010 | 0b1011 => decode_other::system(insn),
        0b0010 => decode_other::sve(insn),
        0b0000 if bit(insn, 31) => decode_other::sme(insn),
        _ => Err(Unsupported::NotAStore),
    }
}

/// A single-register GPR store skeleton; callers adjust the rest.
#[inline]
pub(super) const fn gpr(
    kind: Kind,
    size: u8,
    rt: u8,
    rn: u8,
    offset: Offset,
    addressing: Addressing,
) -> Store {
    Store {
        kind,
        size,
        count: 1,
        rt,
        rt2: None,
        view: if size == 8 { RegView::X } else { RegView::W },
        base: Base::from_rn(rn),
        offset,
        addressing,
        acquire: false,
        release: false,
        needs_fp: false,
        writes_tag: false,
    }
}

/// log2 of an access size in bytes (1..=16).
#[inline]
pub(super) const fn log2(size: u8) -> u8 {
    match size {
        0 | 1 => 0,
        2 => 1,
        4 => 2,
        8 => 3,
        _ => 4,
    }
}
