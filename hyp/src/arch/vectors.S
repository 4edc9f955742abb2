/*
 * EL2 exception vectors. Guest (lower EL, AArch64) exceptions save the whole
 * GPR file plus ELR_EL2/SPSR_EL2 into a GuestRegs frame on the EL2 stack and
 * call Rust; nothing else is saved: EL2 code never touches FP/SIMD (soft-float
 * target), so the guest's vector registers stay live in the CPU.
 * Frame layout = struct GuestRegs in src/arch/frame.rs.
 */
.equ FRAME_SIZE, (34 * 8)
/* The LSE atomics fast path runs the guest's operation at EL2. */
.arch_extension lse

/* x6-x29 into the frame (the fast paths save x0-x5 and x30 themselves). */
.macro SAVE_X6_X29
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
.endm

.macro SAVE_GUEST
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    SAVE_X6_X29
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
 * Fast paths (arch/fast_path.rs says why and what). Entered with
 * x0-x5 and x30 saved in a new frame (x30: the helpers are called with bl).
 * Completes, without Rust: a guest MRS POR_EL1 or an MSR POR_EL1 of the
 * value it already holds, made at EL1 and caught as the instruction abort
 * on the guest's EL1h synchronous vector (the tap); the tap's single steps
 * inside its page; and plain stores to last-level page tables. Everything
 * else continues in lower_sync_slow, the normal trap path.
 */
/* The FastPath block's layout, from Rust (arch/mod.rs passes them to
 * global_asm!: this file is a template, not standalone assembly). */
.equ FP_ENABLED, {fp_enabled}
.equ FP_POR_EL1, {fp_por_el1}
.equ FP_POR_EL0, {fp_por_el0}
.equ FP_SHADOW_VALID, {fp_shadow_valid}
.equ FP_SHADOW_ELR, {fp_shadow_elr}     /* then SPSR: one ldp */
.equ FP_SHADOW_ESR, {fp_shadow_esr}     /* then FAR: one ldp */
.equ FP_STEPPING, {fp_stepping}
.equ FP_RAM, {fp_ram}                   /* 4 x (start, end) */
.equ FP_STEP_PAGE, {fp_step_page}
.equ FP_VBAR, {fp_vbar}
.equ FP_PREV_PC, {fp_prev_pc}
.equ FP_PT_ISS, {fp_pt_iss}             /* (mask, value): one ldp */
.equ FP_PT_MAP, {fp_pt_map}             /* (bitmap, its first IPA): one ldp */
.equ FP_PT_MAP_PAGES, {fp_pt_map_pages}
.equ FP_PT_DENY, {fp_pt_deny}
.equ FP_PT_PIE, {fp_pt_pie}
.equ FP_DENY_CACHE, {fp_deny_cache}     /* 2 x (POR_EL1, its pt_deny): one LDP each */
.equ FP_PT_WALK, {fp_pt_walk}           /* 2 x (root, shift, index mask, entry) */
.equ FP_PT_WALK_RAM, {fp_pt_walk_ram}   /* (start, size): one ldp */
.equ FP_PT_STORES, {fp_pt_stores}
.equ FP_PT_BUSY, {fp_pt_busy}
.equ WALK_HALF_SHIFT, {walk_half_shift}
.equ FP_TAP_HVC, {fp_tap_hvc}
.equ FP_ENTRY_SLOW, {fp_entry_slow}
.equ FP_RESUME, {fp_resume}             /* 16 x the resume address */
.equ FP_POR_MODE, {fp_por_mode}
.equ FP_NATIVE_MSR, {fp_native_msr}
.equ FP_SYNC_DABT_SLOW, {fp_sync_dabt_slow}
.equ FP_SAMPLING, {fp_sampling}
.equ FP_POR_SAMPLE, {fp_por_sample}
.equ FP_CPACR_READ, {fp_cpacr_read}     /* (enabled, bits to OR): two LDRs, beyond LDP's reach */
.equ FP_CARRIER, {fp_carrier}           /* non-zero: SCXTNUM_EL1 carries POR_EL1 */
.equ FP_DENY_POR, {fp_deny_por}         /* the POR_EL1 pt_deny is the mask of */
.equ FP_PATCH_COUNTDOWN, {fp_patch_countdown}
.equ FP_QUEUE_LEN, {fp_queue_len}
.equ FP_QUEUE, {fp_queue}               /* QUEUE_LEN x 8 words */
.equ QUEUE_LEN, {queue_len}
.equ Q_SHIFT, {q_shift}                 /* log2 of a queued record's bytes */
.equ Q_ENTRY, {q_entry}                 /* ts, ELR, SPSR, ESR, FAR, POR_EL1, x29, x30 */
.equ Q_POR, {q_por}                     /* ts, PC, old, new */
.equ Q_ARG_SHIFT, {q_arg_shift}         /* word 0: kind | slot or register << this */
.equ FP_RING, {fp_ring}                 /* flight mode: this CPU's FlightRing */
.equ FP_SEQ, {fp_seq}
.equ FP_WIN_OPEN, {fp_win_open}         /* then FP_POR_SLOW: one LDP */
.equ FP_CHAIN_ENTRY, {fp_chain_entry}   /* then FP_CHAIN_POR */
.equ FP_CHAIN_POR, {fp_chain_por}
.equ FP_NOTE_ENTRY, {fp_note_entry}     /* seq, ELR, x29, x30 */
.equ FP_SHADOW_NEW, {fp_shadow_new}
.equ FP_POR_KNOWN, {fp_por_known}       /* two values: one LDP */
.equ RING_NEXT, {ring_next}
.equ RING_SLOTS, {ring_slots_off}
.equ RING_RECORDED, {ring_recorded}
.equ RING_LOST_STREAMED, {ring_lost_streamed}
.equ RING_SLOTS_N, {ring_slots}
.equ EV_BYTES, {ev_bytes}
.equ EV_SEQ, {ev_seq}                   /* then EV_TS */
.equ EV_KIND, {ev_kind}                 /* the word: kind, streamed = 0, padding */
.equ EV_STREAMED, {ev_streamed}
.equ EV_FIELDS, {ev_fields}             /* 7 words, as the trace record's */
.equ KIND_EXC_ENTRY, {kind_exc_entry}
.equ KIND_POR_WRITE, {kind_por_write}
.equ FLIGHT_STATS_MASK, {flight_stats_mask} /* a flight_stats is due: Rust */
.equ POR_VIRTUAL, {por_virtual}
.equ POR_NATIVE, {por_native}
.equ DENY_STALE, {deny_stale}
.equ PERM_W_BIT, 2                  /* POR_ELx Perm<n>: W, and reserved (0b1xxx) */
.equ PERM_RESERVED_BIT, 3
.equ PERM_LSBS, 0x1111111111111111  /* bit 0 of every Perm<n> field */
.equ TAP_IMM_BASE, {tap_imm_base}       /* the hooks' HVC #imm: this + slot */
.equ EC_HVC64, 0x16
.equ EC_DABT_CUR, 0x25              /* ESR_EL1: data abort from EL1 */
.equ HVC_IMM_MASK, 0xffff
.equ SLOTS, 16
.equ SLOT_SHIFT, 7                  /* 0x80 bytes per vector slot */
.equ SLOT_KIND_MASK, 3              /* slot % 4 == 0: synchronous */
.equ SLOT_SYNC_EL1H, 4
/* MSR S3_0_C10_C2_4 (POR_EL1), Xt as EC 0x18 ISS without Rt: op0 3, op2 4,
 * op1 0, CRn 10, CRm 2, write. */
