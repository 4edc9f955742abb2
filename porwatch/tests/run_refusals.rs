//! `porwatch run` refuses bad input before QEMU starts, with the reason and
//! exit status 78. Every run here names a QEMU that does not exist: had the
//! input got past the checks, the run would end 69 ("cannot start QEMU")
//! instead, so a 78 proves the refusal came first.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_porwatch");
const NO_QEMU: &str = "/nonexistent/qemu-system-aarch64";
const REFUSED: i32 = 78;
const QEMU_FAILED: i32 = 69;

fn run(args: &[&str]) -> Output {
    let images = common::images();
    Command::new(BIN)
        .args(["run", "--images", images.to_str().unwrap(), "--qemu", NO_QEMU])
        .args(args)
        .output()
        .expect("porwatch runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a refusal whose message contains every one of `says`.
fn refused(args: &[&str], says: &[&str]) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(REFUSED), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: want {s:?} in:\n{err}");
    }
    assert!(err.contains("porwatch: exit status 78 (refused)"), "{args:?}: {err}");
    assert!(!err.contains("cannot start it"), "{args:?}: QEMU was tried: {err}");
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = common::tempdir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An AArch64 ELF64 with one PT_LOAD of `data` at `paddr` and entry `entry`
/// (ELF64 header 64 bytes, one 56-byte program header, then the data).
fn elf(paddr: u64, entry: u64, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // ELFCLASS64
    b[5] = 1; // little-endian
    b[6] = 1; // EV_CURRENT
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = 64;
    b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    b[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    b[ph + 16..ph + 24].copy_from_slice(&paddr.to_le_bytes()); // p_vaddr
    b[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes()); // p_paddr
    b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b[ph + 40..ph + 48].copy_from_slice(&(data.len() as u64).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// (p_offset, p_filesz) of each PT_LOAD with bytes of an ELF64.
fn loads(elf: &[u8]) -> Vec<(u64, u64)> {
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let phoff = u64_at(32) as usize;
    let phnum = u16::from_le_bytes([elf[56], elf[57]]) as usize;
    (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == 1 && u64_at(ph + 32) > 0)
        .map(|ph| (u64_at(ph + 8), u64_at(ph + 32)))
        .collect()
}

/// An arm64 Image header (64 bytes) with these fields.
fn image_header(text_offset: u64, image_size: u64) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[8..16].copy_from_slice(&text_offset.to_le_bytes());
    h[16..24].copy_from_slice(&image_size.to_le_bytes());
    h[0x38..0x3c].copy_from_slice(b"ARM\x64");
    h
}

#[test]
fn empty_garbage_and_truncated_guests_are_refused() {
    refused(&["--guest", s(&file("empty.bin", b""))], &["is empty"]);
    let garbage = file("garbage.bin", &[0x5a; 4096]);
    refused(
        &["--guest", s(&garbage)],
        &["neither an AArch64 ELF nor an arm64 Image (it starts 5a 5a", "add --raw"],
    );
    let hello = std::fs::read(common::images().join("guests/hello.elf")).unwrap();
    // Cut in the middle of the first loadable segment's bytes.
    let segs = loads(&hello);
    let (offset, filesz) = segs[0];
    let cut = file("hello-cut.elf", &hello[..(offset + filesz / 2) as usize]);
    refused(&["--guest", s(&cut)], &["truncated ELF: segment 0's", "past the end of the file"]);
    // Cut after the segments (debug info and section headers gone): QEMU
    // loads by program headers, so that still runs; only symbols are lost.
    let end = segs.iter().map(|(o, n)| o + n).max().unwrap() as usize;
    assert!(end < hello.len(), "hello.elf has more than its segments");
    let o = run(&["--guest", s(&file("hello-nodebug.elf", &hello[..end]))]);
    assert_eq!(o.status.code(), Some(QEMU_FAILED), "{}", stderr(&o));
    refused(&["--guest", s(&file("hello-head.elf", &hello[..100]))], &["truncated ELF: "]);
    refused(&["--guest", s(&file("x.gz", b"\x1f\x8b\x08\x00rest"))], &["gzip-compressed"]);
    // The whole guest is fine: only QEMU is missing.
    let o = run(&["--guest", s(&file("hello.elf", &hello))]);
    assert_eq!(o.status.code(), Some(QEMU_FAILED), "{}", stderr(&o));
    // --raw loads anything non-empty.
    let o = run(&["--raw", "--guest", s(&garbage)]);
    assert_eq!(o.status.code(), Some(QEMU_FAILED), "{}", stderr(&o));
    assert!(stderr(&o).contains("QEMU failed: cannot start it"), "{}", stderr(&o));
    refused(&["--raw", "--guest", s(&file("empty2.bin", b""))], &["is empty"]);
}

#[test]
fn misplaced_elfs_and_raw_images_are_refused() {
    let nop = [0x1f, 0x20, 0x03, 0xd5];
    refused(
        &["--guest", s(&file("low.elf", &elf(0x1000, 0x1000, &nop)))],
        &["ELF segment 0 needs 0x1000..0x1004, outside guest RAM 0x40000000..0x80000000"],
    );
    refused(
        &["--guest", s(&file("hyp.elf", &elf(0x4030_0000, 0x4030_0000, &nop)))],
        &["overlaps the guest device tree window", "0x40200000.."],
    );
    refused(
        &["--guest", s(&file("entry.elf", &elf(0x4400_0000, 0x4500_0000, &nop)))],
        &["entry point 0x45000000 is outside its loadable segments"],
    );
    refused(
        &["--guest", s(&file("wrap.elf", &elf(u64::MAX - 1, 0, &nop)))],
        &["would wrap past the end of the address space"],
    );
    // A bigger -m moves the end of RAM; a smaller one too.
    let high = file("high.elf", &elf(0x7000_0000, 0x7000_0000, &nop));
    let o = run(&["--guest", s(&high), "--", "-m", "2G"]);
    assert_eq!(o.status.code(), Some(QEMU_FAILED), "{}", stderr(&o));
    refused(&["--guest", s(&high), "--", "-m", "512M"], &["outside guest RAM 0x40000000..0x60000000"]);
    refused(
        &["--raw", "--load-addr", "0x40100000", "--guest", s(&file("r.bin", &[1; 0x20_0000]))],
        &["overlaps the guest device tree window"],
    );
    // porwatch moves to the top of RAM at boot: a segment there would be
    // overwritten.
    refused(
        &["--guest", s(&file("top.elf", &elf(0x7ff0_0000, 0x7ff0_0000, &nop)))],
        &["overlaps porwatch's memory at the top of RAM"],
    );
}

#[test]
fn truncated_and_inconsistent_linux_images_are_refused() {
    // An EFI-stub Image whose .text section data ends past the end of the file.
    let mut img = image_header(0, 0x100_0000);
    img[..2].copy_from_slice(b"MZ");
    img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    img.resize(0x1000, 0);
    img[0x40..0x44].copy_from_slice(b"PE\0\0");
    img[0x44..0x46].copy_from_slice(&0xaa64u16.to_le_bytes());
    img[0x46..0x48].copy_from_slice(&1u16.to_le_bytes()); // one section
    img[0x54..0x56].copy_from_slice(&0u16.to_le_bytes()); // no optional header
    let sh = 0x44 + 20;
    img[sh..sh + 5].copy_from_slice(b".text");
    img[sh + 16..sh + 20].copy_from_slice(&0x10_0000u32.to_le_bytes()); // SizeOfRawData
    img[sh + 20..sh + 24].copy_from_slice(&0x1000u32.to_le_bytes()); // PointerToRawData
    let cut = file("Image", &img);
    refused(
        &["--linux", s(&cut), "--load-addr", "0x44000000"],
        &["truncated arm64 Image: PE section \".text\" data 0x1000..0x101000 ends past the end of the file"],
    );
    // The same through --guest.
    refused(&["--guest", s(&cut)], &["truncated arm64 Image: PE section"]);
    // Shorter than the header; image_size smaller than the file.
    refused(
        &["--linux", s(&file("Image", &img[..40]))],
        &["truncated arm64 Image: 40 bytes, shorter than its 64-byte header"],
    );
    let mut small = image_header(0, 0x100);
    small.resize(0x1000, 0);
    refused(&["--linux", s(&file("Image", &small))], &["image_size 0x100 is smaller than the file"]);
    // Wrapping header fields: a correct message, not an overflow.
    refused(
        &["--linux", s(&file("Image", &image_header(u64::MAX - 0xfff, 0x1000)))],
        &["text_offset 0xfffffffffffff000 + --load-addr 0x44000000 wraps"],
    );
    refused(
        &["--linux", s(&file("Image", &image_header(0, u64::MAX)))],
        &["would wrap past the end of the address space"],
    );
    refused(
        &["--linux", s(&file("Image", &image_header(0, 0x4000_0000)))],
        &["the Linux Image", "outside guest RAM 0x40000000..0x80000000"],
    );
}

#[test]
fn too_much_ram_is_refused_with_the_reason() {
    refused(
        &["--guest", "hello", "--", "-m", "5G"],
        &["5120 MiB of guest RAM is more than porwatch supports (4096 MiB", "-m 4G or less"],
    );
    refused(&["--guest", "hello", "--", "-m", "lots"], &["not a size porwatch can read"]);
}

#[test]
fn options_porwatch_run_sets_itself_or_that_cannot_work_are_refused() {
    refused(
        &["--guest", "hello", "--hyp-opt", "guest=0x44000000"],
        &["--hyp-opt porwatch.guest=0x44000000: porwatch run sets porwatch.guest itself"],
    );
    refused(
        &["--guest", "hello", "--hyp-opt", "porwatch.semihosting=0"],
        &["porwatch run sets porwatch.semihosting=1 itself"],
    );
    for console in ["trace=0x9000000", "trace=0x09000000", "trace=/pl011@9000000"] {
        refused(&["--guest", "hello", "--hyp-opt", console], &["that is the guest console"]);
    }
    refused(&["--guest", "hello", "--hyp-opt", "trace=semihosting:/tmp/x.pwt"], &["--trace-via semihosting"]);
    refused(&["--guest", "hello", "--append", "quiet porwatch.guest=0x1"], &["--append porwatch.guest=0x1"]);
    refused(
        &["--guest", "hello", "--policy", "fault", "--hyp-opt", "policy=report"],
        &["--policy and --hyp-opt policy"],
    );
    // --all is stream=all: asking for the flight recorder with it is a
    // contradiction, whichever way it is asked.
    for flight in [
        ["--hyp-opt", "stream=flight"],
        ["--hyp-opt", "porwatch.stream=flight"],
        ["--append", "porwatch.stream=flight"],
    ] {
        refused(
            &["--guest", "hello", "--all", flight[0], flight[1]],
            &["--all streams every record (porwatch.stream=all); it cannot be combined with stream=flight"],
        );
    }
    refused(&["--guest", "no-such-guest"], &["no guest \"no-such-guest\""]);
    // A usage error of `run` is a refusal too (78, not clap's 2).
    let o = run(&["--no-such-flag"]);
    assert_eq!(o.status.code(), Some(REFUSED), "{}", stderr(&o));
}
