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
    /* Lower EL, AArch64: the guest. */
    GUEST_VECTOR 0
    GUEST_VECTOR 1
    GUEST_VECTOR 2
    GUEST_VECTOR 3
    /* Lower EL, AArch32: porwatch runs AArch64 guests only (HCR_EL2.RW = 1);
     * EL0 AArch32 would land here. Kinds 4..7 say so to the handler. */
    GUEST_VECTOR 4
    GUEST_VECTOR 5
    GUEST_VECTOR 6
    GUEST_VECTOR 7

guest_exit_common:
    bl      handle_guest_exception
    ENTER_GUEST_FROM_FRAME

/* First entry into the guest: x0 = &GuestRegs prepared by Rust; the frame
 * lives on the EL2 stack top and is reused by every later trap. */
.global enter_guest
enter_guest:
    mov     sp, x0
    ENTER_GUEST_FROM_FRAME
