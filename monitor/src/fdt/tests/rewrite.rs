use super::*;
use crate::fdt::address::child_cells;
use crate::fdt::address::RawReg;
use crate::fdt::reader::{StrList, Token};
use crate::fdt::{discover, rewrite, Edits, Fdt, FdtError, Platform, Region};
use std::string::String;
use std::vec;
use std::vec::Vec;

fn rw(src: &[u8], edits: &Edits<'_>) -> Vec<u8> {
    let mut out = vec![0u8; src.len() + 4096];
    let n = rewrite(src, edits, &mut out).unwrap();
    out.truncate(n);
    out
}

/// (depth, name, value) of every token, for structural comparison.
fn tokens(dtb: &[u8]) -> Vec<(usize, String, Vec<u8>)> {
    let fdt = Fdt::new(dtb).unwrap();
    fdt.tokens()
        .map(|t| {
            let t = t.unwrap();
            match t.token {
                Token::BeginNode(n) => (t.depth, std::format!("begin {n}"), Vec::new()),
                Token::Prop { name, value } => (t.depth, name.into(), value.to_vec()),
                Token::EndNode => (t.depth, "end".into(), Vec::new()),
                Token::End => (0, "END".into(), Vec::new()),
            }
        })
        .collect()
}

fn reg_of(dtb: &[u8], path: &str) -> Vec<(u128, u128)> {
    let fdt = Fdt::new(dtb).unwrap();
    let root = fdt.root().unwrap();
    let node = fdt.find_node(path).unwrap().unwrap();
    let cells = child_cells(&root).unwrap();
    RawReg::new(node.prop("reg").unwrap().unwrap(), cells).unwrap().collect()
}

#[test]
fn identity_rewrite_preserves_everything() {
    for src in [VIRT_GICV3, VIRT_SECURE, FVP_NESTED, MISC_GICV2, TINY] {
        let out = rw(src, &Edits::default());
        assert_eq!(tokens(&out), tokens(src));
        let a = Fdt::new(src).unwrap();
        let b = Fdt::new(&out).unwrap();
        assert_eq!(a.reservations().collect::<Vec<_>>(), b.reservations().collect::<Vec<_>>());
        assert_eq!(b.strings_block(), a.strings_block());
        let h = b.header();
        assert_eq!((h.version, h.last_comp_version), (17, 16));
        assert_eq!(h.boot_cpuid_phys, a.header().boot_cpuid_phys);
        assert_eq!(h.totalsize as usize, out.len());
        // Packed: header, rsvmap, struct, strings, nothing in between.
        assert_eq!(h.off_mem_rsvmap, 40);
        let rsv = 16 * (a.reservations().count() as u32 + 1);
        assert_eq!(h.off_dt_struct, 40 + rsv);
        assert_eq!(h.off_dt_strings, h.off_dt_struct + h.size_dt_struct);
        assert_eq!(h.totalsize, h.off_dt_strings + h.size_dt_strings);

        let mut p1 = Platform::new();
        let mut p2 = Platform::new();
        discover(src, &mut p1).unwrap();
        discover(&out, &mut p2).unwrap();
        // Node offsets can differ (NOPs dropped); everything else must not.
        for u in p1.uarts.iter_mut().chain(p2.uarts.iter_mut()) {
            u.node = 0;
        }
        assert_eq!(p1, p2);
    }
}

#[test]
fn remove_trace_uart_and_its_alias() {
    let out = rw(VIRT_GICV3, &Edits { remove: &["/pl011@9040000"], ..Edits::default() });
    let fdt = Fdt::new(&out).unwrap();
    assert!(fdt.find_node("/pl011@9040000").unwrap().is_none());
    assert!(fdt.find_node("/pl011@9000000").unwrap().is_some());
    let aliases = fdt.find_node("/aliases").unwrap().unwrap();
    assert_eq!(aliases.prop_str("serial0").unwrap(), Some("/pl011@9000000"));
    assert_eq!(aliases.prop("serial1").unwrap(), None);
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert_eq!(p.uarts.len(), 1);
    assert!(p.uarts[0].console);
    assert!(!p.mmio.iter().any(|r| r.contains(0x0904_0000, 0x1000)));
    // Nothing else changed.
    let before = tokens(VIRT_GICV3).len();
    let after = tokens(&out).len();
    let uart_tokens = 2 + 5; // begin/end + 5 properties
    assert_eq!(before - after, uart_tokens + 1 /* alias */);
}

