//! FEAT_MOPS: decoding (LLVM 22's encodings) and the restartable step,
//! checked against a model CPU that runs prologue, main and epilogue with
//! the hypervisor's steps interleaved at random points.

use super::super::mops::{decode_mops, mops_step, Mops, MopsFill, MopsOp, MopsRegs, MopsStage};
use super::std::vec;
use super::std::vec::Vec;
use proptest::prelude::*;

fn set(stage: MopsStage, rd: u8, rn: u8, data: u8, t: bool) -> Mops {
    Mops {
        op: MopsOp::Set { data_reg: data },
        stage,
        rd,
        rn,
        write_unprivileged: t,
        read_unprivileged: false,
    }
}

fn cpy(stage: MopsStage, rd: u8, rs: u8, rn: u8, forward_only: bool, wt: bool, rt: bool) -> Mops {
    Mops {
        op: MopsOp::Copy { src_reg: rs, forward_only },
        stage,
        rd,
        rn,
        write_unprivileged: wt,
        read_unprivileged: rt,
    }
}

#[test]
fn decodes_every_set_and_copy_form() {
    use MopsStage::*;
    let cases: &[(u32, Mops)] = &[
        (0x19c10448, set(Prologue, 8, 2, 1, false)),  // setp [x8]!, x2!, x1
        (0x19c14448, set(Main, 8, 2, 1, false)),      // setm [x8]!, x2!, x1
        (0x19c18448, set(Epilogue, 8, 2, 1, false)),  // sete [x8]!, x2!, x1
        (0x19c11448, set(Prologue, 8, 2, 1, true)),   // setpt [x8]!, x2!, x1
        (0x19df2420, set(Prologue, 0, 1, 31, false)), // setpn [x0]!, x1!, xzr
        (0x19df6420, set(Main, 0, 1, 31, false)),     // setmn [x0]!, x1!, xzr
        (0x19dfa420, set(Epilogue, 0, 1, 31, false)), // seten [x0]!, x1!, xzr
        (0x19c33420, set(Prologue, 0, 1, 3, true)),   // setptn [x0]!, x1!, x3
        (0x19c3b420, set(Epilogue, 0, 1, 3, true)),   // setetn [x0]!, x1!, x3
        (0x1d010443, cpy(Prologue, 3, 1, 2, false, false, false)), // cpyp [x3]!, [x1]!, x2!
        (0x1d410443, cpy(Main, 3, 1, 2, false, false, false)), // cpym
        (0x1d810443, cpy(Epilogue, 3, 1, 2, false, false, false)), // cpye
        (0x19010443, cpy(Prologue, 3, 1, 2, true, false, false)), // cpyfp
        (0x19410443, cpy(Main, 3, 1, 2, true, false, false)), // cpyfm
        (0x19810443, cpy(Epilogue, 3, 1, 2, true, false, false)), // cpyfe
        (0x1d011443, cpy(Prologue, 3, 1, 2, false, true, false)), // cpypwt
        (0x1d012443, cpy(Prologue, 3, 1, 2, false, false, true)), // cpyprt
        (0x1d013443, cpy(Prologue, 3, 1, 2, false, true, true)), // cpypt
        (0x1d014443, cpy(Prologue, 3, 1, 2, false, false, false)), // cpypwn
        (0x1d01c443, cpy(Prologue, 3, 1, 2, false, false, false)), // cpypn
        (0x19019443, cpy(Prologue, 3, 1, 2, true, true, false)), // cpyfpwtrn
        (0x19416443, cpy(Main, 3, 1, 2, true, false, true)), // cpyfmrtwn
    ];
    for &(insn, want) in cases {
        assert_eq!(decode_mops(insn), Some(want), "{insn:#010x}");
    }
}

#[test]
fn leaves_tag_setting_overlapping_and_other_instructions_alone() {
    // setgp [x0]!, x1!, x3 (LLVM): it also writes Allocation Tags.
    assert_eq!(decode_mops(0x1dc30420), None);
    // Hand-assembled from the encodings above: setp with Rd = Rn (x8),
    // with Rs = Rd, cpyp with Rs = Rn, cpyp with Rs = XZR, Xd = XZR, and an
    // SETP-class word with op2<3:2> = 11 (unallocated).
    for insn in [
        0x19c10508u32, // setp: Rn = 8 = Rd
        0x19c80448,    // setp: Rs = 8 = Rd
        0x1d020443,    // cpyp: Rs = 2 = Rn
        0x1d1f0443,    // cpyp: Rs = XZR
        0x19c1045f,    // setp: Rd = XZR
        0x19c1c448,    // set class, op2 = 1100
        0xf9000020,    // str x0, [x1]
        0x19c10048,    // op4 (bits [11:10]) = 00: not MOPS (SETGO space)
    ] {
        assert_eq!(decode_mops(insn), None, "{insn:#010x}");
    }
}

