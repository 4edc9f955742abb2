//! No DMA past stage 2. The `dma` guest programs QEMU's `edu` PCI device
//! (a DMA engine) by hand to write porwatch's vectors and Image header, read
//! porwatch's memory, write the hidden trace UART and a page table porwatch
//! keeps read-only. Under `porwatch run` the PCIe root complex is behind an
//! SMMUv3 porwatch programs with the guest's stage 2: every attempt must
//! fail, be reported as an `smmu_event` record, and leave porwatch and its
//! trace intact (the hyp checks its image digest at exit: a change is exit
//! 70). Without an SMMU, PCIe must be hidden altogether.
mod common;
use common::*;
use porwatch::OwnedRecord;

/// QEMU's edu device with a DMA mask that reaches all of RAM (its default
/// keeps transfers below 256 MiB, where there is no RAM on virt).
const EDU: &str = "edu,dma_mask=0xffffffffffffffff";

/// The offset of porwatch's lower-EL AArch64 synchronous vector in its
/// image (VBAR_EL2 + 0x400), from porwatch-hyp.elf: the entry the fw_cfg
/// attack used to zero.
fn hyp_sync_vector_offset() -> u64 {
    const LOWER_EL_SYNC: u64 = 0x400;
    let syms = porwatch::symbols::Symbols::load(&images().join("porwatch-hyp.elf")).unwrap();
    syms.address_of("el2_vectors").expect("el2_vectors in porwatch-hyp.elf") + LOWER_EL_SYNC
}

fn dma_args(extra: &[&str], append: &str) -> porwatch::run::RunArgs {
    let mut a = args("dma");
    a.qemu_args = extra.iter().map(|s| s.to_string()).collect();
    a.append = Some(append.to_string());
    a.timeout = Some(120);
    a
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("not hex: {s}"))
}

/// "dma: target KIND ADDR LEN" console lines.
fn targets(console: &str) -> Vec<(String, u64, u64)> {
    console
        .lines()
        .filter_map(|l| l.strip_prefix("dma: target "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[0].to_string(), hex(w[1]), w[2].parse().unwrap())
        })
        .collect()
}

fn assert_trace_truthful(o: &Outcome) {
    assert!(o.stats.is_clean(), "trace not clean: {:?}", o.stats);
    assert_consecutive(&o.records);
    assert_eq!(o.of_kind("header").count(), 1, "a forged restart header");
    for k in ["hazard", "dropped", "panic", "coverage_gap"] {
        assert_eq!(o.of_kind(k).count(), 0, "{k} records: {:#?}", o.records);
    }
    assert!(!o.console.contains("exception at EL2"), "console:\n{}", o.console);
    assert_eq!(o.records.last().unwrap().get_enum("reason"), Some("test_exit"));
}

#[test]
fn device_dma_behind_the_smmu_cannot_reach_porwatch() {
    let vec = hyp_sync_vector_offset();
    let o = run_guest(dma_args(&["-device", EDU], &format!("dma.vector_offset={vec:#x}")));
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    for check in [
        "pcie-tree-coherent",
        "edu-responds",
        "dma-guest-ram",
        "dma-write-hyp-completed",
        "dma-read-hyp",
        "dma-write-trace-uart",
        "dma-write-page-table",
        "dma-read-page-table",
        "dma-write-released-table",
    ] {
        assert!(o.console.contains(&format!("dma: {check}: ok")), "{check}; console:\n{}", o.console);
    }
    assert!(o.console.contains("dma: 0 check(s) failed"), "console:\n{}", o.console);
    assert_trace_truthful(&o);

    // The device's StreamID is its requester ID.
    let sid = o
        .console
        .lines()
        .find_map(|l| l.strip_prefix("dma: edu at ").and_then(|l| l.split_once("sid=")).map(|(_, s)| hex(s)))
        .expect("edu's sid on the console");
    let hyp = o.records[0].get_u64("hyp_base").unwrap();
    let t = targets(&o.console);
    let kinds: Vec<&str> = t.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds, ["write-hyp", "write-hyp", "read-hyp", "write-trace-uart", "write-page-table"]);
    assert_eq!((t[0].1, t[1].1, t[2].1), (hyp, hyp + vec, hyp));
    let events: Vec<&OwnedRecord> = o.of_kind("smmu_event").collect();
    assert_eq!(events.len(), t.len(), "one record per attack: {events:#?}");
    for ((kind, addr, len), e) in t.iter().zip(&events) {
        let reason = if kind == "write-page-table" { "f_permission" } else { "f_translation" };
        let write = u64::from(kind.starts_with("write"));
        assert_eq!(e.get_u64("sid"), Some(sid), "{kind}: {e:?}");
        assert_eq!(e.get_enum("reason"), Some(reason), "{kind}: {e:?}");
        assert_eq!(e.get_u64("addr"), Some(*addr), "{kind}: {e:?}");
        assert_eq!(e.get_u64("write"), Some(write), "{kind}: {e:?}");
        // QEMU: one event per 4-byte access, folded into one record.
        assert_eq!(e.get_u64("count"), Some(len / 4), "{kind}: {e:?}");
        assert_eq!(e.get_u64("last"), Some(addr + len - 4), "{kind}: {e:?}");
    }

    // What the guest could not see: fw_cfg, the SMMU, the ITS, virtio-mmio
    // (and the trace UART); PCIe stays (its ECAM is passed through).
    let regions: Vec<(u64, u64, &str)> = o
        .of_kind("mem_region")
        .map(|r| (r.get_u64("base").unwrap(), r.get_u64("size").unwrap(), r.get_enum("kind").unwrap()))
        .collect();
    for base in [0x902_0000, 0x905_0000, 0x808_0000, 0xa00_0000, 0x904_0000] {
        assert!(regions.iter().any(|&(b, _, k)| b == base && k == "hidden_mmio"), "{base:#x}: {regions:x?}");
    }
    let ecam = 0x40_1000_0000;
    assert!(
        regions.iter().any(|&(b, s, k)| k == "mmio" && b <= ecam && ecam < b + s),
        "ECAM mapped: {regions:x?}"
    );
}

