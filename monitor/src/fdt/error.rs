//! The one error type of the device tree code.

use core::fmt;

/// Why a device tree could not be read, interpreted or rewritten.
///
/// Every malformed input maps to one of these; nothing in [`crate::fdt`]
/// panics on bad data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdtError {
    /// The buffer is shorter than the header or than the header's `totalsize`.
    Truncated,
    /// The first word is not 0xd00dfeed.
    BadMagic(u32),
    /// Version older than 16, or `last_comp_version` newer than 17.
    BadVersion {
        /// `version` field of the header.
        version: u32,
        /// `last_comp_version` field of the header.
        last_comp: u32,
    },
    /// A header offset or size points outside the blob, or blocks are misaligned.
    BadHeader,
    /// The memory reservation block has no terminating (0, 0) entry inside the blob.
    BadReservations,
    /// An unknown token in the structure block, at the given structure offset.
    BadToken {
        /// Offset of the token inside the structure block.
        offset: usize,
        /// The token value read there.
        token: u32,
    },
    /// Structure block is not a well-formed tree (unbalanced nodes, data past
    /// the end, property outside a node, missing `FDT_END`, ...).
    BadStructure {
        /// Offset inside the structure block where the problem was seen.
        offset: usize,
    },
    /// A property name offset points outside the strings block.
    BadStringOffset(u32),
    /// A name or string value is unterminated or not valid UTF-8.
    BadString,
    /// Nodes nested deeper than [`crate::fdt::reader::MAX_DEPTH`].
    TooDeep,
    /// `#address-cells` or `#size-cells` larger than 4 (or a 0 size where one is needed).
    BadCells(u32),
    /// A property's length does not fit its expected format.
    BadPropLen(&'static str),
    /// A property has an unsupported value.
    BadValue(&'static str),
    /// An address cannot be translated to a CPU address (a parent bus has no
    /// `ranges`, or no `ranges` entry covers it).
    NotTranslatable,
    /// An address or size does not fit in 64 bits / overflows when added.
    AddressOverflow,
    /// A path (or alias value) is malformed, e.g. an alias naming another alias.
    BadPath,
    /// A node named by an edit or a lookup does not exist.
    NotFound,
    /// A path does not fit the fixed-size path buffer.
    PathTooLong,
    /// A fixed-capacity container would overflow; nothing is silently dropped.
    Capacity(&'static str),
    /// The output buffer of [`crate::fdt::rewrite()`] is too small.
    OutputTooSmall,
    /// An edit is not allowed (e.g. removing the root node).
    BadEdit,
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FdtError::Truncated => f.write_str("dtb truncated"),
            FdtError::BadMagic(m) => write!(f, "bad dtb magic {m:#010x}"),
            FdtError::BadVersion { version, last_comp } => {
                write!(f, "unsupported dtb version {version} (last compatible {last_comp})")
            }
            FdtError::BadHeader => f.write_str("dtb header offsets/sizes out of range"),
            FdtError::BadReservations => f.write_str("unterminated memory reservation block"),
            FdtError::BadToken { offset, token } => {
                write!(f, "bad token {token:#x} at struct offset {offset:#x}")
            }
            FdtError::BadStructure { offset } => {
                write!(f, "malformed structure block at offset {offset:#x}")
            }
            FdtError::BadStringOffset(o) => write!(f, "property name offset {o:#x} out of range"),
            FdtError::BadString => f.write_str("unterminated or non-UTF-8 string"),
            FdtError::TooDeep => f.write_str("device tree nested too deep"),
            FdtError::BadCells(c) => write!(f, "unsupported cell count {c}"),
            FdtError::BadPropLen(p) => write!(f, "property {p} has a bad length"),
            FdtError::BadValue(p) => write!(f, "property {p} has an unsupported value"),
            FdtError::NotTranslatable => f.write_str("address not translatable to CPU address"),
            FdtError::AddressOverflow => f.write_str("address or size overflows 64 bits"),
            FdtError::BadPath => f.write_str("malformed path or alias"),
            FdtError::NotFound => f.write_str("node not found"),
            FdtError::PathTooLong => f.write_str("path too long"),
            FdtError::Capacity(what) => write!(f, "too many {what}"),
            FdtError::OutputTooSmall => f.write_str("output buffer too small"),
            FdtError::BadEdit => f.write_str("invalid edit"),
        }
    }
}