const PAGE: u64 = 64;
const BASE: u64 = 0x1_0000;
const MEM: usize = 16 * PAGE as usize;

/// The model CPU: one memory, the three registers, NZCV, and an
/// implementation option. It does a random amount of each instruction's
/// work, and before any chunk of it may "fault": the hypervisor's step runs
/// instead and the same instruction starts over.
struct Cpu {
    mem: Vec<u8>,
    xd: u64,
    xs: u64,
    xn: u64,
    nzcv: u8,
    option_b: bool,
    /// Random decisions, consumed in order (cycled).
    dice: Vec<u8>,
    at: usize,
    steps: u32,
}

impl Cpu {
    fn roll(&mut self) -> u8 {
        let d = self.dice[self.at % self.dice.len()];
        self.at += 1;
        d
    }

    fn idx(&self, va: u64) -> usize {
        (va - BASE) as usize
    }

    fn regs(&self, data_reg_is_xzr: bool) -> MopsRegs {
        MopsRegs { xd: self.xd, xs: if data_reg_is_xzr { 0 } else { self.xs }, xn: self.xn, nzcv: self.nzcv }
    }

    /// The hypervisor's step for `m` (as pt.rs performs it).
    fn emulate(&mut self, m: &Mops) -> bool {
        let Some(s) = mops_step(m, &self.regs(false), PAGE) else { return false };
        assert!(s.len > 0 && s.len <= PAGE);
        assert_eq!(s.dst / PAGE, (s.dst + s.len - 1) / PAGE, "step crosses a destination page");
        let d = self.idx(s.dst);
        match s.fill {
            MopsFill::Byte(b) => self.mem[d..d + s.len as usize].fill(b),
            MopsFill::CopyFrom(src) => {
                assert_eq!(src / PAGE, (src + s.len - 1) / PAGE, "step crosses a source page");
                let sidx = self.idx(src);
                self.mem.copy_within(sidx..sidx + s.len as usize, d);
            }
        }
        (self.xd, self.xs, self.xn) = (s.xd, s.xs, s.xn);
        self.steps += 1;
        true
    }

    /// How much of `rem` the CPU does in one go (then it may stop early).
    fn chunk(&mut self, rem: u64) -> u64 {
        (self.roll() as u64 % 40 + 1).min(rem)
    }

    fn faults(&mut self) -> bool {
        self.roll().is_multiple_of(4)
    }

    fn set_fwd(&mut self, dst: u64, n: u64, b: u8) {
        let d = self.idx(dst);
        self.mem[d..d + n as usize].fill(b);
    }

    fn copy(&mut self, dst: u64, src: u64, n: u64) {
        let (d, s) = (self.idx(dst), self.idx(src));
        self.mem.copy_within(s..s + n as usize, d);
    }

    /// Runs the whole P/M/E sequence of a set or copy.
    fn run(&mut self, op: MopsOp) {
        for stage in [MopsStage::Prologue, MopsStage::Main, MopsStage::Epilogue] {
            let m = Mops { op, stage, rd: 0, rn: 1, write_unprivileged: false, read_unprivileged: false };
            // Re-execute until the instruction completes without a fault.
            let mut guard = 0;
            while !self.execute(&m) {
                guard += 1;
                assert!(guard < 10_000, "no progress");
            }
        }
        let is_set = matches!(op, MopsOp::Set { .. });
        if is_set || !self.backward() {
            let rem = if self.option_b { self.xn } else { self.xn.wrapping_neg() };
            assert_eq!(rem, 0, "epilogue left work");
        } else {
            assert_eq!(self.xn, 0, "epilogue left work");
        }
    }

    fn backward(&self) -> bool {
        if self.option_b {
            self.nzcv & 0b1000 != 0
        } else {
            (self.xn as i64) > 0
        }
    }

