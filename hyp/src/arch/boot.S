/*
 * porwatch hyp entry: arm64 Image header, self-relocation, stack, bss, EL2
 * vectors, then Rust (hyp_main). Only PC-relative addressing until the
 * relocations are applied.
 */
.equ R_AARCH64_RELATIVE, 1027
.equ CURRENTEL_EL2, (2 << 2)
.equ IMAGE_FLAGS, 0xa          /* LE, 4 KiB pages, placement anywhere (bit 3) */
.equ IMAGE_MAGIC, 0x644d5241   /* "ARM\x64" */

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
    mrs     x20, CurrentEL
    cmp     x20, #CURRENTEL_EL2
    b.ne    wrong_el

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
    adrp    x2, el2_vectors
    add     x2, x2, :lo12:el2_vectors
    msr     vbar_el2, x2
    isb
    mov     x0, x19                 /* dtb */
    mov     x1, x21                 /* load address */
    mov     x2, x20                 /* CurrentEL at entry */
    bl      hyp_main
    b       park

/* Not at EL2 (EL1 without virtualization, or EL3 until the EL3 entry lands):
 * nothing can be printed safely before the DTB is parsed; park. */
wrong_el:
bad_reloc:
park:
    wfe
    b       park
