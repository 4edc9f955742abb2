//! Arm semihosting: SYS_EXIT, the only way to hand an exit status to QEMU
//! (or an FVP) from the target, and SYS_OPEN/SYS_WRITE for the trace file
//! sink (`porwatch.trace=semihosting:FILE`). Used only when
//! porwatch.semihosting is on, since HLT #0xF000 is UNDEFINED when no
//! debugger/model catches it.
//!
//! Pointers (the parameter block, file name and data) are read by the
//! debugger or model through the current translation regime: hyp's EL2 MMU
//! is an identity map (arch/mmu.rs), so hyp's own addresses are valid as
//! both VA and PA, with the MMU on or off.
use core::arch::asm;

const SYS_OPEN: u64 = 0x01;
const SYS_WRITE: u64 = 0x05;
const SYS_EXIT: u64 = 0x18;
/// SYS_OPEN mode 5: fopen's "wb" (create or truncate, binary).
const MODE_WB: u64 = 5;
/// ADP_Stopped_ApplicationExit (Arm semihosting spec, "SYS_EXIT").
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;
/// Longest file name [`open_write`] takes (bytes, without the NUL).
pub const MAX_NAME: usize = 255;

/// One semihosting call: x0 = operation, x1 = parameter block; returns x0.
/// Memory is a clobber (the host reads the block and what it points to).
#[inline(always)]
fn call(op: u64, block: &[u64]) -> u64 {
    let ret;
    unsafe {
        asm!("hlt #0xf000", inout("x0") op => ret, in("x1") block.as_ptr(), options(nostack));
    }
    ret
}

pub fn exit(status: u32) -> ! {
    let block = [ADP_STOPPED_APPLICATION_EXIT, status as u64];
    loop {
        call(SYS_EXIT, &block);
    }
}

/// A file opened on the host with SYS_OPEN.
#[derive(Clone, Copy)]
pub struct HostFile(u64);

/// Opens (creates or truncates) `name` on the host for binary writing.
/// None if the name is empty or longer than [`MAX_NAME`], or the host
/// refused (SYS_OPEN returned -1).
pub fn open_write(name: &[u8]) -> Option<HostFile> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains(&0) {
        return None;
    }
    // SYS_OPEN wants a NUL-terminated string (and its length without the NUL).
    let mut z = [0u8; MAX_NAME + 1];
    z[..name.len()].copy_from_slice(name);
    let block = [z.as_ptr() as u64, MODE_WB, name.len() as u64];
    match call(SYS_OPEN, &block) {
        u64::MAX => None,
        h => Some(HostFile(h)),
    }
}

impl HostFile {
    /// SYS_WRITE: writes `data`; returns how many bytes were written (the
    /// call reports the number NOT written; a nonsensical answer counts as
    /// nothing written).
    #[inline(never)]
    pub fn write(&self, data: &[u8]) -> usize {
        let block = [self.0, data.as_ptr() as u64, data.len() as u64];
        let not_written = call(SYS_WRITE, &block);
        data.len().saturating_sub(usize::try_from(not_written).unwrap_or(usize::MAX))
    }
}
