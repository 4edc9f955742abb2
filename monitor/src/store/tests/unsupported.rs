//! Instructions that are not decoded: loads and non-memory instructions
//! (`NotAStore`), memory writers porwatch does not emulate (a reason each),
//! and unallocated store encodings.

use super::*;
use Unsupported::*;

/// `(instruction word, expected reason)`, LLVM's disassembly in the comment.
const NOT_DECODED: &[(u32, Unsupported)] = &[
    (0xf9400020, NotAStore),        // ldr x0, [x1]
    (0x397ffc20, NotAStore),        // ldrb w0, [x1, #4095]
    (0xb8804420, NotAStore),        // ldrsw x0, [x1], #4
    (0xf85ff020, NotAStore),        // ldur x0, [x1, #-1]
    (0xf8400820, NotAStore),        // ldtr x0, [x1]
    (0xf8627820, NotAStore),        // ldr x0, [x1, x2, lsl #3]
    (0xa8c107e0, NotAStore),        // ldp x0, x1, [sp], #16
    (0xac400400, NotAStore),        // ldnp q0, q1, [x0]
    (0x69400440, NotAStore),        // ldpsw x0, x1, [x2]
    (0xc85f7c20, NotAStore),        // ldxr x0, [x1]
    (0x085ffc20, NotAStore),        // ldaxrb w0, [x1]
    (0xc87f0440, NotAStore),        // ldxp x0, x1, [x2]
    (0xc8dffc20, NotAStore),        // ldar x0, [x1]
    (0x88df7c20, NotAStore),        // ldlar w0, [x1]
    (0xf8bfc020, NotAStore),        // ldapr x0, [x1]
    (0x19400020, NotAStore),        // ldapurb w0, [x1]
    (0xd9411840, NotAStore),        // ldiapp x0, x1, [x2]
    (0xd9c00820, NotAStore),        // ldapr x0, [x1], #8
    (0x4c407000, NotAStore),        // ld1 { v0.16b }, [x0]
    (0x4d60e800, NotAStore),        // ld4r { v0.4s, v1.4s, v2.4s, v3.4s }, [x0]
    (0x0d418420, NotAStore),        // ldap1 { v0.d }[0], [x1]
    (0x3dc00020, NotAStore),        // ldr q0, [x1]
    (0x1dc00820, NotAStore),        // ldapur q0, [x1]
    (0x58000040, NotAStore),        // ldr x0, #8 (literal)
    (0xf9800000, NotAStore),        // prfm pldl1keep, [x0]
    (0xf89ff010, NotAStore),        // prfum pstl1keep, [x0, #-1]
    (0xf8a16800, NotAStore),        // prfm pldl1keep, [x0, x1]
    (0xf8200420, NotAStore),        // ldraa x0, [x1]
    (0xd9600020, NotAStore),        // ldg x0, [x1]
    (0xd9e00020, NotAStore),        // ldgm x0, [x1]
    (0xc95f7c20, NotAStore),        // ldtxr x0, [x1]
    (0xf83fd020, NotAStore),        // ld64b x0, [x1]
    (0xd52b7720, NotAStore),        // gcspopm x0
    (0xd503201f, NotAStore),        // nop
    (0x8b020020, NotAStore),        // add x0, x1, x2
    (0xd65f03c0, NotAStore),        // ret
    (0xd5381000, NotAStore),        // mrs x0, SCTLR_EL1
    (0xd5087820, NotAStore),        // at s1e1w, x0
    (0xd50b7520, NotAStore),        // ic ivau, x0
    (0xa400a000, NotAStore),        // ld1b { z0.b }, p0/z, [x0]
    (0x19010440, Mops),             // cpyfp [x0]!, [x1]!, x2!
    (0x1d810440, Mops),             // cpye [x0]!, [x1]!, x2!
    (0x19c20420, Mops),             // setp [x0]!, x1!, x2
    (0x1dc28420, Mops),             // setge [x0]!, x1!, x2
    (0xf83f9020, Ls64),             // st64b x0, [x1]
    (0xf822b020, Ls64),             // st64bv x2, x0, [x1]
    (0xf822a020, Ls64),             // st64bv0 x2, x0, [x1]
    (0xd9200820, MemoryTags),       // stg x0, [x1]
    (0xd9700c20, MemoryTags),       // stzg x0, [x1, #-4096]!
    (0xd9a01420, MemoryTags),       // st2g x0, [x1], #16
    (0xd9e0083f, MemoryTags),       // stz2g sp, [x1]
    (0xd9a00020, MemoryTags),       // stgm x0, [x1]
    (0xd9200020, MemoryTags),       // stzgm x0, [x1]
    (0xd50b7460, MemoryTags),       // dc gva, x0
    (0xd50b7480, MemoryTags),       // dc gzva, x0
    (0xd91f0c20, Gcs),              // gcsstr x0, [x1]
    (0xd91f1c20, Gcs),              // gcssttr x0, [x1]
    (0xd50b7700, Gcs),              // gcspushm x0
    (0xd50b7740, Gcs),              // gcsss1 x0
    (0xd52b7760, Gcs),              // gcsss2 x0
    (0xd508779f, Gcs),              // gcspushx
    (0x19218040, Lse128),           // swpp x0, x1, [x2]
    (0x19e11040, Lse128),           // ldclrpal x0, x1, [x2]
    (0x192133e0, Lse128),           // ldsetp x0, x1, [sp]
    (0x19200841, Rcw),              // rcwcas x0, x1, [x2]
    (0x19200c82, Rcw),              // rcwcasp x0, x1, x2, x3, [x4]
    (0x3820a041, Rcw),              // rcwswp x0, x1, [x2]
    (0x19e1b040, Rcw),              // rcwsetpal x0, x1, [x2]
    (0x78209041, Rcw),              // rcwsclr x0, x1, [x2]
    (0x19200441, Lsui),             // ldtadd w0, w1, [x2]
    (0x1920045f, Lsui),             // sttadd w0, [x2]
    (0x19208441, Lsui),             // swpt w0, w1, [x2]
    (0xc9807c41, Lsui),             // cast x0, x1, [x2]
    (0x49807c82, Lsui),             // caspt x0, x1, x2, x3, [x4]
    (0xc9007c41, Lsui),             // sttxr w0, x1, [x2]
    (0x8900fc41, Lsui),             // stltxr w0, w1, [x2]
    (0xe9000440, Lsui),             // sttp x0, x1, [x2]
    (0xe8000440, Lsui),             // sttnp x0, x1, [x2]
    (0xed000440, Lsui),             // sttp q0, q1, [x2]
    (0x7c200041, FpAtomic),         // ldfadd h0, h1, [x2]
    (0xfc20803f, FpAtomic),         // stfadd d0,  [x1]
    (0x3ce04041, FpAtomic),         // ldbfmaxal h0, h1, [x2]
    (0xe400e000, Sve),              // st1b { z0.b }, p0, [x0]
    (0xe5804000, Sve),              // str z0, [x0]
    (0xe5800000, Sve),              // str p0, [x0]
    (0xe581a000, Sve),              // st1d { z0.d }, p0, [x0, z1.d]
    (0xe510e000, Sve),              // stnt1w { z0.s }, p0, [x0]
    (0xe03f0000, Sme),              // st1b {za0h.b[w12, 0]}, p0, [x0]
    (0xe1200000, Sme),              // str za[w12, 0], [x0]
    (0xe13f8000, Sme),              // str zt0, [x0]
    (0xa0600000, Sme),              // st1b { z0.b, z1.b }, pn8, [x0]
    (0xd5087620, CacheMaintenance), // dc ivac, x0
    (0xd50b7e20, CacheMaintenance), // dc civac, x0
    (0xd50b7a20, CacheMaintenance), // dc cvac, x0
    (0xd50b7b20, CacheMaintenance), // dc cvau, x0
    (0xd50b7c20, CacheMaintenance), // dc cvap, x0
    (0xd5087640, CacheMaintenance), // dc isw, x0
    (0xd9005844, Lscp),             // stlp x4, x0, [x2]
];

