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
/// The arm64 header is 64 bytes.
const IMAGE_HEADER_LEN: usize = 64;
/// How much of an Image is read to check its headers (the arm64 header and,
/// for an EFI stub, the PE/COFF headers and section table that follow it).
pub const IMAGE_HEAD_LEN: usize = 64 << 10;
/// EFI-stub Images start with "MZ" (code0) and name their PE header's
/// offset at 0x3c (the arm64 header's res5), per booting.rst and the PE/COFF
/// specification.
const MZ: &[u8; 2] = b"MZ";
const PE_OFFSET_AT: usize = 0x3c;
const PE_SIGNATURE: &[u8; 4] = b"PE\0\0";
const IMAGE_FILE_MACHINE_ARM64: u16 = 0xaa64;
/// COFF file header (after the signature): Machine at +0, NumberOfSections
/// at +2, SizeOfOptionalHeader at +16; it is 20 bytes.
const COFF_HEADER_LEN: usize = 20;
const COFF_NSECTIONS_AT: usize = 2;
const COFF_OPT_SIZE_AT: usize = 16;
/// A section header is 40 bytes: Name [8], SizeOfRawData at 16,
/// PointerToRawData at 20.
const SECTION_LEN: usize = 40;
const SECTION_RAW_SIZE_AT: usize = 16;
const SECTION_RAW_PTR_AT: usize = 20;

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

/// True when `head` has the arm64 Image magic.
pub fn has_image_magic(head: &[u8]) -> bool {
    head.get(IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4) == Some(&IMAGE_MAGIC[..])
}

/// Checks an arm64 Image of `file_len` bytes whose first bytes are `head`
/// (at least [`IMAGE_HEAD_LEN`] of them when the file is that long):
/// the header ([`parse_image_header`]), an `image_size` that covers the
/// file (it counts text, data and bss, so a file longer than it is not a
/// consistent Image), and for an EFI stub ("MZ") every PE section's data
/// inside the file — what a truncated Image shows. Returns (text_offset,
/// image_size).
pub fn check_image(head: &[u8], file_len: u64) -> Result<(u64, u64)> {
    if file_len < IMAGE_HEADER_LEN as u64 || head.len() < IMAGE_HEADER_LEN {
        bail!("truncated arm64 Image: {file_len} bytes, shorter than its 64-byte header");
    }
    let (text_offset, image_size) = parse_image_header(head)?;
    if image_size < file_len {
        bail!(
            "arm64 Image header's image_size {image_size:#x} is smaller than the file ({file_len:#x} bytes): \
             not a consistent Image"
        );
    }
    if head.starts_with(MZ) {
        check_pe_sections(head, file_len)?;
    }
    Ok((text_offset, image_size))
}

/// The PE/COFF headers of an EFI-stub Image: signature, machine, and every
/// section's raw data inside the file.
fn check_pe_sections(head: &[u8], file_len: u64) -> Result<()> {
    let u16_at = |o: usize| head.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| head.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let truncated = || {
        anyhow::anyhow!(
            "truncated arm64 Image: its PE/COFF headers run past the end of the file ({file_len} bytes)"
        )
    };
    let pe = u32_at(PE_OFFSET_AT).ok_or_else(truncated)? as usize;
    match head.get(pe..pe + PE_SIGNATURE.len()) {
        Some(sig) if sig == PE_SIGNATURE => {}
        Some(_) => bail!("an EFI-stub arm64 Image (\"MZ\") without a PE signature at offset {pe:#x}"),
        None => return Err(truncated()),
    }
    let coff = pe + PE_SIGNATURE.len();
    let machine = u16_at(coff).ok_or_else(truncated)?;
    if machine != IMAGE_FILE_MACHINE_ARM64 {
        bail!("an EFI-stub Image for PE machine {machine:#x}, not arm64 ({IMAGE_FILE_MACHINE_ARM64:#x})");
    }
    let nsections = usize::from(u16_at(coff + COFF_NSECTIONS_AT).ok_or_else(truncated)?);
    let opt_size = usize::from(u16_at(coff + COFF_OPT_SIZE_AT).ok_or_else(truncated)?);
    let table = coff + COFF_HEADER_LEN + opt_size;
    for i in 0..nsections {
        let sh = table + i * SECTION_LEN;
        let name_bytes = head.get(sh..sh + 8).ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(name_bytes).trim_end_matches('\0').to_string();
        let size = u64::from(u32_at(sh + SECTION_RAW_SIZE_AT).ok_or_else(truncated)?);
        let ptr = u64::from(u32_at(sh + SECTION_RAW_PTR_AT).ok_or_else(truncated)?);
        if size > 0 && ptr + size > file_len {
            bail!(
                "truncated arm64 Image: PE section {name:?} data {ptr:#x}..{:#x} ends past the end of the file \
                 ({file_len:#x} bytes)",
                ptr + size
            );
        }
    }
    Ok(())
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
    let head = read_head(&image, IMAGE_HEAD_LEN)?;
    let file_len =
        std::fs::metadata(&image).with_context(|| format!("cannot read {}", image.display()))?.len();
    let (text_offset, image_size) =
        check_image(&head, file_len).with_context(|| format!("{}", image.display()))?;
    if !base.is_multiple_of(IMAGE_ALIGN) {
        bail!("--load-addr {base:#x} for a Linux Image must be 2 MiB aligned");
    }
    let Some(load_addr) = base.checked_add(text_offset) else {
        bail!(
            "{}: the header's text_offset {text_offset:#x} + --load-addr {base:#x} wraps past the end of \
             the address space",
            image.display()
        );
    };
    let initrd = initrd.map(Path::to_path_buf).or(cached_initrd);
    if let Some(p) = &initrd {
        if !p.is_file() {
            bail!("initramfs {} not found", p.display());
        }
    }
    Ok(LinuxGuest { image, initrd, system_map, load_addr, image_size })
}

