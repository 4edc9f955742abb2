//! The QEMU command line for a porwatch run, and where its images come from.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// QEMU virt with EL2, GICv3, one CPU, 1 GiB: the configuration porwatch is
/// developed and tested on.
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3";
pub const CPU: &str = "max";
pub const MEMORY: &str = "1G";

/// A guest and how QEMU's generic loader places it.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub path: PathBuf,
    /// Entry point handed to porwatch (porwatch.guest=).
    pub entry: u64,
    /// Some(addr): a raw image loaded at addr; None: an ELF loaded at its own addresses.
    pub raw_addr: Option<u64>,
}

impl GuestImage {
    /// `name_or_path`: a guest-tests kernel name, or a file.
    pub fn resolve(images: &Path, name_or_path: &str, load_addr: u64) -> Result<Self> {
        let named = images.join("guests").join(format!("{name_or_path}.elf"));
        let path = if !name_or_path.contains('/') && named.is_file() {
            named
        } else {
            let p = PathBuf::from(name_or_path);
            if !p.is_file() {
                let known = list_guests(images).join(", ");
                bail!("no guest {name_or_path:?}: not a guest-tests kernel ({known}) nor a file");
            }
            p
        };
        let head = read_head(&path)?;
        match elf_entry(&head) {
            Some(entry) => Ok(Self { path, entry, raw_addr: None }),
            None => Ok(Self { path, entry: load_addr, raw_addr: Some(load_addr) }),
        }
    }
}

fn read_head(p: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
    let mut buf = vec![0u8; 64];
    let n = f.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// e_entry of a little-endian ELF64 for AArch64, or None if not one.
pub fn elf_entry(head: &[u8]) -> Option<u64> {
    const EM_AARCH64: u16 = 183;
    if head.len() < 32 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    if machine != EM_AARCH64 {
        return None;
    }
    Some(u64::from_le_bytes(head[24..32].try_into().ok()?))
}

/// Names of the guest-tests kernels found in `images`.
pub fn list_guests(images: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(images.join("guests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".elf").map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// The images directory: `explicit`, $PORWATCH_IMAGES, the directory of this
/// executable (scripts/build puts porwatch there), or target/porwatch.
pub fn images_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("PORWATCH_IMAGES") {
            candidates.push(p.into());
        }
        if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
            candidates.push(dir);
        }
        candidates.push(PathBuf::from("target/porwatch"));
    }
    for c in candidates {
        if c.join("porwatch-hyp.bin").is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    bail!("porwatch-hyp.bin not found (looked in {}): run scripts/build", tried.join(", "))
}

pub struct QemuConfig {
    pub qemu: PathBuf,
    pub hyp: PathBuf,
    pub guest: GuestImage,
    pub trace_socket: PathBuf,
    pub guest_args: String,
    pub hyp_opts: Vec<String>,
    pub icount: bool,
    pub extra: Vec<String>,
}

impl QemuConfig {
    pub fn argv(&self) -> Result<Vec<String>> {
        let mut append = format!("porwatch.guest={:#x} porwatch.semihosting=1", self.guest.entry);
        for o in &self.hyp_opts {
            let o = o.strip_prefix("porwatch.").unwrap_or(o);
            if !o.contains('=') || o.contains(char::is_whitespace) {
                bail!("--hyp-opt {o:?}: expected KEY=VALUE without spaces");
            }
            append.push_str(" porwatch.");
            append.push_str(o);
        }
        if !self.guest_args.is_empty() {
            append.push(' ');
            append.push_str(&self.guest_args);
        }
        let loader = match self.guest.raw_addr {
            Some(a) => format!("loader,file={},addr={a:#x},force-raw=on", self.guest.path.display()),
            None => format!("loader,file={}", self.guest.path.display()),
        };
        let mut v: Vec<String> = [
            "-M",
            MACHINE,
            "-cpu",
            CPU,
            "-smp",
            "1",
            "-m",
            MEMORY,
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-semihosting-config",
            "enable=on,target=native",
            "-serial",
            "stdio",
            "-chardev",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(format!("socket,id=trace,path={}", self.trace_socket.display()));
        v.extend(["-serial", "chardev:trace", "-kernel"].map(String::from));
        v.push(self.hyp.display().to_string());
        v.push("-append".into());
        v.push(append);
        v.push("-device".into());
        v.push(loader);
        if self.icount {
            v.extend(["-icount", "shift=0"].map(String::from));
        }
        v.extend(self.extra.iter().cloned());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_entry_reads_aarch64_elf64_only() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 183;
        h[24..32].copy_from_slice(&0x4400_0000u64.to_le_bytes());
        assert_eq!(elf_entry(&h), Some(0x4400_0000));
        h[18] = 62; // x86-64
        assert_eq!(elf_entry(&h), None);
        assert_eq!(elf_entry(b"ARM\x64"), None);
    }

    #[test]
    fn argv_passes_entry_options_and_loader() {
        let cfg = QemuConfig {
            qemu: "q".into(),
            hyp: "/i/porwatch-hyp.bin".into(),
            guest: GuestImage { path: "/g/Image".into(), entry: 0x4800_0000, raw_addr: Some(0x4800_0000) },
            trace_socket: "/t/s".into(),
            guest_args: "console=ttyAMA0".into(),
            hyp_opts: vec!["eret=on".into()],
            icount: true,
            extra: vec!["-d".into(), "guest_errors".into()],
        };
        let v = cfg.argv().unwrap();
        let append = &v[v.iter().position(|a| a == "-append").unwrap() + 1];
        assert_eq!(
            append,
            "porwatch.guest=0x48000000 porwatch.semihosting=1 porwatch.eret=on console=ttyAMA0"
        );
        assert!(v.contains(&"loader,file=/g/Image,addr=0x48000000,force-raw=on".to_string()));
        assert!(v.windows(2).any(|w| w[0] == "-icount" && w[1] == "shift=0"));
        assert_eq!(&v[v.len() - 2..], &["-d".to_string(), "guest_errors".to_string()]);
        let bad = QemuConfig { hyp_opts: vec!["eret on".into()], ..cfg };
        assert!(bad.argv().is_err());
    }
}
