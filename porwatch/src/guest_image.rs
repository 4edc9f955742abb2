//! Checks a `--guest` file before QEMU starts, so that an empty, foreign,
//! truncated or misplaced image is refused with the reason instead of
//! booting into garbage (which loops on unknown traps until the timeout).
//!
//! Accepted: a little-endian ELF64 for AArch64 (loaded at its segments'
//! physical addresses, entered at `e_entry`), an arm64 `Image` (header
//! checked as for `--linux`, loaded at `--load-addr`), or, only when asked
//! for with `--raw`, any other non-empty file loaded as bytes at
//! `--load-addr`. Everything it would occupy must be guest RAM that is not
//! porwatch's (nor the initramfs's).

use anyhow::{bail, Context, Result};

use crate::linux;

/// ELF64 header fields (offsets and values from the ELF specification).
const EI_CLASS: usize = 4;
const ELFCLASS64: u8 = 2;
const EI_DATA: usize = 5;
const ELFDATA2LSB: u8 = 1;
const E_MACHINE: usize = 18;
const EM_AARCH64: u16 = 183;
const E_ENTRY: usize = 24;
const E_PHOFF: usize = 32;
const E_PHENTSIZE: usize = 54;
const E_PHNUM: usize = 56;
const ELF64_EHDR_SIZE: usize = 64;
/// Program header: p_type at 0, p_offset 8, p_paddr 24, p_filesz 32, p_memsz 40.
const ELF64_PHDR_SIZE: usize = 56;
const P_TYPE: usize = 0;
const P_OFFSET: usize = 8;
const P_PADDR: usize = 24;
const P_FILESZ: usize = 32;
const P_MEMSZ: usize = 40;
/// A loadable segment (QEMU's ELF loader places it at p_paddr).
const PT_LOAD: u32 = 1;
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// A guest address range `[start, end)` that is not the guest's to load
/// into, and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub start: u64,
    pub end: u64,
    pub what: String,
}

/// Where a guest image may go: guest RAM minus what is reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub ram_start: u64,
    pub ram_end: u64,
    pub reserved: Vec<Reserved>,
}

impl Layout {
    /// Refuses `[start, start + size)` (what `what` is) unless it is inside
    /// guest RAM and clear of every reserved range. Checked arithmetic: a
    /// range that wraps past 2^64 is refused as such.
    pub fn check(&self, what: &str, start: u64, size: u64) -> Result<()> {
        let Some(end) = start.checked_add(size) else {
            bail!("{what} at {start:#x} of {size:#x} bytes would wrap past the end of the address space");
        };
        if start < self.ram_start || end > self.ram_end {
            bail!(
                "{what} needs {start:#x}..{end:#x}, outside guest RAM {:#x}..{:#x}",
                self.ram_start,
                self.ram_end
            );
        }
        for r in &self.reserved {
            if start < r.end && r.start < end {
                bail!(
                    "{what} needs {start:#x}..{end:#x}, which overlaps {} at {:#x}..{:#x}",
                    r.what,
                    r.start,
                    r.end
                );
            }
        }
        Ok(())
    }
}

/// What kind of file a guest image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKind {
    /// An AArch64 ELF: entered at `entry`, loaded at its own addresses.
    Elf { entry: u64 },
    /// An arm64 Image or raw bytes, loaded (and entered) at `--load-addr`.
    Raw,
}

/// Checks `bytes` (the whole file `name`) as a guest: an ELF, an arm64
/// Image, or with `raw` any non-empty file, placed in `layout`.
pub fn check(name: &str, bytes: &[u8], raw: bool, load_addr: u64, layout: &Layout) -> Result<GuestKind> {
    if bytes.is_empty() {
        bail!("guest {name} is empty");
    }
    if raw {
        layout.check(&format!("guest {name} (raw, at --load-addr)"), load_addr, bytes.len() as u64)?;
        return Ok(GuestKind::Raw);
    }
    if bytes.starts_with(ELF_MAGIC) {
        let entry = check_elf(bytes, layout).with_context(|| format!("guest {name}"))?;
        return Ok(GuestKind::Elf { entry });
    }
    if linux::has_image_magic(bytes) {
        let (_, image_size) =
            linux::check_image(bytes, bytes.len() as u64).with_context(|| format!("guest {name}"))?;
        layout.check(&format!("guest {name} (arm64 Image at --load-addr)"), load_addr, image_size)?;
        return Ok(GuestKind::Raw);
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        bail!("guest {name} is gzip-compressed: give the uncompressed image");
    }
    bail!(
        "guest {name} is neither an AArch64 ELF nor an arm64 Image (it starts {}): to load it as raw \
         bytes at --load-addr {load_addr:#x}, add --raw",
        head.join(" ")
    )
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o.checked_add(8)?)?.try_into().ok()?))
}

