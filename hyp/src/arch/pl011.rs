//! Minimal PL011 transmitter: porwatch only writes (trace UART, and the
//! console for fatal messages).
use core::ptr::{read_volatile, write_volatile};

const UARTDR: usize = 0x000;
const UARTFR: usize = 0x018;
const UARTCR: usize = 0x030;
const FR_TXFF: u32 = 1 << 5;
const FR_BUSY: u32 = 1 << 3;
const CR_UARTEN: u32 = 1 << 0;
const CR_TXE: u32 = 1 << 8;

#[derive(Clone, Copy)]
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` must be a PL011 mapped as device memory, owned by the caller.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    pub fn base(&self) -> usize {
        self.base
    }

    /// Turns the transmitter on if firmware left it off (baud rate and
    /// format stay as firmware set them; QEMU ignores them).
    pub fn enable_tx(&self) {
        let cr = self.read(UARTCR);
        if cr & (CR_UARTEN | CR_TXE) != (CR_UARTEN | CR_TXE) {
            self.write(UARTCR, cr | CR_UARTEN | CR_TXE);
        }
    }

    /// Queues one byte if the FIFO has room.
    #[inline]
    pub fn try_put(&self, b: u8) -> bool {
        if self.read(UARTFR) & FR_TXFF != 0 {
            return false;
        }
        self.write(UARTDR, b as u32);
        true
    }

    pub fn put_blocking(&self, b: u8) {
        while !self.try_put(b) {}
    }

    pub fn write_all(&self, s: &[u8]) {
        for &b in s {
            if b == b'\n' {
                self.put_blocking(b'\r');
            }
            self.put_blocking(b);
        }
    }

    /// Waits until every queued byte has left the shift register.
    pub fn wait_idle(&self) {
        while self.read(UARTFR) & FR_BUSY != 0 {}
    }

    #[inline]
    fn read(&self, off: usize) -> u32 {
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    #[inline]
    fn write(&self, off: usize, v: u32) {
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }
}