/// The first `n` bytes of `p` (fewer if it is shorter).
pub fn read_head(p: &Path, n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64).read_to_end(&mut buf).with_context(|| format!("cannot read {}", p.display()))?;
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

    /// An EFI-stub Image: header + PE headers with one section of
    /// `raw_size` bytes at `raw_ptr`, padded to `len` bytes.
    fn efi_image(len: usize, raw_ptr: u32, raw_size: u32) -> Vec<u8> {
        let mut h = header(0, 0x100_0000);
        h[..2].copy_from_slice(MZ);
        let pe = 0x40usize;
        h[PE_OFFSET_AT..PE_OFFSET_AT + 4].copy_from_slice(&(pe as u32).to_le_bytes());
        h.resize(len, 0);
        h[pe..pe + 4].copy_from_slice(PE_SIGNATURE);
        let coff = pe + 4;
        h[coff..coff + 2].copy_from_slice(&IMAGE_FILE_MACHINE_ARM64.to_le_bytes());
        h[coff + COFF_NSECTIONS_AT..coff + COFF_NSECTIONS_AT + 2].copy_from_slice(&1u16.to_le_bytes());
        h[coff + COFF_OPT_SIZE_AT..coff + COFF_OPT_SIZE_AT + 2].copy_from_slice(&0x10u16.to_le_bytes());
        let sh = coff + COFF_HEADER_LEN + 0x10;
        h[sh..sh + 5].copy_from_slice(b".text");
        h[sh + SECTION_RAW_SIZE_AT..sh + SECTION_RAW_SIZE_AT + 4].copy_from_slice(&raw_size.to_le_bytes());
        h[sh + SECTION_RAW_PTR_AT..sh + SECTION_RAW_PTR_AT + 4].copy_from_slice(&raw_ptr.to_le_bytes());
        h
    }

    #[test]
    fn check_image_catches_truncation_and_inconsistent_headers() {
        let img = efi_image(0x2000, 0x1000, 0x1000);
        assert_eq!(check_image(&img, img.len() as u64).unwrap(), (0, 0x100_0000));
        // Cut one byte short: the .text section's data ends past the file.
        let e = check_image(&img[..0x1fff], 0x1fff).unwrap_err().to_string();
        assert!(e.contains("PE section \".text\" data 0x1000..0x2000 ends past the end of the file"), "{e}");
        // Cut inside the section table.
        let e = check_image(&img[..0x70], 0x70).unwrap_err().to_string();
        assert!(e.contains("PE/COFF headers run past the end"), "{e}");
        // Cut inside the arm64 header.
        let e = check_image(&img[..40], 40).unwrap_err().to_string();
        assert!(e.contains("shorter than its 64-byte header"), "{e}");
        // A file longer than image_size.
        let mut small = header(0, 0x100);
        small.resize(0x200, 0);
        let e = check_image(&small, 0x200).unwrap_err().to_string();
        assert!(e.contains("image_size 0x100 is smaller than the file"), "{e}");
        // "MZ" without a PE signature; a PE for another machine.
        let mut bad = img.clone();
        bad[0x40] = b'X';
        assert!(check_image(&bad, bad.len() as u64)
            .unwrap_err()
            .to_string()
            .contains("without a PE signature"));
        let mut x64 = img.clone();
        x64[0x44..0x46].copy_from_slice(&0x8664u16.to_le_bytes());
        assert!(check_image(&x64, x64.len() as u64).unwrap_err().to_string().contains("PE machine 0x8664"));
        // A PE offset that points far away is a truncation, not a panic.
        let mut far = img.clone();
        far[PE_OFFSET_AT..PE_OFFSET_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_image(&far, far.len() as u64).is_err());
        // A non-EFI Image needs no PE headers.
        assert!(check_image(&header(0, 0x1000), 64).is_ok());
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
        // A text_offset that wraps the load address is refused, not added.
        std::fs::write(&image, header(u64::MAX - 0x1000, 0x10_0000)).unwrap();
        let e = format!("{:#}", resolve(spec, None, 0x4400_0000).unwrap_err());
        assert!(e.contains("text_offset") && e.contains("wraps"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
