//! Decode errors (framing and payload).

/// Why a frame or payload could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Malformed COBS (a block runs past the frame end).
    Cobs,
    /// CRC mismatch: the frame was corrupted.
    Crc,
    /// Too short to hold a kind byte and the CRC.
    TooShort,
    /// Longer than [`crate::MAX_FRAME`]; discarded up to the next delimiter.
    TooLong,
    /// A varint longer than 10 bytes or overflowing 64 bits.
    BadVarint { field: &'static str },
    /// The payload ended inside `field`.
    Truncated { field: &'static str },
    /// A batch (format 3) with an item tag or flags no writer produces.
    BadBatch,
}

impl DecodeError {
    /// Stable snake_case code: `cobs`, `crc`, `too_short`, `too_long`,
    /// `bad_varint`, `truncated`, `bad_batch`.
    pub const fn code(&self) -> &'static str {
        match self {
            DecodeError::Cobs => "cobs",
            DecodeError::Crc => "crc",
            DecodeError::TooShort => "too_short",
            DecodeError::TooLong => "too_long",
            DecodeError::BadVarint { .. } => "bad_varint",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadBatch => "bad_batch",
        }
    }

    /// The field being read, for payload errors.
    pub const fn field(&self) -> Option<&'static str> {
        match self {
            DecodeError::BadVarint { field } | DecodeError::Truncated { field } => Some(field),
            _ => None,
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Cobs => f.write_str("malformed COBS framing"),
            DecodeError::Crc => f.write_str("CRC mismatch"),
            DecodeError::TooShort => f.write_str("frame too short"),
            DecodeError::TooLong => f.write_str("frame longer than MAX_FRAME"),
            DecodeError::BadVarint { field } => write!(f, "bad varint in field {field}"),
            DecodeError::Truncated { field } => write!(f, "payload truncated in field {field}"),
            DecodeError::BadBatch => f.write_str("malformed batch item"),
        }
    }
}

impl core::error::Error for DecodeError {}
