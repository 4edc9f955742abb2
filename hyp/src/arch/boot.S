/*
 * porwatch hyp entry: arm64 Image header, EL3 -> EL2 drop when started at
 * EL3 (Arm FVP direct start, QEMU secure=on with firmware), self-relocation,
 * stack, bss, the move to the top of RAM, EL2 vectors, then Rust
 * (hyp_main). Only PC-relative addressing until the relocations are
 * applied. At EL3 the same relocation/bss/stack set-up runs first for
 * el3_setup (Rust, the Secure side of the GIC), and again at EL2: applying
 * R_AARCH64_RELATIVE twice gives the same result. At EL2, hyp_place (Rust,
 * MMU off) says where porwatch runs (monitor/src/layout.rs: the top of
 * RAM, so that guest RAM is one range); boot.S copies the image there and
 * applies the relocations again for the new base (the entries themselves
 * are not changed by applying them), then zeroes .bss and sets SP there.
 */
.equ R_AARCH64_RELATIVE, 1027
.equ CURRENTEL_EL2, (2 << 2)
.equ CURRENTEL_EL3, (3 << 2)

/* ID register fields tested here (SCR_EL3 and CPTR_EL3: arch/el3.rs). */
.equ ID_AA64PFR0_GIC_SHIFT, 24
.equ ID_FIELD_WIDTH, 4
/* CTR_EL0.DminLine [19:16]: log2 of the smallest D-cache line in 4-byte words. */
.equ CTR_DMINLINE_SHIFT, 16
.equ CTR_LINE_UNIT, 4
/* ICC_SRE_EL3 (GICv3): SRE | DFB | DIB | Enable, so EL2/EL1 use the
 * system-register interface without trapping to EL3. */
.equ ICC_SRE_EL3_SRE,    (1 << 0)
.equ ICC_SRE_EL3_DFB,    (1 << 1)
.equ ICC_SRE_EL3_DIB,    (1 << 2)
.equ ICC_SRE_EL3_ENABLE, (1 << 3)
/* SCTLR_EL2 RES1 bits (4, 5, 11, 16, 18, 22, 23, 28, 29): MMU and caches
 * off, little-endian; hyp's MMU code sets M/C/I later. */
.equ SCTLR_EL2_RES1_LO, ((1 << 4) | (1 << 5) | (1 << 11))
.equ SCTLR_EL2_RES1_HI, (((1 << 16) | (1 << 18) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29)) >> 16)
/* SPSR_EL3 for the ERET: M[3:0] = 0b1001 (EL2h), D, A, I, F masked (bits 9..6). */
.equ SPSR_M_EL2H, 0x9
.equ SPSR_DAIF,   (0xf << 6)
.equ IMAGE_FLAGS, 0xa          /* LE, 4 KiB pages, placement anywhere (bit 3) */
/* From Rust (arch/mod.rs: this file is a template): the CPUs porwatch
 * runs, and each CPU's stack stride (guard page + stack, arch/layout.rs). */
.equ MAX_CPUS, {max_cpus}
.equ PEN_SLOT, {pen_slot}
.equ PEN_ARRIVED, {pen_arrived}
.equ PEN_GO, {pen_go}
.equ PEN_INDEX, {pen_index}
.equ PEN_VALID, {pen_valid}
/* MPIDR_EL1: Aff2..Aff0 [23:0], Aff3 [39:32]. */
.equ MPIDR_AFF210, 0xffffff
.equ MPIDR_AFF3_SHIFT, 32
.equ MPIDR_AFF_FIELD, 0xff
.equ STACK_STRIDE_LO, {stack_stride_lo}
.equ STACK_STRIDE_HI, {stack_stride_hi}
.equ IMAGE_MAGIC, 0x644d5241   /* "ARM\x64" */

/* The last EL3 steps of a CPU before it drops to EL2h at \target (the
 * caller then does ISB; ERET): debug and PMU not trapped to EL3, the GIC's
 * system-register interface on if the CPU has one, SCTLR_EL2 at its RES1
 * value, EL2h with DAIF masked. Uses x2-x4. */
