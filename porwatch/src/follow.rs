//! `porwatch decode --follow`: read a file that keeps growing (a trace being
//! written by `porwatch run --trace-out`, or a serial device), like
//! `tail -f`.
//!
//! [`Follow`] is a [`Read`] that, at the end of the data, waits for more:
//! a regular file is polled every [`POLL`] for new bytes; any other file (a
//! tty, a FIFO) is waited on with `poll(2)` in [`POLL`] steps. It reports
//! the end (`Ok(0)`) when Ctrl-C (SIGINT) was pressed, when no new byte
//! came for the timeout (if any), or when a device hangs up. The decoder
//! then finishes normally: a truncated tail is reported and the summary
//! printed.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the end of a growing file is checked for new bytes.
pub const POLL: Duration = Duration::from_millis(100);

/// Set by the SIGINT handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes Ctrl-C (SIGINT) end a follow instead of killing the process, so
/// the output is flushed and the summary printed. Installed without
/// `SA_RESTART`, so a blocking read of a device is interrupted too.
pub fn catch_sigint() -> io::Result<()> {
    // SAFETY: `sa` is fully initialised (zeroed, then the handler and an
    // empty mask set); the handler only stores to an atomic, which is
    // async-signal-safe.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A file read to its end and then followed as it grows.
pub struct Follow {
    file: File,
    regular: bool,
    timeout: Option<Duration>,
    last_data: Instant,
}

impl Follow {
    /// Follows `file`; stops after `timeout` without new bytes (`None`:
    /// only on Ctrl-C or a hang-up).
    pub fn new(file: File, timeout: Option<Duration>) -> io::Result<Self> {
        let regular = file.metadata()?.is_file();
        Ok(Follow { file, regular, timeout, last_data: Instant::now() })
    }

    /// Whether following should stop now.
    fn done(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst) || self.timeout.is_some_and(|t| self.last_data.elapsed() >= t)
    }

    /// Waits up to [`POLL`] for the device to be readable.
    fn wait_readable(&self) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, POLL.as_millis() as libc::c_int) };
        match rc {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done() {
                return Ok(0);
            }
            if !self.regular && !self.wait_readable()? {
                continue;
            }
            match self.file.read(buf) {
                Ok(0) if self.regular => std::thread::sleep(POLL),
                // A device that reports the end has hung up.
                Ok(0) => return Ok(0),
                Ok(n) => {
                    self.last_data = Instant::now();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follows_appends_until_the_timeout() {
        let path = std::env::temp_dir().join(format!("porwatch-follow-{}", std::process::id()));
        let mut w = File::create(&path).unwrap();
        w.write_all(b"ab").unwrap();
        let writer = std::thread::spawn(move || {
            for chunk in [b"cd", b"ef"] {
                std::thread::sleep(Duration::from_millis(150));
                w.write_all(chunk).unwrap();
            }
        });
        let mut f = Follow::new(File::open(&path).unwrap(), Some(Duration::from_millis(600))).unwrap();
        let mut got = Vec::new();
        let start = Instant::now();
        f.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, b"abcdef");
        assert!(start.elapsed() >= Duration::from_millis(900), "waited for the timeout after the last write");
        let _ = std::fs::remove_file(&path);
    }
}
