//! Records and whole-frame encoding/decoding.
//!
//! Frame = COBS(payload ‖ crc16(payload) as little-endian u16) ‖ 0x00.
//! Payload = kind: u8, [cpu: varint,] seq: varint, ts: varint, the kind's
//! fields; `cpu` is there when the kind byte has [`KIND_CPU_FLAG`] (format
//! 2: a record of CPU 0 is written without it, so a one-CPU trace has the
//! same records as format 1).

use crate::wire::{Reader, Writer};
use crate::{cobs, crc16, DecodeError, Event};

/// Largest encoded frame, including the 0x00 delimiter.
pub const MAX_FRAME: usize = 320;

/// Largest payload (kind, seq, ts, fields; without CRC) the encoder accepts.
/// Any payload up to this size is guaranteed to encode within [`MAX_FRAME`]:
/// `cobs::max_encoded_len(MAX_PAYLOAD + 2) + 1 <= MAX_FRAME`.
pub const MAX_PAYLOAD: usize = 315;

const _: () = assert!(cobs::max_encoded_len(MAX_PAYLOAD + 2) < MAX_FRAME);
const _: () = assert!(cobs::max_encoded_len(MAX_PAYLOAD + 3) >= MAX_FRAME);

/// Kind byte bit 7: a `cpu` varint follows the kind byte. Kind codes are
/// below 0x80.
pub const KIND_CPU_FLAG: u8 = 0x80;

/// One trace record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The CPU that wrote it: porwatch's dense CPU index (the boot CPU is
    /// 0); always 0 in a format-1 trace.
    pub cpu: u32,
    /// Sequence number of `cpu`'s records: +1 per record that CPU produced
    /// or dropped.
    pub seq: u64,
    /// CNTPCT_EL0 at the event.
    pub ts: u64,
    pub event: Event<'a>,
}

/// Writes the payload (no CRC, no COBS) into `out`. Returns its length, or
/// `None` if it exceeds `out` or [`MAX_PAYLOAD`].
pub fn encode_payload(rec: &Record<'_>, out: &mut [u8]) -> Option<usize> {
    let limit = out.len().min(MAX_PAYLOAD);
    let mut w = Writer::new(out.get_mut(..limit)?);
    if rec.cpu == 0 {
        w.byte(rec.event.kind_code())?;
    } else {
        w.byte(rec.event.kind_code() | KIND_CPU_FLAG)?;
        w.u64(u64::from(rec.cpu))?;
    }
    w.u64(rec.seq)?;
    w.u64(rec.ts)?;
    rec.event.encode_fields(&mut w)?;
    Some(w.len())
}

/// Encodes `rec` as a complete frame, trailing 0x00 included, into `out`.
/// Returns the number of bytes written, or `None` if the payload exceeds
/// [`MAX_PAYLOAD`] or the frame does not fit in `out`. A buffer of
/// [`MAX_FRAME`] bytes always suffices for an accepted payload.
///
/// `bytes` fields are not truncated here: the caller must cut them (e.g.
/// a panic message) so the record fits. No allocation, no formatting, no
/// panics.
pub fn encode_frame(rec: &Record<'_>, out: &mut [u8]) -> Option<usize> {
    let mut buf = [0u8; MAX_PAYLOAD + 2];
    let n = encode_payload(rec, &mut buf)?;
    let crc = crc16(buf.get(..n)?).to_le_bytes();
    buf.get_mut(n..n + 2)?.copy_from_slice(&crc);
    let m = cobs::encode(buf.get(..n + 2)?, out)?;
    *out.get_mut(m)? = 0;
    Some(m + 1)
}

/// Decodes a payload (CRC already checked and stripped, e.g. from
/// [`crate::Deframer::push`]). Bytes after the kind's known fields are
/// ignored; an unknown kind decodes as [`Event::Unknown`].
pub fn decode_payload(payload: &[u8]) -> Result<Record<'_>, DecodeError> {
    if payload.len() > MAX_FRAME {
        return Err(DecodeError::TooLong);
    }
    let mut r = Reader::new(payload);
    let byte = r.byte().ok_or(DecodeError::TooShort)?;
    let kind = byte & !KIND_CPU_FLAG;
    let cpu = if byte & KIND_CPU_FLAG != 0 {
        u32::try_from(r.u64("cpu")?).map_err(|_| DecodeError::BadVarint { field: "cpu" })?
    } else {
        0
    };
    let seq = r.u64("seq")?;
    let ts = r.u64("ts")?;
    let event = Event::decode_fields(kind, &mut r)?;
    Ok(Record { cpu, seq, ts, event })
}

/// Checks and strips the CRC of a COBS-decoded frame, returning the payload.
pub fn check_crc(frame: &[u8]) -> Result<&[u8], DecodeError> {
    match frame.split_last_chunk::<2>() {
        Some((payload, crc)) if !payload.is_empty() => {
            if crc16(payload) == u16::from_le_bytes(*crc) {
                Ok(payload)
            } else {
                Err(DecodeError::Crc)
            }
        }
        _ => Err(DecodeError::TooShort),
    }
}

/// Decodes a COBS-decoded frame: CRC check, then [`decode_payload`].
pub fn decode_frame(frame: &[u8]) -> Result<Record<'_>, DecodeError> {
    decode_payload(check_crc(frame)?)
}
