//! Host tests for the store decoder and planner.
//!
//! Every instruction word in these tests was produced by LLVM 22's AArch64
//! assembler (through rustc's `global_asm!`) unless marked hand-assembled;
//! the expected decodings were derived from LLVM's disassembly of the same
//! words, not from this decoder. No tool is needed to run them.

extern crate std;

use std::format;
use std::string::String;
use std::vec::Vec;

use super::*;

mod atomics;
mod mops;
mod plans;
mod props;
mod unsupported;
mod vectors;

/// Registers for tests: `x[n] = 0x1000 * (n + 1) + n` unless set.
#[derive(Clone, Debug)]
pub(super) struct TestRegs {
    pub x: [u64; 31],
    pub sp: u64,
    pub zva: u64,
}

impl TestRegs {
    pub fn new() -> Self {
        let mut x = [0u64; 31];
        for (n, r) in x.iter_mut().enumerate() {
            *r = 0x1000 * (n as u64 + 1) + n as u64;
        }
        TestRegs { x, sp: 0xFFFF_8000_0001_0000, zva: 64 }
    }

    pub fn with(mut self, n: u8, v: u64) -> Self {
        self.x[n as usize] = v;
        self
    }

    pub fn with_sp(mut self, v: u64) -> Self {
        self.sp = v;
        self
    }
}

impl Regs for TestRegs {
    fn x(&self, n: u8) -> u64 {
        // Deliberately not XZR-aware: porwatch must never ask for 31.
        assert!(n < 31, "asked for register {n}");
        self.x[n as usize]
    }
    fn sp(&self) -> u64 {
        self.sp
    }
    fn zva_block_bytes(&self) -> u64 {
        self.zva
    }
}

/// Decodes a word that must be a store.
pub(super) fn store(insn: u32) -> Store {
    match decode(insn) {
        Ok(s) => s,
        Err(e) => panic!("{insn:#010x}: {e:?}"),
    }
}

fn gpr(view: RegView, n: u8) -> String {
    let p = if view == RegView::X { "x" } else { "w" };
    if n == 31 {
        format!("{p}zr")
    } else {
        format!("{p}{n}")
    }
}

fn xreg(n: u8) -> String {
    gpr(RegView::X, n)
}

fn sfx(size: u8) -> &'static str {
    match size {
        1 => "b",
        2 => "h",
        _ => "",
    }
}

fn address(s: &Store) -> String {
    let b = match s.base {
        Base::Sp => String::from("sp"),
        Base::X(n) => xreg(n),
    };
    match (s.addressing, s.offset) {
        (Addressing::Offset, Offset::Imm(0)) => format!("[{b}]"),
        (Addressing::Offset, Offset::Imm(i)) => format!("[{b},#{i}]"),
        (Addressing::PreIndex, Offset::Imm(i)) => format!("[{b},#{i}]!"),
        (Addressing::PostIndex, Offset::Imm(i)) => format!("[{b}],#{i}"),
        (Addressing::PostIndex, Offset::Reg { rm, .. }) => format!("[{b}],{}", xreg(rm)),
        (Addressing::Offset, Offset::Reg { rm, extend, shift }) => {
            let (r, e) = match extend {
                Extend::Uxtw => (gpr(RegView::W, rm), "uxtw"),
                Extend::Sxtw => (gpr(RegView::W, rm), "sxtw"),
                Extend::Lsl => (xreg(rm), "lsl"),
                Extend::Sxtx => (xreg(rm), "sxtx"),
            };
            match (shift, e) {
                (0, "lsl") => format!("[{b},{r}]"),
                (0, _) => format!("[{b},{r},{e}]"),
                _ => format!("[{b},{r},{e}#{shift}]"),
            }
        }
        (Addressing::PreIndex, Offset::Reg { .. }) => String::from("<bad>"),
    }
}

/// A decoded store in canonical assembly (no spaces; STUR/STNP/STLUR are
/// written as STR/STP/STLR, SIMD&FP stores as `simd v.. len=N <address>`).
pub(super) fn canon(s: &Store) -> String {
    let a = address(s);
    let v = s.view;
    let t = gpr(v, s.rt);
    let t2 = s.rt2.map(|r| gpr(v, r)).unwrap_or_default();
    let acq = if s.acquire { "a" } else { "" };
    let rel = if s.release { "l" } else { "" };
    match s.kind {
        Kind::Simd { regs } => {
            let list: Vec<String> = regs.as_slice().iter().map(|r| format!("v{r}")).collect();
            let m = if s.release { "simd.rel" } else { "simd" };
            format!("{m} {} len={} {a}", list.join(","), s.len())
        }
        Kind::Plain if s.writes_tag => format!("stgp {t},{t2},{a}"),
        Kind::Plain if s.count == 2 => format!("stp {t},{t2},{a}"),
        Kind::Plain => format!("str{} {t},{a}", sfx(s.size)),
        Kind::Unprivileged => format!("sttr{} {t},{a}", sfx(s.size)),
        Kind::Release { .. } if s.count == 2 => format!("stilp {t},{t2},{a}"),
        Kind::Release { lo_release } => {
            let m = if lo_release { "stllr" } else { "stlr" };
            format!("{m}{} {t},{a}", sfx(s.size))
        }
        Kind::Exclusive { status_reg } => {
            let m = if s.release { "stlx" } else { "stx" };
            let ws = gpr(RegView::W, status_reg);
            if s.count == 2 {
                format!("{m}p {ws},{t},{t2},{a}")
            } else {
                format!("{m}r{} {ws},{t},{a}", sfx(s.size))
            }
        }
        Kind::Cas { compare_reg } if s.count == 2 => {
            let (c1, c2) = (gpr(v, compare_reg), gpr(v, compare_reg + 1));
            format!("casp{acq}{rel} {c1},{c2},{t},{t2},{a}")
        }
        Kind::Cas { compare_reg } => {
            format!("cas{acq}{rel}{} {},{t},{a}", sfx(s.size), gpr(v, compare_reg))
        }
        Kind::Swp { result_reg } => {
            format!("swp{acq}{rel}{} {t},{},{a}", sfx(s.size), gpr(v, result_reg))
        }
        Kind::LdOp { op, result_reg } => {
            let o = format!("{op:?}").to_lowercase();
            if result_reg == 31 && !s.acquire {
                format!("st{o}{rel}{} {t},{a}", sfx(s.size))
            } else {
                format!("ld{o}{acq}{rel}{} {t},{},{a}", sfx(s.size), gpr(v, result_reg))
            }
        }
        Kind::ZeroBlock => format!("dc zva,{}", xreg(s.rt)),
    }
}
