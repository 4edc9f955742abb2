extern crate std;
use super::*;
use std::vec;
use std::vec::Vec;

const SUB_SP: u32 = 0xd105_43ff; // sub sp, sp, #336 (Linux kernel_ventry)
const STP: u32 = 0xa9bf_07e0; // stp x0, x1, [sp, #-16]!
const MOV_X1_4: u32 = 0xd280_0081; // mov x1, #4
const RET: u32 = 0xd65f_03c0;
const ERET: u32 = 0xd69f_03e0;
const BLR_X0: u32 = 0xd63f_0000;
const MSR_TPIDRRO_X30: u32 = 0xd51b_d07e; // msr tpidrro_el0, x30

/// The target a PC-relative instruction at `pc` refers to (test oracle,
/// decoded independently of `relocate`'s field rewriting).
fn target(insn: u32, pc: u64) -> Option<u64> {
    let s = |v: u32, bits: u32| ((v as i64) << (64 - bits)) >> (64 - bits);
    let add = |off: i64| Some(pc.wrapping_add(off as u64));
    if insn & 0x7c00_0000 == 0x1400_0000 {
        return add(s(insn & 0x03ff_ffff, 26) * 4);
    }
    if insn & 0xff00_0000 == 0x5400_0000
        || insn & 0x7e00_0000 == 0x3400_0000
        || insn & 0x3b00_0000 == 0x1800_0000
    {
        return add(s((insn >> 5) & 0x7_ffff, 19) * 4);
    }
    if insn & 0x7e00_0000 == 0x3600_0000 {
        return add(s((insn >> 5) & 0x3fff, 14) * 4);
    }
    let imm21 = s(((insn >> 5) & 0x7_ffff) << 2 | (insn >> 29) & 3, 21);
    if insn & 0x9f00_0000 == 0x1000_0000 {
        return add(imm21);
    }
    if insn & 0x9f00_0000 == 0x9000_0000 {
        return Some((pc & !0xfff).wrapping_add((imm21 << 12) as u64));
    }
    None
}

#[test]
fn hvc_immediates() {
    assert_eq!(hvc(0), 0xd400_0002);
    assert_eq!(hvc(1), 0xd400_0022);
    assert_eq!(hvc(0xffff), 0xd41f_ffe2);
    for s in 0..16u8 {
        assert_eq!(hvc_slot(HVC_IMM_BASE + s as u16), Some(s));
    }
    assert_eq!(hvc_slot(HVC_IMM_BASE + 16), None);
    assert_eq!(hvc_slot(HVC_IMM_BASE - 1), None);
    assert_eq!(hvc_slot(0), None);
}

#[test]
fn relocated_pc_relative_forms_keep_their_target() {
    let from = 0xffff_8000_0801_0800u64;
    let to = from + 0x58;
    let cases = [
        0x1400_0219, // b +0x864
        0x17ff_fa19, // b -0x179c
        0x9400_0010, // bl +0x40
        0x5400_3de1, // b.ne +0x7bc
        0x5400_0030, // bc.eq +4 (FEAT_HBC)
        0xb400_0080, // cbz x0, +0x10
        0x3500_0080, // cbnz w0, +0x10
        0x3770_0080, // tbnz w0, #14, +0x10
        0xb6f8_0080, // tbz x0, #63, +0x10
        0x1000_0080, // adr x0, +0x10
        0x7000_0080, // adr x0, +0x13
        0xb000_bfa0, // adrp x0, +0x17f5000
        0x5800_0080, // ldr x0, literal +0x10
        0x1c00_0080, // ldr s0, literal +0x10
        0x9800_0080, // ldrsw x0, literal +0x10
        0xd800_0080, // prfm literal +0x10
    ];
    for insn in cases {
        let r = relocate(insn, from, to).unwrap_or_else(|| panic!("{insn:#x}"));
        assert_eq!(target(r, to), target(insn, from), "{insn:#x} -> {r:#x}");
        assert!(target(insn, from).is_some(), "oracle knows {insn:#x}");
        // Same operation, registers and condition: only the offset moved.
        assert_eq!(relocate(r, to, from), Some(insn));
    }
    // ADRP within the same page needs no change.
    assert_eq!(relocate(0xb000_bfa0, from, from + 0x40), Some(0xb000_bfa0));
}

#[test]
fn position_independent_instructions_move_unchanged() {
    for insn in
        [SUB_SP, STP, MOV_X1_4, RET, ERET, BLR_X0, MSR_TPIDRRO_X30, hvc(0), 0xd400_0001 /* svc */, NOP]
    {
        assert_eq!(relocate(insn, 0x1000, 0x1040), Some(insn), "{insn:#x}");
    }
}

