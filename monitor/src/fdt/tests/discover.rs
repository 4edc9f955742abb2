use super::*;
use crate::fdt::address::{translate, RegIter};
use crate::fdt::platform::{GicVersion, PsciMethod, PsciVersion, Timer};
use crate::fdt::{discover, Fdt, FdtError, Platform, Region};
use std::vec::Vec;

const G: u64 = 1 << 30;

fn check_no_ram_in_mmio(p: &Platform<'_>) {
    for r in &p.mmio {
        assert!(!p.overlaps_memory(r.base, r.size), "mmio {r:x?} overlaps RAM");
    }
    for w in p.mmio.windows(2) {
        assert!(w[0].end() < u128::from(w[1].base), "not sorted/merged: {w:x?}");
    }
    for r in &p.mmio {
        assert_eq!(r.base % 4096, 0);
        assert_eq!(r.size % 4096, 0);
    }
}

#[test]
fn qemu_virt_gicv3() {
    let mut p = Platform::new();
    discover(VIRT_GICV3, &mut p).unwrap();
    assert_eq!(p.memory.as_slice(), [Region::new(0x4000_0000, G)]);
    // One cpu node (cpu-map is not one).
    assert_eq!(p.cpus.as_slice(), [0]);
    assert_eq!(p.cpus_listed, 1);

    assert_eq!(p.uarts.len(), 2);
    assert_eq!(p.uarts[0].path.as_str(), "/pl011@9000000");
    assert_eq!(p.uarts[0].regs, Region::new(0x0900_0000, 0x1000));
    assert!(p.uarts[0].console);
    assert_eq!(p.uarts[1].path.as_str(), "/pl011@9040000");
    assert_eq!(p.uarts[1].regs, Region::new(0x0904_0000, 0x1000));
    assert!(!p.uarts[1].console);
    assert_eq!(p.console().unwrap().regs.base, 0x0900_0000);
    assert_eq!(p.uart_by_path("/pl011@9040000").unwrap().regs.base, 0x0904_0000);
    assert_eq!(p.uart_by_base(0x0904_0000).unwrap().path.as_str(), "/pl011@9040000");

    let gic = p.gic.as_ref().unwrap();
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.dist, Region::new(0x0800_0000, 0x1_0000));
    assert_eq!(gic.redist.as_slice(), [Region::new(0x080a_0000, 0xf6_0000)]);
    assert_eq!(gic.cpu, None);
    assert_eq!(gic.interrupt_cells, 3);

    let psci = p.psci.unwrap();
    assert_eq!(psci.method, PsciMethod::Smc);
    assert_eq!(psci.version, PsciVersion::V1_0);
    assert_eq!(psci.compatible, "arm,psci-1.0");

    assert_eq!(
        p.timer,
        Some(Timer {
            secure_phys: 29,
            phys: 30,
            virt: 27,
            hyp_phys: 26,
            hyp_virt: Some(28),
            clock_frequency: None
        })
    );

    assert_eq!(p.chosen.stdout_path, Some("/pl011@9000000"));
    assert_eq!(p.chosen.bootargs, None);
    assert_eq!(p.chosen.initrd, None);

    // Stage-2 device list.
    assert!(p.mmio_covers(0x0800_0000, 0x1_0000), "GICD");
    assert!(p.mmio_covers(0x080a_0000, 0xf6_0000), "GICR");
    assert!(p.mmio_covers(0x0808_0000, 0x2_0000), "ITS");
    assert!(p.mmio_covers(0x0900_0000, 0x1000), "UART0");
    assert!(p.mmio_covers(0x0904_0000, 0x1000), "UART1");
    assert!(p.mmio_covers(0x0a00_0000, 0x4000), "virtio-mmio");
    assert!(p.mmio_covers(0x40_1000_0000, 0x1000_0000), "PCIe ECAM");
    assert!(p.mmio_covers(0x3eff_0000, 0x1_0000), "PCI I/O window");
    assert!(p.mmio_covers(0x1000_0000, 0x2eff_0000), "PCI 32-bit window");
    assert!(p.mmio_covers(0x80_0000_0000, 0x80_0000_0000), "PCI 64-bit window");
    assert!(p.mmio_covers(0, 0x0800_0000), "flash");
    assert!(!p.mmio_covers(0x0c00_0000, 0x1000), "platform bus has no reg");
    check_no_ram_in_mmio(&p);
    // Flash + GICD merge, ITS + GICR + UART0 merge, virtio devices merge.
    assert_eq!(p.mmio[0], Region::new(0, 0x0801_0000));
    assert_eq!(p.mmio[1], Region::new(0x0808_0000, 0x0900_1000 - 0x0808_0000));
    assert_eq!(p.untranslatable, 0);
}