.macro el3_to_el2 target
    msr     mdcr_el3, xzr
    mrs     x3, id_aa64pfr0_el1
    ubfx    x4, x3, #ID_AA64PFR0_GIC_SHIFT, #ID_FIELD_WIDTH
    cbz     x4, 1f
    mov     x2, #(ICC_SRE_EL3_SRE | ICC_SRE_EL3_DFB | ICC_SRE_EL3_DIB | ICC_SRE_EL3_ENABLE)
    msr     s3_6_c12_c12_5, x2      /* ICC_SRE_EL3 */
1:  mov     x2, #SCTLR_EL2_RES1_LO
    movk    x2, #SCTLR_EL2_RES1_HI, lsl #16
    msr     sctlr_el2, x2
    mov     x2, #(SPSR_M_EL2H | SPSR_DAIF)
    msr     spsr_el3, x2
    adr     x2, \target
    msr     elr_el3, x2
.endm

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __hyp_image_size        /* image_size: hyp + guest DTB window */
    .quad   IMAGE_FLAGS
    .quad   0, 0, 0                 /* res2..res4 */
    .long   IMAGE_MAGIC
    .long   0                       /* res5 */

.section .text.boot, "ax"
primary_entry:
    mov     x19, x0                 /* DTB from the loader */
    mrs     x20, CurrentEL          /* the entry EL, reported in hyp_boot */
    cmp     x20, #CURRENTEL_EL3
    b.eq    el3_entry
el2_entry:                          /* also the ERET target from el3_entry */
    mrs     x2, CurrentEL
    cmp     x2, #CURRENTEL_EL2
    b.ne    wrong_el
    bl      c_env
    mov     x22, x21                /* where the loader put porwatch */
    mov     x0, x19
    mov     x1, x22
    bl      hyp_place               /* x0 = where to run: x21 = stay */
    cmp     x0, x21
    b.eq    run
    /* Copy [__hyp_start, __image_end) to x0 (16-byte multiple; hyp_place
     * chose a place that overlaps neither the image nor the DTB). The MMU
     * and D-cache are off, so the stores go to memory; first discard any
     * cache lines firmware left for the new place (a dirty one written
     * back later would undo the copy), and afterwards any stale I-cache
     * lines. */
    mov     x23, x0
    mrs     x2, ctr_el0
    ubfx    x2, x2, #CTR_DMINLINE_SHIFT, #ID_FIELD_WIDTH
    mov     x3, #CTR_LINE_UNIT
    lsl     x2, x3, x2              /* D-cache line size in bytes */
    adrp    x3, __hyp_end
    add     x3, x3, :lo12:__hyp_end
    sub     x3, x3, x21
    add     x3, x3, x23             /* end of the new place's image, .bss, stack */
    mov     x4, x23
0:  dc      ivac, x4
    add     x4, x4, x2
    cmp     x4, x3
    b.lo    0b
    dsb     ish
    adrp    x3, __image_end
    add     x3, x3, :lo12:__image_end
    sub     x3, x3, x21
    mov     x4, x21
    mov     x5, x23
1:  ldp     x6, x7, [x4], #16
    stp     x6, x7, [x5], #16
    subs    x3, x3, #16
    b.hi    1b
    dsb     ish
    ic      iallu
    dsb     ish
    isb
    adr     x2, moved
    sub     x2, x2, x21
    add     x2, x2, x23
    br      x2
moved:                              /* now running in the copy */
    bl      c_env
run:
    /* After an EL3 entry the other CPUs wait in the loaded copy's pen
     * (el3_secondary): send them to this copy's, before the loaded copy
     * becomes guest RAM. The MMU is off: the store reaches memory. */
    cmp     x20, #CURRENTEL_EL3
    b.ne    1f
    adr     x2, el3_pen
    adrp    x3, pen_release
    add     x3, x3, :lo12:pen_release
    sub     x3, x3, x21
    add     x3, x3, x22
    str     x2, [x3]
    dsb     sy
    sev
1:  adrp    x2, el2_vectors
    add     x2, x2, :lo12:el2_vectors
    msr     vbar_el2, x2
    isb
    mov     x0, x19                 /* dtb */
    mov     x1, x22                 /* load address */
    mov     x2, x20                 /* CurrentEL at entry */
    bl      hyp_main
    b       park

