//! Secondary CPUs for the test kernels (`smp_seed`): PSCI CPU_ON with
//! [`start`], each CPU on its own stack with the boot CPU's stage-1 tables,
//! a CPU index from MPIDR_EL1.Aff0 (QEMU virt numbers its CPUs 0..N in
//! Aff0), and the PSCI calls a CPU makes about itself and the others.
use crate::{mmu, smccc};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

/// CPUs a test kernel can run (stacks and per-CPU state).
pub const MAX_CPUS: usize = 4;
/// Each secondary CPU's stack.
const STACK: usize = 32 * 1024;

pub const PSCI_CPU_OFF: u64 = 0x8400_0002;
pub const PSCI_AFFINITY_INFO_64: u64 = 0xC400_0004;
/// AFFINITY_INFO answers.
pub const AFFINITY_ON: i64 = 0;
pub const AFFINITY_OFF: i64 = 1;

/// This CPU's index (MPIDR_EL1.Aff0, within [`MAX_CPUS`]).
#[inline(always)]
pub fn cpu_index() -> usize {
    let m: u64;
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack, preserves_flags)) };
    (m & 0xff) as usize % MAX_CPUS
}

/// What a started CPU needs before its MMU is on (read by `secondary_entry`
/// with the MMU off: cleaned to the point of coherency first). Layout
/// shared with rt/entry.S.
#[repr(C, align(64))]
pub struct SecondaryBoot {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    ttbr1: u64,
    stack_top: u64,
    cpu: u64,
    main: fn(usize) -> !,
}

#[repr(C, align(16))]
struct Stacks(UnsafeCell<[[u8; STACK]; MAX_CPUS]>);
// SAFETY: CPU i uses stack i only.
unsafe impl Sync for Stacks {}
static STACKS: Stacks = Stacks(UnsafeCell::new([[0; STACK]; MAX_CPUS]));

struct Boots(UnsafeCell<[SecondaryBoot; MAX_CPUS]>);
// SAFETY: entry i is written by the CPU starting CPU i, before CPU_ON.
unsafe impl Sync for Boots {}
fn idle(_: usize) -> ! {
    loop {
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}
static BOOTS: Boots = Boots(UnsafeCell::new(
    [const { SecondaryBoot { mair: 0, tcr: 0, ttbr0: 0, ttbr1: 0, stack_top: 0, cpu: 0, main: idle } };
        MAX_CPUS],
));

unsafe extern "C" {
    fn secondary_entry();
}

/// Writes `[start, start + len)` back to the point of coherency (for a CPU
/// that reads it with its MMU off).
fn clean_to_poc(start: u64, len: u64) {
    let mut a = start & !63;
    while a < start + len {
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack)) };
        a += 64;
    }
    unsafe { asm!("dsb sy", options(nostack)) };
}

/// PSCI CPU_ON of CPU `cpu` (MPIDR affinity `cpu`): it turns on the boot
/// CPU's MMU set-up (the MMU must be on here), takes its own stack and
/// calls `main(cpu)`. Returns PSCI's answer.
pub fn start(cpu: usize, main: fn(usize) -> !) -> i64 {
    let (ttbr0, ttbr1) = mmu::roots();
    let b = SecondaryBoot {
        mair: mmu::MAIR,
        tcr: mmu::tcr(),
        ttbr0,
        ttbr1,
        stack_top: STACKS.0.get() as u64 + ((cpu % MAX_CPUS) as u64 + 1) * STACK as u64,
        cpu: cpu as u64,
        main,
    };
    let slot = unsafe { (BOOTS.0.get() as *mut SecondaryBoot).add(cpu % MAX_CPUS) };
    unsafe { slot.write(b) };
    clean_to_poc(slot as u64, core::mem::size_of::<SecondaryBoot>() as u64);
    smccc::smc(smccc::PSCI_CPU_ON_64, cpu as u64, secondary_entry as *const () as u64, slot as u64)
}

/// Called by rt/entry.S on a started CPU (MMU on, its stack).
#[unsafe(no_mangle)]
extern "C" fn secondary_guest_entry(b: &SecondaryBoot) -> ! {
    (b.main)(b.cpu as usize)
}

/// PSCI CPU_OFF of this CPU (does not return when it works).
pub fn cpu_off() -> i64 {
    smccc::smc(PSCI_CPU_OFF, 0, 0, 0)
}

/// PSCI AFFINITY_INFO of CPU `cpu` (level 0).
pub fn affinity_info(cpu: usize) -> i64 {
    smccc::smc(PSCI_AFFINITY_INFO_64, cpu as u64, 0, 0)
}

global_asm!(
    r#"
/* A CPU started by smp::start: EL1, MMU off, x0 = its SecondaryBoot
 * (cleaned to the point of coherency). The MMU goes on before anything is
 * written, so nothing bypasses the caches the other CPUs use. */
.section .text, "ax"
.global secondary_entry
secondary_entry:
    mov     x19, x0
    ldp     x1, x2, [x19, #0]           /* MAIR, TCR */
    ldp     x3, x4, [x19, #16]          /* TTBR0, TTBR1 */
    msr     mair_el1, x1
    msr     tcr_el1, x2
    msr     ttbr0_el1, x3
    msr     ttbr1_el1, x4
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x1, sctlr_el1
    mov     x2, #{sctlr_m_c_i}
    orr     x1, x1, x2
    msr     sctlr_el1, x1
    isb
    mov     x1, #(3 << 20)              /* FP/SIMD on, as rt/entry.S */
    msr     cpacr_el1, x1
    adrp    x1, el1_vectors
    add     x1, x1, :lo12:el1_vectors
    msr     vbar_el1, x1
    isb
    ldr     x1, [x19, #32]              /* its stack */
    mov     sp, x1
    mov     x0, x19
    bl      secondary_guest_entry
1:  wfe
    b       1b
"#,
    sctlr_m_c_i = const (1 | 1 << 2 | 1 << 12),
);