#[test]
fn out_of_range_and_unknown_branch_forms_are_refused() {
    // tbz's 14-bit offset: +32 KiB - 4 cannot grow when the copy moves back.
    let tbz_far = 0x3600_0000 | (0x1fff << 5);
    assert_eq!(relocate(tbz_far, 0x10_0040, 0x10_0000), None);
    // An encoding in the branch group this module does not know (e.g.
    // FEAT_CMPBR's compare-and-branch): not moved.
    assert_eq!(relocate(0x7400_0000, 0x1000, 0x1040), None);
    assert_eq!(relocate(0x1400_0001, 0x1000, 0x1002), None); // unaligned move
}

#[test]
fn branches_and_fall_through() {
    assert_eq!(encode_b(0x1000, 0x1004), Some(0x1400_0001));
    assert_eq!(encode_b(0x1004, 0x1000), Some(0x17ff_ffff));
    assert_eq!(b_target(0x17ff_ffff, 0x1004), Some(0x1000));
    assert_eq!(b_target(0x9400_0001, 0x1000), None); // BL is not B
    for w in
        [0x1400_0001, RET, ERET, 0xd61f_0000 /* br x0 */, 0xd65f_0bff /* retaa */, 0, 0x0000_1234]
    {
        assert!(no_fall_through(w), "{w:#x}");
    }
    for w in [NOP, BLR_X0, 0x9400_0001 /* bl */, SUB_SP, 0x5400_0001 /* b.ne */, hvc(0)] {
        assert!(!no_fall_through(w), "{w:#x}");
    }
}

/// A page whose table at `table` has `slot(s)` in slot s (then zeros).
fn page_with(table: usize, slot: impl Fn(usize) -> Vec<u32>) -> [u32; PAGE_WORDS] {
    let mut p = [0x1234_5678u32; PAGE_WORDS]; // other code: anything
    for s in 0..SLOTS {
        let off = (table + s * SLOT_BYTES) / 4;
        p[off..off + 32].fill(0);
        for (i, w) in slot(s).into_iter().enumerate() {
            p[off + i] = w;
        }
    }
    p
}

/// Linux's kernel_ventry (6.1, as in Debian's bookworm kernel): EL1 slots
/// start with `sub sp`, EL0 slots with `b` over the trampoline cleanup; 22
/// or 24 words, the rest zero.
fn linux_slot(s: usize) -> Vec<u32> {
    let el0 = s >= 8;
    let mut w = Vec::new();
    if el0 {
        w.extend([0x1400_0003, 0xd53b_d07e, 0xd51b_d07f]); // b +0xc; mrs x30, tpidrro_el0; msr tpidrro_el0, xzr
    }
    w.extend([SUB_SP, 0x8b20_63ff, 0xcb20_63e0, 0x3770_0080, 0xcb20_63e0, 0xcb20_63ff, 0x1400_0219]);
    w.extend([0xd51b_d040, 0xcb20_63e0, 0xd51b_d060, 0xb000_bfa0, 0x910c_401f, 0xd538_d080, 0x8b20_63ff]);
    w.extend([0xd53b_d040, 0xcb20_63e0, 0xf274_cc1f, 0x5400_3de1, 0xcb20_63ff, 0xd53b_d060, 0x1400_020b]);
    w
}

#[test]
fn plans_linux_vectors() {
    let page = page_with(0x800, linux_slot);
    let p = plan(&page, 0x800).unwrap();
    for s in 0..SLOTS as u8 {
        let off = 0x800 + s as usize * SLOT_BYTES;
        match p.hooks[s as usize] {
            Hook::OutOfLine { at, insn, back } => {
                assert!(s < 8, "slot {s}");
                assert_eq!(at as usize, off + 21 * 4, "after the 21 words of code");
                assert_eq!(insn, SUB_SP);
                assert_eq!(b_target(back, at as u64 + 4), Some(off as u64 + 4));
                assert_eq!(p.resume(0x4000_0800, s), 0x4000_0800 + s as u64 * 0x80 + 21 * 4);
                assert_eq!(p.out_of_line_slot(at as usize), Some(s));
                assert_eq!(p.out_of_line_slot(at as usize + 4), None);
            }
            Hook::Branch { offset } => {
                assert!(s >= 8, "slot {s}");
                assert_eq!(offset, 0xc, "EL0 slots: b .Lskip_tramp_vectors_cleanup");
                assert_eq!(p.resume(0x4000_0800, s), 0x4000_0800 + s as u64 * 0x80 + 0xc);
            }
        }
    }
    let mut shadow = page;
    p.apply(&mut shadow);
    for (i, (a, b)) in page.iter().zip(shadow.iter()).enumerate() {
        let off = i * 4;
        let slot_start = off >= 0x800 && (off - 0x800) % SLOT_BYTES == 0;
        let ool = p.hooks.iter().any(
            |h| matches!(*h, Hook::OutOfLine { at, .. } if (at as usize..at as usize + 8).contains(&off)),
        );
        if slot_start {
            assert_eq!(*b, hvc(HVC_IMM_BASE + ((off - 0x800) / SLOT_BYTES) as u16));
        } else if !ool {
            assert_eq!(a, b, "word at {off:#x} changed");
        } else {
            assert_eq!(*a, 0, "out-of-line code only in padding");
        }
    }
}

