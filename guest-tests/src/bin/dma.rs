//! A hostile guest with a DMA engine: QEMU's `edu` PCI device
//! (`-device edu,dma_mask=0xffffffffffffffff`; its default mask keeps DMA
//! below 256 MiB). It programs the device by hand to read and write what
//! its CPU may not: porwatch's code, the hidden trace UART, a page table
//! porwatch keeps read-only. Each attempt must leave that memory as it was
//! (what porwatch reports about it, `smmu_event` records, is checked by the
//! integration test). A DMA into its own RAM must work: the SMMU translates,
//! it does not just block.
//!
//! Command line: `dma.expect=smmu` (PCIe behind porwatch's SMMU, the
//! default) or `dma.expect=hidden` (no SMMU: PCIe must be absent from the
//! tree and its ECAM unmapped); `dma.vector_offset=N`: offset of
//! porwatch's EL2 vector table's lower-EL sync entry from its base (the
//! test reads it from porwatch-hyp.elf).
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use porwatch_guest_tests::exceptions::expect_sync;
use porwatch_guest_tests::{cmdline, mmu, println, smccc, Boot};
use porwatch_monitor::fdt::{self, Fdt};

const EC_DABT_CUR: u64 = 0x25;
const FSC_SYNC_EXTERNAL: u64 = 0x10;

/// QEMU virt's high PCIe ECAM (VIRT_HIGH_PCIE_ECAM) and its second PL011
/// (the trace UART porwatch hides): where an attacker that ignores the
/// device tree aims.
const VIRT_ECAM: u64 = 0x40_1000_0000;
const VIRT_TRACE_UART: u64 = 0x0904_0000;

/// PCI configuration space (type 0 header).
const PCI_VENDOR_DEVICE: usize = 0x00;
const PCI_COMMAND: usize = 0x04;
const PCI_BAR0: usize = 0x10;
const PCI_COMMAND_MEMORY: u32 = 1 << 1;
const PCI_COMMAND_MASTER: u32 = 1 << 2;
/// ECAM: 1 MiB per bus, 32 KiB per device, 4 KiB per function.
const ECAM_DEVICE_SHIFT: u32 = 15;
const PCI_DEVICES_PER_BUS: u64 = 32;
const PCI_DEVFN_SHIFT: u32 = 3;

/// QEMU's edu device (docs/specs/edu.rst): vendor 0x1234, device 0x11e8.
const EDU_ID: u32 = 0x11e8_1234;
const EDU_IDENT: usize = 0x00;
const EDU_IDENT_VALUE: u32 = 0x0100_00ed;
const EDU_LIVENESS: usize = 0x04;
const EDU_DMA_SRC: usize = 0x80;
const EDU_DMA_DST: usize = 0x88;
const EDU_DMA_COUNT: usize = 0x90;
const EDU_DMA_CMD: usize = 0x98;
const EDU_DMA_RUN: u64 = 1 << 0;
/// Direction bit: 0 = RAM to the device's buffer, 1 = buffer to RAM.
const EDU_DMA_TO_RAM: u64 = 1 << 1;
/// The device's 4 KiB DMA buffer, in its own address space.
const EDU_BUF: u64 = 0x4_0000;
const EDU_BUF_SIZE: u64 = 4096;
/// A DMA takes 100 ms of virtual time (edu_dma_timer); give it 10 s.
const DMA_POLLS: u32 = 100_000_000;
/// Bytes per attack: QEMU's SMMU reports a faulting DMA once per 4-byte
/// access; a few suffice (zeroing 4 bytes of porwatch's vectors used to
/// take it down through fw_cfg).
const ATTACK_BYTES: u64 = 16;
/// Enough of porwatch's image to include the Image header's magic.
const PEEK_BYTES: u64 = 0x40;

/// The arm64 Image header magic "ARM\x64" at offset 0x38 of porwatch's
/// image: what a successful DMA read of porwatch's memory would return.
const IMAGE_MAGIC_OFFSET: usize = 0x38 / 8;
const IMAGE_MAGIC: u32 = 0x644d_5241;

#[repr(C, align(4096))]
struct Page(UnsafeCell<[u64; 512]>);
unsafe impl Sync for Page {}