#[test]
fn remove_subtree_with_alias_into_it() {
    let out = rw(
        FVP_NESTED,
        &Edits { remove: &["/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000"], ..Edits::default() },
    );
    let fdt = Fdt::new(&out).unwrap();
    let aliases = fdt.find_node("/aliases").unwrap().unwrap();
    assert_eq!(aliases.props().count(), 0, "both serial aliases pointed into it");
    let mb = fdt.find_node("/bus@8000000/motherboard-bus@8000000").unwrap().unwrap();
    let names: Vec<_> = mb.children().map(|c| c.unwrap().name()).collect();
    assert_eq!(names, ["flash@0,00000000", "ethernet@2,02000000"]);
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert!(p.uarts.is_empty());
}

#[test]
fn remove_errors() {
    let mut out = vec![0u8; 16 * 1024];
    let e = |remove: &[&str], out: &mut [u8]| rewrite(VIRT_GICV3, &Edits { remove, ..Edits::default() }, out);
    assert_eq!(e(&["/nonexistent"], &mut out), Err(FdtError::NotFound));
    let nul = Edits { bootargs: Some("a\0b"), ..Edits::default() };
    assert_eq!(rewrite(VIRT_GICV3, &nul, &mut out), Err(FdtError::BadEdit));
    assert_eq!(e(&["/"], &mut out), Err(FdtError::BadEdit));
    assert_eq!(e(&["pl011@9040000"], &mut out), Err(FdtError::BadPath));
    let many = ["/pl011@9040000"; crate::fdt::rewrite::MAX_REMOVE + 1];
    assert_eq!(e(&many, &mut out), Err(FdtError::Capacity("removed nodes")));
    // Removing the same node twice is fine.
    assert!(e(&["/pl011@9040000", "/pl011@9040000"], &mut out).is_ok());
}

#[test]
fn carve_out_hypervisor_from_ram() {
    let out = rw(VIRT_GICV3, &Edits { carve_out: &[(0x4020_0000, 0x0100_0000)], ..Edits::default() });
    assert_eq!(
        reg_of(&out, "/memory@40000000"),
        [(0x4000_0000, 0x20_0000), (0x4120_0000, 0x8000_0000 - 0x4120_0000)]
    );
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert_eq!(
        p.memory.as_slice(),
        [Region::new(0x4000_0000, 0x20_0000), Region::new(0x4120_0000, 0x3ee0_0000)]
    );
    // No status added for a non-empty node.
    let fdt = Fdt::new(&out).unwrap();
    assert_eq!(fdt.find_node("/memory@40000000").unwrap().unwrap().prop("status").unwrap(), None);
}

#[test]
fn carve_out_edge_cases() {
    // Several cuts, one outside RAM, one at the start, one at the end, one
    // spanning two reg entries of one node.
    let out = rw(
        FVP_NESTED,
        &Edits {
            carve_out: &[
                (0x1000, 0x1000),
                (0x8000_0000, 0x1000),
                (0xfe00_0000, 0x100_0000),
                (0x8_8000_0000 + 0x7fff_f000, 0x1000),
                (0xa_0000_0000, 0), // empty cut: ignored
            ],
            ..Edits::default()
        },
    );
    assert_eq!(reg_of(&out, "/memory@80000000"), [(0x8000_1000, 0x7dff_f000), (0x8_8000_0000, 0x7fff_f000),]);
    assert_eq!(reg_of(&out, "/memory@a00000000"), [(0xa_0000_0000, 0x4000_0000)]);
}

