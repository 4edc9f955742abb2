//! Format 3 batches: several records of one CPU in one frame, coded against
//! what the batch already holds (docs/trace-format.md "Batches").
//!
//! A batch payload is a record header with kind [`BATCH_KIND`] (`kind`,
//! `[cpu]`, `seq`, `ts`: those of its first record), then items. Each item
//! is a tag byte, then fields; an item's seq is the previous one's + 1 and
//! its ts the previous one's + a varint, so seqs cost nothing. Values are
//! predicted from the batch's earlier records only (the [`Model`], reset at
//! each batch), so a frame decodes alone and a lost frame loses only itself.
//!
//! Encoder and decoder share [`Model::update`]: what one predicts the other
//! predicts, by construction.

use crate::frame::{KIND_CPU_FLAG, MAX_PAYLOAD};
use crate::wire::{Reader, Writer};
use crate::{cobs, crc16, varint, DecodeError, Event, Record};

/// Kind code of a batch frame (never a record kind: the event table stops
/// well below it).
pub const BATCH_KIND: u8 = 0x7f;

const _: () = {
    let mut i = 0;
    while i < crate::KINDS.len() {
        assert!(crate::KINDS[i].code < BATCH_KIND);
        i += 1;
    }
};

// Tag byte: bits 7:6 are the item's class, bits 5:0 its flags.
const CLASS_SHIFT: u8 = 6;
const FLAGS: u8 = 0x3f;
const CLASS_ENTRY: u8 = 0;
const CLASS_POR: u8 = 1;
const CLASS_TRAP: u8 = 2;
const CLASS_ESCAPE: u8 = 3;

// exc_entry flags.
/// Bits 5:4: ESR_EL1 is recent ESR 0, 1 or 2 (most recent first), or 3: a
/// literal follows (XOR with recent ESR 0).
const ENTRY_ESR_SHIFT: u8 = 4;
const ESR_LITERAL: u8 = 3;
const RECENT_ESRS: usize = 3;
/// Bits 3:2: FAR_EL1 is the previous entry's, this entry's ELR (an
/// instruction abort), a zigzag delta from the previous entry's, or a
/// literal.
const ENTRY_FAR_SHIFT: u8 = 2;
const FAR_SAME: u8 = 0;
const FAR_ELR: u8 = 1;
const FAR_DELTA: u8 = 2;
const FAR_LITERAL: u8 = 3;
/// Bit 1: SPSR_EL1 differs from the previous entry's through this vector.
const ENTRY_SPSR: u8 = 1 << 1;
/// Bit 0: an extension byte follows the tag.
const ENTRY_EXT: u8 = 1 << 0;
// Extension byte: which rarely changing fields follow.
const EXT_VECTOR: u8 = 1 << 0;
const EXT_POR: u8 = 1 << 1;
const EXT_DEPTH: u8 = 1 << 2;
const EXT_KNOWN: u8 = EXT_VECTOR | EXT_POR | EXT_DEPTH;

// por_write flags (per register: the previous writes of the same one).
/// Bit 0: the register (0 POR_EL1, 1 POR_EL0).
const POR_REG: u8 = 1 << 0;
/// `old` is not the previous write's `new`: XOR with it follows.
const POR_OLD: u8 = 1 << 1;
/// `new` is not the previous write's `old` (a toggle): XOR with `old` follows.
const POR_NEW: u8 = 1 << 2;
/// `pc` is not that of the write two back (two MSR sites alternating, or
/// one): a zigzag delta from the previous write's follows.
const POR_PC: u8 = 1 << 3;
/// `entry_seq` is not the previous por_write's: `seq - entry_seq` follows.
const POR_ENTRY_SEQ: u8 = 1 << 4;
/// `at_entry` is 1.
const POR_AT_ENTRY: u8 = 1 << 5;

// trap flags: which fields follow (XOR or delta with the previous trap's).
const TRAP_ESR: u8 = 1 << 0;
const TRAP_ELR: u8 = 1 << 1;
const TRAP_OUTCOME: u8 = 1 << 2;
const TRAP_KNOWN: u8 = TRAP_ESR | TRAP_ELR | TRAP_OUTCOME;