.equ ISS_MSR_POR_EL1, 0x382804
.equ EC_SOFTSTEP_LOW, 0x32          /* software step from a lower EL */
.equ EC_DABT_LOW, 0x24              /* data abort from a lower EL */
.equ EC_SYS64, 0x18                 /* trapped MSR/MRS */
/* EC 0x18 ISS without Rt [9:5]: op0 [21:20], op2 [19:17], op1 [16:14],
 * CRn [13:10], CRm [4:1], direction [0] (1 = read). */
.equ ISS_SYSREG_MASK, 0x3ffc1f
.equ ISS_SYSREG_RT_SHIFT, 5
.equ ISS_MRS_TCR_EL1, 0x340801      /* op0 3, op1 0, CRn 2, CRm 0, op2 2, read */
/* MSR SCXTNUM_EL1, Xt (the POR_EL1 carrier at patched sites), ISS without
 * Rt (monitor por_sites::carrier_write_iss) */
.equ ISS_MSR_CARRIER, {iss_msr_carrier}
.equ ISS_MSR_CARRIER_EL0, {iss_msr_carrier_el0}     /* MSR SCXTNUM_EL0: POR_EL0's */
.equ ISS_MRS_CPACR_EL1, 0x340401    /* op0 3, op1 0, CRn 1, CRm 0, op2 2, read */
.equ VECTOR_TABLE_SIZE, 0x800
.equ VECTOR_SLOT_MASK, 0x7f
.equ PAGE_MASK, 0xfff
.equ PAGE_SHIFT, 12
.equ ESR_EC_SHIFT, 26
.equ ESR_SAS_SHIFT, 22              /* data abort ISS with ISV = 1 */
.equ ESR_SRT_SHIFT, 16
.equ ESR_AR_BIT, 14
.equ ISS_ISV_BIT, 24
.equ ISS_ISV, (1 << ISS_ISV_BIT)
.equ FRAME_SCRATCH, (33 * 8)         /* the frame's padding slot (after SPSR) */
.equ LSE_RMW_MASK_LO, 0x0c00        /* 0xff200c00: size, V, bit 21, bits [11:10] */
.equ LSE_RMW_MASK_HI, 0xff20
.equ LSE_RMW_64_HI, 0xf820          /* 64-bit SWP / LD<op> */
.equ LSE_OP_SHIFT, 12               /* o3:opc */
.equ LSE_OP_SWP, 8
.equ LSE_OP_CAS, 9
.equ CAS_MASK_LO, 0x7c00            /* 0xffa07c00: size, 0010001, bit 21, bits [14:10] */
.equ CAS_MASK_HI, 0xffa0
.equ CAS_64_LO, 0x7c00              /* 64-bit CAS: 0xc8a07c00 */
.equ CAS_64_HI, 0xc8a0
.equ LSE_RS_SHIFT, 16
.equ LSE_RT_MASK, 0x1f
.equ SAS_64, 3
.equ SAS_32, 2
.equ SAS_16, 1
.equ EC_IABT_LOW, 0x20              /* instruction abort from a lower EL */
.equ ISS_S1PTW, (1 << 7)
.equ IFSC_TYPE_MASK, 0x3c           /* IFSC without the level bits */
.equ IFSC_PERMISSION, 0x0c
.equ VBAR_SYNC_SPX, 0x200           /* current EL with SP_ELx, synchronous */
.equ PAR_F, 0
.equ PAR_PA_MASK, 0x000ffffffffff000
.equ SPSR_SS_BIT, 21
.equ SPSR_EL_LSB, 2                 /* M[4:2]: 0b001 = AArch64 EL1 */
.equ SPSR_EL_WIDTH, 3
.equ SPSR_EL_EL1, 1
.equ SCTLR_M_BIT, 0
.equ SCTLR_WXN_BIT, 19
.equ SCTLR_EE_BIT, 25
.equ VA_TTBR1_BIT, 55
.equ DENY_BYTES, 0x00ff00ff00ff00ff  /* FP_PT_DENY after the WXN shift: bytes 0, 2 */
.equ DENY_UNPRIV_BIT, 16
.equ DESC_AP_EL0_BIT, 6             /* AP[1]: EL0 access */
.equ LDST_UNPRIV_MASK_LO, 0x0c00    /* 0x3f200c00: LDTR* and STTR*, any size */
.equ LDST_UNPRIV_MASK_HI, 0x3f20
.equ LDST_UNPRIV_LO, 0x0800         /* 0x38000800 */
.equ LDST_UNPRIV_HI, 0x3800
.equ DESC_VALID_BIT, 0
.equ DESC_TABLE_BIT, 1              /* levels -1..2: table; level 3: page */
.equ DESC_OA_MASK, 0x0003fffffffff000   /* NLTA[49:12] */
.equ DESC_DS_OA_HI, 0x300           /* DS: NLTA[51:50] */
.equ DESC_POINDEX_SHIFT, 60
.equ LEVEL_BITS, 9
.equ INSN_LEN, 4
.equ SYSREG_RT_MASK, 0xffffffe0
.equ MRS_POR_EL1_LO, 0xa280         /* MRS Xt, S3_0_C10_C2_4 = 0xd538a280 | Rt */
.equ MRS_POR_EL1_HI, 0xd538
.equ MSR_POR_EL1_HI, 0xd518         /* MSR S3_0_C10_C2_4, Xt = 0xd518a280 | Rt */
.equ MRS_POR_EL0_HI, 0xd53b         /* MRS Xt, S3_3_C10_C2_4 = 0xd53ba280 | Rt */
.equ MSR_POR_EL0_HI, 0xd51b         /* MSR S3_3_C10_C2_4, Xt = 0xd51ba280 | Rt */