/// Hand-assembled encodings inside store classes that are UNDEFINED or
/// unallocated (LLVM disassembles none of them).
const UNALLOCATED: &[u32] = &[
    0x48217c82, // casp x0, x1, x2, x3, [x4] with Rs = 1 (odd)
    0x48207c83, // casp x0, x1, x2, x3, [x4] with Rt = 3 (odd)
    0xc8a00041, // cas x0, x1, [x2] with Rt2 = 00000 (fixed 11111)
    0xf8220820, // str x0, [x1, x2] with option = 000
    0xf8228820, // str x0, [x1, x2] with option = 100 (SXTB)
    0xf8222820, // str x0, [x1, x2] with option = 001 (UXTH)
    0x68000440, // stnp with opc = 01 (STGP has no no-allocate form)
    0x7c800020, // str (SIMD&FP) with size = 01, opc = 10
    0x3c000820, // sttr with V = 1 (no SIMD&FP unprivileged store)
    0x0c008c00, // st2 {v0.1d, v1.1d}, [x0] (size:Q = 110 with two elements)
    0x0d004c00, // st1 {v0.h}[..], [x0] with size<0> = 1
    0x0d008800, // st1 single structure, scale 2, size<1> = 1
    0x0d009400, // st1 {v0.d}[..], [x0] with S = 1
    0x0c017000, // st1 {v0.8b}, [x0] with Rm = 1 but no post-index
    0x0c001000, // st1 multiple structures, opcode 0001
    0x0d00c000, // replicate-shaped single structure (scale 3) with L = 0
    0x8c007000, // st1 multiple structures with bit 31 set
    0x59011840, // stilp with size = 01
    0xd9801820, // stlr x0, [x1, #-8]! with imm bits != 0
    0x1921101f, // ldclrp with Rt = 31
    0xf87fc020, // atomic o3 = 1, opc = 100 with A = 0, R = 1 (not LDAPR)
    0xf820e020, // atomic o3 = 1, opc = 110
];