#[test]
fn plans_small_slots_with_nop_padding() {
    // guest-tests' kentry: four instructions, then NOPs (the LLVM assembler
    // pads code with them).
    let page = page_with(0, |s| {
        let mut v = vec![0xd104_83ff, STP, 0xd280_0001 | (s as u32) << 5, 0x1400_0100];
        v.resize(32, NOP);
        v
    });
    let p = plan(&page, 0).unwrap();
    for s in 0..16 {
        assert!(matches!(p.hooks[s], Hook::OutOfLine { at, .. } if at as usize == s * 0x80 + 16));
    }
}

#[test]
fn refuses_what_it_cannot_hook() {
    // Every slot full of code (one free word in slot 5 is not enough).
    let full = page_with(0, |s| {
        let code = if s == 5 { 30 } else { 31 };
        vec![SUB_SP; code].into_iter().chain([RET]).collect()
    });
    assert_eq!(plan(&full, 0), Err(Refusal::NoRoom { slot: 0 }));
    // A full slot borrows another's padding.
    let one_full = page_with(0, |s| {
        if s == 3 {
            vec![SUB_SP; 31].into_iter().chain([RET]).collect()
        } else {
            vec![SUB_SP, RET]
        }
    });
    let p = plan(&one_full, 0).unwrap();
    assert_eq!(p.hooks[3], Hook::OutOfLine { at: 0x10, insn: SUB_SP, back: encode_b(0x14, 0x184).unwrap() });
    // Code that runs on into the padding (the zeros would be reached).
    let runs_on = page_with(0, |s| if s == 2 { vec![SUB_SP, MOV_X1_4] } else { vec![SUB_SP, RET] });
    assert_eq!(plan(&runs_on, 0), Err(Refusal::FallsThrough { slot: 2 }));
    // Code that runs on into the next slot.
    let spills = page_with(0x800, |s| if s == 0 { vec![SUB_SP; 32] } else { vec![SUB_SP, RET] });
    assert_eq!(plan(&spills, 0x800), Err(Refusal::FallsThrough { slot: 0 }));
    // The last slot may run on (out of the table), but still needs room.
    let last = page_with(0, |s| if s == 15 { vec![0x1400_0040; 32] } else { vec![SUB_SP, RET] });
    assert!(plan(&last, 0).is_ok(), "a B first needs no room");
    let unknown = page_with(0, |s| if s == 1 { vec![0x7400_0000, RET] } else { vec![SUB_SP, RET] });
    assert_eq!(plan(&unknown, 0), Err(Refusal::NotRelocatable { slot: 1, insn: 0x7400_0000 }));
    assert_eq!(plan(&full, 0x400), Err(Refusal::Misaligned));
    assert_eq!(plan(&full, 0x1000), Err(Refusal::Misaligned));
}

#[test]
fn a_full_slot_borrows_another_slots_padding() {
    // guest-tests' rt/entry.S: four instructions per slot, and the common
    // code right after slot 15's (no padding there).
    let page = page_with(0x800, |s| match s {
        15 => vec![SUB_SP, STP, MOV_X1_4, 0x1400_0001, 0xa9bf_07e2, 0xa9bf_07e4], // runs on into vec_common
        _ => vec![SUB_SP, STP, MOV_X1_4, 0x1400_0100],
    });
    let p = plan(&page, 0x800).unwrap();
    // Slot 0 has 28 free words: its own copy, then slot 15's.
    assert_eq!(
        p.hooks[0],
        Hook::OutOfLine { at: 0x810, insn: SUB_SP, back: encode_b(0x814, 0x804).unwrap() }
    );
    assert_eq!(
        p.hooks[15],
        Hook::OutOfLine { at: 0x818, insn: SUB_SP, back: encode_b(0x81c, 0xf84).unwrap() }
    );
    assert_eq!(p.out_of_line_slot(0x818), Some(15));
    assert_eq!(p.resume(0x4000_0800, 15), 0x4000_0818);
    let mut shadow = page;
    p.apply(&mut shadow);
    let want = [SUB_SP, encode_b(0x814, 0x804).unwrap(), SUB_SP, encode_b(0x81c, 0xf84).unwrap()];
    assert_eq!(&shadow[0x810 / 4..0x820 / 4], &want);
}

#[test]
fn an_empty_slot_is_hooked_too() {
    // All zeros: the guest never expects that exception; its UDF runs out
    // of line and raises the same UNDEF it would have.
    let page = page_with(0, |s| if s == 0 { vec![] } else { vec![SUB_SP, RET] });
    let p = plan(&page, 0).unwrap();
    assert_eq!(p.hooks[0], Hook::OutOfLine { at: 4, insn: 0, back: encode_b(8, 4).unwrap() });
}