#[test]
fn qemu_virt_secure_ignores_secure_only_nodes() {
    let mut p = Platform::new();
    discover(VIRT_SECURE, &mut p).unwrap();
    // The Secure-only memory@e000000 (secram) is disabled: not RAM, not MMIO.
    assert_eq!(p.memory.as_slice(), [Region::new(0x4000_0000, G)]);
    assert!(!p.mmio.iter().any(|r| r.contains(0x0e00_0000, 0x1000)));
    // Only the Non-secure UART.
    assert_eq!(p.uarts.len(), 1);
    assert_eq!(p.uarts[0].regs.base, 0x0900_0000);
    assert!(p.uarts[0].console);
    assert!(p.uart_by_base(0x0904_0000).is_none());
    assert!(!p.mmio.iter().any(|r| r.contains(0x0904_0000, 0x1000)));
    // Secure GPIO and Secure flash are not passed through either.
    assert!(!p.mmio.iter().any(|r| r.contains(0x090b_0000, 0x1000)));
    assert!(!p.mmio.iter().any(|r| r.contains(0, 0x1000)));
    assert!(p.mmio_covers(0x0400_0000, 0x0400_0000), "NS flash");
    // QEMU adds no PSCI node with secure=on (the firmware provides it).
    assert!(p.psci.is_none());
    assert_eq!(p.gic.as_ref().unwrap().dist.base, 0x0800_0000);
    assert_eq!(p.chosen.stdout_path, Some("/pl011@9000000"));
    check_no_ram_in_mmio(&p);
}

#[test]
fn fvp_nested_ranges() {
    let mut p = Platform::new();
    discover(FVP_NESTED, &mut p).unwrap();
    assert_eq!(p.uarts.len(), 2, "the UART under the disabled sub-bus is absent");
    assert_eq!(
        p.uarts[0].path.as_str(),
        "/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/uart@90000"
    );
    assert_eq!(p.uarts[0].regs, Region::new(0x1c09_0000, 0x1000));
    assert!(p.uarts[0].console, "stdout-path = serial0:115200n8");
    assert_eq!(p.uarts[1].regs, Region::new(0x1c0a_0000, 0x1000));
    assert!(!p.uarts[1].console);

    assert_eq!(
        p.memory.as_slice(),
        [
            Region::new(0x8000_0000, 0x7f00_0000),
            Region::new(0x8_8000_0000, 0x8000_0000),
            Region::new(0xa_0000_0000, 0x4000_0000),
        ]
    );

    let gic = p.gic.as_ref().unwrap();
    assert_eq!(gic.version, GicVersion::V3);
    assert_eq!(gic.dist, Region::new(0x2f00_0000, 0x1_0000));
    assert_eq!(
        gic.redist.as_slice(),
        [Region::new(0x2f10_0000, 0x10_0000), Region::new(0x2f30_0000, 0x10_0000)]
    );
    assert_eq!(gic.cpu, Some(Region::new(0x2c00_0000, 0x2000)));
    assert_eq!(gic.hyp, Some(Region::new(0x2c01_0000, 0x2000)));
    assert_eq!(gic.vcpu, Some(Region::new(0x2c02_f000, 0x2000)));

    let psci = p.psci.unwrap();
    assert_eq!(psci.method, PsciMethod::Hvc);
    assert_eq!(psci.version, PsciVersion::V0_2);
    assert_eq!(p.timer.unwrap().hyp_virt, None);
    assert_eq!(p.timer.unwrap().phys, 30);
    assert_eq!(p.timer.unwrap().clock_frequency, Some(100_000_000));

    assert_eq!(p.chosen.bootargs, Some("console=ttyAMA0 porwatch.guest=0x88000000 earlycon"));
    assert_eq!(p.chosen.initrd, Some((0x8400_0000, 0x8410_0000)));
    assert_eq!(p.chosen.stdout_path, Some("serial0:115200n8"));

    assert!(p.mmio_covers(0x0800_0000, 0x0400_0000), "flash, cs0");
    assert!(p.mmio_covers(0x1a00_0000, 0x1_0000), "ethernet, cs2");
    assert!(p.mmio_covers(0x1c16_0000, 0x1000), "i2c controller");
    assert!(!p.mmio.iter().any(|r| r.contains(0x1c18_0000, 0x1000)), "disabled sub-bus");
    assert!(p.mmio_covers(0x4000_0000, 0x1000_0000), "ECAM");
    assert!(p.mmio_covers(0x5f80_0000, 0x80_0000), "PCI I/O");
    assert!(p.mmio_covers(0x5000_0000, 0x0800_0000), "PCI mem");
    assert!(p.mmio_covers(0x40_0000_0000, 0x1_0000_0000), "PCI prefetchable 64-bit");
    assert!(p.mmio_covers(0x2f02_0000, 0x2_0000), "ITS");
    assert!(!p.mmio.iter().any(|r| r.contains(0xff00_0000, 0x1000)), "reserved-memory");
    // rtc@68 (I2C, no ranges) and the PCI function (config space) are not translatable.
    assert_eq!(p.untranslatable, 2);
    check_no_ram_in_mmio(&p);
}

