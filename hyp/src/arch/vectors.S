/*
 * EL2 exception vectors. Guest (lower EL, AArch64) exceptions save the whole
 * GPR file plus ELR_EL2/SPSR_EL2 into a GuestRegs frame on the EL2 stack and
 * call Rust; nothing else is saved: EL2 code never touches FP/SIMD (soft-float
 * target), so the guest's vector registers stay live in the CPU.
 * Frame layout = struct GuestRegs in src/arch/frame.rs.
 */
.equ FRAME_SIZE, (34 * 8)

.macro SAVE_GUEST
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #16 * 0]
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
    mrs     x0, elr_el2
    stp     x30, x0, [sp, #16 * 15]
    mrs     x1, spsr_el2
    str     x1, [sp, #16 * 16]
    mov     x0, sp
.endm

.macro ENTER_GUEST_FROM_FRAME
    ldp     x30, x0, [sp, #16 * 15]
    ldr     x1, [sp, #16 * 16]
    msr     elr_el2, x0
    msr     spsr_el2, x1
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
    add     sp, sp, #FRAME_SIZE
    eret
.endm

/* Guest exception: x1 = kind (0 sync, 1 irq, 2 fiq, 3 serror; +4 from AArch32). */
.macro GUEST_VECTOR kind
    .balign 0x80
    SAVE_GUEST
    mov     x1, #\kind
    b       guest_exit_common
.endm

/* Exception taken at EL2 itself: a hyp bug. x1 = kind. Never returns. */
.macro HYP_VECTOR kind
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #16 * 0]
    stp     x29, x30, [sp, #16 * 14]
    mrs     x0, elr_el2
    str     x0, [sp, #16 * 15 + 8]
    mrs     x0, spsr_el2
    str     x0, [sp, #16 * 16]
    mov     x0, sp
    mov     x1, #\kind
    b       hyp_fault
.endm

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
    /* Current EL with SP_EL0: never used at EL2. */
    HYP_VECTOR 0
    HYP_VECTOR 1
    HYP_VECTOR 2
    HYP_VECTOR 3
    /* Current EL with SP_ELx: a fault inside hyp. */
    HYP_VECTOR 4
    HYP_VECTOR 5
    HYP_VECTOR 6
    HYP_VECTOR 7
    /* Lower EL, AArch64: the guest. Synchronous exceptions try the
     * virtual-POE fast path first (lower_sync, below). */
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    str     x30, [sp, #16 * 15]
    b       lower_sync
    GUEST_VECTOR 1
    GUEST_VECTOR 2
    GUEST_VECTOR 3
    /* Lower EL, AArch32: porwatch runs AArch64 guests only (HCR_EL2.RW = 1);
     * EL0 AArch32 would land here. Kinds 4..7 say so to the handler. */
    GUEST_VECTOR 4
    GUEST_VECTOR 5
    GUEST_VECTOR 6
    GUEST_VECTOR 7

/*
 * Fast paths (arch/vpoe_fast.rs says why and what). Entered with
 * x0-x5 and x30 saved in a new frame (x30: the helpers are called with bl). Completes, without Rust, a guest MRS POR_EL1
 * or an MSR POR_EL1 of the value it already holds, made at EL1 and caught
 * as the instruction abort on the guest's EL1h synchronous vector (the tap);
 * everything else continues in lower_sync_slow, the normal trap path.
 */
/* The FastPath block's geometry, from Rust (arch/mod.rs passes them to
 * global_asm!: this file is a template, not standalone assembly). */
.equ VPOE_MAX_VCPUS, {fp_max_vcpus}
.equ VPOE_BLOCK_SHIFT, {fp_block_shift}
.equ FP_ENABLED, {fp_enabled}
.equ FP_POR_EL1, {fp_por_el1}
.equ FP_SHADOW_VALID, {fp_shadow_valid}
.equ FP_SHADOW_ELR, {fp_shadow_elr}     /* then SPSR: one ldp */
.equ FP_SHADOW_ESR, {fp_shadow_esr}     /* then FAR: one ldp */
.equ FP_STEPPING, {fp_stepping}
.equ FP_RAM, {fp_ram}                   /* 4 x (start, end) */
.equ FP_STEP_PAGE, {fp_step_page}
.equ FP_VBAR, {fp_vbar}
.equ FP_PREV_PC, {fp_prev_pc}
.equ EC_SOFTSTEP_LOW, 0x32          /* software step from a lower EL */
.equ VECTOR_TABLE_SIZE, 0x800
.equ VECTOR_SLOT_MASK, 0x7f
.equ PAGE_MASK, 0xfff
.equ ESR_EC_SHIFT, 26
.equ EC_IABT_LOW, 0x20              /* instruction abort from a lower EL */
.equ ISS_S1PTW, (1 << 7)
.equ IFSC_TYPE_MASK, 0x3c           /* IFSC without the level bits */
.equ IFSC_PERMISSION, 0x0c
.equ VBAR_SYNC_SPX, 0x200           /* current EL with SP_ELx, synchronous */
.equ PAR_F, 0
.equ PAR_PA_MASK, 0x000ffffffffff000
.equ SPSR_SS_BIT, 21
.equ SYSREG_RT_MASK, 0xffffffe0
.equ MRS_POR_EL1_LO, 0xa280         /* MRS Xt, S3_0_C10_C2_4 = 0xd538a280 | Rt */
.equ MRS_POR_EL1_HI, 0xd538
.equ MSR_POR_EL1_HI, 0xd518         /* MSR S3_0_C10_C2_4, Xt = 0xd518a280 | Rt */

/* Back to the guest from a fast path: only x0-x5 and x30 were saved. */
.macro FAST_RETURN
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldr     x30, [sp, #16 * 15]
    add     sp, sp, #FRAME_SIZE
    eret
.endm

lower_sync:
    /* x2 = this vCPU's FastPath block */
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cmp     x1, #VPOE_MAX_VCPUS
    b.hs    lower_sync_slow
    adrp    x2, VPOE_FAST
    add     x2, x2, :lo12:VPOE_FAST
    add     x2, x2, x1, lsl #VPOE_BLOCK_SHIFT
    mrs     x0, esr_el2
    lsr     x1, x0, #ESR_EC_SHIFT
    cmp     x1, #EC_SOFTSTEP_LOW
    b.eq    lower_sync_step
    cmp     x1, #EC_IABT_LOW
    b.ne    lower_sync_slow
    tst     x0, #ISS_S1PTW
    b.ne    lower_sync_slow
    and     x1, x0, #IFSC_TYPE_MASK
    cmp     x1, #IFSC_PERMISSION
    b.ne    lower_sync_slow
    ldr     x3, [x2, #FP_ENABLED]
    cbz     x3, lower_sync_slow
    /* at the EL1h synchronous slot, for an UNDEF (ESR_EL1.EC == 0) */
    mrs     x0, far_el2
    mrs     x1, vbar_el1
    sub     x0, x0, x1
    cmp     x0, #VBAR_SYNC_SPX
    b.ne    lower_sync_slow
    mrs     x0, esr_el1
    lsr     x0, x0, #ESR_EC_SHIFT
    cbnz    x0, lower_sync_slow
    /* the instruction: AT S1E1R on ELR_EL1 (guest PAR_EL1 preserved) */
    mrs     x0, elr_el1
    tst     x0, #3
    b.ne    lower_sync_slow
    mrs     x3, par_el1
    at      s1e1r, x0
    isb
    mrs     x1, par_el1
    msr     par_el1, x3
    tbnz    x1, #PAR_F, lower_sync_slow
    and     x1, x1, #PAR_PA_MASK
    bfxil   x1, x0, #0, #12
    /* only from guest RAM (hyp's EL2 map is the identity there) */
    .irp i, 0, 1, 2, 3
    ldp     x4, x5, [x2, #(FP_RAM + 16 * \i)]
    cmp     x1, x4
    b.lo    1f
    cmp     x1, x5
    b.lo    2f
1:
    .endr
    b       lower_sync_slow
2:  ldr     w1, [x1]
    and     w3, w1, #SYSREG_RT_MASK
    movz    w4, #MRS_POR_EL1_LO
    movk    w4, #MRS_POR_EL1_HI, lsl #16
    cmp     w3, w4
    b.eq    lower_sync_por_read
    movk    w4, #MSR_POR_EL1_HI, lsl #16
    cmp     w3, w4
    b.ne    lower_sync_slow
    /* MSR: only rewriting the current value stays here (no change to trace) */
    and     x1, x1, #31
    bl      vpoe_get_x
    ldr     x3, [x2, #FP_POR_EL1]
    cmp     x0, x3
    b.ne    lower_sync_slow
    b       lower_sync_done
lower_sync_por_read:
    and     x1, x1, #31
    ldr     x0, [x2, #FP_POR_EL1]
    bl      vpoe_set_x
lower_sync_done:
    /* resume after the instruction, in the state it ran in */
    mrs     x0, elr_el1
    add     x0, x0, #4
    msr     elr_el2, x0
    mrs     x0, spsr_el1
    bic     x0, x0, #(1 << SPSR_SS_BIT)
    msr     spsr_el2, x0
    /* put back what the UNDEF overwrote (as tap.rs emulate_undef) */
    ldr     x3, [x2, #FP_SHADOW_VALID]
    cbz     x3, 3f
    ldp     x0, x1, [x2, #FP_SHADOW_ELR]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [x2, #FP_SHADOW_ESR]
    msr     esr_el1, x0
    msr     far_el1, x1
3:  FAST_RETURN

/*
 * The tap's single step (vpoe_fast.rs): still inside the stepped page and
 * not on a vector slot of the guest's table: step again. Anything else --
 * a slot (perhaps an exception taken during the step), leaving the page,
 * a stale step -- is decided by tap.rs (on_step).
 */
lower_sync_step:
    ldr     x3, [x2, #FP_STEPPING]
    cbz     x3, lower_sync_slow
    mrs     x0, elr_el2
    ldr     x1, [x2, #FP_VBAR]
    sub     x3, x0, x1
    cmp     x3, #VECTOR_TABLE_SIZE
    b.hs    1f
    tst     x0, #VECTOR_SLOT_MASK
    b.eq    lower_sync_slow
1:  ldr     x1, [x2, #FP_STEP_PAGE]
    bic     x3, x0, #PAGE_MASK
    cmp     x3, x1
    b.ne    lower_sync_slow
    str     x0, [x2, #FP_PREV_PC]
    mrs     x1, spsr_el2
    orr     x1, x1, #(1 << SPSR_SS_BIT)
    msr     spsr_el2, x1
    FAST_RETURN

/* x0 = guest Xn, n = x1 (0..31; 31 = XZR). x0-x5 and x30 live in the frame. */
vpoe_get_x:
    cmp     x1, #31
    b.eq    4f
    cmp     x1, #6
    b.hs    5f
    ldr     x0, [sp, x1, lsl #3]
    ret
4:  mov     x0, xzr
    ret
5:  adr     x3, 6f
    sub     x1, x1, #6
    add     x3, x3, x1, lsl #3
    br      x3
6:
    .irp n, 6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
    mov     x0, x\n
    ret
    .endr
    ldr     x0, [sp, #16 * 15]          /* n = 30: saved (x30 is our LR here) */
    ret

/* guest Xn = x0, n = x1 (0..31; 31 = XZR: nothing). */
vpoe_set_x:
    cmp     x1, #31
    b.eq    4f
    cmp     x1, #6
    b.hs    5f
    str     x0, [sp, x1, lsl #3]
4:  ret
5:  adr     x3, 6f
    sub     x1, x1, #6
    add     x3, x3, x1, lsl #3
    br      x3
6:
    .irp n, 6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
    mov     x\n, x0
    ret
    .endr
    str     x0, [sp, #16 * 15]          /* n = 30: restored from the frame */
    ret

/* Not the fast path: save the rest of the frame as SAVE_GUEST does (x30 is
 * already there). */
lower_sync_slow:
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
    mrs     x0, elr_el2
    str     x0, [sp, #16 * 15 + 8]
    mrs     x1, spsr_el2
    str     x1, [sp, #16 * 16]
    mov     x0, sp
    mov     x1, #0
    b       guest_exit_common

guest_exit_common:
    bl      handle_guest_exception
    ENTER_GUEST_FROM_FRAME

/* First entry into the guest: x0 = &GuestRegs prepared by Rust; the frame
 * lives on the EL2 stack top and is reused by every later trap. */
.global enter_guest
enter_guest:
    mov     sp, x0
    ENTER_GUEST_FROM_FRAME
