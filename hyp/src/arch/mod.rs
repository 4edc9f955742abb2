//! Architecture mechanism: boot and vector assembly, system registers, the
//! EL2 stage-1 MMU, stage 2, the UART and semihosting.
pub mod at;
pub mod cpu;
pub mod debug;
pub mod el2;
pub mod frame;
pub mod gic_el3;
pub mod idregs;
pub mod inject;
pub mod mmu;
pub mod pl011;
pub mod regs;
pub mod semihosting;
pub mod stage2;
pub mod table_pool;
pub mod vpoe_fast;

core::arch::global_asm!(include_str!("boot.S"));
core::arch::global_asm!(
    include_str!("vectors.S"),
    fp_max_vcpus = const vpoe_fast::MAX_VCPUS,
    fp_block_shift = const vpoe_fast::BLOCK_SHIFT,
    fp_enabled = const core::mem::offset_of!(vpoe_fast::FastPath, enabled),
    fp_por_el1 = const core::mem::offset_of!(vpoe_fast::FastPath, por_el1),
    fp_shadow_valid = const core::mem::offset_of!(vpoe_fast::FastPath, shadow_valid),
    fp_shadow_elr = const core::mem::offset_of!(vpoe_fast::FastPath, shadow_elr),
    fp_shadow_esr = const core::mem::offset_of!(vpoe_fast::FastPath, shadow_esr),
    fp_stepping = const core::mem::offset_of!(vpoe_fast::FastPath, stepping),
    fp_ram = const core::mem::offset_of!(vpoe_fast::FastPath, ram),
    fp_step_page = const core::mem::offset_of!(vpoe_fast::FastPath, step_page),
    fp_vbar = const core::mem::offset_of!(vpoe_fast::FastPath, vbar),
    fp_prev_pc = const core::mem::offset_of!(vpoe_fast::FastPath, prev_pc),
);

unsafe extern "C" {
    /// vectors.S: loads the guest registers from `frame` and ERETs.
    pub fn enter_guest(frame: *mut frame::GuestRegs) -> !;
}