// Escape items: bits 5:4 say which, bits 3:0 are its flags.
const ESC_SHIFT: u8 = 4;
const ESC_FLAGS: u8 = 0x0f;
/// The next item's seq is not the previous + 1: zigzag(seq - expected) follows.
const ESC_SEQ: u8 = 0;
/// exc_return; flags: elr, spsr, por, depth follow.
const ESC_RETURN: u8 = 1;
/// The next item (a por_write) has `sampled` = 1.
const ESC_SAMPLED: u8 = 2;
const RET_ELR: u8 = 1 << 0;
const RET_SPSR: u8 = 1 << 1;
const RET_POR: u8 = 1 << 2;
const RET_DEPTH: u8 = 1 << 3;

/// Vector slots: per-vector predictions are indexed by `vector % VECTORS`.
const VECTORS: usize = 16;

/// Largest item (tag, extension, a seq escape, a sampled escape, ts and
/// every field as a 10-byte varint).
const MAX_ITEM: usize = 4 + 3 * varint::MAX_LEN + 8 * varint::MAX_LEN;

/// SPSR's NZCV (bits 31:28) change at nearly every entry from EL0: rotated
/// to the bottom so that costs one byte, with bits 27:0 above them.
const fn nzcv_low(x: u64) -> u64 {
    (x & !0xffff_ffff) | (x >> 28 & 0xf) | (x & 0x0fff_ffff) << 4
}

const fn nzcv_high(x: u64) -> u64 {
    (x & !0xffff_ffff) | (x & 0xf) << 28 | (x >> 4 & 0x0fff_ffff)
}

/// The previous writes of one POR register in the batch.
#[derive(Clone, Copy, Default)]
struct PorModel {
    new: u64,
    old: u64,
    /// PC of the previous write and of the one before it.
    pc1: u64,
    pc2: u64,
}

/// What a batch's earlier records predict (both sides; zeros at its start).
#[derive(Clone, Copy)]
struct Model {
    /// The seq the next item has unless an escape says otherwise.
    seq: u64,
    ts: u64,
    // exc_entry.
    esr: [u64; RECENT_ESRS],
    vector: u64,
    elr: [u64; VECTORS],
    spsr: [u64; VECTORS],
    far: u64,
    por: u64,
    depth: u64,
    // por_write.
    por_w: [PorModel; 2],
    entry_seq: u64,
    // trap.
    trap: [u64; 3],
    // exc_return.
    ret: [u64; 4],
}

impl Model {
    const fn new(seq: u64, ts: u64) -> Self {
        Model {
            seq,
            ts,
            esr: [0; RECENT_ESRS],
            vector: 0,
            elr: [0; VECTORS],
            spsr: [0; VECTORS],
            far: 0,
            por: 0,
            depth: 0,
            por_w: [PorModel { new: 0, old: 0, pc1: 0, pc2: 0 }; 2],
            entry_seq: 0,
            trap: [0; 3],
            ret: [0; 4],
        }
    }

    /// Learns a record (after it was coded or decoded).
    fn update(&mut self, seq: u64, ts: u64, event: &Event) {
        self.seq = seq.wrapping_add(1);
        self.ts = ts;
        match *event {
            Event::ExcEntry { vector, esr, elr, spsr, far, por, depth } => {
                // Move-to-front list of recent ESRs.
                let hit = self.esr.iter().position(|&e| e == esr).unwrap_or(RECENT_ESRS - 1);
                let mut i = hit;
                while i > 0 {
                    self.esr[i] = self.esr[i - 1];
                    i -= 1;
                }
                self.esr[0] = esr;
                let v = vector as usize % VECTORS;
                self.vector = vector;
                self.elr[v] = elr;
                self.spsr[v] = spsr;
                self.far = far;
                self.por = por;
                self.depth = depth;
            }
            Event::PorWrite { pc, reg, old, new, entry_seq, .. } => {
                let p = &mut self.por_w[(reg & 1) as usize];
                p.pc2 = p.pc1;
                p.pc1 = pc;
                p.old = old;
                p.new = new;
                self.entry_seq = entry_seq;
            }
            Event::Trap { esr, elr, outcome } => self.trap = [esr, elr, outcome],
            Event::ExcReturn { elr, spsr, por, depth } => self.ret = [elr, spsr, por, depth],
            _ => {}
        }
    }
}

