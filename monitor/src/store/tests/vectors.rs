//! Every store form, with its boundary cases: each word decodes to the
//! canonical text derived from LLVM's disassembly.

use super::*;

/// `(instruction word, canonical decoding)`, with LLVM's disassembly of the
/// word in the comment.
const STORES: &[(u32, &str)] = &[
    (0xf9000020, "str x0,[x1]"),                      // str x0, [x1]
    (0xf93ffc20, "str x0,[x1,#32760]"),               // str x0, [x1, #32760]
    (0xb93ffc62, "str w2,[x3,#16380]"),               // str w2, [x3, #16380]
    (0x793ffca4, "strh w4,[x5,#8190]"),               // strh w4, [x5, #8190]
    (0x393ffce6, "strb w6,[x7,#4095]"),               // strb w6, [x7, #4095]
    (0xf90007ff, "str xzr,[sp,#8]"),                  // str xzr, [sp, #8]
    (0x390003ff, "strb wzr,[sp]"),                    // strb wzr, [sp]
    (0xf8100c41, "str x1,[x2,#-256]!"),               // str x1, [x2, #-256]!
    (0xf80ffc41, "str x1,[x2,#255]!"),                // str x1, [x2, #255]!
    (0xb81f0fe1, "str w1,[sp,#-16]!"),                // str w1, [sp, #-16]!
    (0x78100441, "strh w1,[x2],#-256"),               // strh w1, [x2], #-256
    (0x380ff441, "strb w1,[x2],#255"),                // strb w1, [x2], #255
    (0xf80107e3, "str x3,[sp],#16"),                  // str x3, [sp], #16
    (0xf8008ca5, "str x5,[x5,#8]!"), // str x5, [x5, #8]! (hand-assembled: Rt == Rn, writeback)
    (0xf81f84a5, "str x5,[x5],#-8"), // str x5, [x5], #-8 (hand-assembled: Rt == Rn, writeback)
    (0xf81ffc1f, "str xzr,[x0,#-1]!"), // str xzr, [x0, #-1]!
    (0xf8100020, "str x0,[x1,#-256]"), // stur x0, [x1, #-256]
    (0xb80ff020, "str w0,[x1,#255]"), // stur w0, [x1, #255]
    (0x781ff3e0, "strh w0,[sp,#-1]"), // sturh w0, [sp, #-1]
    (0x380013df, "strb wzr,[x30,#1]"), // sturb wzr, [x30, #1]
    (0xf8100820, "sttr x0,[x1,#-256]"), // sttr x0, [x1, #-256]
    (0xb80ffbe0, "sttr w0,[sp,#255]"), // sttr w0, [sp, #255]
    (0x78000862, "sttrh w2,[x3]"),   // sttrh w2, [x3]
    (0x381ff8a4, "sttrb w4,[x5,#-1]"), // sttrb w4, [x5, #-1]
    (0xf8226820, "str x0,[x1,x2]"),  // str x0, [x1, x2]
    (0xf8227820, "str x0,[x1,x2,lsl#3]"), // str x0, [x1, x2, lsl #3]
    (0xf8224820, "str x0,[x1,w2,uxtw]"), // str x0, [x1, w2, uxtw]
    (0xf8225820, "str x0,[x1,w2,uxtw#3]"), // str x0, [x1, w2, uxtw #3]
    (0xf822c820, "str x0,[x1,w2,sxtw]"), // str x0, [x1, w2, sxtw]
    (0xf822d820, "str x0,[x1,w2,sxtw#3]"), // str x0, [x1, w2, sxtw #3]
    (0xf822e820, "str x0,[x1,x2,sxtx]"), // str x0, [x1, x2, sxtx]
    (0xf822f820, "str x0,[x1,x2,sxtx#3]"), // str x0, [x1, x2, sxtx #3]
    (0xb8227be0, "str w0,[sp,x2,lsl#2]"), // str w0, [sp, x2, lsl #2]
    (0x7822d820, "strh w0,[x1,w2,sxtw#1]"), // strh w0, [x1, w2, sxtw #1]
    (0x38227820, "strb w0,[x1,x2]"), // strb w0, [x1, x2, lsl #0]
    (0x38224820, "strb w0,[x1,w2,uxtw]"), // strb w0, [x1, w2, uxtw]
    (0x3822e820, "strb w0,[x1,x2,sxtx]"), // strb w0, [x1, x2, sxtx]
    (0xf83f6820, "str x0,[x1,xzr]"), // str x0, [x1, xzr]
    (0xa9bf7bfd, "stp x29,x30,[sp,#-16]!"), // stp x29, x30, [sp, #-16]!
    (0xa9a07bfd, "stp x29,x30,[sp,#-512]!"), // stp x29, x30, [sp, #-512]!
    (0xa91f8440, "stp x0,x1,[x2,#504]"), // stp x0, x1, [x2, #504]
    (0x29200440, "stp w0,w1,[x2,#-256]"), // stp w0, w1, [x2, #-256]
    (0x291f8440, "stp w0,w1,[x2,#252]"), // stp w0, w1, [x2, #252]
    (0xa8a00440, "stp x0,x1,[x2],#-512"), // stp x0, x1, [x2], #-512
    (0xa9810821, "stp x1,x2,[x1,#16]!"), // stp x1, x2, [x1, #16]! (hand-assembled: Rt == Rn, writeback)
    (0xa8810422, "stp x2,x1,[x1],#16"), // stp x2, x1, [x1], #16 (hand-assembled: Rt2 == Rn, writeback)
    (0xa9007c1f, "stp xzr,xzr,[x0]"), // stp xzr, xzr, [x0]
    (0xa8200440, "stp x0,x1,[x2,#-512]"), // stnp x0, x1, [x2, #-512]
    (0x281f8440, "stp w0,w1,[x2,#252]"), // stnp w0, w1, [x2, #252]
    (0x69000440, "stgp x0,x1,[x2]"), // stgp x0, x1, [x2]
    (0x69a00440, "stgp x0,x1,[x2,#-1024]!"), // stgp x0, x1, [x2, #-1024]!
    (0x689f8440, "stgp x0,x1,[x2],#1008"), // stgp x0, x1, [x2], #1008
    (0x690087e0, "stgp x0,x1,[sp,#16]"), // stgp x0, x1, [sp, #16]
    (0xc89ffc20, "stlr x0,[x1]"),    // stlr x0, [x1]
    (0x889fffe0, "stlr w0,[sp]"),    // stlr w0, [sp]
    (0x489ffc20, "stlrh w0,[x1]"),   // stlrh w0, [x1]
    (0x089ffc3f, "stlrb wzr,[x1]"),  // stlrb wzr, [x1]
    (0xc89f7c20, "stllr x0,[x1]"),   // stllr x0, [x1]
    (0x889f7c20, "stllr w0,[x1]"),   // stllr w0, [x1]
    (0x489f7c20, "stllrh w0,[x1]"),  // stllrh w0, [x1]
    (0x089f7c20, "stllrb w0,[x1]"),  // stllrb w0, [x1]
    (0xd9100020, "stlr x0,[x1,#-256]"), // stlur x0, [x1, #-256]
    (0x990ff020, "stlr w0,[x1,#255]"), // stlur w0, [x1, #255]
    (0x591ff3e0, "stlrh w0,[sp,#-1]"), // stlurh w0, [sp, #-1]
    (0x19001020, "stlrb w0,[x1,#1]"), // stlurb w0, [x1, #1]
    (0xd9800820, "stlr x0,[x1,#-8]!"), // stlr x0, [x1, #-8]!
    (0x99800be0, "stlr w0,[sp,#-4]!"), // stlr w0, [sp, #-4]!
    (0xd9011840, "stilp x0,x1,[x2]"), // stilp x0, x1, [x2]
    (0xd9010840, "stilp x0,x1,[x2,#-16]!"), // stilp x0, x1, [x2, #-16]!
    (0x99011be0, "stilp w0,w1,[sp]"), // stilp w0, w1, [sp]
    (0x99010840, "stilp w0,w1,[x2,#-8]!"), // stilp w0, w1, [x2, #-8]!
    (0xc8007c41, "stxr w0,x1,[x2]"), // stxr w0, x1, [x2]
    (0x88007fe1, "stxr w0,w1,[sp]"), // stxr w0, w1, [sp]
    (0x48037ca4, "stxrh w3,w4,[x5]"), // stxrh w3, w4, [x5]
    (0x081f7ca4, "stxrb wzr,w4,[x5]"), // stxrb wzr, w4, [x5]
    (0xc800fc41, "stlxr w0,x1,[x2]"), // stlxr w0, x1, [x2]
    (0x0800fc41, "stlxrb w0,w1,[x2]"), // stlxrb w0, w1, [x2]
    (0x4800fc41, "stlxrh w0,w1,[x2]"), // stlxrh w0, w1, [x2]
    (0x8801fc21, "stlxr w1,w1,[x1]"), // stlxr w1, w1, [x1] (hand-assembled: Rs == Rt == Rn)
    (0xc8200861, "stxp w0,x1,x2,[x3]"), // stxp w0, x1, x2, [x3]
    (0x88200be1, "stxp w0,w1,w2,[sp]"), // stxp w0, w1, w2, [sp]
    (0xc8208861, "stlxp w0,x1,x2,[x3]"), // stlxp w0, x1, x2, [x3]
    (0x88208861, "stlxp w0,w1,w2,[x3]"), // stlxp w0, w1, w2, [x3]
    (0xc8a07c41, "cas x0,x1,[x2]"),  // cas x0, x1, [x2]
    (0x88e07fe1, "casa w0,w1,[sp]"), // casa w0, w1, [sp]
    (0xc8a0fc41, "casl x0,x1,[x2]"), // casl x0, x1, [x2]
    (0x88e0fc41, "casal w0,w1,[x2]"), // casal w0, w1, [x2]
    (0x08a07c41, "casb w0,w1,[x2]"), // casb w0, w1, [x2]
    (0x08e07c41, "casab w0,w1,[x2]"), // casab w0, w1, [x2]
    (0x08a0fc41, "caslb w0,w1,[x2]"), // caslb w0, w1, [x2]
    (0x08e0fc41, "casalb w0,w1,[x2]"), // casalb w0, w1, [x2]
    (0x48a07c41, "cash w0,w1,[x2]"), // cash w0, w1, [x2]
    (0x48e07c41, "casah w0,w1,[x2]"), // casah w0, w1, [x2]
    (0x48a0fc41, "caslh w0,w1,[x2]"), // caslh w0, w1, [x2]
    (0x48e0fc41, "casalh w0,w1,[x2]"), // casalh w0, w1, [x2]
    (0xc8bf7c41, "cas xzr,x1,[x2]"), // cas xzr, x1, [x2]
    (0x48207c82, "casp x0,x1,x2,x3,[x4]"), // casp x0, x1, x2, x3, [x4]
    (0x08607fe2, "caspa w0,w1,w2,w3,[sp]"), // caspa w0, w1, w2, w3, [sp]
    (0x483efc9c, "caspl x30,xzr,x28,x29,[x4]"), // caspl x30, xzr, x28, x29, [x4]
    (0x0864fd06, "caspal w4,w5,w6,w7,[x8]"), // caspal w4, w5, w6, w7, [x8]
    (0xf8208041, "swp x0,x1,[x2]"),  // swp x0, x1, [x2]
    (0xb8a08041, "swpa w0,w1,[x2]"), // swpa w0, w1, [x2]
    (0xf86083e1, "swpl x0,x1,[sp]"), // swpl x0, x1, [sp]
    (0xb8e0805f, "swpal w0,wzr,[x2]"), // swpal w0, wzr, [x2]
    (0x38208041, "swpb w0,w1,[x2]"), // swpb w0, w1, [x2]
    (0x38e08041, "swpalb w0,w1,[x2]"), // swpalb w0, w1, [x2]
    (0x78208041, "swph w0,w1,[x2]"), // swph w0, w1, [x2]
    (0x78608041, "swplh w0,w1,[x2]"), // swplh w0, w1, [x2]
    (0xf8200041, "ldadd x0,x1,[x2]"), // ldadd x0, x1, [x2]
    (0xb8a00041, "ldadda w0,w1,[x2]"), // ldadda w0, w1, [x2]
    (0xf8600041, "ldaddl x0,x1,[x2]"), // ldaddl x0, x1, [x2]
    (0xb8e003e1, "ldaddal w0,w1,[sp]"), // ldaddal w0, w1, [sp]
    (0x38200041, "ldaddb w0,w1,[x2]"), // ldaddb w0, w1, [x2]
    (0x78200041, "ldaddh w0,w1,[x2]"), // ldaddh w0, w1, [x2]
    (0xf8201041, "ldclr x0,x1,[x2]"), // ldclr x0, x1, [x2]
    (0x38e01041, "ldclralb w0,w1,[x2]"), // ldclralb w0, w1, [x2]
    (0xb8202041, "ldeor w0,w1,[x2]"), // ldeor w0, w1, [x2]
    (0x78a02041, "ldeorah w0,w1,[x2]"), // ldeorah w0, w1, [x2]
    (0xf8203041, "ldset x0,x1,[x2]"), // ldset x0, x1, [x2]
    (0x38603041, "ldsetlb w0,w1,[x2]"), // ldsetlb w0, w1, [x2]
    (0xf8204041, "ldsmax x0,x1,[x2]"), // ldsmax x0, x1, [x2]
    (0x78a04041, "ldsmaxah w0,w1,[x2]"), // ldsmaxah w0, w1, [x2]
    (0xb8205041, "ldsmin w0,w1,[x2]"), // ldsmin w0, w1, [x2]
    (0x38e05041, "ldsminalb w0,w1,[x2]"), // ldsminalb w0, w1, [x2]
    (0xf8206041, "ldumax x0,x1,[x2]"), // ldumax x0, x1, [x2]
    (0x78606041, "ldumaxlh w0,w1,[x2]"), // ldumaxlh w0, w1, [x2]
    (0xb8207041, "ldumin w0,w1,[x2]"), // ldumin w0, w1, [x2]
    (0x38a07041, "lduminab w0,w1,[x2]"), // lduminab w0, w1, [x2]
    (0xf820003f, "stadd x0,[x1]"),   // stadd x0, [x1]
    (0xb860003f, "staddl w0,[x1]"),  // staddl w0, [x1]
    (0x382003ff, "staddb w0,[sp]"),  // staddb w0, [sp]
    (0x7860003f, "staddlh w0,[x1]"), // staddlh w0, [x1]
    (0xf820103f, "stclr x0,[x1]"),   // stclr x0, [x1]
    (0xb820203f, "steor w0,[x1]"),   // steor w0, [x1]
    (0xf820303f, "stset x0,[x1]"),   // stset x0, [x1]
    (0xf860303f, "stsetl x0,[x1]"),  // stsetl x0, [x1]
    (0xb820403f, "stsmax w0,[x1]"),  // stsmax w0, [x1]
    (0xf820503f, "stsmin x0,[x1]"),  // stsmin x0, [x1]
    (0xb820603f, "stumax w0,[x1]"),  // stumax w0, [x1]
    (0xf820703f, "stumin x0,[x1]"),  // stumin x0, [x1]
    (0x3860703f, "stuminlb w0,[x1]"), // stuminlb w0, [x1]
    (0xf8a0003f, "ldadda x0,xzr,[x1]"), // ldadda x0, xzr, [x1]
    (0xd50b7420, "dc zva,x0"),       // dc zva, x0
    (0xd50b743e, "dc zva,x30"),      // dc zva, x30
    (0xd50b743f, "dc zva,xzr"),      // dc zva, xzr
    (0x3d000020, "simd v0 len=1 [x1]"), // str b0, [x1]
    (0x7d3ffc20, "simd v0 len=2 [x1,#8190]"), // str h0, [x1, #8190]
    (0xbd3ffc20, "simd v0 len=4 [x1,#16380]"), // str s0, [x1, #16380]
    (0xfd3ffc20, "simd v0 len=8 [x1,#32760]"), // str d0, [x1, #32760]
    (0x3dbffc20, "simd v0 len=16 [x1,#65520]"), // str q0, [x1, #65520]
    (0x3c900fff, "simd v31 len=16 [sp,#-256]!"), // str q31, [sp, #-256]!
    (0xfc0ff441, "simd v1 len=8 [x2],#255"), // str d1, [x2], #255
    (0xbc247862, "simd v2 len=4 [x3,x4,lsl#2]"), // str s2, [x3, x4, lsl #2]
    (0x3ca47862, "simd v2 len=16 [x3,x4,lsl#4]"), // str q2, [x3, x4, lsl #4]
    (0x3ca4c862, "simd v2 len=16 [x3,w4,sxtw]"), // str q2, [x3, w4, sxtw]
    (0x3c247862, "simd v2 len=1 [x3,x4]"), // str b2, [x3, x4, lsl #0]
    (0x3c900020, "simd v0 len=16 [x1,#-256]"), // stur q0, [x1, #-256]
    (0x7c0ff020, "simd v0 len=2 [x1,#255]"), // stur h0, [x1, #255]
    (0x2d200440, "simd v0,v1 len=8 [x2,#-256]"), // stp s0, s1, [x2, #-256]
    (0x6da007e0, "simd v0,v1 len=16 [sp,#-512]!"), // stp d0, d1, [sp, #-512]!
    (0xac9f8440, "simd v0,v1 len=32 [x2],#1008"), // stp q0, q1, [x2], #1008
    (0xad207c5e, "simd v30,v31 len=32 [x2,#-1024]"), // stp q30, q31, [x2, #-1024]
    (0xac008440, "simd v0,v1 len=32 [x2,#16]"), // stnp q0, q1, [x2, #16]
    (0x2c000440, "simd v0,v1 len=8 [x2]"), // stnp s0, s1, [x2]
    (0x6c1f8440, "simd v0,v1 len=16 [x2,#504]"), // stnp d0, d1, [x2, #504]
    (0x1d000820, "simd.rel v0 len=1 [x1]"), // stlur b0, [x1]
    (0x1d900820, "simd.rel v0 len=16 [x1,#-256]"), // stlur q0, [x1, #-256]
    (0xdd0ffbe0, "simd.rel v0 len=8 [sp,#255]"), // stlur d0, [sp, #255]
    (0x4d018420, "simd.rel v0 len=8 [x1]"), // stl1 { v0.d }[1], [x1]
    (0x0d0187ff, "simd.rel v31 len=8 [sp]"), // stl1 { v31.d }[0], [sp]
    (0x4c007000, "simd v0 len=16 [x0]"), // st1 { v0.16b }, [x0]
    (0x0c00a000, "simd v0,v1 len=16 [x0]"), // st1 { v0.8b, v1.8b }, [x0]
    (0x4c006800, "simd v0,v1,v2 len=48 [x0]"), // st1 { v0.4s, v1.4s, v2.4s }, [x0]
    (0x4c002ffe, "simd v30,v31,v0,v1 len=64 [sp]"), // st1 { v30.2d, v31.2d, v0.2d, v1.2d }, [sp]
    (0x0c007c00, "simd v0 len=8 [x0]"), // st1 { v0.1d }, [x0]
    (0x4c008400, "simd v0,v1 len=32 [x0]"), // st2 { v0.8h, v1.8h }, [x0]
    (0x0c004800, "simd v0,v1,v2 len=24 [x0]"), // st3 { v0.2s, v1.2s, v2.2s }, [x0]
    (0x4c000000, "simd v0,v1,v2,v3 len=64 [x0]"), // st4 { v0.16b, v1.16b, v2.16b, v3.16b }, [x0]
    (0x4c9fa000, "simd v0,v1 len=32 [x0],#32"), // st1 { v0.16b, v1.16b }, [x0], #32
    (0x0c837000, "simd v0 len=8 [x0],x3"), // st1 { v0.8b }, [x0], x3
    (0x0c9f0404, "simd v4,v5,v6,v7 len=32 [x0],#32"), // st4 { v4.4h, v5.4h, v6.4h, v7.4h }, [x0], #32
    (0x4c9e8fe0, "simd v0,v1 len=32 [sp],x30"), // st2 { v0.2d, v1.2d }, [sp], x30
    (0x4d001c00, "simd v0 len=1 [x0]"), // st1 { v0.b }[15], [x0]
    (0x4d005800, "simd v0 len=2 [x0]"), // st1 { v0.h }[7], [x0]
    (0x4d009000, "simd v0 len=4 [x0]"), // st1 { v0.s }[3], [x0]
    (0x4d008400, "simd v0 len=8 [x0]"), // st1 { v0.d }[1], [x0]
    (0x0d200000, "simd v0,v1 len=2 [x0]"), // st2 { v0.b, v1.b }[0], [x0]
    (0x0d007800, "simd v0,v1,v2 len=6 [x0]"), // st3 { v0.h, v1.h, v2.h }[3], [x0]
    (0x0d20b3ff, "simd v31,v0,v1,v2 len=16 [sp]"), // st4 { v31.s, v0.s, v1.s, v2.s }[1], [sp]
    (0x0dbfa400, "simd v0,v1,v2,v3 len=32 [x0],#32"), // st4 { v0.d, v1.d, v2.d, v3.d }[0], [x0], #32
    (0x0d9f8000, "simd v0 len=4 [x0],#4"), // st1 { v0.s }[0], [x0], #4
    (0x0da95000, "simd v0,v1 len=4 [x0],x9"), // st2 { v0.h, v1.h }[2], [x0], x9
];