/*
 * What Rust needs, at EL2 or EL3: relocations applied, .bss zeroed, SP at
 * the top of the hyp stack. Returns x21 = where this copy of the image is;
 * uses x2-x6 and no stack (it sets SP).
 */
c_env:
    /* Apply R_AARCH64_RELATIVE: *(base + off) = base + addend. */
    adrp    x21, __hyp_start
    add     x21, x21, :lo12:__hyp_start
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
1:  cmp     x2, x3
    b.hs    2f
    ldp     x4, x5, [x2], #16       /* r_offset, r_info */
    ldr     x6, [x2], #8            /* r_addend */
    cmp     w5, #R_AARCH64_RELATIVE
    b.ne    bad_reloc
    add     x6, x6, x21
    str     x6, [x4, x21]
    b       1b
2:
    /* Zero .bss (16-byte aligned by the linker script). */
    adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
3:  cmp     x2, x3
    b.hs    4f
    stp     xzr, xzr, [x2], #16
    b       3b
4:
    adrp    x2, __stack_top
    add     x2, x2, :lo12:__stack_top
    mov     sp, x2
    ret

/*
 * Started at EL3 with no firmware: make EL2 usable for a Non-secure
 * hypervisor and drop to it. Keeps x19 (DTB) and x20 (entry EL). There is
 * then no PSCI provider: the hyp answers the guest's PSCI itself and ends
 * the run with semihosting (porwatch.semihosting=1). el3_setup (Rust, still
 * Secure, MMU off) first hands the GIC's interrupts to the Non-secure world
 * as firmware would.
 */
el3_entry:
    /* The primary is the CPU with affinity 0.0.0.0 (as TF-A chooses on
     * QEMU and FVP); every other CPU started too waits in the pen. */
    mrs     x2, mpidr_el1
    and     x3, x2, #MPIDR_AFF210
    lsr     x4, x2, #MPIDR_AFF3_SHIFT
    and     x4, x4, #MPIDR_AFF_FIELD
    orr     x3, x3, x4
    cbnz    x3, el3_secondary
    adr     x2, el3_vectors         /* an unexpected trap to EL3 parks */
    msr     vbar_el3, x2
    isb
    bl      c_env
    mov     x0, x19
    bl      el3_setup
    /* SCR_EL3, CPTR_EL3, ZCR_EL3, SMCR_EL3: from the ID-register table
     * (arch/el3.rs), so EL3 enables what EL2 passes to the guest and
     * nothing it hides. */
    bl      el3_enable_features
    el3_to_el2 el2_entry
    isb
    eret

/*
 * Secondary CPUs, and a CPU resuming from a power-down CPU_SUSPEND, enter
 * here at EL2 with the MMU off and x0 = their dense CPU index (the context
 * ID porwatch gave firmware's CPU_ON or CPU_SUSPEND; porwatch_monitor::cpus).
 * Only the moved copy of porwatch is ever given as this entry point. They
 * turn on the EL2 map the boot CPU built (SECONDARY_REGS, arch/mmu.rs,
 * cleaned to the point of coherency for this MMU-off read), then take their
 * own stack and the EL2 vectors and continue in Rust (hyp_secondary). The
 * MMU goes on before anything is written, so no store bypasses the caches
 * the other CPUs use.
 */
