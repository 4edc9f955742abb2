//! A hostile guest: touches what porwatch must refuse and checks that it gets
//! the exception or error code the architecture (or SMCCC) prescribes.
#![no_std]
#![no_main]

use core::arch::asm;
use core::cell::UnsafeCell;
use porwatch_guest_tests::exceptions::expect_sync;
use porwatch_guest_tests::{gicv3, println, smccc, Boot};
use porwatch_monitor::fdt;

const EC_UNKNOWN: u64 = 0x00;
const EC_DABT_CUR: u64 = 0x25;
const FSC_SYNC_EXTERNAL: u64 = 0x10;
const ESR_WNR: u64 = 1 << 6;
const VECTOR_SYNC_EL1H: u64 = 4;
const PSCI_DENIED: i64 = -3;
const PSCI_INVALID_ADDRESS: i64 = -9;

/// QEMU virt's fw_cfg (hw/arm/virt.c VIRT_FW_CFG): data at +0, selector at
/// +8, DMA address (big-endian, 64-bit) at +16. Writing the DMA address
/// starts a transfer that reads and writes any physical address.
const FW_CFG: usize = 0x0902_0000;
const FW_CFG_DMA: usize = FW_CFG + 0x10;
/// QEMU virt's first virtio-mmio transport (VIRT_MMIO): a DMA-capable device.
const VIRTIO_MMIO: usize = 0x0a00_0000;
/// Bus masters porwatch hides (or keeps only behind its SMMU): none of
/// these may be in the guest's device tree.
const HIDDEN_COMPATIBLE: [&str; 4] = ["qemu,fw-cfg-mmio", "virtio,mmio", "arm,smmu-v3", "arm,gic-v3-its"];

struct Checks {
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments) {
        if ok {
            println!("hostile: {}: ok ({})", name, detail);
        } else {
            println!("hostile: {}: FAIL ({})", name, detail);
            self.failed += 1;
        }
    }
}

/// GICv3 redistributor LPI registers (RD_base frame): the redistributor
/// reads and writes the LPI property and pending tables they point at, in
/// memory, on its own.
const GICR_CTLR: usize = 0x0000;
const GICR_CTLR_ENABLE_LPIS: u32 = 1 << 0;
const GICR_PROPBASER: usize = 0x0070;
const GICR_PENDBASER: usize = 0x0078;
/// PROPBASER.IDbits = 13: INTIDs up to 2^14, LPIs 8192..16383.
const LPI_ID_BITS: u64 = 13;
const LPI_FIRST: u32 = 8192;
/// LPI configuration byte: priority 0xa0, bit 1 RES1, Enable.
const LPI_CONFIG: u8 = 0xa3;
const LPI_ACKS: usize = 8;
/// Where in porwatch's memory the attack puts the pending table (64 KiB
/// aligned, as PENDBASER requires): 64 KiB in, code.
const LPI_PENDING_OFFSET: u64 = 0x1_0000;

/// The LPI property table: one byte per LPI, 4 KiB aligned.
#[repr(C, align(65536))]
struct PropTable(UnsafeCell<[u64; 2048]>);
unsafe impl Sync for PropTable {}
static PROP: PropTable = PropTable(UnsafeCell::new([0; 2048]));
/// An LPI pending table in guest RAM: 2 KiB of bits for 2^14 INTIDs, 64 KiB
/// aligned (PENDBASER).
static PEND: PropTable = PropTable(UnsafeCell::new([0; 2048]));
/// The LPI the legitimate use makes pending.
const LPI_LEGIT: u32 = LPI_FIRST + 5;

