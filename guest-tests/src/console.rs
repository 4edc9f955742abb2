//! PL011 console found through /chosen/stdout-path of the guest's device tree.
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// QEMU virt's first PL011: used only if the device tree names no console.
const FALLBACK_UART: usize = 0x0900_0000;
const UARTDR: usize = 0x00;
const UARTFR: usize = 0x18;
const UARTFR_TXFF: u32 = 1 << 5;

static BASE: AtomicUsize = AtomicUsize::new(FALLBACK_UART);

pub fn init_from_dtb(dtb: &[u8]) {
    let mut plat = porwatch_monitor::fdt::Platform::new();
    if porwatch_monitor::fdt::discover(dtb, &mut plat).is_ok() {
        if let Some(u) = plat.console() {
            BASE.store(u.regs.base as usize, Ordering::Relaxed);
        }
    }
}

pub fn write_bytes(s: &[u8]) {
    let base = BASE.load(Ordering::Relaxed);
    for &b in s {
        unsafe {
            while core::ptr::read_volatile((base + UARTFR) as *const u32) & UARTFR_TXFF != 0 {}
            core::ptr::write_volatile((base + UARTDR) as *mut u32, b as u32);
        }
    }
}

pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// One line at a time when several CPUs print (`smp_seed`): taken around
/// each `println!` (never held where an interrupt can be taken).
static LINE_LOCK: AtomicBool = AtomicBool::new(false);

/// Runs `f` holding the console's line lock.
pub fn locked(f: impl FnOnce()) {
    while LINE_LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    f();
    LINE_LOCK.store(false, Ordering::Release);
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        $crate::console::locked(|| {
            let _ = writeln!($crate::console::Console, $($arg)*);
        });
    }};
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::Console, $($arg)*);
    }};
}
