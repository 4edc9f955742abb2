//! Malformed input: every case is an error, none panics.

use super::*;
use crate::fdt::{discover, rewrite, Edits, Fdt, FdtError, Platform};
use std::vec;
use std::vec::Vec;

/// Test-only DTB builder: tokens in, blob out (strings deduplicated).
pub(super) enum T<'a> {
    B(&'a str),
    P(&'a str, &'a [u8]),
    E,
}

pub(super) fn build(tokens: &[T<'_>]) -> Vec<u8> {
    let mut strings: Vec<u8> = Vec::new();
    let mut st: Vec<u8> = Vec::new();
    let put = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
    let pad = |v: &mut Vec<u8>| {
        while !v.len().is_multiple_of(4) {
            v.push(0)
        }
    };
    for t in tokens {
        match t {
            T::B(n) => {
                put(&mut st, 1);
                st.extend_from_slice(n.as_bytes());
                st.push(0);
                pad(&mut st);
            }
            T::P(n, v) => {
                let mut needle = n.as_bytes().to_vec();
                needle.push(0);
                let off = match strings.windows(needle.len()).position(|w| w == needle) {
                    Some(o) => o,
                    None => {
                        strings.extend_from_slice(&needle);
                        strings.len() - needle.len()
                    }
                };
                put(&mut st, 3);
                put(&mut st, v.len() as u32);
                put(&mut st, off as u32);
                st.extend_from_slice(v);
                pad(&mut st);
            }
            T::E => put(&mut st, 2),
        }
    }
    put(&mut st, 9);
    let off_rsv = 40u32;
    let off_struct = off_rsv + 16;
    let off_strings = off_struct + st.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut out = Vec::new();
    for f in [
        0xd00d_feed,
        total,
        off_struct,
        off_strings,
        off_rsv,
        17,
        16,
        0,
        strings.len() as u32,
        st.len() as u32,
    ] {
        put(&mut out, f);
    }
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&st);
    out.extend_from_slice(&strings);
    out
}

