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
core::arch::global_asm!(include_str!("vectors.S"));

unsafe extern "C" {
    /// vectors.S: loads the guest registers from `frame` and ERETs.
    pub fn enter_guest(frame: *mut frame::GuestRegs) -> !;
}
