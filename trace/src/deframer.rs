//! Streaming frame splitter: feed bytes one at a time, get COBS-decoded,
//! CRC-checked payloads out. No allocation.

use crate::{check_crc, DecodeError, MAX_FRAME};

/// Splits a byte stream into frames at 0x00 delimiters, undoing COBS on the
/// fly into an internal `[u8; MAX_FRAME]` buffer.
///
/// * A good frame yields its payload (CRC verified and stripped).
/// * A corrupt frame yields [`DecodeError::Cobs`], [`DecodeError::Crc`] or
///   [`DecodeError::TooShort`] at its delimiter.
/// * A frame longer than [`MAX_FRAME`] yields [`DecodeError::TooLong`] once,
///   as soon as the limit is passed; the rest up to the next 0x00 is skipped.
/// * Empty frames (repeated 0x00, idle line fill) are ignored.
///
/// Starting mid-stream is fine: the first partial frame is reported as
/// corrupt and decoding resynchronises at the next delimiter. At end of
/// input, [`Deframer::pending`] tells whether the input ended inside a
/// frame, of any length (an oversize one included: its bytes were skipped,
/// but the stream was still cut off).
#[derive(Clone)]
pub struct Deframer {
    buf: [u8; MAX_FRAME],
    /// Decoded bytes in `buf`.
    len: usize,
    /// Encoded bytes received since the last delimiter (counted on, saturating,
    /// while an oversize frame is skipped).
    raw: usize,
    /// Code byte of the current COBS block.
    code: u8,
    /// Data bytes still expected in the current block (0: next is a code).
    left: u8,
    /// Oversize frame already reported: skip to the next delimiter.
    skipping: bool,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deframer {
    pub const fn new() -> Self {
        Deframer { buf: [0; MAX_FRAME], len: 0, raw: 0, code: 0, left: 0, skipping: false }
    }

    /// Feeds one byte. Returns `Some` when a frame ended (or an oversize
    /// frame was detected). The payload borrows the internal buffer and is
    /// valid until the next call.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], DecodeError>> {
        if byte == 0 {
            return self.end_frame();
        }
        if self.skipping {
            self.raw = self.raw.saturating_add(1);
            return None;
        }
        self.raw += 1;
        if self.raw >= MAX_FRAME {
            // Encoded bytes plus the delimiter would exceed MAX_FRAME.
            let raw = self.raw;
            self.clear();
            self.raw = raw;
            self.skipping = true;
            return Some(Err(DecodeError::TooLong));
        }
        if self.left == 0 {
            // A code byte. The previous block (if any) ended with an
            // implied zero unless it was a full 0xFF block.
            if self.raw > 1 && self.code != 0xFF {
                self.put(0);
            }
            self.code = byte;
            self.left = byte - 1;
        } else {
            self.put(byte);
            self.left -= 1;
        }
        None
    }

    /// True if bytes arrived since the last delimiter (at end of input: the
    /// stream was truncated mid-frame), whether the frame was still being
    /// decoded or was being skipped as oversize.
    pub fn pending(&self) -> bool {
        self.raw > 0
    }

    /// Number of encoded bytes since the last delimiter.
    pub fn pending_len(&self) -> usize {
        self.raw
    }

    /// Forgets any partial frame.
    pub fn reset(&mut self) {
        self.clear();
        self.skipping = false;
    }

    fn clear(&mut self) {
        self.len = 0;
        self.raw = 0;
        self.code = 0;
        self.left = 0;
    }

    fn put(&mut self, b: u8) {
        // Cannot overflow: decoded length < encoded length < MAX_FRAME.
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn end_frame(&mut self) -> Option<Result<&[u8], DecodeError>> {
        let (raw, left, len, skipping) = (self.raw, self.left, self.len, self.skipping);
        self.reset();
        if skipping || raw == 0 {
            return None;
        }
        if left != 0 {
            return Some(Err(DecodeError::Cobs));
        }
        let frame = self.buf.get(..len).unwrap_or(&[]);
        Some(check_crc(frame))
    }
}