    /// One execution of `m`; false if it "faulted" (the hypervisor stepped).
    fn execute(&mut self, m: &Mops) -> bool {
        let is_set = matches!(m.op, MopsOp::Set { .. });
        let byte = self.xs as u8;
        match m.stage {
            MopsStage::Prologue => {
                let forward_only =
                    matches!(m.op, MopsOp::Copy { forward_only: true, .. } | MopsOp::Set { .. });
                let overlap_below = self.xs < self.xd && self.xs + self.xn > self.xd;
                // Direction: required when overlapping, else the CPU's choice.
                let backward =
                    !forward_only && (overlap_below || (self.roll().is_multiple_of(3) && !self.overlaps()));
                // Some work in the input format, then convert.
                let todo = self.roll() as u64 % (self.xn + 1);
                let mut done = 0;
                while done < todo {
                    if self.faults() {
                        self.emulate(m);
                        return false;
                    }
                    let c = self.chunk(todo - done);
                    if backward {
                        let top = self.xn - c;
                        self.copy(self.xd + top, self.xs + top, c);
                        self.xn -= c;
                    } else {
                        if is_set {
                            self.set_fwd(self.xd, c, byte);
                        } else {
                            self.copy(self.xd, self.xs, c);
                            self.xs += c;
                        }
                        self.xd += c;
                        self.xn -= c;
                    }
                    done += c;
                }
                // Convert to the option's format.
                match (self.option_b, backward) {
                    (false, false) => {
                        self.xd += self.xn;
                        if !is_set {
                            self.xs += self.xn;
                        }
                        self.xn = self.xn.wrapping_neg();
                        self.nzcv = 0b0000;
                    }
                    (false, true) => self.nzcv = 0b0000,
                    (true, false) => self.nzcv = 0b0010,
                    (true, true) => {
                        self.xd += self.xn;
                        self.xs += self.xn;
                        self.nzcv = 0b1010;
                    }
                }
                true
            }
            MopsStage::Main | MopsStage::Epilogue => {
                let backward = self.backward();
                let rem = |c: &Cpu| {
                    if backward || c.option_b {
                        c.xn
                    } else {
                        c.xn.wrapping_neg()
                    }
                };
                // The main part leaves a random remainder; the epilogue none.
                let keep = if m.stage == MopsStage::Main { self.roll() as u64 % (rem(self) + 1) } else { 0 };
                while rem(self) > keep {
                    if self.faults() {
                        self.emulate(m);
                        return false;
                    }
                    let c = self.chunk(rem(self) - keep);
                    match (self.option_b, backward) {
                        (false, false) => {
                            let (d, s) = (self.xd.wrapping_add(self.xn), self.xs.wrapping_add(self.xn));
                            if is_set {
                                self.set_fwd(d, c, byte);
                            } else {
                                self.copy(d, s, c);
                            }
                            self.xn = self.xn.wrapping_add(c);
                        }
                        (false, true) => {
                            let top = self.xn - c;
                            self.copy(self.xd + top, self.xs + top, c);
                            self.xn -= c;
                        }
                        (true, false) => {
                            if is_set {
                                self.set_fwd(self.xd, c, byte);
                            } else {
                                self.copy(self.xd, self.xs, c);
                                self.xs += c;
                            }
                            self.xd += c;
                            self.xn -= c;
                        }
                        (true, true) => {
                            self.xd -= c;
                            self.xs -= c;
                            self.copy(self.xd, self.xs, c);
                            self.xn -= c;
                        }
                    }
                }
                true
            }
        }
    }

    fn overlaps(&self) -> bool {
        self.xs < self.xd + self.xn && self.xd < self.xs + self.xn
    }
}

