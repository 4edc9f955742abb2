//! The decoded form of a store: [`Store`] and its parts, and why an
//! instruction is not decoded ([`Unsupported`]).

use super::atomic::AtomicOp;

/// Which registers hold the data written to memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RegView {
    /// 32-bit general-purpose view (Wt); also used for STRB/STRH.
    W,
    /// 64-bit general-purpose view (Xt).
    X,
    /// SIMD&FP registers (Bt, Ht, St, Dt, Qt or vector lanes).
    V,
}

/// The base address register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Base {
    /// Rn = 31 in a load/store: the stack pointer.
    Sp,
    /// X0..X30; `X(31)` is XZR (only DC ZVA, whose address is `Xt`, can
    /// name it).
    X(u8),
}

impl Base {
    /// The base for a load/store `Rn` field: 31 is SP.
    #[inline]
    pub const fn from_rn(rn: u8) -> Self {
        if rn == 31 {
            Base::Sp
        } else {
            Base::X(rn & 31)
        }
    }

    /// The register number as encoded (SP is 31).
    #[inline]
    pub const fn number(self) -> u8 {
        match self {
            Base::Sp => 31,
            Base::X(n) => n,
        }
    }
}

/// How the address is formed from the base and the offset.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Addressing {
    /// `[base, offset]`: no writeback.
    Offset,
    /// `[base, offset]!`: access at base + offset, then base = base + offset.
    PreIndex,
    /// `[base], offset`: access at base, then base = base + offset.
    PostIndex,
}

impl Addressing {
    /// True when the base register is updated.
    #[inline]
    pub const fn writes_back(self) -> bool {
        !matches!(self, Addressing::Offset)
    }
}

/// Register-offset extension (the `option` field).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Extend {
    /// `option = 010`: zero-extend Wm.
    Uxtw,
    /// `option = 011`: Xm as is (LSL, also called UXTX).
    Lsl,
    /// `option = 110`: sign-extend Wm.
    Sxtw,
    /// `option = 111`: Xm as is (SXTX).
    Sxtx,
}

/// The offset added to the base.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Offset {
    /// A byte offset, already sign-extended and scaled.
    Imm(i64),
    /// `Xm`/`Wm` extended by `extend`, then shifted left by `shift`
    /// (0..=4). `rm = 31` is XZR. Also the post-index register of ST1..ST4.
    Reg { rm: u8, extend: Extend, shift: u8 },
}

/// The SIMD&FP registers an instruction stores from, in memory order
/// (before any interleaving of structure elements).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SimdRegs {
    regs: [u8; 4],
    len: u8,
}

impl SimdRegs {
    /// `n` (1..=4) consecutive registers from `first`, wrapping V31 -> V0.
    #[inline]
    pub const fn consecutive(first: u8, n: u8) -> Self {
        let n = if n > 4 { 4 } else { n };
        let f = first & 31;
        SimdRegs { regs: [f, (f + 1) & 31, (f + 2) & 31, (f + 3) & 31], len: n }
    }

    /// Two registers (STP/STNP of SIMD&FP registers).
    #[inline]
    pub const fn pair(a: u8, b: u8) -> Self {
        SimdRegs { regs: [a & 31, b & 31, 0, 0], len: 2 }
    }

    /// The registers.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        let n = (self.len as usize).min(self.regs.len());
        &self.regs[..n]
    }

    /// How many registers.
    #[inline]
    pub const fn len(&self) -> u8 {
        self.len
    }

    /// Never true for a decoded instruction.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What kind of store, with the registers that receive results.
///
/// Register numbers in results are GPRs where 31 is XZR (the result is
/// discarded).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// STR, STRB, STRH, STUR*, STP, STNP, STGP.
    Plain,
    /// STLR*, STLUR*, STILP (`lo_release = false`) and STLLR* (LORelease,
    /// `lo_release = true`; emulating it as a full release is stronger and
    /// therefore correct).
    Release { lo_release: bool },
    /// STTR, STTRB, STTRH. At EL1 with PSTATE.UAO = 0 the access is checked
    /// as an EL0 access, so the hazard rule uses POR_EL0 for it (with UAO = 1,
    /// or at EL0, it is an ordinary store).
    Unprivileged,
    /// STXR/STLXR (`count` 1) or STXP/STLXP (`count` 2): `status_reg` (Ws)
    /// receives 0 on success, 1 on failure.
    Exclusive { status_reg: u8 },
    /// CAS* (`count` 1) and CASP* (`count` 2): compare with
    /// `compare_reg` (and `compare_reg + 1` for CASP), which receive the old
    /// memory value; the new value comes from `rt` (and `rt + 1`).
    Cas { compare_reg: u8 },
    /// SWP*: stores `rt` (the encoding's Rs field), `result_reg` (the
    /// encoding's Rt) receives the old value.
    Swp { result_reg: u8 },
    /// `LD<op>*` / `ST<op>*`: `mem = op(mem, rt)` where `rt` is the encoding's Rs
    /// field; `result_reg` (the encoding's Rt; 31 for `ST<op>`) receives the
    /// old value.
    LdOp { op: AtomicOp, result_reg: u8 },
    /// DC ZVA: zero the naturally aligned block containing the address in
    /// `Xt` (the [`Store::base`], where `X(31)` is XZR).
    ZeroBlock,
    /// A SIMD&FP store: the hypervisor does not emulate it (see
    /// [`Store::needs_fp`]).
    Simd { regs: SimdRegs },
}

