//! kpkeys-style EL1 exception entry and exit, shared by the `exceptions`,
//! `seed` and `pt_stress` kernels: Linux `kernel_entry` / `kernel_exit` with
//! the kpkeys patch "arm64: Reset POR_EL1 on exception entry", with the
//! handler called through a pointer the kernel installs ([`install`]):
//!
//! * entry: x0-x30 saved; POR_EL1 read, saved in the frame, reset to
//!   [`POR_DEFAULT`] (MSR + ISB) if it differs; *then* ELR_EL1 and SPSR_EL1
//!   read, then ESR_EL1 and FAR_EL1; the handler is called with IRQs masked;
//! * exit: POR_EL1 restored from the frame if it differs from the current
//!   value (MSR, no ISB: ERET synchronises); *then* ELR_EL1 and SPSR_EL1
//!   written from the frame; x0-x30 reloaded; ERET.
//!
//! So under porwatch's virtual POE every emulated POR access happens while
//! ELR/SPSR/ESR/FAR_EL1 still hold the innermost entry's values, or before
//! the kernel writes them back. A handler may change the frame, including
//! [`Frame::por`] (the value the exit code restores).
//!
//! POR_EL1 is touched only when [`kpkeys::POE`] is non-zero (FEAT_S1POE
//! advertised); without it the entry and exit code skip every POR access.
//!
//! # Layout
//!
//! The table starts at the 4 KiB-aligned symbol `kentry_vectors` (16 slots
//! of 0x80); `el1h_64_sync` and `el1h_64_irq` name the slots 0x200 and 0x280
//! (current EL with SPx), as in Linux. The common entry code `kentry_entry`
//! follows at +0x800, then the exit code `kentry_exit`; the page is padded
//! to its end, so it holds nothing else. `kentry_entry_por_msr` is the entry
//! code's `MSR POR_EL1, x4` (x4 = POR_DEFAULT), `kentry_exit_por_msr` the
//! exit code's `MSR POR_EL1, x2` (x2 = the saved value).
use crate::kpkeys::{self, POR_DEFAULT};
use crate::{println, smccc};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

/// Saved state, as laid out by the vector code below.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    /// POR_EL1 at entry (0 without POE); the exit code restores this value.
    pub por: u64,
}
const FRAME_SIZE: usize = core::mem::size_of::<Frame>();
const S_ELR: usize = core::mem::offset_of!(Frame, elr);
const S_SPSR: usize = core::mem::offset_of!(Frame, spsr);
const S_ESR: usize = core::mem::offset_of!(Frame, esr);
const S_POR: usize = core::mem::offset_of!(Frame, por);
const _: () = assert!(FRAME_SIZE.is_multiple_of(16));
const _: () = assert!(core::mem::offset_of!(Frame, far) == S_ESR + 8);

/// Vector slot numbers (offset / 0x80).
pub const VEC_SYNC_EL1H: u64 = 4;
pub const VEC_IRQ_EL1H: u64 = 5;

/// ESR_EL1 fields.
pub const EC_DABT_CUR: u64 = 0x25;
/// ESR_EL1.ISS2.Overlay (ISS2 bit 6 = ESR bit 38): overlay permission fault.
pub const ESR_OVERLAY: u64 = 1 << 38;
/// ESR_EL1.ISS.WnR (data aborts).
pub const ESR_WNR: u64 = 1 << 6;

/// The handler: frame and vector slot number (0..15); IRQs are masked.
pub type Handler = extern "C" fn(&mut Frame, u64);

#[repr(transparent)]
struct HandlerCell(UnsafeCell<Handler>);
// SAFETY: written once by `install` before any exception can reach it
// (single CPU), read by the vector code.
unsafe impl Sync for HandlerCell {}

static KENTRY_HANDLER: HandlerCell = HandlerCell(UnsafeCell::new(kentry_unhandled));

extern "C" fn kentry_unhandled(frame: &mut Frame, vector: u64) {
    println!(
        "kentry: unexpected exception before a handler was installed: {} esr={:#x} elr={:#x} far={:#x}",
        crate::exceptions::VECTOR_NAMES[(vector & 15) as usize],
        frame.esr,
        frame.elr,
        frame.far
    );
    smccc::test_exit(100)
}