pub(super) fn cells(c: &[u32]) -> Vec<u8> {
    c.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// Runs every entry point; returns the Fdt::new result.
fn all(dtb: &[u8]) -> Result<(), FdtError> {
    let mut p = Platform::new();
    let d = discover(dtb, &mut p);
    let mut out = vec![0u8; dtb.len() + 1024];
    let r = rewrite(
        dtb,
        &Edits {
            remove: &["/pl011@9000000"],
            carve_out: &[(0x4000_0000, 0x1000)],
            bootargs: Some("x"),
            reserve: &[(1, 2)],
            psci: Some("smc"),
            drop_props: &[],
        },
        &mut out,
    );
    let _ = r;
    let n = Fdt::new(dtb).map(|_| ());
    if n.is_err() {
        assert_eq!(d.err(), n.err(), "discover must fail like Fdt::new");
    }
    n
}

/// `discover` into a fresh platform, result only.
fn disc(dtb: &[u8]) -> Result<(), FdtError> {
    let mut p = Platform::new();
    discover(dtb, &mut p)
}

fn set32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[test]
fn truncated_at_every_length() {
    for src in [TINY, MISC_GICV2] {
        for len in 0..src.len() {
            let e = all(&src[..len]);
            assert!(e.is_err(), "len {len} accepted");
            if len >= 4 {
                assert_eq!(e, Err(FdtError::Truncated), "len {len}");
            }
        }
        assert_eq!(all(src), Ok(()));
    }
}

#[test]
fn header_corruption() {
    let mut b = TINY.to_vec();
    b[0] ^= 1;
    assert_eq!(all(&b), Err(FdtError::BadMagic(0xd10d_feed)));

    for (field, value, want) in [
        (5, 15, FdtError::BadVersion { version: 15, last_comp: 16 }),
        (6, 18, FdtError::BadVersion { version: 17, last_comp: 18 }),
        (1, 8, FdtError::BadHeader),           // totalsize < header
        (1, 0xffff_ffff, FdtError::Truncated), // totalsize > buffer
        (2, 0x10_0000, FdtError::BadHeader),   // struct offset out of range
        (2, 8, FdtError::BadHeader),           // struct inside the header
        (3, 0xffff_fff0, FdtError::BadHeader), // strings offset, wrapping
        (8, 0x10_0000, FdtError::BadHeader),   // strings size
        (9, 0xffff_ffff, FdtError::BadHeader), // struct size
        (4, 0x10_0000, FdtError::BadHeader),   // rsvmap offset
        (4, 12, FdtError::BadHeader),          // rsvmap inside header
    ] {
        let mut b = TINY.to_vec();
        set32(&mut b, field * 4, value);
        assert_eq!(all(&b), Err(want), "field {field} = {value:#x}");
    }
    // Reservation block without terminator before the end of the blob.
    let mut b = TINY.to_vec();
    let total = b.len() as u32;
    set32(&mut b, 16, total - 8);
    assert_eq!(all(&b), Err(FdtError::BadReservations));
    // Struct size too small to reach FDT_END.
    let mut b = TINY.to_vec();
    let s = get32(&b, 36);
    set32(&mut b, 36, s - 4);
    assert!(matches!(all(&b), Err(FdtError::BadStructure { .. })));
}

#[test]
fn version_16_header_without_struct_size() {
    let mut b = TINY.to_vec();
    set32(&mut b, 20, 16);
    set32(&mut b, 36, 0);
    // v16: the struct block runs to totalsize; FDT_END still terminates it.
    let fdt = Fdt::new(&b).unwrap();
    assert!(fdt.find_node("/pl011@9000000").unwrap().is_some());
}

#[test]
fn unterminated_and_invalid_strings() {
    // Last byte of the strings block (terminates the last name).
    let mut b = TINY.to_vec();
    let n = b.len();
    b[n - 1] = b'x';
    assert_eq!(all(&b), Err(FdtError::BadString));
    // Property name offset past the strings block.
    let dtb = build(&[T::B(""), T::P("a", b""), T::E]);
    let mut b = dtb.clone();
    let nameoff_at = 40 + 16 + 8 + 8; // root token + empty name, prop tag, len
    set32(&mut b, nameoff_at, 100);
    assert_eq!(all(&b), Err(FdtError::BadStringOffset(100)));
    // Node name not valid UTF-8.
    let dtb = build(&[T::B(""), T::B("a\u{e9}"), T::E, T::E]);
    let mut b = dtb.clone();
    let pos = b.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    b[pos] = 0xff;
    assert_eq!(all(&b), Err(FdtError::BadString));
    // Node name running off the end of the struct block.
    let mut b = build(&[T::B("abc")]);
    assert_eq!(&b[60..64], b"abc\0");
    b[63] = b'd';
    set32(&mut b, 36, 8);
    assert_eq!(all(&b), Err(FdtError::BadString));
    // Unterminated string values.
    let dtb = build(&[
        T::B(""),
        T::P("#address-cells", &cells(&[2])),
        T::P("#size-cells", &cells(&[2])),
        T::B("pl011@9000000"),
        T::P("compatible", b"arm,pl011"),
        T::P("reg", &cells(&[0, 0x0900_0000, 0, 0x1000])),
        T::E,
        T::E,
    ]);
    Fdt::new(&dtb).unwrap();
    assert_eq!(disc(&dtb), Err(FdtError::BadString));
}

#[test]
fn structure_corruption() {
    // Unknown token.
    let mut b = TINY.to_vec();
    let off = get32(&b, 8) as usize;
    set32(&mut b, off, 7);
    assert_eq!(all(&b), Err(FdtError::BadToken { offset: 0, token: 7 }));
    // FDT_END replaced by a NOP: walk runs off the block.
    let mut b = TINY.to_vec();
    let end = get32(&b, 8) as usize + get32(&b, 36) as usize - 4;
    assert_eq!(get32(&b, end), 9);
    set32(&mut b, end, 4);
    assert!(matches!(all(&b), Err(FdtError::BadStructure { .. })));
    // Property length past the block.
    let mut b = build(&[T::B(""), T::P("a", b"abcd"), T::E]);
    set32(&mut b, 40 + 16 + 12, 0x7fff_ffff);
    assert!(matches!(all(&b), Err(FdtError::BadStructure { .. })));
    // Unbalanced: missing EndNode, extra EndNode, two roots, prop before root.
    for toks in [
        &[T::B(""), T::B("a"), T::E][..],
        &[T::B(""), T::E, T::E][..],
        &[T::B(""), T::E, T::B(""), T::E][..],
        &[T::P("a", b""), T::B(""), T::E][..],
        &[][..],
        // Property after a subnode.
        &[T::B(""), T::B("a"), T::E, T::P("p", b"")][..],
    ] {
        let b = build(toks);
        assert!(matches!(all(&b), Err(FdtError::BadStructure { .. })), "{:?}", all(&b));
    }
}

#[test]
fn cells_and_loops() {
    assert_eq!(all(BAD_CELLS), Ok(()));
    let mut p = Platform::new();
    assert_eq!(disc(BAD_CELLS), Err(FdtError::BadCells(5)));
    assert_eq!(all(DEEP), Err(FdtError::TooDeep));
    assert_eq!(disc(ALIAS_LOOP), Err(FdtError::BadPath));
    // #size-cells > 4 on the root.
    let dtb = build(&[
        T::B(""),
        T::P("#size-cells", &cells(&[5])),
        T::B("dev@0"),
        T::P("reg", &cells(&[0, 0, 0, 0, 0, 0, 0])),
        T::E,
        T::E,
    ]);
    assert_eq!(disc(&dtb), Err(FdtError::BadCells(5)));
    // reg length not a multiple of the entry size.
    let dtb = build(&[T::B(""), T::B("dev@0"), T::P("reg", &cells(&[0, 0, 0x1000, 0])), T::E, T::E]);
    assert_eq!(disc(&dtb), Err(FdtError::BadPropLen("reg")));
    // #address-cells = 0 and #size-cells = 0: reg entries of zero bytes.
    let dtb = build(&[
        T::B(""),
        T::P("#address-cells", &cells(&[0])),
        T::P("#size-cells", &cells(&[0])),
        T::B("dev@0"),
        T::P("reg", &cells(&[1])),
        T::E,
        T::E,
    ]);
    assert_eq!(disc(&dtb), Err(FdtError::BadCells(0)));
    // ranges entry of zero size (all cell counts 0).
    let dtb = build(&[
        T::B(""),
        T::P("#address-cells", &cells(&[0])),
        T::B("bus"),
        T::P("#address-cells", &cells(&[0])),
        T::P("#size-cells", &cells(&[0])),
        T::P("ranges", &cells(&[1])),
        T::B("dev"),
        T::P("reg", &cells(&[])),
        T::E,
        T::E,
        T::E,
    ]);
    let _ = discover(&dtb, &mut p);
    // 4-cell addresses whose translation exceeds 64 bits.
    let dtb = build(&[
        T::B(""),
        T::P("#address-cells", &cells(&[4])),
        T::P("#size-cells", &cells(&[1])),
        T::B("dev@0"),
        T::P("reg", &cells(&[0, 1, 0, 0, 0x1000])),
        T::E,
        T::E,
    ]);
    assert_eq!(disc(&dtb), Err(FdtError::AddressOverflow));
}

#[test]
fn four_cell_memory_overflow() {
    let max = cells(&[u32::MAX; 8]);
    let dtb = build(&[
        T::B(""),
        T::P("#address-cells", &cells(&[4])),
        T::P("#size-cells", &cells(&[4])),
        T::B("memory@0"),
        T::P("device_type", b"memory\0"),
        T::P("reg", &max),
        T::E,
        T::E,
    ]);
    assert_eq!(disc(&dtb), Err(FdtError::AddressOverflow));
    let mut out = vec![0u8; 4096];
    let edits = Edits { carve_out: &[(0, 0x1000)], ..Edits::default() };
    assert_eq!(rewrite(&dtb, &edits, &mut out), Err(FdtError::AddressOverflow));
    // Without a carve-out the node is copied verbatim.
    assert!(rewrite(&dtb, &Edits::default(), &mut out).is_ok());
}

#[test]
fn bad_property_values() {
    let mut p = Platform::new();
    let root = |body: &[T<'_>]| {
        let mut v = vec![T::B(""), T::P("#address-cells", &[0, 0, 0, 2]), T::P("#size-cells", &[0, 0, 0, 2])];
        for t in body {
            v.push(match t {
                T::B(n) => T::B(n),
                T::P(n, x) => T::P(n, x),
                T::E => T::E,
            });
        }
        v.push(T::E);
        build(&v)
    };
    let c2 = cells(&[2]);
    let _ = c2;
    let psci = root(&[T::B("psci"), T::P("compatible", b"arm,psci-1.0\0"), T::P("method", b"svc\0"), T::E]);
    assert_eq!(disc(&psci), Err(FdtError::BadValue("method")));
    let psci = root(&[T::B("psci"), T::P("compatible", b"arm,psci-1.0\0"), T::E]);
    assert_eq!(disc(&psci), Err(FdtError::BadValue("method")));
    let irq = cells(&[1, 13, 4, 1, 14, 4, 1, 11, 4]);
    let timer =
        root(&[T::B("timer"), T::P("compatible", b"arm,armv8-timer\0"), T::P("interrupts", &irq), T::E]);
    assert_eq!(disc(&timer), Err(FdtError::BadPropLen("interrupts")));
    let irq = cells(&[1, 13, 4, 1, 14, 4, 1, 11, 4, 2, 10, 4]);
    let timer =
        root(&[T::B("timer"), T::P("compatible", b"arm,armv8-timer\0"), T::P("interrupts", &irq), T::E]);
    assert_eq!(disc(&timer), Err(FdtError::BadValue("interrupts")));
    let irq = cells(&[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 0xffff_fff8, 4]);
    let timer =
        root(&[T::B("timer"), T::P("compatible", b"arm,armv8-timer\0"), T::P("interrupts", &irq), T::E]);
    assert_eq!(disc(&timer), Err(FdtError::BadValue("interrupts")));
    let initrd = root(&[
        T::B("chosen"),
        T::P("linux,initrd-start", &cells(&[1, 2, 3])),
        T::P("linux,initrd-end", &cells(&[4])),
        T::E,
    ]);
    assert_eq!(disc(&initrd), Err(FdtError::BadPropLen("linux,initrd-start")));
    let initrd = root(&[
        T::B("chosen"),
        T::P("linux,initrd-start", &cells(&[8])),
        T::P("linux,initrd-end", &cells(&[4])),
        T::E,
    ]);
    assert_eq!(disc(&initrd), Err(FdtError::BadValue("linux,initrd-end")));
    let initrd = root(&[T::B("chosen"), T::P("linux,initrd-end", &cells(&[4])), T::E]);
    assert_eq!(disc(&initrd), Err(FdtError::BadValue("linux,initrd-start")));
    let bootargs = root(&[T::B("chosen"), T::P("bootargs", b"\xff\xfe\0"), T::E]);
    assert_eq!(disc(&bootargs), Err(FdtError::BadString));
    let gic = root(&[
        T::B("intc"),
        T::P("compatible", b"arm,gic-v3\0"),
        T::P("reg", &cells(&[0, 0x800_0000, 0, 0x1_0000])),
        T::E,
    ]);
    assert_eq!(disc(&gic), Err(FdtError::BadPropLen("reg")));
    let gic = root(&[
        T::B("intc"),
        T::P("compatible", b"arm,gic-v3\0"),
        T::P("#redistributor-regions", &cells(&[9])),
        T::P("reg", &cells(&[0, 0x800_0000, 0, 0x1_0000])),
        T::E,
    ]);
    assert_eq!(disc(&gic), Err(FdtError::BadValue("#redistributor-regions")));
    let gic = root(&[
        T::B("intc"),
        T::P("compatible", b"arm,gic-400\0"),
        T::P("reg", &cells(&[0, 0x800_0000, 0, 0x1_0000])),
        T::E,
    ]);
    assert_eq!(disc(&gic), Err(FdtError::BadPropLen("reg")));
    let status = root(&[T::B("dev"), T::P("status", b"okay"), T::E]);
    assert_eq!(disc(&status), Err(FdtError::BadString));
    // A stdout-path naming nothing is fine: no console.
    let sp = root(&[T::B("chosen"), T::P("stdout-path", b"serial7:9600\0"), T::E]);
    discover(&sp, &mut p).unwrap();
    assert_eq!(p.chosen.stdout_path, Some("serial7:9600"));
}

#[test]
fn too_many_memory_ranges_and_uarts() {
    let reg: Vec<u32> = (0..17u32).flat_map(|i| [0, i * 0x100_0000 + 0x4000_0000, 0, 0x1000]).collect();
    let reg = cells(&reg);
    let dtb = build(&[
        T::B(""),
        T::P("#size-cells", &cells(&[2])),
        T::B("memory@0"),
        T::P("device_type", b"memory\0"),
        T::P("reg", &reg),
        T::E,
        T::E,
    ]);
    assert_eq!(disc(&dtb), Err(FdtError::Capacity("memory ranges")));

    let sc2 = cells(&[2]);
    let names: Vec<std::string::String> = (0..9).map(|i| std::format!("pl011@{i}000")).collect();
    let regs: Vec<Vec<u8>> = (0..9u32).map(|i| cells(&[0, i * 0x1000, 0, 0x1000])).collect();
    let mut toks = vec![T::B(""), T::P("#size-cells", &sc2)];
    for i in 0..9 {
        toks.push(T::B(&names[i]));
        toks.push(T::P("compatible", b"arm,pl011\0"));
        toks.push(T::P("reg", &regs[i]));
        toks.push(T::E);
    }
    toks.push(T::E);
    assert_eq!(disc(&build(&toks)), Err(FdtError::Capacity("uarts")));

    // 65 separate MMIO regions.
    let names: Vec<std::string::String> = (0..65).map(|i| std::format!("dev@{i}")).collect();
    let regs: Vec<Vec<u8>> = (0..65u32).map(|i| cells(&[0, i * 0x2000, 0, 0x1000])).collect();
    let mut toks = vec![T::B(""), T::P("#size-cells", &sc2)];
    for i in 0..65 {
        toks.push(T::B(&names[i]));
        toks.push(T::P("reg", &regs[i]));
        toks.push(T::E);
    }
    toks.push(T::E);
    assert_eq!(disc(&build(&toks)), Err(FdtError::Capacity("mmio regions")));
}

#[test]
fn every_byte_of_tiny_corrupted() {
    for i in 0..TINY.len() {
        for v in [0x00, 0x01, 0x02, 0x03, 0x04, 0x09, 0x7f, 0x80, 0xff] {
            let mut b = TINY.to_vec();
            b[i] = v;
            let _ = all(&b);
        }
    }
}

#[test]
fn every_word_of_fixtures_corrupted() {
    for src in [VIRT_SECURE, FVP_NESTED, MISC_GICV2] {
        for i in (0..src.len() & !3).step_by(4) {
            for v in [0, 1, 2, 3, 4, 5, 9, 0xffff_ffff, get32(src, i).wrapping_add(4)] {
                let mut b = src.to_vec();
                set32(&mut b, i, v);
                let _ = all(&b);
            }
        }
    }
}
