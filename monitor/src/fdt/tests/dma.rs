//! DMA isolation: the survey of bus masters, the decision with and without
//! porwatch's SMMU, the guest tree that results, and the stage-2 holes.
use super::*;
use crate::fdt::address::Region;
use crate::fdt::dma::{self, subtract, Decision, DmaKind, Survey};
use crate::fdt::{discover, rewrite, Edits, Fdt, Platform};
use std::string::String;
use std::vec;
use std::vec::Vec;

fn survey_of(dtb: &[u8]) -> Survey {
    let mut s = Survey::new();
    dma::survey(dtb, &mut s).unwrap();
    s
}

fn kinds(s: &Survey) -> Vec<(String, DmaKind)> {
    s.devices.iter().map(|d| (String::from(d.path.as_str()), d.kind)).collect()
}

fn find<'a>(s: &'a Survey, path: &str) -> &'a dma::DmaDevice {
    s.devices.iter().find(|d| d.path.as_str() == path).unwrap_or_else(|| panic!("{path} not surveyed"))
}

fn apply(src: &[u8], d: &Decision<'_>) -> Vec<u8> {
    let mut out = vec![0u8; src.len() + 4096];
    let edits = Edits { remove: &d.remove, drop_props: &d.drop_props, ..Edits::default() };
    let n = rewrite(src, &edits, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn qemu_virt_with_smmu_lists_every_bus_master() {
    let s = survey_of(VIRT_SMMU);
    let k = kinds(&s);
    assert_eq!(k.iter().filter(|(_, k)| *k == DmaKind::VirtioMmio).count(), 32);
    for (path, kind) in [
        ("/fw-cfg@9020000", DmaKind::FwCfg),
        ("/smmuv3@9050000", DmaKind::Smmu),
        ("/pcie@10000000", DmaKind::PciHost),
        ("/intc@8000000/its@8080000", DmaKind::GicIts),
    ] {
        assert!(k.contains(&(path.into(), kind)), "{path}: {k:?}");
    }
    assert_eq!(k.len(), 36, "nothing else (UARTs, RTC, GPIO, flash, GIC, root): {k:?}");
    assert_eq!(find(&s, "/fw-cfg@9020000").regions.as_slice(), &[Region::new(0x902_0000, 0x18)]);
    let pcie = find(&s, "/pcie@10000000");
    // ECAM, then I/O, 32-bit and 64-bit windows.
    assert_eq!(
        pcie.regions.as_slice(),
        &[
            Region::new(0x40_1000_0000, 0x1000_0000),
            Region::new(0x3eff_0000, 0x1_0000),
            Region::new(0x1000_0000, 0x2eff_0000),
            Region::new(0x80_0000_0000, 0x80_0000_0000),
        ]
    );
    let smmu = find(&s, "/smmuv3@9050000");
    assert_eq!(pcie.iommu, smmu.phandle);
    assert_eq!(pcie.msi, find(&s, "/intc@8000000/its@8080000").phandle);
    let i = s.smmu_for_pci().unwrap();
    assert_eq!(s.devices[i].path.as_str(), "/smmuv3@9050000");
    assert_eq!(s.devices[i].regions.as_slice(), &[Region::new(0x905_0000, 0x2_0000)]);
}

#[test]
fn with_the_smmu_running_pcie_stays_without_iommu_or_msi_bindings() {
    let s = survey_of(VIRT_SMMU);
    let mut d = Decision::default();
    s.decide(s.smmu_for_pci(), &mut d).unwrap();
    assert_eq!(d.protected, 1);
    assert_eq!(d.remove.len(), 35);
    assert!(!d.remove.contains(&"/pcie@10000000"));
    for p in ["/fw-cfg@9020000", "/smmuv3@9050000", "/intc@8000000/its@8080000", "/virtio_mmio@a003e00"] {
        assert!(d.remove.contains(&p), "{p}");
    }
    for p in ["iommu-map", "iommu-map-mask", "msi-map", "msi-map-mask", "msi-parent"] {
        assert!(d.drop_props.contains(&("/pcie@10000000", p)), "{p}: {:?}", d.drop_props);
    }
    assert!(d.hidden.contains(&Region::new(0x902_0000, 0x18)));
    assert!(d.hidden.contains(&Region::new(0x905_0000, 0x2_0000)));
    assert!(d.hidden.contains(&Region::new(0x808_0000, 0x2_0000)));
    assert!(!d.hidden.contains(&Region::new(0x40_1000_0000, 0x1000_0000)));

    let guest = apply(VIRT_SMMU, &d);
    let fdt = Fdt::new(&guest).unwrap();
    for gone in ["/fw-cfg@9020000", "/smmuv3@9050000", "/intc@8000000/its@8080000", "/virtio_mmio@a000000"] {
        assert!(fdt.find_node(gone).unwrap().is_none(), "{gone}");
    }
    let pcie = fdt.find_node("/pcie@10000000").unwrap().unwrap();
    assert!(pcie.prop("iommu-map").unwrap().is_none());
    assert!(pcie.prop("msi-map").unwrap().is_none());
    assert!(pcie.prop("dma-coherent").unwrap().is_some(), "only the bindings go");
    assert!(pcie.prop("interrupt-map").unwrap().is_some(), "INTx stays");
    assert!(fdt.find_node("/intc@8000000").unwrap().is_some(), "the GIC stays");
    // A second survey of the guest's tree finds only the PCIe bridge, now
    // without an IOMMU: nothing the guest sees does DMA unconfined.
    let again = survey_of(&guest);
    assert_eq!(kinds(&again), vec![(String::from("/pcie@10000000"), DmaKind::PciHost)]);
    assert_eq!(again.devices[0].iommu, None);
    // The guest's platform: no fw_cfg or virtio MMIO in it.
    let mut p = Platform::new();
    discover(&guest, &mut p).unwrap();
    assert!(!p.mmio_covers(0x902_0000, 0x18));
    assert!(!p.mmio_covers(0xa00_0000, 0x200));
    assert!(p.mmio_covers(0x40_1000_0000, 0x1000_0000));
}

#[test]
fn without_an_smmu_pcie_is_hidden_too() {
    let s = survey_of(VIRT_SMMU);
    let mut d = Decision::default();
    s.decide(None, &mut d).unwrap();
    assert_eq!((d.protected, d.remove.len()), (0, 36));
    assert!(d.drop_props.is_empty());
    assert!(d.hidden.contains(&Region::new(0x40_1000_0000, 0x1000_0000)));
    assert!(d.hidden.contains(&Region::new(0x80_0000_0000, 0x80_0000_0000)));
    let guest = apply(VIRT_SMMU, &d);
    assert!(survey_of(&guest).devices.is_empty());

    // Plain virt (no iommu=smmuv3): no SMMU to take, PCIe has no iommu-map.
    let plain = survey_of(VIRT_GICV3);
    assert_eq!(plain.smmu_for_pci(), None);
    assert_eq!(find(&plain, "/pcie@10000000").iommu, None);
    let mut d = Decision::default();
    plain.decide(plain.smmu_for_pci(), &mut d).unwrap();
    assert!(d.remove.contains(&"/pcie@10000000") && d.remove.contains(&"/fw-cfg@9020000"));
    // An index that is not an SMMU protects nothing.
    let mut d = Decision::default();
    s.decide(Some(0), &mut d).unwrap();
    assert_eq!(d.protected, 0);
}

#[test]
fn fvp_base_revc() {
    let s = survey_of(FVP_BASE_REVC);
    let k = kinds(&s);
    let bus = "/bus@8000000/motherboard-bus@8000000/iofpga-bus@300000000";
    for (path, kind) in [
        (std::format!("{bus}/virtio@130000"), DmaKind::VirtioMmio),
        (std::format!("{bus}/virtio@150000"), DmaKind::VirtioMmio),
        (std::format!("{bus}/clcd@1f0000"), DmaKind::Other),
        ("/pci@40000000".into(), DmaKind::PciHost),
        ("/iommu@2b400000".into(), DmaKind::Smmu),
        ("/interrupt-controller@2f000000/msi-controller@2f020000".into(), DmaKind::GicIts),
    ] {
        assert!(k.contains(&(path.clone(), kind)), "{path}: {k:?}");
    }
    assert!(
        !k.iter().any(|(p, _)| p.contains("ethernet") || p.contains("mmc@") || p.contains("serial")),
        "{k:?}"
    );
    assert!(!k.iter().any(|(p, _)| p.contains("virtio@200000")), "disabled: {k:?}");
    let i = s.smmu_for_pci().unwrap();
    assert_eq!(s.devices[i].path.as_str(), "/iommu@2b400000");
    // The FVP's virtio transports sit behind two bus translations.
    assert_eq!(
        find(&s, &std::format!("{bus}/virtio@130000")).regions.as_slice(),
        &[Region::new(0x1c13_0000, 0x200)]
    );
}

#[test]
fn edge_cases() {
    let s = survey_of(DMA_EDGE);
    let k = kinds(&s);
    assert_eq!(
        k,
        vec![
            ("/iommu@9050000".into(), DmaKind::Smmu),
            ("/iommu@9070000".into(), DmaKind::Smmu),
            ("/pcie@10000000".into(), DmaKind::PciHost),
            ("/pcie@20000000".into(), DmaKind::PciHost),
            ("/dma-controller@9080000".into(), DmaKind::Other),
            ("/serial@9090000".into(), DmaKind::Other),
            ("/clcd@90a0000".into(), DmaKind::Other),
        ],
        "not: the root, /chosen, the v2m frame, the disabled virtio, the RTC, the PCI child node"
    );
    // Two entries covering all requester IDs: one IOMMU. A partial map: none.
    assert_eq!(find(&s, "/pcie@10000000").iommu, find(&s, "/iommu@9050000").phandle);
    assert_eq!(find(&s, "/pcie@20000000").iommu, None);
    // One bridge not fully behind an SMMU: none is taken for PCI.
    assert_eq!(s.smmu_for_pci(), None);
    // If porwatch ran smmu_a anyway, only the fully covered bridge stays,
    // and its msi-parent (a GICv2m frame, kept) stays with it.
    let mut d = Decision::default();
    s.decide(Some(0), &mut d).unwrap();
    assert_eq!(d.protected, 1);
    assert!(d.remove.contains(&"/pcie@20000000"));
    assert_eq!(
        d.drop_props.as_slice(),
        &[("/pcie@10000000", "iommu-map"), ("/pcie@10000000", "iommu-map-mask")]
    );
    let guest = apply(DMA_EDGE, &d);
    let fdt = Fdt::new(&guest).unwrap();
    let pcie = fdt.find_node("/pcie@10000000").unwrap().unwrap();
    assert!(pcie.prop("msi-parent").unwrap().is_some());
    assert!(fdt.find_node("/pcie@10000000/ethernet@0,0").unwrap().is_some());
    assert!(fdt.find_node("/v2m@8020000").unwrap().is_some());
    assert!(fdt.find_node("/rtc@90b0000").unwrap().is_some());
}

#[test]
fn drop_props_of_a_missing_node_is_an_error() {
    let mut out = vec![0u8; VIRT_SMMU.len() + 4096];
    let e = Edits { drop_props: &[("/no-such-node", "reg")], ..Edits::default() };
    assert_eq!(rewrite(VIRT_SMMU, &e, &mut out), Err(crate::fdt::FdtError::NotFound));
    // A property the node does not have: nothing changes.
    let e = Edits { drop_props: &[("/pl011@9000000", "no-such-prop")], ..Edits::default() };
    let n = rewrite(VIRT_SMMU, &e, &mut out).unwrap();
    let m = rewrite(VIRT_SMMU, &Edits::default(), &mut vec![0u8; VIRT_SMMU.len() + 4096]).unwrap();
    assert_eq!(n, m);
}

fn pieces(ranges: &[Region], holes: &[Region]) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    subtract(ranges, holes, 0x1000, |s, e| v.push((s, e)));
    v
}

#[test]
fn subtract_rounds_holes_out_to_pages() {
    let r = [Region::new(0x900_0000, 0x5_0000)];
    assert_eq!(pieces(&r, &[]), vec![(0x900_0000, 0x905_0000)]);
    // fw_cfg: 0x18 bytes take their whole page.
    assert_eq!(
        pieces(&r, &[Region::new(0x902_0000, 0x18)]),
        vec![(0x900_0000, 0x902_0000), (0x902_1000, 0x905_0000)]
    );
    // Overlapping and unordered holes, one at each end, one outside.
    assert_eq!(
        pieces(
            &r,
            &[
                Region::new(0x904_0000, 0x1000),
                Region::new(0x900_0800, 0x10),
                Region::new(0x902_0000, 0x1000),
                Region::new(0x902_0800, 0x2000),
                Region::new(0x1000_0000, 0x1000),
                Region::new(0x903_0000, 0),
            ]
        ),
        vec![(0x900_1000, 0x902_0000), (0x902_3000, 0x904_0000), (0x904_1000, 0x905_0000)]
    );
    // A hole covering everything.
    assert!(pieces(&r, &[Region::new(0x800_0000, 0x1000_0000)]).is_empty());
    // Several ranges.
    let rs = [Region::new(0x1000, 0x2000), Region::new(0x10_0000, 0x1000)];
    assert_eq!(pieces(&rs, &[Region::new(0x2000, 0x1000)]), vec![(0x1000, 0x2000), (0x10_0000, 0x10_1000)]);
}

#[test]
fn merged_holes_for_the_trace() {
    let s = survey_of(VIRT_SMMU);
    let mut d = Decision::default();
    s.decide(s.smmu_for_pci(), &mut d).unwrap();
    let mut v = Vec::new();
    dma::merged(&d.hidden, 0x1000, |s, e| v.push((s, e))).unwrap();
    // The ITS, fw_cfg, the SMMU, and the 32 virtio transports (0x200 apart:
    // four pages).
    assert_eq!(
        v,
        vec![
            (0x808_0000, 0x80a_0000),
            (0x902_0000, 0x902_1000),
            (0x905_0000, 0x907_0000),
            (0xa00_0000, 0xa00_4000)
        ]
    );
    let mut v = Vec::new();
    dma::merged(
        &[Region::new(0x3000, 0x10), Region::new(0x1000, 0x1000), Region::new(0x2000, 0)],
        0x1000,
        |s, e| v.push((s, e)),
    )
    .unwrap();
    assert_eq!(
        v,
        vec![(0x1000, 0x2000), (0x3000, 0x4000)],
        "apart ranges stay apart; empty holes are ignored"
    );
}