fn initial_memory() -> Vec<u8> {
    (0..MEM).map(|i| (i * 7 + 3) as u8).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// A memset with the hypervisor's steps interleaved anywhere ends as a
    /// plain memset, under either option.
    #[test]
    fn interleaved_steps_give_memset(
        dst in 0u64..(MEM as u64), len in 0u64..(6 * PAGE), byte: u8, option_b: bool,
        dice in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let len = len.min(MEM as u64 - dst);
        let mut cpu = Cpu {
            mem: initial_memory(), xd: BASE + dst, xs: byte as u64, xn: len, nzcv: 0,
            option_b, dice, at: 0, steps: 0,
        };
        cpu.run(MopsOp::Set { data_reg: 2 });
        let mut want = initial_memory();
        want[dst as usize..(dst + len) as usize].fill(byte);
        prop_assert_eq!(cpu.mem, want);
    }

    /// A memmove (CPY) or memcpy (CPYF, non-overlapping) the same way, with
    /// overlapping ranges in both directions.
    #[test]
    fn interleaved_steps_give_memmove(
        dst in 0u64..(MEM as u64), src in 0u64..(MEM as u64), len in 0u64..(6 * PAGE),
        option_b: bool, forward_only: bool,
        dice in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let len = len.min(MEM as u64 - dst).min(MEM as u64 - src);
        // CPYF is memcpy: overlapping ranges are not allowed for it.
        let overlap = src < dst + len && dst < src + len;
        prop_assume!(!(forward_only && overlap && len > 0));
        let mut cpu = Cpu {
            mem: initial_memory(), xd: BASE + dst, xs: BASE + src, xn: len, nzcv: 0,
            option_b, dice, at: 0, steps: 0,
        };
        cpu.run(MopsOp::Copy { src_reg: 2, forward_only });
        let mut want = initial_memory();
        want.copy_within(src as usize..(src + len) as usize, dst as usize);
        prop_assert_eq!(cpu.mem, want);
    }
}

#[test]
fn a_step_stays_in_one_page_and_moves_the_registers_in_their_format() {
    // QEMU's SETP of a page-aligned 8 KiB clear (Linux clear_page) faulting
    // at its first byte: one 4 KiB step, then the prologue's input format.
    let m = decode_mops(0x19df2420).expect("setpn");
    let s = mops_step(&m, &MopsRegs { xd: 0x4000_1000, xs: 0, xn: 0x2000, nzcv: 0 }, 4096).unwrap();
    assert_eq!((s.dst, s.len, s.fill, s.backward), (0x4000_1000, 4096, MopsFill::Byte(0), false));
    assert_eq!((s.xd, s.xn), (0x4000_2000, 0x1000));
    // SETMN in option A: Xd = end, Xn = -remaining; only Xn moves.
    let m = decode_mops(0x19df6420).expect("setmn");
    let r = MopsRegs { xd: 0x4000_3000, xs: 0, xn: 0u64.wrapping_sub(0x1800), nzcv: 0 };
    let s = mops_step(&m, &r, 4096).unwrap();
    assert_eq!((s.dst, s.len), (0x4000_1800, 0x800));
    assert_eq!((s.xd, s.xn), (0x4000_3000, 0u64.wrapping_sub(0x1000)));
    // Option B (C = 1): Xd = next byte, Xn = remaining.
    let s = mops_step(&m, &MopsRegs { xd: 0x4000_1800, xs: 0, xn: 0x1800, nzcv: 0b0010 }, 4096).unwrap();
    assert_eq!((s.dst, s.len, s.xd, s.xn), (0x4000_1800, 0x800, 0x4000_2000, 0x1000));
    // Nothing left: no step. A positive size in option A for a set: the
    // other option's format, left to the CPU's MOPS exception.
    assert_eq!(mops_step(&m, &MopsRegs { xd: 0x4000_3000, xs: 0, xn: 0, nzcv: 0 }, 4096), None);
    assert_eq!(mops_step(&m, &MopsRegs { xd: 0x4000_3000, xs: 0, xn: 0x10, nzcv: 0 }, 4096), None);
    // A backward memmove (source below and overlapping): the top page first.
    let m = decode_mops(0x1d010443).expect("cpyp");
    let r = MopsRegs { xd: 0x4000_1100, xs: 0x4000_1000, xn: 0x1000, nzcv: 0 };
    let s = mops_step(&m, &r, 4096).unwrap();
    assert!(s.backward);
    assert_eq!((s.dst, s.len, s.fill), (0x4000_2000, 0x100, MopsFill::CopyFrom(0x4000_1f00)));
    assert_eq!((s.xd, s.xs, s.xn), (0x4000_1100, 0x4000_1000, 0xf00));
}

#[test]
fn a_set_done_entirely_by_hypervisor_steps() {
    // dice [0]: every chunk "faults", so the hypervisor does all the work.
    let mut cpu = Cpu {
        mem: initial_memory(),
        xd: BASE,
        xs: 0xaa,
        xn: 100,
        nzcv: 0,
        option_b: false,
        dice: vec![0],
        at: 0,
        steps: 0,
    };
    cpu.run(MopsOp::Set { data_reg: 2 });
    assert!(cpu.steps > 0, "the dice made the hypervisor step");
    let mut want = initial_memory();
    want[..100].fill(0xaa);
    assert_eq!(cpu.mem, want);
}