.global secondary_entry
secondary_entry:
    mov     x19, x0
    mrs     x2, CurrentEL
    cmp     x2, #CURRENTEL_EL2
    b.ne    park
    cmp     x19, #MAX_CPUS
    b.hs    park
    adrp    x1, SECONDARY_REGS
    add     x1, x1, :lo12:SECONDARY_REGS
    ldp     x2, x3, [x1]            /* MAIR_EL2, TCR_EL2 */
    ldp     x4, x5, [x1, #16]       /* TTBR0_EL2, SCTLR_EL2 */
    cbz     x5, park                /* no EL2 map yet: cannot happen */
    msr     mair_el2, x2
    msr     tcr_el2, x3
    msr     ttbr0_el2, x4
    isb
    tlbi    alle2                   /* nothing left from an earlier life */
    dsb     nsh
    isb
    msr     sctlr_el2, x5
    isb
    /* SP = __stacks + (index + 1) * STACK_STRIDE: the top of its stack */
    adrp    x1, __stacks
    add     x1, x1, :lo12:__stacks
    movz    x2, #STACK_STRIDE_LO
    movk    x2, #STACK_STRIDE_HI, lsl #16
    add     x3, x19, #1
    madd    x1, x3, x2, x1
    mov     sp, x1
    adrp    x2, el2_vectors
    add     x2, x2, :lo12:el2_vectors
    msr     vbar_el2, x2
    isb
    mov     x0, x19
    bl      hyp_secondary
    b       park

/*
 * The pen (arch/pen.rs). A CPU other than the primary, entered at EL3
 * (an FVP, QEMU secure=on: every CPU starts at the reset vector), must
 * not race the primary (its stack, its relocation of the image, stage 2),
 * nor stay in the loaded copy of porwatch, which becomes guest RAM. MMU
 * and caches off, touching nothing but `pen_release`, it waits here until
 * the primary, having moved porwatch to the top of RAM, writes where the
 * moved copy's pen is (boot.S `run`), then continues there.
 */
el3_secondary:
    adrp    x2, pen_release
    add     x2, x2, :lo12:pen_release
1:  ldr     x3, [x2]
    cbnz    x3, 2f
    wfe
    b       1b
2:  br      x3

/*
 * The moved copy's pen: this CPU finds its slot in PEN (filled by hyp_main
 * with each secondary's MPIDR and index; arch/pen.rs), says it arrived,
 * and waits until CPU_ON sets `go`. Then, as the primary did, it sets up
 * its own EL3 (the GIC's redistributor, SCR_EL3 and the other enables:
 * per-CPU registers) on its own stack and drops to EL2 at
 * secondary_entry with x0 = its index. Slots are PEN_SLOT bytes: mpidr
 * (affinity | PEN_VALID), arrived, go, index.
 */
el3_pen:
    mrs     x2, mpidr_el1
    and     x3, x2, #MPIDR_AFF210
    lsr     x4, x2, #MPIDR_AFF3_SHIFT
    and     x4, x4, #MPIDR_AFF_FIELD
    orr     x19, x3, x4, lsl #MPIDR_AFF3_SHIFT
    orr     x19, x19, #PEN_VALID
3:  adrp    x1, PEN
    add     x1, x1, :lo12:PEN
    mov     x2, #MAX_CPUS
4:  ldr     x3, [x1]
    cmp     x3, x19
    b.eq    5f
    add     x1, x1, #PEN_SLOT
    subs    x2, x2, #1
    b.ne    4b
    wfe                             /* not listed (yet): look again later */
    b       3b
5:  mov     x3, #1
    str     x3, [x1, #PEN_ARRIVED]
    dsb     sy
6:  ldr     x3, [x1, #PEN_GO]
    cbnz    x3, 7f
    wfe
    b       6b
7:  ldr     x19, [x1, #PEN_INDEX]
    adr     x2, el3_vectors
    msr     vbar_el3, x2
    isb
    /* SP = __stacks + (index + 1) * STACK_STRIDE, as secondary_entry */
    adrp    x1, __stacks
    add     x1, x1, :lo12:__stacks
    movz    x2, #STACK_STRIDE_LO
    movk    x2, #STACK_STRIDE_HI, lsl #16
    add     x3, x19, #1
    madd    x1, x3, x2, x1
    mov     sp, x1
    mov     x0, x19
    bl      el3_setup_secondary
    bl      el3_enable_features
    el3_to_el2 secondary_entry
    mov     x0, x19
    isb
    eret

/* Where the moved copy's pen is (0: not yet). Data, not .bss: the
 * primary's zeroing of .bss must not touch it while CPUs read it. */
.pushsection .data
.balign 8
.global pen_release
pen_release:
    .quad   0
.popsection

/* Not at EL2 or EL3 (EL1 without virtualization): nothing can be printed
 * safely before the DTB is parsed; park. */
wrong_el:
bad_reloc:
park:
    wfe
    b       park

/* EL3 vectors after the drop: no firmware runs there, so any exception
 * taken to EL3 (an SMC from EL2, a trapped register) parks the CPU. */
.balign 2048
el3_vectors:
.rept 16
    .balign 128
    b       park
.endr
