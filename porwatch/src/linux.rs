//! `porwatch run --linux`: a Linux arm64 Image as the guest, with its
//! initramfs and System.map, either Debian's kernel fetched once by
//! `scripts/fetch-linux SUITE` into the cache, or files the user names.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Suites `scripts/fetch-linux` knows.
pub const SUITES: [&str; 3] = ["bookworm", "trixie", "trixie-backports"];

/// Offset of the arm64 Image header's magic ("ARM\x64"), per
/// Documentation/arch/arm64/booting.rst.
const IMAGE_MAGIC_OFFSET: usize = 0x38;
const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";
/// Header fields: text_offset at 8, image_size at 16, flags at 24.
const TEXT_OFFSET_AT: usize = 8;
const IMAGE_SIZE_AT: usize = 16;
/// The Image must sit at a 2 MiB-aligned base (+ text_offset).
const IMAGE_ALIGN: u64 = 2 << 20;

/// A Linux guest, resolved.
#[derive(Debug, Clone)]
pub struct LinuxGuest {
    pub image: PathBuf,
    pub initrd: Option<PathBuf>,
    pub system_map: Option<PathBuf>,
    /// Where the Image goes (2 MiB-aligned base + text_offset).
    pub load_addr: u64,
    /// Bytes from load_addr the kernel may use before it has its own
    /// allocator (the header's image_size: text, data and bss).
    pub image_size: u64,
}

/// The cache directory of `scripts/fetch-linux`: $PORWATCH_CACHE or
/// ~/.cache/porwatch.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("PORWATCH_CACHE") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("porwatch")
}

/// The arm64 Image header: (text_offset, image_size), or an error saying
/// why `head` is not an arm64 Image.
pub fn parse_image_header(head: &[u8]) -> Result<(u64, u64)> {
    if head.len() < IMAGE_MAGIC_OFFSET + 4 || &head[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4] != IMAGE_MAGIC
    {
        if head.starts_with(&[0x1f, 0x8b]) {
            bail!("a gzip-compressed kernel: give the uncompressed arm64 Image (gunzip it)");
        }
        bail!("not an arm64 Linux Image (no \"ARM\\x64\" magic at offset 0x38)");
    }
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().expect("8 bytes"));
    let (text_offset, image_size) = (u64_at(TEXT_OFFSET_AT), u64_at(IMAGE_SIZE_AT));
    if image_size == 0 {
        bail!("arm64 Image with image_size 0 (a kernel older than 3.17): not supported");
    }
    Ok((text_offset, image_size))
}

/// Resolves `spec` (a suite name or a path to an Image). `initrd` and
/// `base` (a 2 MiB-aligned RAM address for the Image) come from the
/// command line.
pub fn resolve(spec: &str, initrd: Option<&Path>, base: u64) -> Result<LinuxGuest> {
    let (image, cached_initrd, system_map) = if SUITES.contains(&spec) {
        let dir = cache_dir().join("linux").join(spec);
        let image = dir.join("Image");
        if !image.is_file() {
            bail!(
                "Debian's {spec} kernel is not in {}: run `scripts/fetch-linux {spec}` \
                 (scripts/run --linux {spec} does it for you)",
                dir.display()
            );
        }
        let initrd = Some(dir.join("initramfs.cpio.gz")).filter(|p| p.is_file());
        let map = Some(dir.join("System.map")).filter(|p| p.is_file());
        (image, initrd, map)
    } else {
        let image = PathBuf::from(spec);
        if !image.is_file() {
            bail!("--linux {spec:?}: not a suite ({}) nor a file", SUITES.join(", "));
        }
        // A System.map next to the Image is used when there is one.
        let map = image.parent().map(|d| d.join("System.map")).filter(|p| p.is_file());
        (image, None, map)
    };
    let head = read_head(&image, 64)?;
    let (text_offset, image_size) =
        parse_image_header(&head).with_context(|| format!("{}", image.display()))?;
    if !base.is_multiple_of(IMAGE_ALIGN) {
        bail!("--load-addr {base:#x} for a Linux Image must be 2 MiB aligned");
    }
    let initrd = initrd.map(Path::to_path_buf).or(cached_initrd);
    if let Some(p) = &initrd {
        if !p.is_file() {
            bail!("initramfs {} not found", p.display());
        }
    }
    Ok(LinuxGuest { image, initrd, system_map, load_addr: base + text_offset, image_size })
}

fn read_head(p: &Path, n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
    let mut buf = vec![0u8; n];
    let got = f.read(&mut buf)?;
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[TEXT_OFFSET_AT..TEXT_OFFSET_AT + 8].copy_from_slice(&text_offset.to_le_bytes());
        h[IMAGE_SIZE_AT..IMAGE_SIZE_AT + 8].copy_from_slice(&image_size.to_le_bytes());
        h[IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4].copy_from_slice(IMAGE_MAGIC);
        h
    }

    #[test]
    fn reads_text_offset_and_image_size() {
        assert_eq!(parse_image_header(&header(0, 0x2b6_0000)).unwrap(), (0, 0x2b6_0000));
        assert_eq!(parse_image_header(&header(0x8_0000, 1 << 20)).unwrap(), (0x8_0000, 1 << 20));
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        let e = parse_image_header(b"\x1f\x8b\x08\x00rest-of-a-gzip-file").unwrap_err();
        assert!(e.to_string().contains("gzip"), "{e}");
        let e = parse_image_header(&[0u8; 64]).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        assert!(parse_image_header(&header(0, 0)).is_err(), "pre-3.17 header");
        assert!(parse_image_header(&header(0, 1)[..40]).is_err(), "short");
    }

    #[test]
    fn a_path_is_checked_and_its_system_map_found() {
        let dir = std::env::temp_dir().join(format!("porwatch-linux-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("Image");
        std::fs::write(&image, header(0, 0x10_0000)).unwrap();
        let spec = image.to_str().unwrap();
        let g = resolve(spec, None, 0x4400_0000).unwrap();
        assert_eq!((g.load_addr, g.image_size), (0x4400_0000, 0x10_0000));
        assert!(g.system_map.is_none() && g.initrd.is_none());
        std::fs::write(dir.join("System.map"), "ffff800080000000 T _text\n").unwrap();
        assert_eq!(resolve(spec, None, 0x4400_0000).unwrap().system_map, Some(dir.join("System.map")));
        assert!(resolve(spec, None, 0x4410_0000).is_err(), "unaligned base");
        assert!(resolve(spec, Some(&dir.join("missing.cpio")), 0x4400_0000).is_err());
        assert!(resolve(dir.join("nope").to_str().unwrap(), None, 0x4400_0000).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
