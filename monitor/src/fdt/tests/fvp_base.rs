//! The Arm FVP Base RevC device tree as Debian ships it
//! (testdata/fvp-base-revc.dtb, see testdata/README.md): what porwatch
//! finds in it, and the edits it makes before handing it to a guest.
use super::*;
use crate::fdt::platform::{GicVersion, PsciMethod, PsciVersion, Timer};
use crate::fdt::{discover, rewrite, Edits, Platform, Region};
use std::vec;

const G: u64 = 1 << 30;
const IOFPGA: &str = "/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000";

fn platform(dtb: &[u8]) -> Platform<'_> {
    let mut p = Platform::new();
    discover(dtb, &mut p).unwrap();
    p
}

#[test]
fn fvp_base_revc_memory_uarts_gic_psci_timer() {
    let p = platform(FVP_BASE_REVC);
    // Two clusters (Aff1) of four cores: reg = MPIDR affinity, 2 cells.
    assert_eq!(p.cpus.as_slice(), [0x0, 0x100, 0x200, 0x300, 0x1_0000, 0x1_0100, 0x1_0200, 0x1_0300]);
    assert_eq!(p.cpus_listed, 8);
    // DRAM0 (2 GiB at 0x8000_0000) and DRAM1's first 2 GiB.
    assert_eq!(p.memory.as_slice(), [Region::new(0x8000_0000, 2 * G), Region::new(0x8_8000_0000, 2 * G)]);

    // The four PL011s of the motherboard's IOFPGA, through three levels of ranges.
    assert_eq!(p.uarts.len(), 4);
    for (i, u) in p.uarts.iter().enumerate() {
        let base = 0x1c09_0000 + 0x1_0000 * i as u64;
        assert_eq!(u.regs, Region::new(base, 0x1000), "uart{i}");
        assert_eq!(u.path.as_str(), std::format!("{IOFPGA}/serial@{:x}", 0x9_0000 + 0x1_0000 * i));
        assert!(p.mmio_covers(base, 0x1000), "uart{i} is guest MMIO");
    }
    // The kernel's DTB has an empty /chosen: no stdout-path, so no console
    // until the loader (scripts/run-fvp) adds one.
    assert_eq!(p.chosen.stdout_path, None);
    assert_eq!(p.chosen.bootargs, None);
    assert!(p.console().is_none());
    assert_eq!(p.uart_by_path(&std::format!("{IOFPGA}/serial@a0000")).unwrap().regs.base, 0x1c0a_0000);

    let gic = p.gic.as_ref().unwrap();
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.dist, Region::new(0x2f00_0000, 0x1_0000));
    assert_eq!(gic.redist.as_slice(), [Region::new(0x2f10_0000, 0x20_0000)]);
    assert_eq!(gic.cpu, Some(Region::new(0x2c00_0000, 0x2000)));
    assert_eq!(gic.hyp, Some(Region::new(0x2c01_0000, 0x2000)));
    assert_eq!(gic.vcpu, Some(Region::new(0x2c02_f000, 0x2000)));
    assert_eq!(gic.interrupt_cells, 3);
    assert!(p.mmio_covers(0x2f00_0000, 0x1_0000), "GICD");
    assert!(p.mmio_covers(0x2f10_0000, 0x20_0000), "GICR");
    assert!(p.mmio_covers(0x2f02_0000, 0x2_0000), "ITS");

    let psci = p.psci.unwrap();
    assert_eq!(psci.method, PsciMethod::Smc);
    assert_eq!(psci.version, PsciVersion::V0_2);

    // interrupts = <1 13 8>, <1 14 8>, <1 11 8>, <1 10 8>: PPI n is INTID 16 + n.
    assert_eq!(
        p.timer,
        Some(Timer {
            secure_phys: 29,
            phys: 30,
            virt: 27,
            hyp_phys: 26,
            hyp_virt: None,
            clock_frequency: None
        })
    );

    assert!(!p.mmio.iter().any(|r| r.contains(0x8000_0000, 0x1000)), "RAM is not MMIO");
    for r in &p.mmio {
        assert!(!p.overlaps_memory(r.base, r.size), "mmio {r:x?} overlaps RAM");
    }
}

#[test]
fn fvp_base_revc_rewrite_removes_a_uart_and_carves_out_hyp() {
    let trace = std::format!("{IOFPGA}/serial@a0000");
    let remove = [trace.as_str()];
    // porwatch loaded at 0x8008_0000 (scripts/run-fvp), 16 MiB reserved.
    let carve = [(0x8008_0000, 0x100_0000)];
    // An EL3 direct start asks for a /psci node only when there is none:
    // the FVP tree has one, which stays as it is.
    let edits = Edits {
        remove: &remove,
        carve_out: &carve,
        bootargs: Some("console=ttyAMA0"),
        reserve: &[],
        psci: platform(FVP_BASE_REVC).psci.is_none().then_some("smc"),
        drop_props: &[],
    };
    let mut out = vec![0u8; FVP_BASE_REVC.len() + 4096];
    let n = rewrite(FVP_BASE_REVC, &edits, &mut out).unwrap();
    out.truncate(n);

    let p = platform(&out);
    assert_eq!(p.uarts.len(), 3);
    assert!(p.uart_by_base(0x1c0a_0000).is_none(), "trace UART removed");
    assert!(p.uart_by_base(0x1c09_0000).is_some());
    assert!(p.uart_by_base(0x1c0b_0000).is_some());
    assert_eq!(
        p.memory.as_slice(),
        [
            Region::new(0x8000_0000, 0x8_0000),
            Region::new(0x8108_0000, 2 * G - 0x108_0000),
            Region::new(0x8_8000_0000, 2 * G),
        ]
    );
    assert_eq!(p.chosen.bootargs, Some("console=ttyAMA0"));
    assert_eq!(p.gic.as_ref().unwrap().dist.base, 0x2f00_0000);
    assert_eq!(p.psci, platform(FVP_BASE_REVC).psci);
}
