//! The exception-entry tap's trampoline (docs/tap.md): a shadow copy of
//! the guest's vector page in which the first instruction of each of the 16
//! slots is an `HVC #imm` naming the slot. Stage 2 maps the page's IPA to
//! the shadow, execute-only, so every exception the guest takes to EL1 costs
//! exactly one HVC trap; EL2 records the entry and resumes the guest at the
//! displaced instruction, which runs out of line from the slot's unused
//! padding (relocated if PC-relative) followed by a branch back to slot + 4.
//! A slot whose first instruction is a plain `B` needs no padding: EL2
//! resumes at the branch's target.
//!
//! This module decides, from the page's words alone, whether every slot can
//! be hooked and how ([`plan`]), and writes the shadow ([`Plan::apply`]).
//! Words it takes for out-of-line code are words the guest never executes:
//! zeros (`UDF #0`) or `NOP`s at the end of a slot, after an instruction
//! that does not fall through (`B`, `BR`, `RET`, `ERET`, `UDF`). Data reads
//! and writes of the page never see the shadow (it is execute-only; hyp
//! redirects them to the original), so a literal that happens to look like
//! padding is not disturbed.

/// Bytes per vector slot, slots per table (Arm ARM D1.3.1).
pub const SLOT_BYTES: usize = 0x80;
pub const SLOTS: usize = 16;
const SLOT_WORDS: usize = SLOT_BYTES / 4;
pub const PAGE_BYTES: usize = 4096;
pub const PAGE_WORDS: usize = PAGE_BYTES / 4;
/// The table is 2 KiB aligned: it starts at page offset 0 or 0x800.
pub const TABLE_BYTES: usize = SLOTS * SLOT_BYTES;

/// `HVC #imm` immediates of the hooks: [`HVC_IMM_BASE`] + slot. Outside the
/// range SMCCC callers use (`HVC #0`); EL2 also checks that the HVC came
/// from the slot's first instruction, so a guest HVC with such an immediate
/// anywhere else is still the guest's own.
pub const HVC_IMM_BASE: u16 = 0x7077;

/// `HVC #imm`: 0xd4000002 | imm16 << 5.
pub const fn hvc(imm: u16) -> u32 {
    HVC_OP | (imm as u32) << IMM16_SHIFT
}
const HVC_OP: u32 = 0xd400_0002;
const IMM16_SHIFT: u32 = 5;

/// The slot a hook's HVC immediate names, if it is one.
pub const fn hvc_slot(imm: u16) -> Option<u8> {
    let s = imm.wrapping_sub(HVC_IMM_BASE);
    if (s as usize) < SLOTS {
        Some(s as u8)
    } else {
        None
    }
}

/// Instruction words the padding may hold.
const UDF_0: u32 = 0;
const NOP: u32 = 0xd503_201f;

// Encodings (Arm ARM C4.1, "A64 instruction set encoding"): mask, value.
const B_MASK: u32 = 0xfc00_0000;
const B: u32 = 0x1400_0000;
const BL: u32 = 0x9400_0000;
const IMM26_MASK: u32 = 0x03ff_ffff;
/// B.cond and BC.cond (bit 4): imm19 at [23:5].
const BCOND_MASK: u32 = 0xff00_0000;
const BCOND: u32 = 0x5400_0000;
/// CBZ/CBNZ (imm19 [23:5]) and TBZ/TBNZ (imm14 [18:5]), any size.
const CB_TB_MASK: u32 = 0x7e00_0000;
const CBZ: u32 = 0x3400_0000;
const TBZ: u32 = 0x3600_0000;
/// ADR / ADRP: immlo [30:29], immhi [23:5].
const ADR_MASK: u32 = 0x9f00_0000;
const ADR: u32 = 0x1000_0000;
const ADRP: u32 = 0x9000_0000;
/// Load register (literal): LDR (GPR, SIMD&FP), LDRSW, PRFM; imm19 [23:5].
const LDR_LIT_MASK: u32 = 0x3b00_0000;
const LDR_LIT: u32 = 0x1800_0000;
/// The "branches, exception generating and system instructions" group:
/// op0 [28:26] = 0b101.
const BRANCH_GROUP_MASK: u32 = 0x1c00_0000;
const BRANCH_GROUP: u32 = 0x1400_0000;
/// Members of that group that do not use the PC: exception generation
/// (0xd4), system (0xd5: MSR/MRS, hints, barriers, SYS), branch to register
/// (0xd6, 0xd7).
const EXCEPTION_GEN: u32 = 0xd400_0000;
const SYSTEM: u32 = 0xd500_0000;
const BRANCH_REG_MASK: u32 = 0xfe00_0000;
const BRANCH_REG: u32 = 0xd600_0000;
const TOP_BYTE: u32 = 0xff00_0000;
/// Branch to register without a link: BR, RET, ERET (and their
/// pointer-authenticated forms), by opc [24:21]: 0000 BR, 0010 RET, 0100
/// ERET, 1000 BRAA/BRAB.
const BR_OPC_SHIFT: u32 = 21;
const BR_OPC_MASK: u32 = 0xf;
const UDF_MASK: u32 = 0xffff_0000;

