use super::*;
use crate::fdt::reader::{name_matches, StrList, Token, MAX_DEPTH};
use crate::fdt::{Fdt, FdtError};
use std::vec::Vec;

#[test]
fn header_of_qemu_tree() {
    let fdt = Fdt::new(VIRT_GICV3).unwrap();
    let h = fdt.header();
    assert_eq!(h.magic, 0xd00d_feed);
    assert_eq!(h.totalsize as usize, VIRT_GICV3.len());
    assert_eq!(h.version, 17);
    assert_eq!(fdt.reservations().count(), 0);
}

#[test]
fn reservations_are_read() {
    let fdt = Fdt::new(TINY).unwrap();
    let r: Vec<_> = fdt.reservations().collect();
    assert_eq!(r, [(0x4100_0000, 0x1000)]);
}

#[test]
fn token_walk_is_balanced_and_reports_depth() {
    let fdt = Fdt::new(TINY).unwrap();
    let toks: Vec<_> = fdt.tokens().map(|t| t.unwrap()).collect();
    assert_eq!(toks[0].token, Token::BeginNode(""));
    assert_eq!(toks[0].depth, 0);
    assert_eq!(toks.last().unwrap().token, Token::End);
    let begins = toks.iter().filter(|t| matches!(t.token, Token::BeginNode(_))).count();
    let ends = toks.iter().filter(|t| t.token == Token::EndNode).count();
    assert_eq!(begins, 4);
    assert_eq!(begins, ends);
    let reg = toks.iter().find(|t| matches!(t.token, Token::Prop { name: "reg", .. })).unwrap();
    assert_eq!(reg.depth, 1);
}

#[test]
fn find_node_and_props() {
    let fdt = Fdt::new(VIRT_GICV3).unwrap();
    let uart = fdt.find_node("/pl011@9040000").unwrap().unwrap();
    assert_eq!(uart.name(), "pl011@9040000");
    assert_eq!(uart.base_name(), "pl011");
    assert!(uart.is_compatible("arm,pl011").unwrap());
    assert!(uart.is_compatible("arm,primecell").unwrap());
    assert!(!uart.is_compatible("arm,pl01").unwrap());
    let compat = StrList::new(uart.prop("compatible").unwrap().unwrap()).unwrap();
    assert_eq!(compat.collect::<Vec<_>>(), ["arm,pl011", "arm,primecell"]);
    assert!(uart.prop("nonexistent").unwrap().is_none());

    // Unit address may be omitted, like libfdt.
    let psci = fdt.find_node("/psci").unwrap().unwrap();
    assert_eq!(psci.prop_str("method").unwrap(), Some("smc"));
    let its = fdt.find_node("/intc/its").unwrap().unwrap();
    assert_eq!(its.name(), "its@8080000");
    assert!(fdt.find_node("/intc@8000000/nope").unwrap().is_none());
    assert!(fdt.find_node("/pl011@9040001").unwrap().is_none());
    assert_eq!(fdt.find_node("/").unwrap().unwrap().name(), "");
    assert_eq!(fdt.find_node("relative").err(), Some(FdtError::BadPath));
    let cpu = fdt.find_node("/cpus/cpu@0").unwrap().unwrap();
    assert_eq!(cpu.prop_u32("reg").unwrap(), Some(0));
}

#[test]
fn children_iteration() {
    let fdt = Fdt::new(VIRT_GICV3).unwrap();
    let cpus = fdt.find_node("/cpus").unwrap().unwrap();
    let names: Vec<_> = cpus.children().map(|c| c.unwrap().name()).collect();
    assert_eq!(names, ["cpu-map", "cpu@0"]);
    let root = fdt.root().unwrap();
    let n = root.children().count();
    assert!(n > 40, "{n}");
    let leaf = fdt.find_node("/pl011@9000000").unwrap().unwrap();
    assert_eq!(leaf.children().count(), 0);
}

#[test]
fn walker_tracks_ancestors_and_paths() {
    let fdt = Fdt::new(FVP_NESTED).unwrap();
    let mut w = fdt.walk();
    let mut found = false;
    while let Some(n) = w.next_node().unwrap() {
        if n.name() == "uart@90000" {
            let mut p: heapless::String<128> = heapless::String::new();
            fdt.write_path(w.chain(), &mut p).unwrap();
            assert_eq!(p.as_str(), "/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/uart@90000");
            assert_eq!(w.chain().len(), 5);
            let mut small: heapless::String<16> = heapless::String::new();
            assert_eq!(fdt.write_path(w.chain(), &mut small), Err(FdtError::PathTooLong));
            found = true;
        }
    }
    assert!(found);
    let chain = fdt.locate("/bus@8000000/motherboard-bus/iofpga-bus/uart@a0000").unwrap().unwrap();
    assert_eq!(chain.as_slice().len(), 5);
}

#[test]
fn aliases_resolve() {
    let fdt = Fdt::new(VIRT_GICV3).unwrap();
    assert_eq!(fdt.alias("serial1").unwrap(), Some("/pl011@9040000"));
    assert_eq!(fdt.alias("serial9").unwrap(), None);
    let fdt = Fdt::new(ALIAS_LOOP).unwrap();
    assert_eq!(fdt.alias("serial0"), Err(FdtError::BadPath));
}

#[test]
fn name_matching() {
    assert!(name_matches("chosen", "chosen"));
    assert!(name_matches("memory@40000000", "memory"));
    assert!(!name_matches("memory@40000000", "memory@4"));
    assert!(!name_matches("memoryx", "memory"));
    assert!(!name_matches("mem", "memory"));
}

#[test]
fn depth_limit() {
    assert_eq!(MAX_DEPTH, 32);
    assert_eq!(Fdt::new(DEEP).err(), Some(FdtError::TooDeep));
}
