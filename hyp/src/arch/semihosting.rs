//! Arm semihosting SYS_EXIT: the only way to hand an exit status to QEMU (or
//! an FVP) from the target. Used only when porwatch.semihosting is on, since
//! HLT #0xF000 is UNDEFINED when no debugger/model catches it.
use core::arch::asm;

const SYS_EXIT: u64 = 0x18;
/// ADP_Stopped_ApplicationExit (Arm semihosting spec, "SYS_EXIT").
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

pub fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
    loop {
        unsafe {
            asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
        }
    }
}