#[test]
fn without_an_smmu_pcie_is_hidden_from_the_guest() {
    // A virt machine without iommu=smmuv3 (as another launcher would start).
    let o = run_guest(dma_args(&["-M", "iommu=none", "-device", EDU], "dma.expect=hidden"));
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    for check in ["pcie-not-in-tree", "ecam-unmapped"] {
        assert!(o.console.contains(&format!("dma: {check}: ok")), "{check}; console:\n{}", o.console);
    }
    assert_trace_truthful(&o);
    assert_eq!(o.of_kind("smmu_event").count(), 0);
    let ecam = 0x40_1000_0000;
    let hidden = o.of_kind("mem_region").any(|r| {
        let (b, s) = (r.get_u64("base").unwrap(), r.get_u64("size").unwrap());
        r.get_enum("kind") == Some("hidden_mmio") && b <= ecam && ecam < b + s
    });
    assert!(hidden, "ECAM hidden: {:#?}", o.records);
    let unknown: Vec<_> = o.of_kind("unknown_trap").collect();
    assert_eq!(unknown.len(), 1, "{unknown:#?}");
    assert_eq!(ec(unknown[0].get_u64("esr").unwrap()), 0x24);
    assert_eq!(unknown[0].get_u64("far"), Some(ecam));
    assert_eq!(unknown[0].get_enum("action"), Some("abort_injected"));
}

#[test]
fn an_smmu_without_stage_2_is_refused_and_pcie_hidden() {
    // virt-9.1 and older create the SMMUv3 with stage 1 only.
    let o = run_guest(dma_args(&["-M", "virt-9.1", "-device", EDU], "dma.expect=hidden"));
    assert_eq!(o.status, 0, "console:\n{}", o.console);
    assert!(
        o.console.contains("SMMUv3 at 0x9050000 cannot confine DMA (no stage 2): PCI hidden"),
        "{}",
        o.console
    );
    for check in ["pcie-not-in-tree", "ecam-unmapped"] {
        assert!(o.console.contains(&format!("dma: {check}: ok")), "{check}; console:\n{}", o.console);
    }
    assert_trace_truthful(&o);
    assert_eq!(o.of_kind("smmu_event").count(), 0);
}

/// QEMU's virtio devices bypass every IOMMU unless `iommu_platform=on`;
/// `porwatch run` sets it for all of them, and a transitional device (which
/// cannot have it) does not start at all: QEMU refuses, porwatch never runs.
#[test]
fn a_virtio_device_that_would_bypass_the_smmu_does_not_start() {
    let run = |device: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_porwatch"))
            .args(["run", "--guest", "hello", "--images"])
            .arg(images())
            .args(["--timeout", "60", "--", "-device", device])
            .output()
            .unwrap()
    };
    let refused = run("virtio-rng-pci");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_ne!(refused.status.code(), Some(0), "{err}");
    assert!(err.contains("VIRTIO_F_IOMMU_PLATFORM"), "{err}");
    let ok = run("virtio-rng-pci,disable-legacy=on");
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
}