#[test]
fn translate_through_each_level() {
    let fdt = Fdt::new(FVP_NESTED).unwrap();
    let chain =
        fdt.locate("/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/uart@90000").unwrap().unwrap();
    let c = chain.as_slice();
    // In the iofpga bus: 0x90000; motherboard: <3 0x90000>; bus: 0x14090000.
    assert_eq!(translate(&fdt, &c[..4], 0x9_0000).unwrap(), 0x1c09_0000);
    assert_eq!(translate(&fdt, &c[..3], (3 << 32) | 0x9_0000).unwrap(), 0x1c09_0000);
    assert_eq!(translate(&fdt, &c[..2], 0x1409_0000).unwrap(), 0x1c09_0000);
    assert_eq!(translate(&fdt, &c[..1], 0x1409_0000).unwrap(), 0x1409_0000);
    // Chip select 1 is not mapped by the motherboard bus.
    assert_eq!(translate(&fdt, &c[..3], 1 << 32), Err(FdtError::NotTranslatable));
    // Past the end of the iofpga window.
    assert_eq!(translate(&fdt, &c[..4], 0x20_0000), Err(FdtError::NotTranslatable));
    let regs: Vec<_> = RegIter::of_node(&fdt, c).unwrap().unwrap().collect();
    assert_eq!(regs, [Ok(Region::new(0x1c09_0000, 0x1000))]);

    let rtc = fdt
        .locate("/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000/i2c@160000/rtc@68")
        .unwrap()
        .unwrap();
    let regs: Vec<_> = RegIter::of_node(&fdt, rtc.as_slice()).unwrap().unwrap().collect();
    assert_eq!(regs, [Err(FdtError::NotTranslatable)]);
}