#[test]
fn fully_carved_memory_node_is_disabled() {
    // misc: memory@40000000 has reg + linux,usable-memory, no status;
    // memory@c0000000 already has status = "disabled".
    let out = rw(
        MISC_GICV2,
        &Edits { carve_out: &[(0x4000_0000, 0x2000_0000), (0xc000_0000, 0x1000_0000)], ..Edits::default() },
    );
    let fdt = Fdt::new(&out).unwrap();
    for path in ["/memory@40000000", "/memory@c0000000"] {
        let m = fdt.find_node(path).unwrap().unwrap();
        assert_eq!(m.prop("reg").unwrap(), Some(&[][..]), "{path}");
        assert_eq!(m.prop_str("status").unwrap(), Some("disabled"), "{path}");
        assert_eq!(m.props().filter(|p| p.unwrap().0 == "status").count(), 1);
    }
    let m = fdt.find_node("/memory@40000000").unwrap().unwrap();
    assert_eq!(m.prop("linux,usable-memory").unwrap(), Some(&[][..]));
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert!(p.memory.is_empty());

    // Only usable-memory emptied: still disabled (Linux would use it).
    let out = rw(MISC_GICV2, &Edits { carve_out: &[(0x4000_0000, 0x1000_0000)], ..Edits::default() });
    let fdt = Fdt::new(&out).unwrap();
    let m = fdt.find_node("/memory@40000000").unwrap().unwrap();
    assert_eq!(m.prop_str("status").unwrap(), Some("disabled"));
    assert_eq!(reg_of(&out, "/memory@40000000"), [(0x5000_0000, 0x1000_0000)]);
}

#[test]
fn carve_out_capacity() {
    let cuts: Vec<(u64, u64)> = (0..40u64).map(|i| (0x4000_0000 + i * 0x10_0000, 0x1000)).collect();
    let mut out = vec![0u8; 64 * 1024];
    let r = rewrite(VIRT_GICV3, &Edits { carve_out: &cuts, ..Edits::default() }, &mut out);
    assert_eq!(r, Err(FdtError::Capacity("memory ranges")));
}

#[test]
fn bootargs_replaced_created_removed() {
    // Replaced.
    let out = rw(FVP_NESTED, &Edits { bootargs: Some("console=ttyAMA0 quiet"), ..Edits::default() });
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert_eq!(p.chosen.bootargs, Some("console=ttyAMA0 quiet"));
    assert_eq!(p.chosen.initrd, Some((0x8400_0000, 0x8410_0000)));
    // Removed.
    let out = rw(FVP_NESTED, &Edits { bootargs: Some(""), ..Edits::default() });
    let fdt = Fdt::new(&out).unwrap();
    let chosen = fdt.find_node("/chosen").unwrap().unwrap();
    assert_eq!(chosen.prop("bootargs").unwrap(), None);
    assert_eq!(chosen.prop_str("stdout-path").unwrap(), Some("serial0:115200n8"));
    // Property created in an existing /chosen (QEMU virt has none).
    let out = rw(VIRT_GICV3, &Edits { bootargs: Some("root=/dev/vda"), ..Edits::default() });
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert_eq!(p.chosen.bootargs, Some("root=/dev/vda"));
    assert_eq!(p.chosen.stdout_path, Some("/pl011@9000000"));
    // "bootargs" was not in the strings block: appended, the rest unchanged.
    let a = Fdt::new(VIRT_GICV3).unwrap();
    let b = Fdt::new(&out).unwrap();
    let (sa, sb) = (a.strings_block(), b.strings_block());
    assert_eq!(&sb[..sa.len()], sa);
    assert_eq!(&sb[sa.len()..], b"bootargs\0");
    // Removing a property that does not exist: no-op.
    let out = rw(VIRT_GICV3, &Edits { bootargs: Some(""), ..Edits::default() });
    assert_eq!(tokens(&out), tokens(VIRT_GICV3));
}

#[test]
fn chosen_created_when_absent() {
    let out = rw(TINY, &Edits { bootargs: Some("console=ttyAMA0"), ..Edits::default() });
    let fdt = Fdt::new(&out).unwrap();
    let chosen = fdt.find_node("/chosen").unwrap().unwrap();
    assert_eq!(chosen.prop_str("bootargs").unwrap(), Some("console=ttyAMA0"));
    let root = fdt.root().unwrap();
    let last = root.children().last().unwrap().unwrap();
    assert_eq!(last.name(), "chosen");
    // Also when the source's /chosen is removed by the same edit.
    let out = rw(VIRT_GICV3, &Edits { remove: &["/chosen"], bootargs: Some("x"), ..Edits::default() });
    let fdt = Fdt::new(&out).unwrap();
    let chosen = fdt.find_node("/chosen").unwrap().unwrap();
    assert_eq!(chosen.props().count(), 1);
    assert_eq!(chosen.prop_str("bootargs").unwrap(), Some("x"));
}