/// Points this CPU's redistributor's LPI pending table at `pending` (a
/// physical address porwatch owns) and enables LPIs. If porwatch let that
/// through, bits set in its memory read as pending LPIs, and acknowledging
/// one makes the redistributor clear the bit there. Returns the INTIDs
/// acknowledged and whether EnableLPIs stuck.
fn lpi_attack(plat: &fdt::Platform, pending: u64) -> Result<(bool, [u32; LPI_ACKS]), &'static str> {
    let gic = plat.gic.as_ref().ok_or("no GIC")?;
    let g = gicv3::GicV3::init(gic)?;
    let byte = u64::from_ne_bytes([LPI_CONFIG; 8]);
    for i in 0..2048 {
        unsafe { (PROP.0.get() as *mut u64).add(i).write_volatile(byte) };
    }
    let rd = g.redist;
    unsafe {
        ((rd + GICR_PROPBASER) as *mut u64).write_volatile(PROP.0.get() as u64 | LPI_ID_BITS);
        ((rd + GICR_PENDBASER) as *mut u64).write_volatile(pending);
        let ctlr = ((rd + GICR_CTLR) as *const u32).read_volatile();
        ((rd + GICR_CTLR) as *mut u32).write_volatile(ctlr | GICR_CTLR_ENABLE_LPIS);
    }
    let enabled = unsafe { ((rd + GICR_CTLR) as *const u32).read_volatile() } & GICR_CTLR_ENABLE_LPIS != 0;
    let mut acked = [gicv3::INTID_SPURIOUS; LPI_ACKS];
    for a in acked.iter_mut() {
        let id = gicv3::ack();
        *a = id;
        if id == gicv3::INTID_SPURIOUS {
            break;
        }
        gicv3::eoi(id);
    }
    Ok((enabled, acked))
}

/// The same with the pending table in guest RAM, one LPI pending in it:
/// LPIs must come on and that LPI must be delivered (and its pending bit
/// cleared by the redistributor). Returns (EnableLPIs, INTID acknowledged,
/// pending byte after).
fn lpi_legit(plat: &fdt::Platform) -> Result<(bool, u32, u8), &'static str> {
    let gic = plat.gic.as_ref().ok_or("no GIC")?;
    let rd = gicv3::GicV3::init(gic)?.redist;
    let pend = PEND.0.get() as *mut u8;
    let byte = (LPI_LEGIT / 8) as usize;
    unsafe {
        pend.add(byte).write_volatile(1 << (LPI_LEGIT % 8));
        ((rd + GICR_PENDBASER) as *mut u64).write_volatile(pend as u64);
        let ctlr = ((rd + GICR_CTLR) as *const u32).read_volatile();
        ((rd + GICR_CTLR) as *mut u32).write_volatile(ctlr | GICR_CTLR_ENABLE_LPIS);
    }
    let enabled = unsafe { ((rd + GICR_CTLR) as *const u32).read_volatile() } & GICR_CTLR_ENABLE_LPIS != 0;
    let id = gicv3::ack();
    if id != gicv3::INTID_SPURIOUS {
        gicv3::eoi(id);
    }
    Ok((enabled, id, unsafe { pend.add(byte).read_volatile() }))
}

/// The first node of the tree compatible with `compat`, by path.
fn find_compatible(dtb: &[u8], compat: &str) -> Option<heapless::String<128>> {
    let f = fdt::Fdt::new(dtb).ok()?;
    let mut w = f.walk();
    while let Ok(Some(n)) = w.next_node() {
        if n.is_compatible(compat).unwrap_or(false) {
            let mut p = heapless::String::new();
            let _ = f.write_path(w.chain(), &mut p);
            return Some(p);
        }
    }
    None
}

/// porwatch's own memory, which it must not let the guest touch: right
/// above the end of RAM (porwatch moves to the top of RAM, and `/memory`
/// stops below it).
fn hyp_memory(plat: &fdt::Platform) -> Option<u64> {
    plat.memory.iter().map(|m| m.base + m.size).max()
}