global_asm!(
    r#"
.macro KENTRY_VENTRY kind
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x1, #\kind
    b       kentry_entry
.endm

.pushsection .text.kentry_vectors, "ax"
.balign 4096
.global kentry_vectors
kentry_vectors:
    KENTRY_VENTRY 0
    KENTRY_VENTRY 1
    KENTRY_VENTRY 2
    KENTRY_VENTRY 3
    .balign 0x80
.global el1h_64_sync
el1h_64_sync:
    KENTRY_VENTRY 4
    .balign 0x80
.global el1h_64_irq
el1h_64_irq:
    KENTRY_VENTRY 5
    KENTRY_VENTRY 6
    KENTRY_VENTRY 7
    KENTRY_VENTRY 8
    KENTRY_VENTRY 9
    KENTRY_VENTRY 10
    KENTRY_VENTRY 11
    KENTRY_VENTRY 12
    KENTRY_VENTRY 13
    KENTRY_VENTRY 14
    KENTRY_VENTRY 15
    .balign 0x800

/* x0 and x1 are saved, x1 = vector slot number (0..15). */
.global kentry_entry
kentry_entry:
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    str     x30, [sp, #16 * 15]
    /* kpkeys (Linux kernel_entry, el 1): save POR_EL1; reset it to
     * POR_DEFAULT if it differs. Before ELR/SPSR are read, as in Linux. */
    str     xzr, [sp, #{s_por}]
    adrp    x3, {poe_flag}
    ldr     x3, [x3, :lo12:{poe_flag}]
    cbz     x3, 1f
    mrs     x3, s3_0_c10_c2_4
    str     x3, [sp, #{s_por}]
    mov     x4, #{por_default}
    cmp     x3, x4
    b.eq    1f
.global kentry_entry_por_msr
kentry_entry_por_msr:
    msr     s3_0_c10_c2_4, x4
    isb
1:  mrs     x2, elr_el1
    str     x2, [sp, #{s_elr}]
    mrs     x2, spsr_el1
    str     x2, [sp, #{s_spsr}]
    /* Linux reads these in its C handlers, after the reset. */
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #{s_esr}]
    mov     x0, sp
    adrp    x2, {handler}
    ldr     x2, [x2, :lo12:{handler}]
    blr     x2

.global kentry_exit
kentry_exit:
    /* kpkeys (Linux kernel_exit, el 1): restore POR_EL1 if it changed; no
     * ISB, ERET synchronises. Before ELR/SPSR are written, as in Linux. */
    adrp    x3, {poe_flag}
    ldr     x3, [x3, :lo12:{poe_flag}]
    cbz     x3, 2f
    ldr     x2, [sp, #{s_por}]
    mrs     x3, s3_0_c10_c2_4
    cmp     x2, x3
    b.eq    2f
.global kentry_exit_por_msr
kentry_exit_por_msr:
    msr     s3_0_c10_c2_4, x2
2:  ldr     x2, [sp, #{s_elr}]
    msr     elr_el1, x2
    ldr     x2, [sp, #{s_spsr}]
    msr     spsr_el1, x2
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    ldr     x30, [sp, #16 * 15]
    add     sp, sp, #{frame}
    eret
.global kentry_code_end
kentry_code_end:
    /* `svc #5; ret`: an SVC made from inside the vector page, for the tap's
     * tests (tap_slots); nothing else calls it. */
.global kentry_page_svc
kentry_page_svc:
    svc     #5
    ret
    /* Nothing else shares the vector page. */
    .balign 4096
.popsection
"#,
    frame = const FRAME_SIZE,
    s_elr = const S_ELR,
    s_spsr = const S_SPSR,
    s_esr = const S_ESR,
    s_por = const S_POR,
    por_default = const POR_DEFAULT,
    poe_flag = sym kpkeys::POE,
    handler = sym KENTRY_HANDLER,
);

unsafe extern "C" {
    static kentry_vectors: u8;
}

/// The vector table's address (identity-mapped by the kernels that turn
/// their MMU on, so it is the same before and after).
pub fn vectors() -> u64 {
    &raw const kentry_vectors as u64
}

/// Installs `handler` and points VBAR_EL1 at the vector table. Call once,
/// with IRQs masked, before anything can raise an exception.
pub fn install(handler: Handler) {
    // SAFETY: single CPU, no exception can be taken through this table yet
    // (VBAR_EL1 is written below).
    unsafe { KENTRY_HANDLER.0.get().write_volatile(handler) };
    let vbar = vectors();
    unsafe { asm!("dsb ish", "msr vbar_el1, {}", "isb", in(reg) vbar, options(nostack)) };
}