impl Page {
    const fn new() -> Self {
        Page(UnsafeCell::new([0; 512]))
    }
    fn pa(&self) -> u64 {
        self.0.get() as u64
    }
    fn word(&self, i: usize) -> u64 {
        unsafe { (self.0.get() as *const u64).add(i).read_volatile() }
    }
    fn set(&self, i: usize, v: u64) {
        unsafe { (self.0.get() as *mut u64).add(i).write_volatile(v) }
    }
    fn fill(&self, f: impl Fn(usize) -> u64) {
        for i in 0..512 {
            self.set(i, f(i));
        }
    }
}

static SRC: Page = Page::new();
static DST: Page = Page::new();

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments) {
        if ok {
            println!("dma: {}: ok ({})", name, detail);
        } else {
            println!("dma: {}: FAIL ({})", name, detail);
            self.failed += 1;
        }
    }
}

/// porwatch reads its SMMU's event queue at a trap (at most once a
/// millisecond; a DMA takes 100 ms): after each attack, trap once so the
/// queue cannot overflow with the next one.
fn let_porwatch_poll() {
    let _ = smccc::smc(smccc::PSCI_VERSION, 0, 0, 0);
}

fn rd32(a: u64) -> u32 {
    unsafe { (a as *const u32).read_volatile() }
}
fn wr32(a: u64, v: u32) {
    unsafe { (a as *mut u32).write_volatile(v) }
}
fn wr64(a: u64, v: u64) {
    unsafe { (a as *mut u64).write_volatile(v) }
}
fn rd64(a: u64) -> u64 {
    unsafe { (a as *const u64).read_volatile() }
}

/// The edu device, its BAR0 mapped at `bar`.
struct Edu {
    bar: u64,
}

impl Edu {
    /// One transfer; returns false if it never completed.
    fn dma(&self, src: u64, dst: u64, len: u64, to_ram: bool) -> bool {
        wr64(self.bar + EDU_DMA_SRC as u64, src);
        wr64(self.bar + EDU_DMA_DST as u64, dst);
        wr64(self.bar + EDU_DMA_COUNT as u64, len);
        wr64(self.bar + EDU_DMA_CMD as u64, EDU_DMA_RUN | if to_ram { EDU_DMA_TO_RAM } else { 0 });
        (0..DMA_POLLS).any(|_| rd64(self.bar + EDU_DMA_CMD as u64) & EDU_DMA_RUN == 0)
    }
    fn to_device(&self, ram: u64, len: u64) -> bool {
        self.dma(ram, EDU_BUF, len, false)
    }
    fn to_ram(&self, ram: u64, len: u64) -> bool {
        self.dma(EDU_BUF, ram, len, true)
    }
}

/// The PCIe host bridge of the tree: (ECAM base, 32-bit memory window base,
/// has iommu-map, has msi-map).
fn pcie(dtb: &[u8]) -> Option<(u64, u64, bool, bool)> {
    let f = Fdt::new(dtb).ok()?;
    let mut w = f.walk();
    while let Ok(Some(n)) = w.next_node() {
        if !n.is_compatible("pci-host-ecam-generic").unwrap_or(false) {
            continue;
        }
        let mut s = fdt::dma::Survey::new();
        fdt::dma::survey(dtb, &mut s).ok()?;
        let d = s.devices.iter().find(|d| d.kind == fdt::dma::DmaKind::PciHost)?;
        // ECAM first, then the windows; the 32-bit window is below 4 GiB.
        let ecam = d.regions.first()?.base;
        let mmio = d.regions.iter().skip(1).find(|r| r.size >= 1 << 20 && r.base < 1 << 32)?.base;
        let iommu = n.prop("iommu-map").ok()?.is_some();
        let msi = n.prop("msi-map").ok()?.is_some() || n.prop("msi-parent").ok()?.is_some();
        return Some((ecam, mmio, iommu, msi));
    }
    None
}