#[unsafe(no_mangle)]
fn test_main(boot: &Boot) -> u32 {
    let mut c = Checks { failed: 0 };
    let mut plat = fdt::Platform::new();
    if fdt::discover(boot.dtb, &mut plat).is_err() {
        println!("hostile: FAIL: cannot parse the device tree");
        return 1;
    }

    // An IMPLEMENTATION DEFINED system register: trapped by HCR_EL2.TIDCP,
    // must come back as an UNDEF (EC 0, unknown reason) at EL1.
    let r = expect_sync(|| unsafe {
        asm!("mrs {0}, s3_0_c15_c0_0", out(reg) _);
    });
    c.check(
        "impdef-sysreg",
        matches!(r, Some(e) if e.ec() == EC_UNKNOWN && e.vector == VECTOR_SYNC_EL1H),
        format_args!("{:x?}", r),
    );

    match hyp_memory(&plat) {
        Some(hole) => {
            let p = hole as *mut u64;
            let w = expect_sync(|| unsafe { p.write_volatile(0x5a5a) });
            c.check(
                "write-hyp-memory",
                matches!(w, Some(e) if e.ec() == EC_DABT_CUR && e.fsc() == FSC_SYNC_EXTERNAL
                    && e.far == hole && e.esr & ESR_WNR != 0),
                format_args!("addr={:#x} {:x?}", hole, w),
            );
            let r = expect_sync(|| unsafe {
                let _ = p.read_volatile();
            });
            c.check(
                "read-hyp-memory",
                matches!(r, Some(e) if e.ec() == EC_DABT_CUR && e.fsc() == FSC_SYNC_EXTERNAL
                    && e.far == hole && e.esr & ESR_WNR == 0),
                format_args!("addr={:#x} {:x?}", hole, r),
            );
            let on = smccc::smc(smccc::PSCI_CPU_ON_64, 1, hole, 0);
            c.check(
                "cpu-on-into-hyp-memory",
                on == PSCI_INVALID_ADDRESS || on == PSCI_DENIED,
                format_args!("result={}", on),
            );
        }
        None => c.check("find-hyp-memory", false, format_args!("no RAM in the memory map")),
    }

    // fw_cfg and the other bus masters porwatch hides: absent from the tree,
    // unmapped at stage 2 (a synchronous external abort), the fw_cfg DMA
    // attack included.
    for compat in HIDDEN_COMPATIBLE {
        let found = find_compatible(boot.dtb, compat);
        c.check("no-dma-device-in-tree", found.is_none(), format_args!("{compat}: {:?}", found));
    }
    let abort_at = |addr: usize, write: bool, e: Option<porwatch_guest_tests::exceptions::Caught>| {
        matches!(e, Some(e) if e.ec() == EC_DABT_CUR && e.fsc() == FSC_SYNC_EXTERNAL
            && e.far == addr as u64 && (e.esr & ESR_WNR != 0) == write)
    };
    let r = expect_sync(|| unsafe {
        let _ = (FW_CFG as *const u64).read_volatile();
    });
    c.check("read-fw-cfg", abort_at(FW_CFG, false, r), format_args!("addr={:#x} {:x?}", FW_CFG, r));
    let w = expect_sync(|| unsafe { (FW_CFG_DMA as *mut u64).write_volatile(0) });
    c.check("fw-cfg-dma", abort_at(FW_CFG_DMA, true, w), format_args!("addr={:#x} {:x?}", FW_CFG_DMA, w));
    let r = expect_sync(|| unsafe {
        let _ = (VIRTIO_MMIO as *const u32).read_volatile();
    });
    c.check(
        "read-virtio-mmio",
        abort_at(VIRTIO_MMIO, false, r),
        format_args!("addr={:#x} {:x?}", VIRTIO_MMIO, r),
    );

    // The GIC as a bus master: LPI tables in porwatch's memory.
    match hyp_memory(&plat).map(|h| lpi_attack(&plat, h + LPI_PENDING_OFFSET)) {
        Some(Ok((enabled, acked))) => c.check(
            "gic-lpi-tables-in-hyp-memory",
            acked.iter().all(|&i| i < LPI_FIRST),
            format_args!("EnableLPIs={} acknowledged {:?}", enabled, acked),
        ),
        Some(Err(e)) => c.check("gic-lpi-tables-in-hyp-memory", false, format_args!("{e}")),
        None => {}
    }
    match lpi_legit(&plat) {
        Ok((enabled, id, after)) => c.check(
            "gic-lpi-tables-in-guest-ram",
            enabled && id == LPI_LEGIT && after == 0,
            format_args!("EnableLPIs={} acknowledged {} pending byte after {:#x}", enabled, id, after),
        ),
        Err(e) => c.check("gic-lpi-tables-in-guest-ram", false, format_args!("{e}")),
    }

    let h = smccc::hvc(0xdead_beef, 1, 2, 3);
    c.check("bogus-hvc", h == smccc::NOT_SUPPORTED, format_args!("x0={}", h));
    let h: u64;
    unsafe {
        asm!("hvc #0x1234", inout("x0") 0x8400_0000u64 => h, out("x1") _, out("x2") _,
             out("x3") _, options(nostack));
    }
    c.check("hvc-nonzero-imm", h as i64 == smccc::NOT_SUPPORTED, format_args!("x0={}", h as i64));
    let s = smccc::smc(0xC200_1234, 0, 0, 0);
    c.check("unknown-smc", s == smccc::NOT_SUPPORTED, format_args!("x0={}", s));
    let f = smccc::smc(smccc::PSCI_FEATURES, smccc::PSCI_SYSTEM_OFF, 0, 0);
    c.check("psci-features-system-off", f == 0, format_args!("x0={}", f));

    println!("hostile: {} check(s) failed", c.failed);
    c.failed
}