/// A decoded store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Store {
    pub kind: Kind,
    /// Bytes written per element (per register): 1, 2, 4, 8 or 16. 0 for
    /// [`Kind::ZeroBlock`], whose size is the DC ZVA block size.
    pub size: u8,
    /// Elements written: 1, or 2 for pairs (STP, STXP, CASP, STILP, STGP);
    /// 1..=4 registers for SIMD structures.
    pub count: u8,
    /// The register holding the (first) value written. For SWP and `LD<op>`
    /// this is the encoding's Rs field; for DC ZVA the address register.
    pub rt: u8,
    /// The second register of a pair (`rt + 1` for CASP).
    pub rt2: Option<u8>,
    /// The register view the data is read from.
    pub view: RegView,
    pub base: Base,
    pub offset: Offset,
    pub addressing: Addressing,
    /// Acquire semantics (CASA, SWPA, `LD<op>`A, ...).
    pub acquire: bool,
    /// Release semantics (STLR, STLXR, CASL, ...).
    pub release: bool,
    /// The data is in SIMD&FP registers: the hypervisor must single-step
    /// rather than emulate ([`super::Plan::StepAndDiff`]).
    pub needs_fp: bool,
    /// STGP: also writes the Allocation Tag of the 16-byte granule.
    pub writes_tag: bool,
}

impl Store {
    /// Total bytes written: `size * count` (0 for DC ZVA, see
    /// [`super::Regs::zva_block_bytes`]).
    #[inline]
    pub const fn len(&self) -> usize {
        self.size as usize * self.count as usize
    }

    /// True only for [`Kind::ZeroBlock`], whose length is not encoded.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for two-element stores (STP, STXP, CASP, STILP, STGP, ...).
    #[inline]
    pub const fn is_pair(&self) -> bool {
        !self.needs_fp && self.count == 2
    }
}

/// Why [`super::decode`] did not produce a [`Store`].
///
/// Everything except [`Unsupported::NotAStore`] and
/// [`Unsupported::Unallocated`] is an instruction that can write memory but
/// that porwatch does not emulate: a coverage gap to log.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unsupported {
    /// Does not write memory: loads (including LDAPR, LDXR, LDAR, ...),
    /// prefetches, and every non-memory instruction.
    NotAStore,
    /// An unallocated or UNDEFINED encoding within a store class (for
    /// example CASP with an odd register, STR (register) with
    /// `option<1> = 0`, reserved SIMD structure sizes). The CPU cannot have
    /// executed it as a store.
    Unallocated,
    /// FEAT_MOPS: CPYF*, CPY*, SET*, SETG*.
    Mops,
    /// FEAT_LS64: ST64B, ST64BV, ST64BV0.
    Ls64,
    /// FEAT_MTE tag stores: STG, STZG, ST2G, STZ2G, STGM, STZGM, DC GVA,
    /// DC GZVA, DC GBVA, DC ZGBVA.
    MemoryTags,
    /// FEAT_GCS stores: GCSSTR, GCSSTTR, GCSPUSHM, GCSPUSHX, GCSSS1, GCSSS2.
    Gcs,
    /// FEAT_LSE128: SWPP, LDCLRP, LDSETP.
    Lse128,
    /// FEAT_THE read-check-write: RCWCAS(P), RCWSWP(P), RCWCLR(P),
    /// RCWSET(P) and their RCWS* forms.
    Rcw,
    /// FEAT_LSUI unprivileged atomics and exclusives: `LDT<op>`, SWPT, CAST,
    /// CASPT, STTXR, STLTXR, STTP, STTNP.
    Lsui,
    /// FEAT_LSCP STLP (store-release pair): recognised, but not emulated
    /// until its encoding is verified against an Arm ARM.
    Lscp,
    /// FEAT_LSFE floating-point atomics: LDFADD, LDBFADD, STFADD, ...
    FpAtomic,
    /// SVE stores (ST1B..ST4Q, STNT1*, STR Zt/Pt, scatters): every word of
    /// the SVE store group (bits `[31:29]` = 111), allocated or not.
    Sve,
    /// SME stores (ZA tile slices, STR ZA, STR ZT0, multi-vector ST1*):
    /// every word of the SME store encoding groups, allocated or not.
    Sme,
    /// DC by VA or set/way other than the zeroing ones: writes no data, but
    /// DC IVAC-class operations can take a stage-2 Permission fault with
    /// WnR = 1 (ESR.CM = 1).
    CacheMaintenance,
}

impl Unsupported {
    /// A short name for logs.
    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            Unsupported::NotAStore => "not-a-store",
            Unsupported::Unallocated => "unallocated",
            Unsupported::Mops => "mops",
            Unsupported::Ls64 => "ls64",
            Unsupported::MemoryTags => "memory-tags",
            Unsupported::Gcs => "gcs",
            Unsupported::Lse128 => "lse128",
            Unsupported::Rcw => "rcw",
            Unsupported::Lsui => "lsui",
            Unsupported::Lscp => "lscp",
            Unsupported::FpAtomic => "fp-atomic",
            Unsupported::Sve => "sve",
            Unsupported::Sme => "sme",
            Unsupported::CacheMaintenance => "cache-maintenance",
        }
    }

    /// True when the instruction writes (or may write) memory, i.e. this is
    /// a coverage gap rather than a non-store.
    #[inline]
    pub const fn writes_memory(self) -> bool {
        !matches!(self, Unsupported::NotAStore | Unsupported::Unallocated | Unsupported::CacheMaintenance)
    }
}