const IMM19_SHIFT: u32 = 5;
const IMM19_BITS: u32 = 19;
const IMM14_BITS: u32 = 14;
const IMM26_BITS: u32 = 26;
const IMMLO_SHIFT: u32 = 29;
const IMMHI_SHIFT: u32 = 5;
const IMMHI_BITS: u32 = 19;
const PAGE_SHIFT: u32 = 12;

fn sext(v: u32, bits: u32) -> i64 {
    let s = 64 - bits;
    ((v as i64) << s) >> s
}

/// `value` as a `bits`-wide two's complement field, if it fits.
fn field(value: i64, bits: u32) -> Option<u32> {
    let lim = 1i64 << (bits - 1);
    (-lim..lim).contains(&value).then_some((value as u32) & ((1u32 << bits) - 1))
}

/// Rewrites an immediate at `shift`, `bits` wide, counted in words.
fn with_word_imm(insn: u32, shift: u32, bits: u32, delta: i64) -> Option<u32> {
    let mask = ((1u32 << bits) - 1) << shift;
    let old = sext((insn & mask) >> shift, bits);
    let new = field(old + delta / 4, bits)?;
    Some(insn & !mask | new << shift)
}

/// `B` from `from` to `to` (byte addresses).
pub fn encode_b(from: u64, to: u64) -> Option<u32> {
    let off = to.wrapping_sub(from) as i64;
    if off % 4 != 0 {
        return None;
    }
    Some(B | field(off / 4, IMM26_BITS)?)
}

/// The target of `B label` at `pc`, if `insn` is one.
pub fn b_target(insn: u32, pc: u64) -> Option<u64> {
    (insn & B_MASK == B).then(|| pc.wrapping_add((sext(insn & IMM26_MASK, IMM26_BITS) * 4) as u64))
}

/// The instruction that does at `to` what `insn` does at `from`: the
/// PC-relative forms get their offsets adjusted; an instruction this module
/// does not know in the branch group is refused (None), as is an offset
/// that no longer fits.
pub fn relocate(insn: u32, from: u64, to: u64) -> Option<u32> {
    let delta = from.wrapping_sub(to) as i64;
    if delta % 4 != 0 {
        return None;
    }
    if insn & B_MASK == B || insn & B_MASK == BL {
        return with_word_imm(insn, 0, IMM26_BITS, delta);
    }
    if insn & BCOND_MASK == BCOND || insn & CB_TB_MASK == CBZ {
        return with_word_imm(insn, IMM19_SHIFT, IMM19_BITS, delta);
    }
    if insn & CB_TB_MASK == TBZ {
        return with_word_imm(insn, IMM19_SHIFT, IMM14_BITS, delta);
    }
    if insn & LDR_LIT_MASK == LDR_LIT {
        return with_word_imm(insn, IMM19_SHIFT, IMM19_BITS, delta);
    }
    if insn & ADR_MASK == ADR || insn & ADR_MASK == ADRP {
        let page = insn & ADR_MASK == ADRP;
        let delta =
            if page { ((from >> PAGE_SHIFT) as i64).wrapping_sub((to >> PAGE_SHIFT) as i64) } else { delta };
        let immlo = (insn >> IMMLO_SHIFT) & 0b11;
        let immhi = (insn >> IMMHI_SHIFT) & ((1 << IMMHI_BITS) - 1);
        let imm = sext(immhi << 2 | immlo, IMMHI_BITS + 2) + delta;
        let new = field(imm, IMMHI_BITS + 2)?;
        let keep = insn & !((0b11 << IMMLO_SHIFT) | (((1 << IMMHI_BITS) - 1) << IMMHI_SHIFT));
        return Some(keep | (new & 0b11) << IMMLO_SHIFT | (new >> 2) << IMMHI_SHIFT);
    }
    if insn & BRANCH_GROUP_MASK == BRANCH_GROUP {
        let top = insn & TOP_BYTE;
        let known = top == EXCEPTION_GEN || top == SYSTEM || insn & BRANCH_REG_MASK == BRANCH_REG;
        return known.then_some(insn);
    }
    Some(insn)
}