#[test]
fn gicv2_one_cell_bus_psci01_initrd32() {
    let mut p = Platform::new();
    discover(MISC_GICV2, &mut p).unwrap();
    let gic = p.gic.as_ref().unwrap();
    assert_eq!(gic.version, GicVersion::V2);
    assert_eq!(gic.dist, Region::new(0x1010_0000, 0x1000));
    assert_eq!(gic.cpu, Some(Region::new(0x1010_2000, 0x2000)));
    assert_eq!(gic.hyp, Some(Region::new(0x1010_4000, 0x2000)));
    assert_eq!(gic.vcpu, Some(Region::new(0x1010_6000, 0x2000)));
    assert!(gic.redist.is_empty());

    // linux,usable-memory wins over reg; the disabled node is skipped.
    assert_eq!(p.memory.as_slice(), [Region::new(0x4000_0000, 0x1000_0000)]);

    // "ok" and "okay" are enabled, "fail" is not.
    assert_eq!(p.uarts.len(), 2);
    assert_eq!(p.uarts[0].path.as_str(), "/soc@10000000/serial@1000");
    assert_eq!(p.uarts[0].regs, Region::new(0x1000_1000, 0x100));
    assert!(p.uarts[0].console, "full path with :options");
    assert!(!p.uarts[1].console);
    assert!(!p.mmio.iter().any(|r| r.contains(0x1000_3000, 0x100)));
    // 0x100-byte UARTs rounded out to pages.
    assert!(p.mmio_covers(0x1000_1000, 0x2000));

    let psci = p.psci.unwrap();
    assert_eq!((psci.method, psci.version), (PsciMethod::Smc, PsciVersion::V0_1));
    assert_eq!(psci.compatible, "arm,psci");
    assert_eq!(p.timer.unwrap().hyp_virt, Some(28));
    assert_eq!(p.chosen.initrd, Some((0x4800_0000, 0x4820_0000)));
    assert_eq!(p.chosen.bootargs, Some("root=/dev/vda \"quoted arg\" porwatch.trace=none"));
}

#[test]
fn discover_clears_previous_contents() {
    let mut p = Platform::new();
    discover(VIRT_GICV3, &mut p).unwrap();
    discover(TINY, &mut p).unwrap();
    assert_eq!(p.uarts.len(), 1);
    assert!(!p.uarts[0].console, "no /chosen in tiny");
    assert!(p.gic.is_none() && p.psci.is_none() && p.timer.is_none());
    assert_eq!(p.memory.as_slice(), [Region::new(0x4000_0000, 0x800_0000)]);
    assert_eq!(p.mmio.as_slice(), [Region::new(0x0900_0000, 0x1000)]);
}

#[test]
fn alias_loop_and_bad_cells_are_errors() {
    let mut p = Platform::new();
    assert_eq!(discover(ALIAS_LOOP, &mut p), Err(FdtError::BadPath));
    assert_eq!(discover(BAD_CELLS, &mut p), Err(FdtError::BadCells(5)));
    assert_eq!(discover(DEEP, &mut p), Err(FdtError::TooDeep));
}

#[test]
fn mmio_merge_and_capacity() {
    let mut p = Platform::new();
    p.add_mmio(Region::new(0x3000, 0x10)).unwrap();
    p.add_mmio(Region::new(0x1000, 0x1000)).unwrap();
    p.add_mmio(Region::new(0x5001, 0x1)).unwrap();
    assert_eq!(
        p.mmio.as_slice(),
        [Region::new(0x1000, 0x1000), Region::new(0x3000, 0x1000), Region::new(0x5000, 0x1000)]
    );
    // Adjacent to the first, bridging to the second.
    p.add_mmio(Region::new(0x2000, 0x1000)).unwrap();
    assert_eq!(p.mmio.as_slice(), [Region::new(0x1000, 0x3000), Region::new(0x5000, 0x1000)]);
    // Covering everything.
    p.add_mmio(Region::new(0x800, 0x8000)).unwrap();
    assert_eq!(p.mmio.as_slice(), [Region::new(0, 0x9000)]);
    // Zero size: ignored.
    p.add_mmio(Region::new(0x10_0000, 0)).unwrap();
    assert_eq!(p.mmio.len(), 1);
    // Top of the address space.
    p.add_mmio(Region::new(u64::MAX - 0xfff, 0x1000)).unwrap();
    assert_eq!(p.mmio.last(), Some(&Region::new(u64::MAX - 0xfff, 0x1000)));

    let mut p = Platform::new();
    for i in 0..64u64 {
        p.add_mmio(Region::new(i * 0x2000, 0x1000)).unwrap();
    }
    assert_eq!(p.add_mmio(Region::new(0x100_0000, 0x1000)), Err(FdtError::Capacity("mmio regions")));
    // Merging into existing entries still works when full.
    p.add_mmio(Region::new(0x1000, 0x1000)).unwrap();
    assert_eq!(p.mmio.len(), 63);
}