#[test]
fn extra_reservations_are_appended() {
    let out = rw(TINY, &Edits { reserve: &[(0x4020_0000, 0x100_0000)], ..Edits::default() });
    let fdt = Fdt::new(&out).unwrap();
    let r: Vec<_> = fdt.reservations().collect();
    assert_eq!(r, [(0x4100_0000, 0x1000), (0x4020_0000, 0x100_0000)]);
}

#[test]
fn all_edits_together() {
    let out = rw(
        VIRT_GICV3,
        &Edits {
            remove: &["/pl011@9040000"],
            carve_out: &[(0x4020_0000, 0x0100_0000)],
            bootargs: Some("console=ttyAMA0 root=/dev/vda"),
            reserve: &[(0x4800_0000, 0x1000)],
            psci: Some("smc"),
            drop_props: &[("/pcie@10000000", "msi-map")],
        },
    );
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert_eq!(p.uarts.len(), 1);
    assert_eq!(p.memory.len(), 2);
    assert_eq!(p.chosen.bootargs, Some("console=ttyAMA0 root=/dev/vda"));
    let fdt = Fdt::new(&out).unwrap();
    assert_eq!(fdt.reservations().collect::<Vec<_>>(), [(0x4800_0000, 0x1000)]);
    let compat = fdt.root().unwrap().prop("compatible").unwrap().unwrap();
    assert!(StrList::new(compat).unwrap().contains("linux,dummy-virt"));
}

#[test]
fn output_too_small_is_an_error_at_every_size() {
    let edits = Edits {
        remove: &["/pl011@9000000"],
        carve_out: &[(0x4000_1000, 0x1000)],
        bootargs: Some("console=ttyAMA0"),
        reserve: &[(0x1000, 0x1000)],
        psci: Some("hvc"),
        drop_props: &[],
    };
    let mut buf = vec![0u8; 4096];
    let n = rewrite(TINY, &edits, &mut buf).unwrap();
    for len in 0..n {
        let mut small = vec![0u8; len];
        assert_eq!(rewrite(TINY, &edits, &mut small), Err(FdtError::OutputTooSmall), "{len}");
    }
    let mut exact = vec![0u8; n];
    assert_eq!(rewrite(TINY, &edits, &mut exact), Ok(n));
    let mut small = vec![0u8; VIRT_GICV3.len() / 2];
    assert_eq!(rewrite(VIRT_GICV3, &Edits::default(), &mut small), Err(FdtError::OutputTooSmall));
}

#[test]
fn output_accepted_by_dtc() {
    use std::process::Command;
    let out = rw(
        VIRT_GICV3,
        &Edits {
            remove: &["/pl011@9040000"],
            carve_out: &[(0x4020_0000, 0x0100_0000)],
            bootargs: Some("console=ttyAMA0 \"quoted\""),
            reserve: &[(0x4800_0000, 0x1000)],
            psci: None,
            drop_props: &[("/pcie@10000000", "msi-map")],
        },
    );
    let emptied = rw(MISC_GICV2, &Edits { carve_out: &[(0, u64::MAX)], ..Edits::default() });
    let secure = rw(VIRT_SECURE, &Edits { psci: Some("smc"), ..Edits::default() });
    let tiny = rw(TINY, &Edits { psci: Some("hvc"), bootargs: Some("x"), ..Edits::default() });
    let dir = std::env::temp_dir();
    for (name, blob) in [("virt", &out), ("emptied", &emptied), ("secure", &secure), ("tiny", &tiny)] {
        let path = dir.join(std::format!("porwatch-fdt-test-{}-{name}.dtb", std::process::id()));
        std::fs::write(&path, blob).unwrap();
        let res = Command::new("dtc").args(["-I", "dtb", "-O", "dts"]).arg(&path).output();
        if std::env::var_os("PORWATCH_KEEP_DTB").is_none() {
            let _ = std::fs::remove_file(&path);
        }
        let res = match res {
            Ok(r) => r,
            Err(e) => panic!(
                "cannot run `dtc` ({e}): install device-tree-compiler \
                 (apt-get install device-tree-compiler); this test needs it"
            ),
        };
        let dts = String::from_utf8_lossy(&res.stdout);
        assert!(
            res.status.success(),
            "dtc rejected the rewritten {name} DTB: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        if name == "virt" {
            assert!(dts.contains("/memreserve/\t0x0000000048000000 0x0000000000001000;"), "{dts}");
            assert!(dts.contains("bootargs = \"console=ttyAMA0 \\\"quoted\\\"\";"), "{dts}");
            assert!(
                dts.contains("reg = <0x00 0x40000000 0x00 0x200000 0x00 0x41200000 0x00 0x3ee00000>;"),
                "{dts}"
            );
            assert!(!dts.contains("pl011@9040000"), "{dts}");
        } else if name == "emptied" {
            assert!(dts.contains("status = \"disabled\";"), "{dts}");
        } else {
            let method = if name == "secure" { "smc" } else { "hvc" };
            // dtc 1.6 (Debian 12) prints a string list as one string with
            // \0 separators, dtc 1.7 (Debian 13) as a list: either is right.
            let nodes = ["\"arm,psci-1.0\\0arm,psci-0.2\"", "\"arm,psci-1.0\", \"arm,psci-0.2\""]
                .map(|c| std::format!("\tpsci {{\n\t\tcompatible = {c};\n\t\tmethod = \"{method}\";\n\t}};"));
            assert!(nodes.iter().any(|n| dts.contains(n.as_str())), "{nodes:?}\n{dts}");
        }
    }
}

