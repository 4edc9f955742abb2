//! `porwatch decode --follow`: read a file that keeps growing (a trace being
//! written by `porwatch run --trace-out`, or a serial device), like
//! `tail -f`.
//!
//! [`Follow`] is a [`Read`] that, at the end of the data, waits for more:
//! a regular file is polled every [`POLL`] for new bytes; any other file (a
//! tty, a FIFO) is waited on with `poll(2)` in [`POLL`] steps. It reports
//! the end (`Ok(0)`) when Ctrl-C (SIGINT) was pressed, when no new byte
//! came for the timeout (if any), when a device hangs up, or — with
//! [`Follow::until`] — at the end of the data once the writer is known to
//! be done (`porwatch run --secure` follows the semihosting trace file
//! QEMU writes, and stops when QEMU has exited). The decoder then finishes
//! normally: a truncated tail is reported and the summary printed.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    writer_done: Option<Arc<AtomicBool>>,
    /// How often the end of a regular file is checked (default [`POLL`]).
    poll: Duration,
}

impl Follow {
    /// Follows `file`; stops after `timeout` without new bytes (`None`:
    /// only on Ctrl-C or a hang-up).
    pub fn new(file: File, timeout: Option<Duration>) -> io::Result<Self> {
        let regular = file.metadata()?.is_file();
        Ok(Follow { file, regular, timeout, last_data: Instant::now(), writer_done: None, poll: POLL })
    }

    /// Checks the end of a regular file for new bytes every `poll` instead
    /// of [`POLL`] (`porwatch run --secure` keeps the trace close to the
    /// console with 10 ms).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Also ends at the end of the data once `writer_done` is set: set it
    /// after the writer has finished (its last write returned), and every
    /// byte it wrote is read before the end is reported.
    pub fn until(mut self, writer_done: Arc<AtomicBool>) -> Self {
        self.writer_done = Some(writer_done);
        self
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
            // Read before looking at the data: a flag seen set before an
            // empty read means the writer finished before that read.
            let writer_done = self.writer_done.as_ref().is_some_and(|d| d.load(Ordering::SeqCst));
            match self.file.read(buf) {
                Ok(0) if writer_done => return Ok(0),
                Ok(0) if self.regular => std::thread::sleep(self.poll),
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

    #[test]
    fn until_ends_at_the_end_of_data_once_the_writer_is_done() {
        let path = std::env::temp_dir().join(format!("porwatch-follow-until-{}", std::process::id()));
        let mut w = File::create(&path).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let writer = std::thread::spawn(move || {
            for chunk in [b"ab", b"cd", b"ef"] {
                std::thread::sleep(Duration::from_millis(120));
                w.write_all(chunk).unwrap();
            }
            flag.store(true, Ordering::SeqCst);
        });
        let mut f = Follow::new(File::open(&path).unwrap(), None).unwrap().until(done);
        let mut got = Vec::new();
        let start = Instant::now();
        f.read_to_end(&mut got).unwrap();
        writer.join().unwrap();
        assert_eq!(got, b"abcdef", "every byte written before the flag was read");
        assert!(start.elapsed() < Duration::from_secs(5), "no timeout was needed");
        let _ = std::fs::remove_file(&path);
    }
}