/* Back to the guest from a fast path: only x0-x5 and x30 were saved. */
.macro FAST_RETURN
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldr     x30, [sp, #16 * 15]
    add     sp, sp, #FRAME_SIZE
    eret
.endm

/* Reserves a queued record: x4 = its address; a full queue goes to Rust
 * (which empties it). Clobbers x4, x5. */
.macro QUEUE_RESERVE
    ldr     x5, [x2, #FP_QUEUE_LEN]
    cmp     x5, #QUEUE_LEN
    b.hs    lower_sync_slow
    add     x4, x2, #FP_QUEUE
    add     x4, x4, x5, lsl #Q_SHIFT
.endm

/* Publishes the record QUEUE_RESERVE gave once it is written: the length
 * with release semantics, so the CPU that ends the run (another one) reads
 * only whole records (fast_path.rs take_queued_at_stop). Clobbers x3, x5. */
.macro QUEUE_COMMIT
    ldr     x5, [x2, #FP_QUEUE_LEN]
    add     x5, x5, #1
    add     x3, x2, #FP_QUEUE_LEN
    stlr    x5, [x3]
.endm

/* Queues a POR_EL1 change made at the PC in system register \pc_reg: old
 * x3, new x0, record at x4 (QUEUE_RESERVE). Clobbers x1, x5. */
.macro QUEUE_POR_CHANGE pc_reg
    mov     x1, #Q_POR                  /* register 0: POR_EL1 */
    mrs     x5, cntpct_el0
    stp     x1, x5, [x4]
    mrs     x1, \pc_reg
    stp     x1, x3, [x4, #16]
    str     x0, [x4, #32]
.endm

/* Flight mode (docs/flight.md "The hot path"): takes the next slot of the
 * ring at x4 as monitor::flight::FlightRing::push does (the oldest event
 * overwritten when full; one that had been streamed counted) and this
 * CPU's next seq: x5 = the slot's base (its fields at RING_SLOTS + EV_*),
 * x1 = the seq. When the push would be the one that makes a flight_stats
 * due, goes to Rust before changing anything. x2 = the block. Clobbers
 * x1, x5, x30. */
.macro FLIGHT_PUSH
    ldr     x5, [x4, #RING_RECORDED]
    add     x5, x5, #1
    tst     x5, #FLIGHT_STATS_MASK
    b.eq    lower_sync_slow
    str     x5, [x4, #RING_RECORDED]
    ldr     x1, [x4, #RING_NEXT]
    mov     x30, #EV_BYTES
    cmp     x5, #RING_SLOTS_N           /* hi: the slot holds an older event */
    madd    x5, x1, x30, x4
    add     x1, x1, #1
    and     x1, x1, #(RING_SLOTS_N - 1)
    str     x1, [x4, #RING_NEXT]
    b.ls    2f
    ldrb    w1, [x5, #(RING_SLOTS + EV_STREAMED)]
    cbz     w1, 2f
    ldr     x1, [x4, #RING_LOST_STREAMED]
    add     x1, x1, #1
    str     x1, [x4, #RING_LOST_STREAMED]
2:  ldr     x1, [x2, #FP_SEQ]
    add     x30, x1, #1
    str     x30, [x2, #FP_SEQ]
.endm

/* RING_POR_CHANGE's push: the por_write into the ring at x4, at_entry
 * \at_entry (0 or 1). Keeps x0, x3; clobbers x1, x4, x5, x30. */
.macro RING_POR_PUSH pc_reg, at_entry
    FLIGHT_PUSH
    mrs     x4, cntpct_el0
    stp     x1, x4, [x5, #(RING_SLOTS + EV_SEQ)]        /* seq, ts */
    mov     x4, #KIND_POR_WRITE
    mrs     x30, \pc_reg
    stp     x4, x30, [x5, #(RING_SLOTS + EV_KIND)]      /* kind; pc */
    stp     xzr, x3, [x5, #(RING_SLOTS + EV_FIELDS + 8)]    /* reg POR_EL1, old */
    .if \at_entry
    mov     x4, #1
    stp     x0, x4, [x5, #(RING_SLOTS + EV_FIELDS + 24)]    /* new, at_entry */
    .else
    stp     x0, xzr, [x5, #(RING_SLOTS + EV_FIELDS + 24)]   /* new, at_entry */
    .endif
    ldr     x4, [x2, #FP_CHAIN_ENTRY]
    stp     x4, xzr, [x5, #(RING_SLOTS + EV_FIELDS + 40)]   /* entry_seq, sampled */
    str     x1, [x2, #FP_CHAIN_POR]
.endm

/* Flight mode: a POR_EL1 change (old x3, new x0) made at the PC in system
 * register \pc_reg, pushed into the ring at x4 as a por_write (entry_seq
 * the latest entry; at_entry 1 when the entry window is open, which the
 * change closes). While the audit still learns POR_EL1 values Rust must see
 * each change to a value it has not judged (FP_POR_SLOW), and an entry
 * transition that takes write away from some pkey is streamed
 * (monitor flight::streams_transition): both go to Rust. A raise with the
 * window open (a syscall's handler: its entry found POR_EL1 at the
 * default) stays here. Keeps x0, x3; clobbers x1, x4, x5, x30. */
.macro RING_POR_CHANGE pc_reg
    ldp     x1, x5, [x2, #FP_WIN_OPEN]  /* win_open, por_slow */
    cbz     x5, 5f
    ldp     x5, x30, [x2, #FP_POR_KNOWN]
    cmp     x0, x5
    ccmp    x0, x30, #4, ne             /* Z: new is either known value */
    b.ne    lower_sync_slow
5:  cbz     x1, 6f
    /* flight::takes_write_away: per Perm field, W (bit 2) and not reserved
     * (bit 3) under old, not under new */
    lsr     x1, x3, #PERM_W_BIT
    bic     x1, x1, x3, lsr #PERM_RESERVED_BIT
    lsr     x5, x0, #PERM_W_BIT
    bic     x5, x5, x0, lsr #PERM_RESERVED_BIT
    bic     x1, x1, x5
    tst     x1, #PERM_LSBS
    b.ne    lower_sync_slow
    RING_POR_PUSH \pc_reg, 1
    str     xzr, [x2, #FP_WIN_OPEN]     /* the change closes the window */
    b       8f
6:  RING_POR_PUSH \pc_reg, 0
8:
.endm

/* \dst = the PA (= IPA: stage 1 only) of guest VA \va by AT S1E1R, the
 * guest's PAR_EL1 kept (\tmp); a VA stage 1 does not map: Rust path. */
.macro AT_S1E1R_PA dst, va, tmp
    mrs     \tmp, par_el1
    at      s1e1r, \va
    isb
    mrs     \dst, par_el1
    msr     par_el1, \tmp
    tbnz    \dst, #PAR_F, lower_sync_slow
    and     \dst, \dst, #PAR_PA_MASK
    bfxil   \dst, \va, #0, #PAGE_SHIFT
.endm

/* w4 = the instruction at ELR_EL2 (it must be in the store path's guest
 * RAM range, else Rust path); clobbers x0, x3. */
.macro ELR_INSN_W4
    mrs     x0, elr_el2
    AT_S1E1R_PA x4, x0, x3
    ldp     x0, x3, [x2, #FP_PT_WALK_RAM]
    sub     x0, x4, x0
    cmp     x0, x3
    b.hs    lower_sync_slow
    ldr     w4, [x4]
.endm

/* A trapped system-register access completed here: resume after it. */
.macro SYSREG_DONE
    mrs     x0, elr_el2
    add     x0, x0, #INSN_LEN
    msr     elr_el2, x0
    FAST_RETURN
.endm

/* Patched POR_EL1 sites (monitor por_sites.rs): every PATCH_EVERY-th
 * POR_EL1 access that UNDEFs goes to Rust, which completes it and patches
 * its site (a countdown Rust sets; u64::MAX: never). Clobbers x4. */
.macro PATCH_COUNTDOWN
    ldr     x4, [x2, #FP_PATCH_COUNTDOWN]
    subs    x4, x4, #1
    b.eq    lower_sync_slow
    str     x4, [x2, #FP_PATCH_COUNTDOWN]
.endm

/* The virtual POR_EL1 is now x0: this CPU's block, the carrier register
 * (patched sites read it), and pt_deny for the new value from the cache
 * Rust fills for the POR_EL0 and TCR2_EL1 in force (monitor
 * s1::deny_cache); a miss leaves it stale: every store to a table walks
 * and goes to Rust, which computes it. An unused entry's mask is
 * DENY_STALE itself. The value the mask is for is recorded (FP_DENY_POR):
 * Rust setting POR_EL1 back to the value it last computed the mask of
 * must not take the mask for current. Clobbers x1, x3. */
.macro VPOE_SET_POR_EL1
    str     x0, [x2, #FP_POR_EL1]
    str     x0, [x2, #FP_DENY_POR]
    ldr     x3, [x2, #FP_CARRIER]
    cbz     x3, 6f
    msr     S3_0_C13_C0_7, x0           /* SCXTNUM_EL1 */
6:  ldp     x1, x3, [x2, #FP_DENY_CACHE]
    cmp     x0, x1
    b.eq    7f
    ldp     x1, x3, [x2, #(FP_DENY_CACHE + 16)]
    cmp     x0, x1
    mov     x1, #DENY_STALE
    csel    x3, x3, x1, eq
7:  str     x3, [x2, #FP_PT_DENY]
.endm

lower_sync:
    mrs     x2, tpidr_el2               /* this vCPU's FastPath block */
    mrs     x0, esr_el2
    lsr     x1, x0, #ESR_EC_SHIFT
    cmp     x1, #EC_DABT_LOW
    b.eq    lower_sync_store
    cmp     x1, #EC_SOFTSTEP_LOW
    b.eq    lower_sync_step
    cmp     x1, #EC_SYS64
    b.eq    lower_sync_sysreg
    cmp     x1, #EC_HVC64
    b.eq    lower_sync_hvc
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
/* An UNDEF at EL1 under virtual POE (the tap saw it: an XN fault or a
 * hook's HVC): complete MRS/MSR POR_EL1, or go to Rust. */
vpoe_undef:
    /* the instruction: AT S1E1R on ELR_EL1 (guest PAR_EL1 preserved) */
    mrs     x0, elr_el1
    tst     x0, #3
    b.ne    lower_sync_slow
    AT_S1E1R_PA x1, x0, x3
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
    b.ne    vpoe_por_el0
    /* MSR: a change of value is queued for Rust to trace (por_write) */
    PATCH_COUNTDOWN
    and     x1, x1, #31
    bl      fast_get_x
    ldr     x3, [x2, #FP_POR_EL1]
    cmp     x0, x3
    b.eq    lower_sync_done
    ldr     x4, [x2, #FP_RING]
    cbz     x4, vpoe_queue_change
    RING_POR_CHANGE elr_el1
vpoe_changed:
    VPOE_SET_POR_EL1
    b       lower_sync_done
vpoe_queue_change:
    QUEUE_RESERVE
    QUEUE_POR_CHANGE elr_el1
    QUEUE_COMMIT
    b       vpoe_changed
/* POR_EL0 from EL1 (w3/w4 as above): a read, or a write of the value it
 * holds; a change goes to Rust (it is traced and changes pt_deny's inputs). */
vpoe_por_el0:
    movk    w4, #MRS_POR_EL0_HI, lsl #16
    cmp     w3, w4
    b.eq    lower_sync_por0_read
    movk    w4, #MSR_POR_EL0_HI, lsl #16
    cmp     w3, w4
    b.ne    lower_sync_slow
    PATCH_COUNTDOWN
    and     x1, x1, #31
    bl      fast_get_x
    ldr     x3, [x2, #FP_POR_EL0]
    cmp     x0, x3
    b.eq    lower_sync_done
    b       lower_sync_slow
lower_sync_por0_read:
    PATCH_COUNTDOWN
    and     x1, x1, #31
    ldr     x0, [x2, #FP_POR_EL0]
    bl      fast_set_x
    b       lower_sync_done
lower_sync_por_read:
    PATCH_COUNTDOWN
    and     x1, x1, #31
    ldr     x0, [x2, #FP_POR_EL1]
    bl      fast_set_x
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
 * A trapped MRS Xt, TCR_EL1 (fast_path.rs): under virtual POE with the
 * guest's TCR2_EL1 in the hardware, HFGRTR_EL2.TCR_EL1 traps TCR2_EL1 reads
 * and, with them, TCR_EL1's, which Linux's LPA2 kernels read for every PTE
 * conversion (lpa2_is_enabled). Return the register and step past it; a
 * step in progress goes to Rust (tap.rs keeps stepping).
 */
lower_sync_sysreg:
    movz    w3, #(ISS_SYSREG_MASK & 0xffff)
    movk    w3, #(ISS_SYSREG_MASK >> 16), lsl #16
    and     w3, w0, w3
    movz    w4, #(ISS_MRS_TCR_EL1 & 0xffff)
    movk    w4, #(ISS_MRS_TCR_EL1 >> 16), lsl #16
    cmp     w3, w4
    b.ne    lower_sync_carrier
    mrs     x3, spsr_el2
    tbnz    x3, #SPSR_SS_BIT, lower_sync_slow
    ubfx    x1, x0, #ISS_SYSREG_RT_SHIFT, #5
    mrs     x0, tcr_el1
    bl      fast_set_x
    SYSREG_DONE

/*
 * A patched POR_EL1 site (monitor por_sites.rs): `MSR SCXTNUM_EL1, Xt` in
 * porwatch's shadow of the guest's code page stands for `MSR POR_EL1, Xt`
 * and traps (HFGWTR_EL2.SCXTNUM_EL1). Complete it as the UNDEF path does
 * a virtual POR_EL1 write, at the site's PC (ELR_EL2): one trap instead of
 * the UNDEF and the hook's. A step in progress (porwatch's or the
 * guest's), the tap not armed: Rust. w3 = ISS without Rt.
 */
lower_sync_carrier:
    movz    w4, #(ISS_MSR_CARRIER & 0xffff)
    movk    w4, #(ISS_MSR_CARRIER >> 16), lsl #16
    cmp     w3, w4
    b.ne    lower_sync_carrier_el0
    ldr     x4, [x2, #FP_ENABLED]
    cbz     x4, lower_sync_slow
    mrs     x4, spsr_el2
    tbnz    x4, #SPSR_SS_BIT, lower_sync_slow
    ubfx    x1, x0, #ISS_SYSREG_RT_SHIFT, #5
    bl      fast_get_x                  /* x0 = the value written */
    ldr     x3, [x2, #FP_POR_EL1]
    cmp     x0, x3
    b.eq    9f                          /* (labels 2, 5-8 are the macros') */
    ldr     x4, [x2, #FP_RING]
    cbz     x4, 4f
    RING_POR_CHANGE elr_el2
    b       1f
4:  QUEUE_RESERVE
    QUEUE_POR_CHANGE elr_el2
    QUEUE_COMMIT
1:  VPOE_SET_POR_EL1
9:  SYSREG_DONE

/*
 * A patched POR_EL0 site: `MSR SCXTNUM_EL0, Xt` (HFGWTR_EL2.SCXTNUM_EL0).
 * From EL1, writing the value POR_EL0 already holds (Linux at every
 * context switch) completes here; a change (traced, and pt_deny's inputs
 * change), EL0 (its permission depends on the virtual CPACR_EL1.E0POE) or
 * a step go to Rust. w3 = ISS without Rt.
 */
lower_sync_carrier_el0:
    movz    w4, #(ISS_MSR_CARRIER_EL0 & 0xffff)
    movk    w4, #(ISS_MSR_CARRIER_EL0 >> 16), lsl #16
    cmp     w3, w4
    b.ne    lower_sync_cpacr
    ldr     x4, [x2, #FP_CARRIER]
    cbz     x4, lower_sync_slow
    mrs     x4, spsr_el2
    tbnz    x4, #SPSR_SS_BIT, lower_sync_slow
    ubfx    x4, x4, #SPSR_EL_LSB, #SPSR_EL_WIDTH
    cmp     x4, #SPSR_EL_EL1
    b.ne    lower_sync_slow
    ubfx    x1, x0, #ISS_SYSREG_RT_SHIFT, #5
    bl      fast_get_x                  /* x0 = the value written */
    ldr     x3, [x2, #FP_POR_EL0]
    cmp     x0, x3
    b.ne    lower_sync_slow
    SYSREG_DONE

/*
 * Virtual POE traps CPACR_EL1 (FGT) for its virtual E0POE bit: a read is
 * the hardware value with that bit merged in (sysreg.rs, which handles
 * the writes). w3 = ISS without Rt.
 */
lower_sync_cpacr:
    movz    w4, #(ISS_MRS_CPACR_EL1 & 0xffff)
    movk    w4, #(ISS_MRS_CPACR_EL1 >> 16), lsl #16
    cmp     w3, w4
    b.ne    lower_sync_por_msr
    ldr     x4, [x2, #FP_CPACR_READ]
    cbz     x4, lower_sync_slow
    ldr     x5, [x2, #(FP_CPACR_READ + 8)]
    mrs     x3, spsr_el2
    tbnz    x3, #SPSR_SS_BIT, lower_sync_slow
    ubfx    x1, x0, #ISS_SYSREG_RT_SHIFT, #5
    mrs     x0, cpacr_el1
    orr     x0, x0, x5
    bl      fast_set_x
    SYSREG_DONE

/*
 * Native POE with POR_EL1 writes trapped (porwatch.por=trap; FGT
 * HFGWTR_EL2.nPOR_EL1 = 0): write the register and queue a change for Rust
 * to trace (por_write, with the at-entry rule). w3 = ISS without Rt.
 */
lower_sync_por_msr:
    ldr     x4, [x2, #FP_NATIVE_MSR]
    cbz     x4, lower_sync_slow
    movz    w4, #(ISS_MSR_POR_EL1 & 0xffff)
    movk    w4, #(ISS_MSR_POR_EL1 >> 16), lsl #16
    cmp     w3, w4
    b.ne    lower_sync_slow
    mrs     x3, spsr_el2
    tbnz    x3, #SPSR_SS_BIT, lower_sync_slow
    ubfx    x1, x0, #ISS_SYSREG_RT_SHIFT, #5
    bl      fast_get_x                  /* x0 = the value written */
    mrs     x3, S3_0_C10_C2_4           /* POR_EL1 before */
    cmp     x0, x3
    b.eq    1f
    ldr     x4, [x2, #FP_RING]
    cbz     x4, 4f
    RING_POR_CHANGE elr_el2
    b       1f
4:  QUEUE_RESERVE
    QUEUE_POR_CHANGE elr_el2
    QUEUE_COMMIT
1:  msr     S3_0_C10_C2_4, x0
    SYSREG_DONE

/*
 * An exception entry through the tap's trampoline (fast_path.rs, tap.rs):
 * the guest took an exception to EL1 and its vector slot's first
 * instruction, in porwatch's shadow of the vector page, is HVC #(base +
 * slot). x0 = ESR_EL2. Queue the entry (registers as the CPU wrote them,
 * the POR_EL1 in force) and resume the guest at the slot's displaced
 * instruction. Virtual POE's UNDEFs and, with native POE, EL1 data aborts
 * the page-table watch must see, are decided first.
 */
lower_sync_hvc:
    ldr     x3, [x2, #FP_TAP_HVC]
    cbz     x3, lower_sync_slow
    and     x1, x0, #HVC_IMM_MASK
    mov     x3, #TAP_IMM_BASE
    sub     x1, x1, x3
    cmp     x1, #SLOTS
    b.hs    lower_sync_slow             /* the guest's own HVC */
    /* made by the slot's first instruction: ELR_EL2 = VBAR + slot + 4 */
    mrs     x3, elr_el2
    ldr     x4, [x2, #FP_VBAR]
    add     x4, x4, x1, lsl #SLOT_SHIFT
    add     x4, x4, #INSN_LEN
    cmp     x3, x4
    b.ne    lower_sync_slow
    tst     x1, #SLOT_KIND_MASK
    b.ne    lower_sync_hvc_entry
    mrs     x3, esr_el1
    lsr     x3, x3, #ESR_EC_SHIFT
    cbnz    x3, 1f
    ldr     x4, [x2, #FP_ENABLED]
    cbz     x4, lower_sync_hvc_entry   /* no virtual POE: a plain UNDEF */
    cmp     x1, #SLOT_SYNC_EL1H
    b.eq    vpoe_undef
    b       lower_sync_slow
1:  cmp     x3, #EC_DABT_CUR
    b.ne    lower_sync_hvc_entry
    ldr     x4, [x2, #FP_SYNC_DABT_SLOW]
    cbnz    x4, lower_sync_slow
lower_sync_hvc_entry:                   /* x1 = slot */
    ldr     x3, [x2, #FP_ENTRY_SLOW]
    cbnz    x3, lower_sync_slow
    ldr     x4, [x2, #FP_RING]
    cbnz    x4, lower_sync_hvc_ring
    QUEUE_RESERVE
    lsl     x3, x1, #Q_ARG_SHIFT
    orr     x3, x3, #Q_ENTRY
    mrs     x5, cntpct_el0
    stp     x3, x5, [x4]
    /* the registers, also as the shadow virtual POE puts back */
    mrs     x3, elr_el1
    mrs     x5, spsr_el1
    stp     x3, x5, [x4, #16]
    stp     x3, x5, [x2, #FP_SHADOW_ELR]
    mrs     x3, esr_el1
    mrs     x5, far_el1
    stp     x3, x5, [x4, #32]
    stp     x3, x5, [x2, #FP_SHADOW_ESR]
    mov     x3, #1
    str     x3, [x2, #FP_SHADOW_VALID]
    /* the POR_EL1 in force when the exception was taken */
    ldr     x3, [x2, #FP_POR_MODE]
    mov     x5, xzr
    cmp     x3, #POR_VIRTUAL
    b.ne    2f
    ldr     x5, [x2, #FP_POR_EL1]
2:  cmp     x3, #POR_NATIVE
    b.ne    3f
    mrs     x5, S3_0_C10_C2_4
3:  str     x5, [x4, #48]
    /* the interrupted code's frame record, for the entry's call trace
     * (x30 is in the frame: the fast paths save it) */
    ldr     x3, [sp, #16 * 15]
    stp     x29, x3, [x4, #56]
    QUEUE_COMMIT
    add     x3, x2, x1, lsl #3
    ldr     x3, [x3, #FP_RESUME]
    msr     elr_el2, x3
    FAST_RETURN

/* Flight mode: the entry straight into the ring at x4 as an exc_entry
 * (depth 0: exception returns are not traced here), and what Rust's replay
 * did with it: the shadow registers, the entry window opened, the latest
 * entry for the cause chain and its call-trace note. x1 = slot. */
lower_sync_hvc_ring:
    mov     x0, x1
    FLIGHT_PUSH                         /* x5 = the slot, x1 = its seq */
    mrs     x3, cntpct_el0
    stp     x1, x3, [x5, #(RING_SLOTS + EV_SEQ)]       /* seq, ts */
    mov     x3, #KIND_EXC_ENTRY
    stp     x3, x0, [x5, #(RING_SLOTS + EV_KIND)]      /* kind; vector */
    mrs     x3, esr_el1
    mrs     x4, elr_el1
    stp     x3, x4, [x5, #(RING_SLOTS + EV_FIELDS + 8)]      /* esr, elr */
    str     x3, [x2, #FP_SHADOW_ESR]
    str     x4, [x2, #(FP_NOTE_ENTRY + 8)]
    mrs     x3, spsr_el1
    stp     x4, x3, [x2, #FP_SHADOW_ELR]
    mrs     x4, far_el1
    stp     x3, x4, [x5, #(RING_SLOTS + EV_FIELDS + 24)]     /* spsr, far */
    str     x4, [x2, #(FP_SHADOW_ESR + 8)]
    /* the POR_EL1 in force when the exception was taken */
    ldr     x3, [x2, #FP_POR_MODE]
    mov     x4, xzr
    cmp     x3, #POR_VIRTUAL
    b.ne    2f
    ldr     x4, [x2, #FP_POR_EL1]
2:  cmp     x3, #POR_NATIVE
    b.ne    3f
    mrs     x4, S3_0_C10_C2_4
3:  stp     x4, xzr, [x5, #(RING_SLOTS + EV_FIELDS + 40)]    /* por, depth */
    mov     x3, #1
    str     x3, [x2, #FP_SHADOW_VALID]
    str     x3, [x2, #FP_SHADOW_NEW]
    str     x3, [x2, #FP_WIN_OPEN]
    str     x1, [x2, #FP_CHAIN_ENTRY]
    str     x1, [x2, #FP_NOTE_ENTRY]
    ldr     x3, [sp, #16 * 15]          /* the interrupted x30 */
    stp     x29, x3, [x2, #(FP_NOTE_ENTRY + 16)]
    add     x3, x2, x0, lsl #3
    ldr     x3, [x3, #FP_RESUME]
    msr     elr_el2, x3
    FAST_RETURN

/*
 * The tap's single step (fast_path.rs): still inside the stepped page and
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

/*
 * A store to a page that holds one last-level table (fast_path.rs): x0 =
 * ESR_EL2. The CPU described it (ISV), it was made at EL1, and no overlay
 * permission can have denied it: perform it, count it, step past it.
 */
lower_sync_store:
    ldp     x3, x4, [x2, #FP_PT_ISS]
    and     x3, x0, x3
    cmp     x3, x4
    b.eq    1f
    eor     x3, x3, #ISS_ISV            /* ISV = 0: perhaps an LSE atomic */
    cmp     x3, x4
    b.ne    lower_sync_slow
1:
    mrs     x3, spsr_el2
    tbnz    x3, #SPSR_SS_BIT, lower_sync_slow   /* a step in progress */
    ubfx    x3, x3, #SPSR_EL_LSB, #SPSR_EL_WIDTH
    cmp     x3, #SPSR_EL_EL1
    b.ne    lower_sync_slow
    mrs     x3, sctlr_el1
    tbnz    x3, #SCTLR_EE_BIT, lower_sync_slow  /* big-endian data: Rust */
    /* Busy from here to the store (or the Rust path, which clears it): a
     * CPU that clears a leaf-page bit waits until no store it could have
     * missed is still in flight (fast_path.rs `quiesce`; DMB: the flag is
     * visible before the bitmap is read). */
    mov     x3, #1
    str     x3, [x2, #FP_PT_BUSY]
    dmb     ish
    /* x1 = the IPA written (= PA: the identity at EL2) */
    mrs     x0, far_el2
    AT_S1E1R_PA x1, x0, x3
    /* its page's bit in the leaf-page bitmap */
    ldp     x4, x5, [x2, #FP_PT_MAP]
    sub     x3, x1, x5
    lsr     x3, x3, #PAGE_SHIFT
    ldr     x5, [x2, #FP_PT_MAP_PAGES]
    cmp     x3, x5
    b.hs    lower_sync_slow
    lsr     x5, x3, #6
    ldr     x5, [x4, x5, lsl #3]
    lsr     x5, x5, x3
    tbz     x5, #0, lower_sync_slow
    /* native POE sampling: a POR_EL1 Rust has not seen goes to Rust */
    ldr     x3, [x2, #FP_SAMPLING]
    cbz     x3, 1f
    mrs     x3, S3_0_C10_C2_4
    ldr     x4, [x2, #FP_POR_SAMPLE]
    cmp     x3, x4
    b.ne    lower_sync_slow
1:
    /* the overlay: walk only if some POIndex may deny a write */
    ldr     x3, [x2, #FP_PT_DENY]
    cbz     x3, lower_sync_store_do
    mrs     x4, sctlr_el1
    tbz     x4, #SCTLR_M_BIT, lower_sync_slow   /* no stage 1: Rust decides */
    ubfx    x4, x4, #SCTLR_WXN_BIT, #1
    lsl     x4, x4, #3
    lsr     x3, x3, x4
    ands    x3, x3, #DENY_BYTES         /* bit i / 16 + i: POIndex i may deny */
    b.eq    lower_sync_store_do
    /* the walk (x6, x7 saved; x30 is saved in the frame already) */
    stp     x6, x7, [sp, #16 * 3]
    ubfx    x4, x0, #VA_TTBR1_BIT, #1
    add     x4, x2, x4, lsl #WALK_HALF_SHIFT
    ldp     x6, x5, [x4, #FP_PT_WALK]           /* root table, start shift */
    ldp     x7, x4, [x4, #(FP_PT_WALK + 16)]    /* start index mask, entry */
    cbz     x6, walk_bail
    lsr     x5, x0, x5
    and     x5, x5, x7
    ldr     x5, [x6, x5, lsl #3]        /* the start level's descriptor */
    adr     x7, walk_entry
    add     x4, x7, x4, lsl #2
    ldp     x7, x30, [x2, #FP_PT_WALK_RAM]
    br      x4
walk_entry:                             /* by entry: start level + 1, +5 without DS */
    b       walk_ds_level_m1
    b       walk_ds_level0
    b       walk_ds_level1
    b       walk_ds_level2
    b       walk_level3
    b       walk_bail                   /* level -1 needs DS */
    b       walk_level0
    b       walk_level1
    b       walk_level2
    b       walk_level3

/* x5 = a table-level descriptor: follow it (x6 = next table, inside guest
 * RAM [x7, x7 + x30)) and read the next level's descriptor for VA x0 into
 * x5. A block goes to \block. With DS, NLTA[51:50] (bits [9:8]) must be 0. */
.macro WALK_TABLE shift_next, block, ds
    tbz     x5, #DESC_VALID_BIT, walk_bail
    tbz     x5, #DESC_TABLE_BIT, \block
    .if \ds
    tst     x5, #DESC_DS_OA_HI
    b.ne    walk_bail
    .endif
    and     x6, x5, #DESC_OA_MASK
    sub     x4, x6, x7
    cmp     x4, x30
    b.hs    walk_bail
    ubfx    x4, x0, #\shift_next, #LEVEL_BITS
    ldr     x5, [x6, x4, lsl #3]
.endm

/* A block at level -1 does not exist, and one at level 0 needs DS: Linux
 * never maps one; the Rust path decides. */
walk_ds_level_m1:
    WALK_TABLE 39, walk_bail, 1
walk_ds_level0:
    WALK_TABLE 30, walk_bail, 1
walk_ds_level1:
    WALK_TABLE 21, walk_leaf, 1
walk_ds_level2:
    WALK_TABLE 12, walk_leaf, 1
    b       walk_level3
walk_level0:
    WALK_TABLE 30, walk_bail, 0
walk_level1:
    WALK_TABLE 21, walk_leaf, 0
walk_level2:
    WALK_TABLE 12, walk_leaf, 0
walk_level3:
    tbz     x5, #DESC_VALID_BIT, walk_bail
    tbz     x5, #DESC_TABLE_BIT, walk_bail      /* 0b01 at level 3: invalid */
walk_leaf:
    ubfx    x4, x5, #DESC_POINDEX_SHIFT, #3
    lsr     x3, x3, x4
    ldp     x6, x7, [sp, #16 * 3]
    tbnz    x3, #0, lower_sync_slow     /* may be a hazard: Rust decides */
    tbz     x3, #DENY_UNPRIV_BIT, lower_sync_store_do
    /* Only an unprivileged store (STTR*) could be denied here (POR_EL0:
     * Linux's kernel threads run with POR_EL0 = 0). If the leaf gives EL0
     * no access (AP[1] = 0; without S1PIE, where bit 6 is PIIndex[0]) an
     * unprivileged store would have faulted at stage 1, before stage 2:
     * this is not one. Otherwise LSE atomics are privileged, and a
     * single-register store is read to tell. */
    tbnz    x5, #DESC_AP_EL0_BIT, 1f
    ldr     x4, [x2, #FP_PT_PIE]
    cbz     x4, lower_sync_store_do
1:  mrs     x5, esr_el2
    tbz     x5, #ISS_ISV_BIT, lower_sync_store_do
    ELR_INSN_W4
    movz    w3, #LDST_UNPRIV_MASK_LO
    movk    w3, #LDST_UNPRIV_MASK_HI, lsl #16
    and     w0, w4, w3
    movz    w3, #LDST_UNPRIV_LO
    movk    w3, #LDST_UNPRIV_HI, lsl #16
    cmp     w0, w3
    b.eq    lower_sync_slow             /* STTR*: Rust decides */
    b       lower_sync_store_do
walk_bail:
    ldp     x6, x7, [sp, #16 * 3]
    b       lower_sync_slow

/* x1 = PA of the store. */
lower_sync_store_do:
    mrs     x5, esr_el2
    tbz     x5, #ISS_ISV_BIT, lower_sync_atomic
    /* FAR at a page's first byte may be the second half of an unaligned
     * store that started on the page before (FAR is the lowest address
     * that faulted): only Rust knows where it starts. */
    tst     x1, #PAGE_MASK
    b.eq    lower_sync_slow
    ubfx    x3, x5, #ESR_SAS_SHIFT, #2
    movn    w4, #0
    lsl     w4, w4, w3
    bics    wzr, w1, w4                 /* naturally aligned */
    b.ne    lower_sync_slow
    mov     x4, x1
    ubfx    x1, x5, #ESR_SRT_SHIFT, #5
    bl      fast_get_x                  /* x0 = Xt (31: XZR) */
    ubfx    x3, x5, #ESR_SAS_SHIFT, #2
    tbz     x5, #ESR_AR_BIT, 1f
    dmb     ish                         /* STLR: release */
1:  cmp     x3, #SAS_64
    b.ne    2f
    str     x0, [x4]
    b       5f
2:  cmp     x3, #SAS_32
    b.ne    3f
    str     w0, [x4]
    b       5f
3:  cmp     x3, #SAS_16
    b.ne    4f
    strh    w0, [x4]
    b       5f
4:  strb    w0, [x4]
5:
lower_sync_store_done:
    add     x3, x2, #FP_PT_BUSY
    stlr    xzr, [x3]                   /* the store is done (release) */
    ldr     x3, [x2, #FP_PT_STORES]
    add     x3, x3, #1
    str     x3, [x2, #FP_PT_STORES]
    mrs     x3, elr_el2
    add     x3, x3, #INSN_LEN
    msr     elr_el2, x3
    FAST_RETURN

/*
 * An LSE atomic (ISV = 0: ESR does not describe it, so the instruction is
 * read) on a page that holds one last-level table, x1 = PA, overlay
 * checked: 64-bit SWP, LD<op> (ST<op>) and CAS, any ordering. Performed at
 * EL2 by the same operation on the same location, with acquire-release
 * ordering (at least what the guest asked for), so it stays atomic for
 * every other agent. Anything else (STP, writeback forms, exclusives,
 * DC ZVA, other sizes) goes to Rust.
 */
lower_sync_atomic:
    tst     x1, #7                      /* naturally aligned (no LSE2 case) */
    b.ne    lower_sync_slow
    mov     x5, x1                      /* x5 = PA */
    ELR_INSN_W4
    /* SWP / LD<op>: size 11, 111000 A R 1 Rs o3 opc 00 Rn Rt */
    movz    w3, #LSE_RMW_MASK_LO
    movk    w3, #LSE_RMW_MASK_HI, lsl #16
    and     w0, w4, w3
    movz    w3, #LSE_RMW_64_HI, lsl #16
    cmp     w0, w3
    b.ne    2f
    ubfx    w0, w4, #LSE_OP_SHIFT, #4  /* o3:opc: 0..7 LD<op>, 8 SWP */
    cmp     w0, #LSE_OP_SWP
    b.hi    lower_sync_slow             /* o3 = 1, opc != 0: not a write */
    b       3f
    /* CAS: size 11, 0010001 L 1 Rs o0 11111 Rn Rt */
2:  movz    w3, #CAS_MASK_LO
    movk    w3, #CAS_MASK_HI, lsl #16
    and     w0, w4, w3
    movz    w3, #CAS_64_LO
    movk    w3, #CAS_64_HI, lsl #16
    cmp     w0, w3
    b.ne    lower_sync_slow
    mov     w0, #LSE_OP_CAS
3:  str     x0, [sp, #FRAME_SCRATCH]    /* the operation */
    ubfx    x1, x4, #LSE_RS_SHIFT, #5
    bl      fast_get_x
    mov     x3, x0                      /* x3 = Xs */
    and     x1, x4, #LSE_RT_MASK
    bl      fast_get_x                  /* x0 = Xt */
    ldr     x1, [sp, #FRAME_SCRATCH]
    adr     x30, 4f
    add     x30, x30, x1, lsl #3
    br      x30
4:  ldaddal x3, x0, [x5]                /* by operation: 2 instructions each */
    b       5f
    ldclral x3, x0, [x5]
    b       5f
    ldeoral x3, x0, [x5]
    b       5f
    ldsetal x3, x0, [x5]
    b       5f
    ldsmaxal x3, x0, [x5]
    b       5f
    ldsminal x3, x0, [x5]
    b       5f
    ldumaxal x3, x0, [x5]
    b       5f
    lduminal x3, x0, [x5]
    b       5f
    swpal   x3, x0, [x5]
    b       5f
    casal   x3, x0, [x5]                /* x3: compare, then the old value */
    mov     x0, x3
    ubfx    x1, x4, #LSE_RS_SHIFT, #5   /* CAS: the old value to Xs */
    b       6f
5:  and     x1, x4, #LSE_RT_MASK        /* the old value to Xt */
6:  bl      fast_set_x
    b       lower_sync_store_done

/* x0 = guest Xn, n = x1 (0..31; 31 = XZR); clobbers x1. x0-x5 and x30
 * live in the frame. */
fast_get_x:
    cmp     x1, #31
    b.eq    4f
    cmp     x1, #6
    b.hs    5f
    ldr     x0, [sp, x1, lsl #3]
    ret
4:  mov     x0, xzr
    ret
5:  adr     x0, 6f
    sub     x1, x1, #6
    add     x0, x0, x1, lsl #3
    br      x0
6:
    .irp n, 6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29
    mov     x0, x\n
    ret
    .endr
    ldr     x0, [sp, #16 * 15]          /* n = 30: saved (x30 is our LR here) */
    ret

/* guest Xn = x0, n = x1 (0..31; 31 = XZR: nothing); clobbers x1, x3. */
fast_set_x:
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
    str     xzr, [x2, #FP_PT_BUSY]      /* no fast store in flight (x2: the block) */
    SAVE_X6_X29
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