#[test]
fn psci_node_added_when_absent() {
    use crate::fdt::platform::{Psci, PsciMethod, PsciVersion};
    let mut before = Platform::new();
    discover(VIRT_SECURE, &mut before).unwrap();
    assert_eq!(before.psci, None, "QEMU's secure=on tree has no PSCI node");
    let out = rw(VIRT_SECURE, &Edits { psci: Some("smc"), ..Edits::default() });
    let mut after = Platform::new();
    discover(&out, &mut after).unwrap();
    assert_eq!(
        after.psci,
        Some(Psci { method: PsciMethod::Smc, version: PsciVersion::V1_0, compatible: "arm,psci-1.0" })
    );
    let fdt = Fdt::new(&out).unwrap();
    let node = fdt.find_node("/psci").unwrap().unwrap();
    let compat: Vec<&str> = StrList::new(node.prop("compatible").unwrap().unwrap()).unwrap().collect();
    assert_eq!(compat, ["arm,psci-1.0", "arm,psci-0.2"]);
    // Nothing else changed: the tokens are the source's plus the new node,
    // just before the root's end.
    let (src, new) = (tokens(VIRT_SECURE), tokens(&out));
    assert_eq!(new.len(), src.len() + 4);
    let root_end = src.iter().rposition(|t| t.1 == "end" && t.0 == 0).unwrap();
    assert_eq!(new[..root_end], src[..root_end]);
    assert_eq!(new[root_end + 4..], src[root_end..]);
    assert_eq!(new[root_end].1, "begin psci");
    // "compatible" is reused from the source's strings block; "method"
    // (no node of the secure tree has one) is appended.
    let mut strings = Fdt::new(VIRT_SECURE).unwrap().strings_block().to_vec();
    strings.extend_from_slice(b"method\0");
    assert_eq!(fdt.strings_block(), strings);
    after.psci = None;
    for u in before.uarts.iter_mut().chain(after.uarts.iter_mut()) {
        u.node = 0;
    }
    assert_eq!(before, after);

    // hvc, and names missing from the source's strings are appended.
    let out = rw(TINY, &Edits { psci: Some("hvc"), ..Edits::default() });
    let mut p = Platform::new();
    discover(&out, &mut p).unwrap();
    assert_eq!(p.psci.map(|p| p.method), Some(PsciMethod::Hvc));
}

#[test]
fn existing_psci_node_is_kept_and_bad_methods_refused() {
    // QEMU's non-secure tree has /psci (method "smc", with 0.1 IDs): kept.
    let out = rw(VIRT_GICV3, &Edits { psci: Some("hvc"), ..Edits::default() });
    assert_eq!(tokens(&out), tokens(VIRT_GICV3));
    let mut out = vec![0u8; VIRT_SECURE.len() + 4096];
    for bad in ["", "SMC", "svc", "smc\0"] {
        let e = rewrite(VIRT_SECURE, &Edits { psci: Some(bad), ..Edits::default() }, &mut out);
        assert_eq!(e, Err(FdtError::BadEdit), "{bad:?}");
    }
}