/// True if execution never continues at the next word after `insn`: `B`,
/// BR/RET/ERET (and authenticated forms), `UDF`.
pub fn no_fall_through(insn: u32) -> bool {
    if insn & B_MASK == B || insn & UDF_MASK == 0 {
        return true;
    }
    if insn & BRANCH_REG_MASK != BRANCH_REG {
        return false;
    }
    // BR, RET, ERET, BRAA/BRAB; not BLR/BLRAA (they return to the next word).
    matches!((insn >> BR_OPC_SHIFT) & BR_OPC_MASK, 0b0000 | 0b0010 | 0b0100 | 0b1000)
}

fn is_padding(insn: u32) -> bool {
    insn == UDF_0 || insn == NOP
}

/// How one slot is hooked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hook {
    /// The slot starts with `B`: resume at its target, `offset` bytes from
    /// the slot's start.
    Branch { offset: i64 },
    /// The first instruction runs out of line at page offset `at` (in the
    /// slot's padding, or another slot's), as `insn`, followed by a branch
    /// back to slot + 4.
    OutOfLine { at: u16, insn: u32, back: u32 },
}

impl Hook {
    /// Where the guest resumes after the hook's HVC, in bytes from the
    /// slot's first instruction.
    pub fn resume_offset(&self, slot_off: usize) -> i64 {
        match *self {
            Hook::Branch { offset } => offset,
            Hook::OutOfLine { at, .. } => at as i64 - slot_off as i64,
        }
    }
}

/// Why a page cannot be hooked (the tap then makes it execute-never and
/// single-steps the vector code instead).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    /// The table does not start at offset 0 or 0x800 of the page.
    Misaligned,
    /// The slot does not start with `B`, and neither it nor any other slot
    /// has two free words left at its end.
    NoRoom { slot: u8 },
    /// The slot's first instruction is a PC-relative form this module
    /// cannot move.
    NotRelocatable { slot: u8, insn: u32 },
    /// The slot's last word may fall through into the next slot (its code
    /// runs on), so the next slot's first word is not only an entry.
    FallsThrough { slot: u8 },
}

/// The hooks of the 16 slots of the table at page offset `table`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Plan {
    pub table: usize,
    pub hooks: [Hook; SLOTS],
}