#[test]
fn every_store_form_decodes() {
    let mut failures = Vec::new();
    for &(insn, want) in STORES {
        match decode(insn) {
            Ok(s) if canon(&s) == want => {}
            Ok(s) => failures.push(format!("{insn:#010x}: want {want}, got {} ({s:?})", canon(&s))),
            Err(e) => failures.push(format!("{insn:#010x}: want {want}, got {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(STORES.len(), 192);
}

#[test]
fn full_fields_of_representative_stores() {
    // stp x29, x30, [sp, #-16]!
    assert_eq!(
        store(0xa9bf7bfd),
        Store {
            kind: Kind::Plain,
            size: 8,
            count: 2,
            rt: 29,
            rt2: Some(30),
            view: RegView::X,
            base: Base::Sp,
            offset: Offset::Imm(-16),
            addressing: Addressing::PreIndex,
            acquire: false,
            release: false,
            needs_fp: false,
            writes_tag: false,
        }
    );
    // strh w0, [x1, w2, sxtw #1]
    let s = store(0x7822d820);
    assert_eq!((s.size, s.count, s.view), (2, 1, RegView::W));
    assert_eq!(s.offset, Offset::Reg { rm: 2, extend: Extend::Sxtw, shift: 1 });
    // casal w0, w1, [x2]: acquire and release, W view, Rs = 0 compared.
    let s = store(0x88e0fc41);
    assert_eq!(s.kind, Kind::Cas { compare_reg: 0 });
    assert!(s.acquire && s.release);
    assert_eq!((s.size, s.view, s.rt), (4, RegView::W, 1));
    // caspl x30, xzr, x28, x29, [x4]: the second compare register is XZR.
    let s = store(0x483efc9c);
    assert_eq!(s.kind, Kind::Cas { compare_reg: 30 });
    assert_eq!((s.size, s.count, s.rt, s.rt2), (8, 2, 28, Some(29)));
    assert!(!s.acquire && s.release);
    // stlxp w0, x1, x2, [x3]
    let s = store(0xc8208861);
    assert_eq!(s.kind, Kind::Exclusive { status_reg: 0 });
    assert_eq!((s.size, s.count, s.rt, s.rt2, s.release), (8, 2, 1, Some(2), true));
    // stllrb w0, [x1]: LORelease.
    let s = store(0x089f7c20);
    assert_eq!(s.kind, Kind::Release { lo_release: true });
    assert!(s.release);
    // sttrb w4, [x5, #-1]: unprivileged.
    assert_eq!(store(0x381ff8a4).kind, Kind::Unprivileged);
    // swpal w0, wzr, [x2]: stores W0, old value discarded.
    let s = store(0xb8e0805f);
    assert_eq!(s.kind, Kind::Swp { result_reg: 31 });
    assert_eq!((s.rt, s.acquire, s.release), (0, true, true));
    // stuminlb w0, [x1]: ST<op> alias, release, byte.
    let s = store(0x3860703f);
    assert_eq!(s.kind, Kind::LdOp { op: AtomicOp::Umin, result_reg: 31 });
    assert_eq!((s.size, s.acquire, s.release), (1, false, true));
    // stgp x0, x1, [x2, #-1024]!: pair + tag, scaled by 16.
    let s = store(0x69a00440);
    assert!(s.writes_tag && s.is_pair());
    assert_eq!((s.offset, s.addressing), (Offset::Imm(-1024), Addressing::PreIndex));
    // dc zva, xzr: the address register is XZR, not SP.
    let s = store(0xd50b743f);
    assert_eq!((s.kind, s.base), (Kind::ZeroBlock, Base::X(31)));
    // st4 {v31.s, v0.s, v1.s, v2.s}[1], [sp]: registers wrap at V31.
    let s = store(0x0d20b3ff);
    assert!(s.needs_fp);
    assert_eq!(s.kind, Kind::Simd { regs: SimdRegs::consecutive(31, 4) });
    assert_eq!(
        match s.kind {
            Kind::Simd { regs } => regs.as_slice().to_vec(),
            _ => Vec::new(),
        },
        [31, 0, 1, 2]
    );
    assert_eq!((s.size, s.count, s.len()), (4, 4, 16));
    // stl1 {v0.d}[1], [x1]: release, 8 bytes.
    let s = store(0x4d018420);
    assert!(s.needs_fp && s.release);
    assert_eq!(s.len(), 8);
}