#[test]
fn loads_and_gaps_are_classified() {
    let mut failures = Vec::new();
    for &(insn, want) in NOT_DECODED {
        let got = decode(insn);
        if got != Err(want) {
            failures.push(format!("{insn:#010x}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every reason is covered.
    for reason in [
        NotAStore,
        Mops,
        Ls64,
        MemoryTags,
        Gcs,
        Lse128,
        Rcw,
        Lsui,
        Lscp,
        FpAtomic,
        Sve,
        Sme,
        CacheMaintenance,
    ] {
        assert!(NOT_DECODED.iter().any(|&(_, r)| r == reason), "{reason:?}");
    }
}

#[test]
fn unallocated_store_encodings() {
    for &insn in UNALLOCATED {
        assert_eq!(decode(insn), Err(Unallocated), "{insn:#010x}");
    }
}

#[test]
fn reason_names_and_memory_flag() {
    assert_eq!(NotAStore.as_str(), "not-a-store");
    assert_eq!(Mops.as_str(), "mops");
    assert!(!NotAStore.writes_memory());
    assert!(!Unallocated.writes_memory());
    assert!(!CacheMaintenance.writes_memory());
    for r in [Mops, Ls64, MemoryTags, Gcs, Lse128, Rcw, Lsui, Lscp, FpAtomic, Sve, Sme] {
        assert!(r.writes_memory(), "{r:?}");
    }
}

/// Loads of every class next to their stores: flipping the load bit turns
/// a decoded store into `NotAStore`.
#[test]
fn load_twins_of_stores_are_not_stores() {
    let twins: &[(u32, u32)] = &[
        (0xf9000020, 1 << 22), // str x0, [x1] -> ldr
        (0xf8100c41, 1 << 22), // str x1, [x2, #-256]! -> ldr
        (0xf8226820, 1 << 22), // str x0, [x1, x2] -> ldr
        (0xf8100020, 1 << 22), // stur -> ldur
        (0xf8000820, 1 << 22), // sttr x0, [x1] -> ldtr
        (0xa9bf7bfd, 1 << 22), // stp -> ldp
        (0xa8000440, 1 << 22), // stnp -> ldnp
        (0xc8007c41, 1 << 22), // stxr -> ldxr
        (0xc8208861, 1 << 22), // stlxp -> ldaxp
        (0xc89ffc20, 1 << 22), // stlr -> ldar
        (0xd9000020, 1 << 22), // stlur x0, [x1] -> ldapur
        (0xd9011840, 1 << 22), // stilp -> ldiapp
        (0xd9800820, 1 << 22), // stlr x0, [x1, #-8]! -> ldapr x0, [x1], #8
        (0x3d000020, 1 << 22), // str b0, [x1] -> ldr b0
        (0x4c00a000, 1 << 22), // st1 {v0.16b, v1.16b}, [x0] -> ld1
        (0x0d000000, 1 << 22), // st1 {v0.b}[0], [x0] -> ld1
        (0x4d018420, 1 << 22), // stl1 -> ldap1
        (0x1d000820, 1 << 22), // stlur b0, [x1] -> ldapur b0
    ];
    for &(st, bit) in twins {
        assert!(decode(st).is_ok(), "{st:#010x}");
        assert_eq!(decode(st | bit), Err(NotAStore), "{:#010x}", st | bit);
    }
}