/// porwatch's memory: right above the end of the tree's RAM (porwatch
/// moves to the top of RAM and `/memory` stops below it).
fn hyp_base(dtb: &[u8]) -> Option<u64> {
    let mut plat = fdt::Platform::new();
    fdt::discover(dtb, &mut plat).ok()?;
    plat.memory.iter().map(|m| m.base + m.size).max()
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut c = Checks { failed: 0 };
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("dma: FAIL: cannot parse the device tree");
        return 1;
    }
    let args = plat.chosen.bootargs.unwrap_or("");
    let expect_hidden = cmdline::value(args, "dma.expect") == Some("hidden");

    let found = pcie(boot.dtb);
    if expect_hidden {
        c.check("pcie-not-in-tree", found.is_none(), format_args!("{:x?}", found));
        // The ECAM where QEMU puts it: unmapped, an external abort.
        let r = expect_sync(|| {
            let _ = rd32(VIRT_ECAM);
        });
        c.check(
            "ecam-unmapped",
            matches!(r, Some(e) if e.ec() == EC_DABT_CUR && e.fsc() == FSC_SYNC_EXTERNAL && e.far == VIRT_ECAM),
            format_args!("{:x?}", r),
        );
        println!("dma: {} check(s) failed", c.failed);
        return c.failed;
    }

    let Some((ecam, mmio, iommu_map, msi_map)) = found else {
        println!("dma: FAIL: no PCIe host bridge in the device tree");
        return 1;
    };
    c.check(
        "pcie-tree-coherent",
        !iommu_map && !msi_map,
        format_args!("ecam={:#x} mmio={:#x} iommu-map={} msi={}", ecam, mmio, iommu_map, msi_map),
    );
    let Some(hyp) = hyp_base(boot.dtb) else {
        println!("dma: FAIL: no RAM in the memory map");
        return 1;
    };
    let vector = cmdline::value(args, "dma.vector_offset").and_then(cmdline::parse_u64).map(|o| hyp + o);

    // Bus 0: find edu.
    let Some(dev) = (0..PCI_DEVICES_PER_BUS).find(|d| rd32(ecam + (d << ECAM_DEVICE_SHIFT)) == EDU_ID) else {
        println!("dma: FAIL: no edu device on bus 0 (-device edu,dma_mask=0xffffffffffffffff)");
        return 1;
    };
    let cfg = ecam + (dev << ECAM_DEVICE_SHIFT);
    let sid = dev << PCI_DEVFN_SHIFT;
    println!("dma: edu at 00:{:02x}.0 sid={:#x}", dev, sid);
    let _ = rd32(cfg + PCI_VENDOR_DEVICE as u64);
    wr32(cfg + PCI_BAR0 as u64, mmio as u32);
    wr32(cfg + PCI_COMMAND as u64, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    let edu = Edu { bar: mmio };
    let ident = rd32(edu.bar + EDU_IDENT as u64);
    wr32(edu.bar + EDU_LIVENESS as u64, 0x1234_5678);
    let live = rd32(edu.bar + EDU_LIVENESS as u64);
    c.check(
        "edu-responds",
        ident == EDU_IDENT_VALUE && live == !0x1234_5678,
        format_args!("ident={:#x} liveness={:#x}", ident, live),
    );

    // 1. Its own RAM: a round trip through the device must work.
    SRC.fill(|i| 0xd0d0_0000_0000_0000 | i as u64);
    DST.fill(|_| 0);
    let ok = edu.to_device(SRC.pa(), EDU_BUF_SIZE) && edu.to_ram(DST.pa(), EDU_BUF_SIZE);
    let same = (0..512).all(|i| DST.word(i) == SRC.word(i));
    c.check("dma-guest-ram", ok && same, format_args!("{:#x} -> device -> {:#x}", SRC.pa(), DST.pa()));

    // 2. porwatch's code: its Image header, and (given) its lower-EL sync
    // vector, overwritten with zeros. The SMMU's stage 2 has no mapping
    // there: the writes are dropped and porwatch keeps running (its image
    // digest is checked when the guest stops).
    SRC.fill(|_| 0);
    let mut done = edu.to_device(SRC.pa(), EDU_BUF_SIZE);
    for target in [Some(hyp), vector].into_iter().flatten() {
        done &= edu.to_ram(target, ATTACK_BYTES);
        let_porwatch_poll();
        println!("dma: target write-hyp {:#x} {}", target, ATTACK_BYTES);
    }
    c.check(
        "dma-write-hyp-completed",
        done,
        format_args!("the device reports completion; porwatch must survive"),
    );

    // 3. Reading porwatch's memory: the device must not get its Image
    // header (magic "ARM\x64" at 0x38).
    SRC.fill(|_| 0x5a5a_5a5a_5a5a_5a5a);
    let mut done = edu.to_device(SRC.pa(), EDU_BUF_SIZE);
    done &= edu.dma(hyp, EDU_BUF, PEEK_BYTES, false);
    let_porwatch_poll();
    println!("dma: target read-hyp {:#x} {}", hyp, PEEK_BYTES);
    DST.fill(|_| 0);
    done &= edu.to_ram(DST.pa(), EDU_BUF_SIZE);
    let magic = DST.word(IMAGE_MAGIC_OFFSET) as u32;
    c.check(
        "dma-read-hyp",
        done && magic != IMAGE_MAGIC,
        format_args!("device read {:#x} from {:#x}+0x38", magic, hyp),
    );

    // 4. The hidden trace UART: one byte into its data register would
    // corrupt the trace (the integration test checks it decodes clean).
    SRC.fill(|_| 0x41);
    let done = edu.to_device(SRC.pa(), 8) && edu.to_ram(VIRT_TRACE_UART, 4);
    let_porwatch_poll();
    println!("dma: target write-trace-uart {:#x} 4", VIRT_TRACE_UART);
    c.check("dma-write-trace-uart", done, format_args!("issued at {:#x}", VIRT_TRACE_UART));

    // 5. A page table porwatch keeps read-only: build one, hand it to the
    // CPU (TCR_EL1, TTBR0_EL1, MMU still off), then DMA over it. The device
    // may read it, not write it. An upper-level table: under
    // porwatch.leaves=open (the default) a last-level one is left writable,
    // for the CPU and devices alike, while no overlay is on.
    let mut s = mmu::Setup::new();
    let va = SRC.pa();
    s.map_page(va, va, mmu::PROT_DATA);
    let l2 = s.table_for(va, 2);
    let slot = mmu::index(va, 2);
    let before: [u64; 4] = core::array::from_fn(|i| mmu::read_desc(l2, slot + i));
    let tcr = mmu::tcr_value();
    unsafe {
        core::arch::asm!("msr tcr_el1, {t}", "msr ttbr0_el1, {r}", "isb", t = in(reg) tcr, r = in(reg) s.ttbr0);
    }
    // The write first: QEMU 10's SMMU does not record a permission fault
    // that hits its TLB (it blames stage 1, whose recording is off), and
    // the read would put the page in its TLB.
    DST.fill(|_| 0xbad0_bad0_bad0_bad0);
    let target = l2 + 8 * slot as u64;
    let done = edu.to_device(DST.pa(), EDU_BUF_SIZE) && edu.to_ram(target, ATTACK_BYTES);
    let_porwatch_poll();
    println!("dma: target write-page-table {:#x} {}", target, ATTACK_BYTES);
    let after: [u64; 4] = core::array::from_fn(|i| mmu::read_desc(l2, slot + i));
    c.check(
        "dma-write-page-table",
        done && after == before,
        format_args!("table {:#x} descriptor {:#x} -> {:#x}", l2, before[0], after[0]),
    );

    let done = edu.dma(l2, EDU_BUF, EDU_BUF_SIZE, false);
    DST.fill(|_| 0);
    let done = done && edu.to_ram(DST.pa(), EDU_BUF_SIZE);
    let desc = DST.word(slot);
    c.check(
        "dma-read-page-table",
        done && desc == before[0] && desc != 0,
        format_args!("device read descriptor {:#x} of table {:#x}", desc, l2),
    );

    // 6. Unlink the table (a CPU store to its parent, which porwatch
    // emulates): porwatch stops protecting the page, and the SMMU must
    // forget that it was read-only (the read above put that in its TLB).
    let l1 = s.table_for(va, 1);
    unsafe { ((l1 + 8 * mmu::index(va, 1) as u64) as *mut u64).write_volatile(0) };
    SRC.fill(|i| 0x0def_aced_0000_0000 | i as u64);
    let done = edu.to_device(SRC.pa(), EDU_BUF_SIZE) && edu.to_ram(target, ATTACK_BYTES);
    let landed = (0..(ATTACK_BYTES / 8) as usize).all(|i| rd64(target + 8 * i as u64) == SRC.word(i));
    c.check(
        "dma-write-released-table",
        done && landed,
        format_args!("{:#x} now holds {:#x}", target, rd64(target)),
    );
    println!("dma: {} check(s) failed", c.failed);
    c.failed
}