/// Plans the hooks for the vector table at page offset `table` of `page`.
/// A displaced instruction goes to its own slot's padding if there is room,
/// else to another slot's.
pub fn plan(page: &[u32; PAGE_WORDS], table: usize) -> Result<Plan, Refusal> {
    if !table.is_multiple_of(TABLE_BYTES) || table >= PAGE_BYTES {
        return Err(Refusal::Misaligned);
    }
    // Free words per slot: (first free word's page offset, words).
    let mut free = [(0usize, 0usize); SLOTS];
    for (s, f) in free.iter_mut().enumerate() {
        let slot = s as u8;
        let off = table + s * SLOT_BYTES;
        let words = &page[off / 4..off / 4 + SLOT_WORDS];
        // Padding run at the end, never including the first word.
        let run = words[1..].iter().rev().take_while(|&&w| is_padding(w)).count();
        let start = SLOT_WORDS - run;
        // The slot's code ends at `start - 1`: if it may fall through, it
        // runs on (through NOPs) into the next slot, and its padding (if
        // any) is reached.
        let stops = no_fall_through(words[start - 1]);
        if s + 1 < SLOTS && !stops {
            return Err(Refusal::FallsThrough { slot });
        }
        if stops {
            *f = (off + start * 4, run);
        }
    }
    let mut hooks = [Hook::Branch { offset: 0 }; SLOTS];
    let mut pending = [false; SLOTS];
    for (s, hook) in hooks.iter_mut().enumerate() {
        let off = table + s * SLOT_BYTES;
        if let Some(target) = b_target(page[off / 4], off as u64) {
            *hook = Hook::Branch { offset: target as i64 - off as i64 };
        } else if free[s].1 >= OUT_OF_LINE_WORDS {
            *hook = out_of_line(page, s, off, &mut free[s])?;
        } else {
            pending[s] = true;
        }
    }
    // Slots without room of their own borrow another slot's padding.
    for s in (0..SLOTS).filter(|&s| pending[s]) {
        let off = table + s * SLOT_BYTES;
        let donor =
            free.iter_mut().find(|f| f.1 >= OUT_OF_LINE_WORDS).ok_or(Refusal::NoRoom { slot: s as u8 })?;
        hooks[s] = out_of_line(page, s, off, donor)?;
    }
    Ok(Plan { table, hooks })
}

/// Words the out-of-line copy takes: the instruction and the branch back.
const OUT_OF_LINE_WORDS: usize = 2;

/// Slot `s` (at page offset `off`) runs its first instruction out of line
/// in the free words `room` (page offset, words), which it uses up.
fn out_of_line(
    page: &[u32; PAGE_WORDS],
    s: usize,
    off: usize,
    room: &mut (usize, usize),
) -> Result<Hook, Refusal> {
    let slot = s as u8;
    let at = room.0;
    let first = page[off / 4];
    let insn = relocate(first, off as u64, at as u64).ok_or(Refusal::NotRelocatable { slot, insn: first })?;
    let back = encode_b(at as u64 + 4, off as u64 + 4).ok_or(Refusal::NoRoom { slot })?;
    *room = (room.0 + OUT_OF_LINE_WORDS * 4, room.1 - OUT_OF_LINE_WORDS);
    Ok(Hook::OutOfLine { at: at as u16, insn, back })
}

impl Plan {
    /// The page offset of slot `slot`'s first instruction.
    pub fn slot_offset(&self, slot: u8) -> usize {
        self.table + slot as usize * SLOT_BYTES
    }

    /// Turns a copy of the original page into the shadow.
    pub fn apply(&self, shadow: &mut [u32; PAGE_WORDS]) {
        for (s, hook) in self.hooks.iter().enumerate() {
            let off = self.slot_offset(s as u8);
            shadow[off / 4] = hvc(HVC_IMM_BASE + s as u16);
            if let Hook::OutOfLine { at, insn, back } = *hook {
                shadow[at as usize / 4] = insn;
                shadow[at as usize / 4 + 1] = back;
            }
        }
    }

    /// Where the guest resumes after slot `slot`'s HVC, for the table at VA
    /// `vbar` (bits [10:0] clear).
    pub fn resume(&self, vbar: u64, slot: u8) -> u64 {
        let slot_off = self.slot_offset(slot);
        let start = vbar + slot as u64 * SLOT_BYTES as u64;
        start.wrapping_add(self.hooks[slot as usize].resume_offset(slot_off) as u64)
    }

    /// The slot whose displaced instruction the shadow holds at page offset
    /// `off` (the out-of-line copy, not its branch back).
    pub fn out_of_line_slot(&self, off: usize) -> Option<u8> {
        self.hooks
            .iter()
            .position(|h| matches!(*h, Hook::OutOfLine { at, .. } if at as usize == off))
            .map(|s| s as u8)
    }
}

#[cfg(test)]
mod tests;