/// Whether `event` can be an item of a batch: the hot kinds (por_write
/// with its one-bit fields 0 or 1, as the hypervisor writes them).
pub fn batchable(event: &Event) -> bool {
    match *event {
        Event::ExcEntry { .. } | Event::Trap { .. } | Event::ExcReturn { .. } => true,
        Event::PorWrite { reg, at_entry, sampled, .. } => reg <= 1 && at_entry <= 1 && sampled <= 1,
        _ => false,
    }
}

/// One CPU's open batch (the encoder; `no_std`, no allocation, no panics).
pub struct Batch {
    buf: [u8; MAX_PAYLOAD],
    len: usize,
    count: u32,
    cpu: u32,
    model: Model,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    /// An empty batch.
    pub const fn new() -> Self {
        Batch { buf: [0; MAX_PAYLOAD], len: 0, count: 0, cpu: 0, model: Model::new(0, 0) }
    }

    /// Records in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Forgets the batch's records (after [`Batch::encode_frame`]).
    pub fn clear(&mut self) {
        self.len = 0;
        self.count = 0;
    }

    /// Adds `rec` (its event [`batchable`]) if it fits; false if it is not
    /// batchable, the batch is full (close it and push again: an empty
    /// batch takes any batchable record) or holds another CPU's records.
    pub fn push(&mut self, rec: &Record) -> bool {
        if !batchable(&rec.event) || (self.count != 0 && rec.cpu != self.cpu) {
            return false;
        }
        if self.count == 0 {
            let mut w = Writer::new(&mut self.buf);
            if write_header(&mut w, rec).is_none() {
                return false;
            }
            self.len = w.len();
            self.cpu = rec.cpu;
            self.model = Model::new(rec.seq, rec.ts);
        }
        let mut item = [0u8; MAX_ITEM];
        let mut w = Writer::new(&mut item);
        if encode_item(&self.model, rec, &mut w).is_none() {
            return false;
        }
        let n = w.len();
        let end = self.len + n;
        let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..end), item.get(..n)) else {
            if self.count == 0 {
                self.len = 0;
            }
            return false;
        };
        dst.copy_from_slice(src);
        self.len = end;
        self.count += 1;
        self.model.update(rec.seq, rec.ts, &rec.event);
        true
    }

    /// The batch as a complete frame (CRC, COBS, trailing 0x00) in `out`;
    /// the length, or `None` if empty or `out` is too small (a
    /// [`crate::MAX_FRAME`] buffer never is).
    pub fn encode_frame(&self, out: &mut [u8]) -> Option<usize> {
        if self.count == 0 {
            return None;
        }
        let mut buf = [0u8; MAX_PAYLOAD + 2];
        let payload = self.buf.get(..self.len)?;
        buf.get_mut(..self.len)?.copy_from_slice(payload);
        let crc = crc16(payload).to_le_bytes();
        buf.get_mut(self.len..self.len + 2)?.copy_from_slice(&crc);
        let m = cobs::encode(buf.get(..self.len + 2)?, out)?;
        *out.get_mut(m)? = 0;
        Some(m + 1)
    }

    /// The payload so far (no CRC, no COBS).
    pub fn payload(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

fn write_header(w: &mut Writer, rec: &Record) -> Option<()> {
    if rec.cpu == 0 {
        w.byte(BATCH_KIND)?;
    } else {
        w.byte(BATCH_KIND | KIND_CPU_FLAG)?;
        w.u64(u64::from(rec.cpu))?;
    }
    w.u64(rec.seq)?;
    w.u64(rec.ts)
}

fn tag(class: u8, flags: u8) -> u8 {
    class << CLASS_SHIFT | flags & FLAGS
}

fn escape(which: u8, flags: u8) -> u8 {
    tag(CLASS_ESCAPE, which << ESC_SHIFT | flags & ESC_FLAGS)
}

/// Writes `rec` as an item against `m` (which it does not change).
fn encode_item(m: &Model, rec: &Record, w: &mut Writer) -> Option<()> {
    if rec.seq != m.seq {
        w.byte(escape(ESC_SEQ, 0))?;
        w.i64(rec.seq.wrapping_sub(m.seq) as i64)?;
    }
    let dts = rec.ts.wrapping_sub(m.ts);
    match rec.event {
        Event::ExcEntry { vector, esr, elr, spsr, far, por, depth } => {
            let v = vector as usize % VECTORS;
            let esr_mode = m.esr.iter().position(|&e| e == esr).map_or(ESR_LITERAL, |i| i as u8);
            let far_mode = if far == m.far {
                FAR_SAME
            } else if far == elr {
                FAR_ELR
            } else if varint::zigzag(far.wrapping_sub(m.far) as i64) < far {
                FAR_DELTA
            } else {
                FAR_LITERAL
            };
            let mut ext = 0;
            if vector != m.vector {
                ext |= EXT_VECTOR;
            }
            if por != m.por {
                ext |= EXT_POR;
            }
            if depth != m.depth {
                ext |= EXT_DEPTH;
            }
            let mut flags = esr_mode << ENTRY_ESR_SHIFT | far_mode << ENTRY_FAR_SHIFT;
            if spsr != m.spsr[v] {
                flags |= ENTRY_SPSR;
            }
            if ext != 0 {
                flags |= ENTRY_EXT;
            }
            w.byte(tag(CLASS_ENTRY, flags))?;
            if ext != 0 {
                w.byte(ext)?;
            }
            w.u64(dts)?;
            if ext & EXT_VECTOR != 0 {
                w.u64(vector)?;
            }
            if esr_mode == ESR_LITERAL {
                w.u64(esr ^ m.esr[0])?;
            }
            w.i64(elr.wrapping_sub(m.elr[v]) as i64)?;
            match far_mode {
                FAR_DELTA => w.i64(far.wrapping_sub(m.far) as i64)?,
                FAR_LITERAL => w.u64(far)?,
                _ => {}
            }
            if flags & ENTRY_SPSR != 0 {
                w.u64(nzcv_low(spsr ^ m.spsr[v]))?;
            }
            if ext & EXT_POR != 0 {
                w.u64(por ^ m.por)?;
            }
            if ext & EXT_DEPTH != 0 {
                w.u64(depth ^ m.depth)?;
            }
        }
        Event::PorWrite { pc, reg, old, new, at_entry, entry_seq, sampled } => {
            let p = &m.por_w[(reg & 1) as usize];
            let mut flags = 0;
            if reg != 0 {
                flags |= POR_REG;
            }
            if old != p.new {
                flags |= POR_OLD;
            }
            if new != p.old {
                flags |= POR_NEW;
            }
            if pc != p.pc2 {
                flags |= POR_PC;
            }
            if entry_seq != m.entry_seq {
                flags |= POR_ENTRY_SEQ;
            }
            if at_entry != 0 {
                flags |= POR_AT_ENTRY;
            }
            if sampled != 0 {
                w.byte(escape(ESC_SAMPLED, 0))?;
            }
            w.byte(tag(CLASS_POR, flags))?;
            w.u64(dts)?;
            if flags & POR_OLD != 0 {
                w.u64(old ^ p.new)?;
            }
            if flags & POR_NEW != 0 {
                w.u64(new ^ old)?;
            }
            if flags & POR_PC != 0 {
                w.i64(pc.wrapping_sub(p.pc1) as i64)?;
            }
            if flags & POR_ENTRY_SEQ != 0 {
                w.u64(rec.seq.wrapping_sub(entry_seq))?;
            }
        }
        Event::Trap { esr, elr, outcome } => {
            let [p_esr, p_elr, p_outcome] = m.trap;
            let mut flags = 0;
            if esr != p_esr {
                flags |= TRAP_ESR;
            }
            if elr != p_elr {
                flags |= TRAP_ELR;
            }
            if outcome != p_outcome {
                flags |= TRAP_OUTCOME;
            }
            w.byte(tag(CLASS_TRAP, flags))?;
            w.u64(dts)?;
            if flags & TRAP_ESR != 0 {
                w.u64(esr ^ p_esr)?;
            }
            if flags & TRAP_ELR != 0 {
                w.i64(elr.wrapping_sub(p_elr) as i64)?;
            }
            if flags & TRAP_OUTCOME != 0 {
                w.u64(outcome ^ p_outcome)?;
            }
        }
        Event::ExcReturn { elr, spsr, por, depth } => {
            let [p_elr, p_spsr, p_por, p_depth] = m.ret;
            let mut flags = 0;
            if elr != p_elr {
                flags |= RET_ELR;
            }
            if spsr != p_spsr {
                flags |= RET_SPSR;
            }
            if por != p_por {
                flags |= RET_POR;
            }
            if depth != p_depth {
                flags |= RET_DEPTH;
            }
            w.byte(escape(ESC_RETURN, flags))?;
            w.u64(dts)?;
            if flags & RET_ELR != 0 {
                w.i64(elr.wrapping_sub(p_elr) as i64)?;
            }
            if flags & RET_SPSR != 0 {
                w.u64(nzcv_low(spsr ^ p_spsr))?;
            }
            if flags & RET_POR != 0 {
                w.u64(por ^ p_por)?;
            }
            if flags & RET_DEPTH != 0 {
                w.u64(depth ^ p_depth)?;
            }
        }
        _ => return None,
    }
    Some(())
}

/// Whether a payload (CRC checked) is a batch.
pub fn is_batch(payload: &[u8]) -> bool {
    payload.first().is_some_and(|&b| b & !KIND_CPU_FLAG == BATCH_KIND)
}

/// The records of a batch payload, in order (an iterator; after an error
/// it ends). Every record has the batch's CPU.
pub fn decode_batch(payload: &[u8]) -> Result<BatchRecords<'_>, DecodeError> {
    let mut r = Reader::new(payload);
    let byte = r.byte().ok_or(DecodeError::TooShort)?;
    if byte & !KIND_CPU_FLAG != BATCH_KIND {
        return Err(DecodeError::BadBatch);
    }
    let cpu = if byte & KIND_CPU_FLAG != 0 {
        u32::try_from(r.u64("cpu")?).map_err(|_| DecodeError::BadVarint { field: "cpu" })?
    } else {
        0
    };
    let seq = r.u64("seq")?;
    let ts = r.u64("ts")?;
    Ok(BatchRecords { r, cpu, model: Model::new(seq, ts), failed: false, empty: true, item_len: 0 })
}