/// Checks an ELF (the whole file): AArch64 little-endian ELF64, program
/// headers and every PT_LOAD's bytes inside the file, each segment in
/// guest RAM outside the reserved ranges, and the entry point inside a
/// segment (the guest starts there with the MMU off). Returns `e_entry`.
pub fn check_elf(b: &[u8], layout: &Layout) -> Result<u64> {
    let len = b.len() as u64;
    if b.len() < ELF64_EHDR_SIZE {
        bail!("truncated ELF: {len} bytes, shorter than the 64-byte ELF64 header");
    }
    if b[EI_CLASS] != ELFCLASS64 || b[EI_DATA] != ELFDATA2LSB {
        bail!(
            "not a little-endian ELF64 (EI_CLASS {}, EI_DATA {}): porwatch guests are AArch64",
            b[EI_CLASS],
            b[EI_DATA]
        );
    }
    let machine = u16_at(b, E_MACHINE).unwrap_or(0);
    if machine != EM_AARCH64 {
        bail!("an ELF for machine {machine}, not AArch64 ({EM_AARCH64})");
    }
    let entry = u64_at(b, E_ENTRY).unwrap_or(0);
    let phoff = u64_at(b, E_PHOFF).unwrap_or(0);
    let phentsize = u16_at(b, E_PHENTSIZE).unwrap_or(0);
    let phnum = u16_at(b, E_PHNUM).unwrap_or(0);
    if phnum == 0 {
        bail!("ELF without program headers: nothing to load");
    }
    if usize::from(phentsize) != ELF64_PHDR_SIZE {
        bail!("ELF program header size {phentsize}, not {ELF64_PHDR_SIZE}");
    }
    let table_end = u64::from(phnum).checked_mul(ELF64_PHDR_SIZE as u64).and_then(|n| n.checked_add(phoff));
    if table_end.is_none_or(|e| e > len) {
        bail!(
            "truncated ELF: {phnum} program headers at offset {phoff:#x} end past the end of the file ({len} bytes)"
        );
    }
    let mut loads = Vec::new();
    for i in 0..usize::from(phnum) {
        let ph = phoff as usize + i * ELF64_PHDR_SIZE;
        let field = |o: usize| u64_at(b, ph + o).unwrap_or(0);
        if u32_at(b, ph + P_TYPE) != Some(PT_LOAD) {
            continue;
        }
        let (offset, paddr, filesz, memsz) =
            (field(P_OFFSET), field(P_PADDR), field(P_FILESZ), field(P_MEMSZ));
        if filesz > memsz {
            bail!("ELF segment {i}: p_filesz {filesz:#x} > p_memsz {memsz:#x}");
        }
        match offset.checked_add(filesz) {
            Some(end) if end <= len => {}
            _ => bail!(
                "truncated ELF: segment {i}'s {filesz:#x} bytes at file offset {offset:#x} run past the end \
                 of the file ({len} bytes)"
            ),
        }
        if memsz == 0 {
            continue;
        }
        layout.check(&format!("ELF segment {i}"), paddr, memsz)?;
        loads.push((paddr, paddr + memsz));
    }
    if loads.is_empty() {
        bail!("ELF without a loadable segment (PT_LOAD with bytes)");
    }
    if !loads.iter().any(|&(s, e)| (s..e).contains(&entry)) {
        bail!("ELF entry point {entry:#x} is outside its loadable segments (the guest starts there with the MMU off)");
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            ram_start: 0x4000_0000,
            ram_end: 0x8000_0000,
            reserved: vec![Reserved { start: 0x4020_0000, end: 0x4080_0000, what: "porwatch".into() }],
        }
    }

    /// An ELF64 AArch64 with one PT_LOAD of `data` at `paddr`, entry `entry`.
    fn elf(paddr: u64, entry: u64, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; ELF64_EHDR_SIZE + ELF64_PHDR_SIZE];
        b[..4].copy_from_slice(ELF_MAGIC);
        b[EI_CLASS] = ELFCLASS64;
        b[EI_DATA] = ELFDATA2LSB;
        b[E_MACHINE..E_MACHINE + 2].copy_from_slice(&EM_AARCH64.to_le_bytes());
        b[E_ENTRY..E_ENTRY + 8].copy_from_slice(&entry.to_le_bytes());
        b[E_PHOFF..E_PHOFF + 8].copy_from_slice(&(ELF64_EHDR_SIZE as u64).to_le_bytes());
        b[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&(ELF64_PHDR_SIZE as u16).to_le_bytes());
        b[E_PHNUM..E_PHNUM + 2].copy_from_slice(&1u16.to_le_bytes());
        let ph = ELF64_EHDR_SIZE;
        b[ph + P_TYPE..ph + P_TYPE + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        let off = b.len() as u64;
        b[ph + P_OFFSET..ph + P_OFFSET + 8].copy_from_slice(&off.to_le_bytes());
        b[ph + P_PADDR..ph + P_PADDR + 8].copy_from_slice(&paddr.to_le_bytes());
        b[ph + P_FILESZ..ph + P_FILESZ + 8].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[ph + P_MEMSZ..ph + P_MEMSZ + 8].copy_from_slice(&(data.len() as u64 + 0x100).to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    fn err(r: Result<GuestKind>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn a_good_elf_is_accepted_with_its_entry() {
        let b = elf(0x4400_0000, 0x4400_0010, &[0x1f, 0x20, 0x03, 0xd5]);
        assert_eq!(check("g", &b, false, 0, &layout()).unwrap(), GuestKind::Elf { entry: 0x4400_0010 });
    }

    #[test]
    fn empty_garbage_and_foreign_files_are_refused() {
        let l = layout();
        assert!(err(check("g", &[], false, 0x4400_0000, &l)).contains("is empty"));
        assert!(err(check("g", &[], true, 0x4400_0000, &l)).contains("is empty"));
        let e = err(check("g", b"hello, world", false, 0x4400_0000, &l));
        assert!(e.contains("neither an AArch64 ELF nor an arm64 Image") && e.contains("add --raw"), "{e}");
        assert_eq!(check("g", b"hello, world", true, 0x4400_0000, &l).unwrap(), GuestKind::Raw);
        assert!(err(check("g", &[0x1f, 0x8b, 8, 0], false, 0x4400_0000, &l)).contains("gzip"));
        let mut x86 = elf(0x4400_0000, 0x4400_0000, &[0; 4]);
        x86[E_MACHINE] = 62;
        assert!(err(check("g", &x86, false, 0, &l)).contains("machine 62"));
        let mut be = elf(0x4400_0000, 0x4400_0000, &[0; 4]);
        be[EI_DATA] = 2;
        assert!(err(check("g", &be, false, 0, &l)).contains("little-endian ELF64"));
    }

    #[test]
    fn truncated_elfs_are_refused() {
        let l = layout();
        let b = elf(0x4400_0000, 0x4400_0000, &[0xaa; 64]);
        // Cut inside the segment's bytes, inside the program headers, the header.
        let e = err(check("g", &b[..b.len() - 1], false, 0, &l));
        assert!(e.contains("truncated ELF: segment 0") && e.contains("past the end of the file"), "{e}");
        let e = err(check("g", &b[..ELF64_EHDR_SIZE + 10], false, 0, &l));
        assert!(e.contains("truncated ELF: 1 program headers"), "{e}");
        let e = err(check("g", &b[..40], false, 0, &l));
        assert!(e.contains("shorter than the 64-byte ELF64 header"), "{e}");
        // Offsets that wrap are caught, not overflowed.
        let mut w = b.clone();
        w[E_PHOFF..E_PHOFF + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(err(check("g", &w, false, 0, &l)).contains("truncated ELF"));
        let mut w = b.clone();
        let ph = ELF64_EHDR_SIZE;
        w[ph + P_OFFSET..ph + P_OFFSET + 8].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        assert!(err(check("g", &w, false, 0, &l)).contains("truncated ELF: segment 0"));
    }

    #[test]
    fn segments_outside_ram_or_on_porwatch_and_stray_entries_are_refused() {
        let l = layout();
        let e = err(check("g", &elf(0x1000, 0x1000, &[0; 4]), false, 0, &l));
        assert!(e.contains("outside guest RAM 0x40000000..0x80000000"), "{e}");
        let e = err(check("g", &elf(0x7fff_ff00, 0x7fff_ff00, &[0; 4]), false, 0, &l));
        assert!(e.contains("outside guest RAM"), "{e}");
        let e = err(check("g", &elf(0x4030_0000, 0x4030_0000, &[0; 4]), false, 0, &l));
        assert!(e.contains("overlaps porwatch at 0x40200000..0x40800000"), "{e}");
        let e = err(check("g", &elf(0xffff_ffff_ffff_ff00, 0, &[0; 4]), false, 0, &l));
        assert!(e.contains("wrap past the end of the address space"), "{e}");
        let e = err(check("g", &elf(0x4400_0000, 0x4500_0000, &[0; 4]), false, 0, &l));
        assert!(e.contains("entry point 0x45000000 is outside its loadable segments"), "{e}");
        // Raw bytes are placed too.
        let e = err(check("g", &[1; 16], true, 0x401f_fff8, &l));
        assert!(e.contains("overlaps porwatch"), "{e}");
    }
}
