//! A static whose `&'static mut` is handed out exactly once: the boot-time
//! owners of hyp's big buffers (table pools, the guest command line) take
//! them without `static mut`.
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

pub struct TakeOnce<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reachable only through the single `&mut` that
// `take` hands out once.
unsafe impl<T: Send> Sync for TakeOnce<T> {}

impl<T> TakeOnce<T> {
    pub const fn new(value: T) -> Self {
        Self { taken: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// The value, the first time; `None` after. (The `&mut` comes from the
    /// UnsafeCell, handed out once: clippy cannot see that.)
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: first and only take: no other reference exists.
        Some(unsafe { &mut *self.value.get() })
    }
}