/// Iterator over a batch's records ([`decode_batch`]).
pub struct BatchRecords<'a> {
    r: Reader<'a>,
    cpu: u32,
    model: Model,
    failed: bool,
    /// No item read yet (a batch has at least one).
    empty: bool,
    item_len: usize,
}

impl BatchRecords<'_> {
    /// Bytes of the payload the last record came from (its item, with any
    /// escapes before it): for statistics of the bytes each kind costs.
    pub fn item_len(&self) -> usize {
        self.item_len
    }

    fn item(&mut self) -> Result<Record<'static>, DecodeError> {
        let m = &self.model;
        let r = &mut self.r;
        let mut seq = m.seq;
        let mut sampled = 0;
        let mut t = r.byte().ok_or(DecodeError::Truncated { field: "tag" })?;
        // Prefix escapes (each at most once, in this order).
        if t == escape(ESC_SEQ, 0) {
            seq = seq.wrapping_add(r.i64("seq")? as u64);
            t = r.byte().ok_or(DecodeError::Truncated { field: "tag" })?;
        }
        if t == escape(ESC_SAMPLED, 0) {
            sampled = 1;
            t = r.byte().ok_or(DecodeError::Truncated { field: "tag" })?;
        }
        let flags = t & FLAGS;
        let class = t >> CLASS_SHIFT;
        if sampled != 0 && class != CLASS_POR {
            return Err(DecodeError::BadBatch);
        }
        // exc_entry: the extension byte comes before ts.
        let ext = if class == CLASS_ENTRY && flags & ENTRY_EXT != 0 {
            let ext = r.byte().ok_or(DecodeError::Truncated { field: "ext" })?;
            if ext == 0 || ext & !EXT_KNOWN != 0 {
                return Err(DecodeError::BadBatch);
            }
            ext
        } else {
            0
        };
        let ts = m.ts.wrapping_add(r.u64("ts")?);
        let event = match class {
            CLASS_ENTRY => {
                let vector = if ext & EXT_VECTOR != 0 { r.u64("vector")? } else { m.vector };
                let v = vector as usize % VECTORS;
                let esr_mode = flags >> ENTRY_ESR_SHIFT & 3;
                let esr = match m.esr.get(esr_mode as usize) {
                    Some(&e) => e,
                    None => r.u64("esr")? ^ m.esr[0],
                };
                let elr = m.elr[v].wrapping_add(r.i64("elr")? as u64);
                let far = match flags >> ENTRY_FAR_SHIFT & 3 {
                    FAR_SAME => m.far,
                    FAR_ELR => elr,
                    FAR_DELTA => m.far.wrapping_add(r.i64("far")? as u64),
                    _ => r.u64("far")?,
                };
                let spsr =
                    if flags & ENTRY_SPSR != 0 { m.spsr[v] ^ nzcv_high(r.u64("spsr")?) } else { m.spsr[v] };
                let por = if ext & EXT_POR != 0 { m.por ^ r.u64("por")? } else { m.por };
                let depth = if ext & EXT_DEPTH != 0 { m.depth ^ r.u64("depth")? } else { m.depth };
                Event::ExcEntry { vector, esr, elr, spsr, far, por, depth }
            }
            CLASS_POR => {
                let reg = u64::from(flags & POR_REG);
                let p = &m.por_w[reg as usize];
                let old = if flags & POR_OLD != 0 { p.new ^ r.u64("old")? } else { p.new };
                let new = if flags & POR_NEW != 0 { old ^ r.u64("new")? } else { p.old };
                let pc = if flags & POR_PC != 0 { p.pc1.wrapping_add(r.i64("pc")? as u64) } else { p.pc2 };
                let entry_seq = if flags & POR_ENTRY_SEQ != 0 {
                    seq.wrapping_sub(r.u64("entry_seq")?)
                } else {
                    m.entry_seq
                };
                let at_entry = u64::from(flags & POR_AT_ENTRY != 0);
                Event::PorWrite { pc, reg, old, new, at_entry, entry_seq, sampled }
            }
            CLASS_TRAP => {
                if flags & !TRAP_KNOWN != 0 {
                    return Err(DecodeError::BadBatch);
                }
                let [p_esr, p_elr, p_outcome] = m.trap;
                let esr = if flags & TRAP_ESR != 0 { p_esr ^ r.u64("esr")? } else { p_esr };
                let elr =
                    if flags & TRAP_ELR != 0 { p_elr.wrapping_add(r.i64("elr")? as u64) } else { p_elr };
                let outcome =
                    if flags & TRAP_OUTCOME != 0 { p_outcome ^ r.u64("outcome")? } else { p_outcome };
                Event::Trap { esr, elr, outcome }
            }
            _ if flags >> ESC_SHIFT == ESC_RETURN => {
                let [p_elr, p_spsr, p_por, p_depth] = m.ret;
                let elr = if flags & RET_ELR != 0 { p_elr.wrapping_add(r.i64("elr")? as u64) } else { p_elr };
                let spsr = if flags & RET_SPSR != 0 { p_spsr ^ nzcv_high(r.u64("spsr")?) } else { p_spsr };
                let por = if flags & RET_POR != 0 { p_por ^ r.u64("por")? } else { p_por };
                let depth = if flags & RET_DEPTH != 0 { p_depth ^ r.u64("depth")? } else { p_depth };
                Event::ExcReturn { elr, spsr, por, depth }
            }
            _ => return Err(DecodeError::BadBatch),
        };
        self.model.update(seq, ts, &event);
        Ok(Record { cpu: self.cpu, seq, ts, event })
    }
}

impl Iterator for BatchRecords<'_> {
    type Item = Result<Record<'static>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || (self.r.rest().is_empty() && !self.empty) {
            return None;
        }
        self.empty = false;
        let before = self.r.rest().len();
        let item = self.item();
        self.item_len = before - self.r.rest().len();
        self.failed = item.is_err();
        Some(item)
    }
}
