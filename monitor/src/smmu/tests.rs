//! Encodings checked against the field extractors of QEMU 10.0's model
//! (`hw/arm/smmuv3-internal.h`: 32-bit words, `extract32(word[i], pos,
//! len)`), an independent reading of the same layout.
extern crate std;
use super::cmd::Command;
use super::event::{self, Event, Kind};
use super::geometry::for_smmu;
use super::queue::Queue;
use super::regs::{
    self, check, Features, StreamTable, StreamTableFormat, TableEndian, TableFormats, Unusable,
};
use super::ste::{self, Stage2};
use crate::pgtable::regs::vtcr_el2;

/// 64-bit words as QEMU's 32-bit `word[]` array.
fn words<const N: usize>(w: &[u64]) -> [u32; N] {
    let mut out = [0u32; N];
    for (i, x) in w.iter().enumerate() {
        out[2 * i] = *x as u32;
        out[2 * i + 1] = (*x >> 32) as u32;
    }
    out
}

fn extract32(v: u32, pos: u32, len: u32) -> u32 {
    (v >> pos) & (((1u64 << len) - 1) as u32)
}

/// IDR values of QEMU 10.0's arm-smmuv3 on `-M virt,iommu=smmuv3` (the
/// machine sets `stage=nested`), as smmuv3_init_regs() builds them:
/// S1P, S2P, TTF = AArch64, COHACC, ASID16, VMID16, TTENDIAN = LE,
/// STALL_MODEL = 1, TERM_MODEL, ST_LEVEL = 2-level; SIDSIZE 16, queues
/// 2^19; OAS 44 bits, 4K/16K/64K granules.
pub const QEMU_IDR0: u32 = 0x0d44_101b;
pub const QEMU_IDR1: u32 = (19 << 21) | (19 << 16) | 16;
pub const QEMU_IDR5: u32 = 0x74;

fn qemu() -> Features {
    Features::decode(QEMU_IDR0, QEMU_IDR1, QEMU_IDR5)
}

#[test]
fn decodes_qemu_idrs() {
    let f = qemu();
    assert!(f.stage2 && f.stage1 && f.coherent && f.vmid16 && f.two_level_streams && f.granule_4k);
    assert_eq!(f.table_formats, TableFormats::AArch64Only);
    assert_eq!(f.endian, TableEndian::LittleOnly);
    assert_eq!((f.sid_bits, f.cmdq_log2_max, f.eventq_log2_max), (16, 19, 19));
    assert_eq!((f.oas_field, f.oas_bits, f.ias_bits()), (4, 44, 44));
    assert_eq!(check(&f, 8, 9), Ok(()));
    // `stage=1` (older virt machine types): no S2P.
    let s1 = Features::decode(QEMU_IDR0 & !1, QEMU_IDR1, QEMU_IDR5);
    assert_eq!(check(&s1, 8, 9), Err(Unusable::NoStage2));
}

#[test]
fn check_names_each_missing_feature() {
    let ok = qemu();
    let cases = [
        (Features { table_formats: TableFormats::AArch32Only, ..ok }, Unusable::NoAArch64Tables),
        (Features { endian: TableEndian::BigOnly, ..ok }, Unusable::NoLittleEndian),
        (Features { granule_4k: false, ..ok }, Unusable::No4KGranule),
        (Features { coherent: false, ..ok }, Unusable::NotCoherent),
        (Features { eventq_log2_max: 5, ..ok }, Unusable::SmallQueues),
        (Features { cmdq_log2_max: 7, ..ok }, Unusable::SmallQueues),
    ];
    for (f, why) in cases {
        assert_eq!(check(&f, 8, 9), Err(why), "{f:?}");
    }
    // AArch32 support raises IAS to 40 bits when OAS is smaller.
    let f = Features { table_formats: TableFormats::Both, oas_field: 1, oas_bits: 36, ..ok };
    assert_eq!(f.ias_bits(), 40);
    // A reserved OAS reads as 32 bits.
    assert_eq!(Features::decode(QEMU_IDR0, QEMU_IDR1, 0x77).oas_bits, 32);
}

#[test]
fn stream_table_layouts() {
    let t = StreamTable::choose(&qemu());
    assert_eq!(t, StreamTable { format: StreamTableFormat::TwoLevel, log2size: 16, split: 8 });
    assert_eq!((t.l1_entries(), t.ste_entries()), (256, 256));
    // FMT [17:16] = 1, SPLIT [10:6] = 8, LOG2SIZE [5:0] = 16 (QEMU's
    // FIELD(STRTAB_BASE_CFG, ...) definitions).
    assert_eq!(t.base_cfg(), (1 << 16) | (8 << 6) | 16);
    let linear = Features { two_level_streams: false, ..qemu() };
    let t = StreamTable::choose(&linear);
    assert_eq!(t, StreamTable { format: StreamTableFormat::Linear, log2size: 8, split: 0 });
    assert_eq!((t.l1_entries(), t.ste_entries(), t.base_cfg()), (0, 256, 8));
    let small = Features { sid_bits: 5, ..qemu() };
    assert_eq!(
        StreamTable::choose(&small),
        StreamTable { format: StreamTableFormat::Linear, log2size: 5, split: 0 }
    );
    let wide = Features { sid_bits: 32, ..qemu() };
    assert_eq!(StreamTable::choose(&wide).log2size, 16);
    assert_eq!(StreamTable::choose(&wide).l1_entries(), 256);
}

#[test]
fn base_registers() {
    assert_eq!(regs::strtab_base(0x4021_0000), (1 << 62) | 0x4021_0000);
    assert_eq!(regs::queue_base(0x4021_4000, 9), (1 << 62) | 0x4021_4000 | 9);
    // Low bits of a misaligned address are not passed on.
    assert_eq!(regs::queue_base(0x4021_4007, 9) & !((1 << 62) | 0x1f), 0x4021_4000);
    // CR1: queue IC/OC/SH then table IC/OC/SH, 2 bits each: WB, WB, ISH.
    assert_eq!(regs::CR1_VALUE, 0b11_01_01_11_01_01);
}

/// QEMU `-cpu max` reports a 52-bit PA range: porwatch's stage 2 uses 48
/// bits (T0SZ 16, start level 0, PS 48) and QEMU's SMMU 44.
fn qemu_stage2() -> Stage2 {
    let (vtcr, level, concat) = vtcr_el2(48, 6).unwrap();
    assert_eq!((level, concat), (0, 1));
    for_smmu(&qemu(), vtcr, 0x4030_0000, 1).unwrap()
}

#[test]
fn geometry_narrows_t0sz_and_ps_keeping_the_start_level() {
    let s2 = qemu_stage2();
    assert_eq!(s2.vtcr & 0x3f, 20, "T0SZ: 44-bit IPA");
    assert_eq!((s2.vtcr >> 6) & 3, 2, "SL0: still level 0");
    assert_eq!((s2.vtcr >> 16) & 7, 4, "PS: 44 bits");
    assert_eq!((s2.vtcr >> 8) & 0x3f, 0b11_01_01, "IRGN0/ORGN0 WBWA, SH0 inner: as the CPU's");
    assert_eq!((s2.vtcr >> 14) & 3, 0, "TG0 4K");
    // A 40-bit CPU stage 2 (level 1, 2 concatenated tables) fits QEMU's SMMU
    // unchanged.
    let (vtcr, level, concat) = vtcr_el2(40, 2).unwrap();
    assert_eq!((level, concat), (1, 2));
    let s2 = for_smmu(&qemu(), vtcr, 0x4030_0000, 1).unwrap();
    assert_eq!(s2.vtcr & 0x7_ffff, vtcr & 0x7_ffff);
    // A 36-bit SMMU cannot start at level 0 (needs 40..48 bits).
    let small = Features { oas_field: 1, oas_bits: 36, ..qemu() };
    let (vtcr48, ..) = vtcr_el2(48, 6).unwrap();
    assert_eq!(for_smmu(&small, vtcr48, 0x4030_0000, 1), Err(Unusable::Geometry));
    // The root must be addressable by the SMMU.
    assert_eq!(for_smmu(&qemu(), vtcr48, 1 << 44, 1), Err(Unusable::Geometry));
    // 8-bit VMIDs only.
    let vmid8 = Features { vmid16: false, ..qemu() };
    assert_eq!(for_smmu(&vmid8, vtcr48, 0x4030_0000, 0x100), Err(Unusable::Geometry));
    assert!(for_smmu(&vmid8, vtcr48, 0x4030_0000, 1).is_ok());
}

#[test]
fn stage2_ste_fields_where_qemu_reads_them() {
    let s2 = qemu_stage2();
    let w: [u32; 16] = words(&ste::stage2(&s2));
    // STE_VALID, STE_CONFIG (0b110: S2 translate, S1 bypass).
    assert_eq!(extract32(w[0], 0, 1), 1);
    assert_eq!(extract32(w[0], 1, 3), 0b110);
    assert_eq!(extract32(w[1], 27, 5), 0, "S1CDMAX");
    assert_eq!(extract32(w[2], 27, 1), 0, "S1STALLD");
    assert_eq!(extract32(w[2], 28, 2), 0, "EATS");
    assert_eq!(extract32(w[3], 12, 2), 1, "SHCFG = incoming (STE bits [109:108])");
    assert_eq!(extract32(w[4], 0, 16), 1, "S2VMID");
    assert_eq!(extract32(w[5], 0, 6), 20, "S2T0SZ");
    assert_eq!(extract32(w[5], 6, 2), 2, "S2SL0");
    assert_eq!(extract32(w[5], 8, 2), 1, "S2IR0");
    assert_eq!(extract32(w[5], 10, 2), 1, "S2OR0");
    assert_eq!(extract32(w[5], 12, 2), 3, "S2SH0");
    assert_eq!(extract32(w[5], 14, 2), 0, "S2TG 4K");
    assert_eq!(extract32(w[5], 16, 3), 4, "S2PS");
    assert_eq!(extract32(w[5], 19, 1), 1, "S2AA64");
    assert_eq!(extract32(w[5], 20, 1), 0, "S2ENDI");
    assert_eq!(extract32(w[5], 21, 1), 0, "S2AFFD");
    assert_eq!(extract32(w[5], 23, 2), 0, "S2HD/S2HA");
    assert_eq!(extract32(w[5], 25, 1), 0, "S2S: terminate, no stall");
    assert_eq!(extract32(w[5], 26, 1), 1, "S2R: record faults");
    // STE_S2TTB: word 7 [15:0] << 32 | word 6 & 0xfffffff0.
    let ttb = (u64::from(extract32(w[7], 0, 16)) << 32) | u64::from(w[6] & 0xffff_fff0);
    assert_eq!(ttb, 0x4030_0000);
    assert!(w[8..].iter().all(|&x| x == 0));
    // The abort STE: valid, Config 0.
    let a: [u32; 16] = words(&ste::abort());
    assert_eq!((extract32(a[0], 0, 1), extract32(a[0], 1, 3)), (1, 0));
}

#[test]
fn l1_descriptor_span_and_pointer() {
    let d = ste::l1_descriptor(0x4021_0000, 8);
    let w: [u32; 2] = words(&[d]);
    // L1STD_SPAN: word 0 [4:0]; l1std_l2ptr: word 1 << 32 | word 0 & ~0x1f.
    assert_eq!(extract32(w[0], 0, 5), 9);
    assert_eq!((u64::from(w[1]) << 32) | u64::from(w[0] & !0x1f), 0x4021_0000);
}

#[test]
fn commands_where_qemu_reads_them() {
    let c = |cmd: Command| -> [u32; 4] { words(&cmd.encode()) };
    // CMD_TYPE word 0 [7:0]; CMD_SID word 1; CMD_STE_RANGE word 2 [4:0].
    let w = c(Command::CfgiAll);
    assert_eq!((extract32(w[0], 0, 8), w[1], extract32(w[2], 0, 5)), (0x04, 0, 31));
    // CMD_VMID word 1 [15:0].
    let w = c(Command::TlbiS12Vmall { vmid: 7 });
    assert_eq!((extract32(w[0], 0, 8), extract32(w[1], 0, 16)), (0x28, 7));
    // CMD_LEAF word 2 bit 0; CMD_TG word 2 [11:10] = 0 (no range: one
    // page); CMD_ADDR word 3 << 32 | word 2 [31:12] << 12; CMD_NUM/SCALE 0.
    let w = c(Command::TlbiS2Ipa { vmid: 1, ipa: 0x1_2345_6789 });
    assert_eq!(extract32(w[0], 0, 8), 0x2a);
    assert_eq!(extract32(w[1], 0, 16), 1);
    assert_eq!(extract32(w[2], 0, 1), 1);
    assert_eq!(extract32(w[2], 10, 2), 0);
    assert_eq!((extract32(w[0], 12, 5), extract32(w[0], 20, 5)), (0, 0));
    let addr = (u64::from(w[3]) << 32) | (u64::from(extract32(w[2], 12, 20)) << 12);
    assert_eq!(addr, 0x1_2345_6000);
    assert_eq!(extract32(c(Command::TlbiNsnhAll)[0], 0, 8), 0x30);
    // CMD_SYNC: CMD_SYNC_CS word 0 [13:12] = 0 (no signal).
    let w = c(Command::Sync);
    assert_eq!((extract32(w[0], 0, 8), extract32(w[0], 12, 2)), (0x46, 0));
}

/// An event record as QEMU's EVT_SET_* macros write it.
fn qemu_event(ty: u32, sid: u32, addr: u64, rnw: bool, s2: bool) -> [u64; 4] {
    let mut w = [0u32; 8];
    w[0] = ty;
    w[1] = sid;
    w[3] = (u32::from(rnw) << 3) | (u32::from(s2) << 7);
    w[4] = addr as u32;
    w[5] = (addr >> 32) as u32;
    w[6] = addr as u32;
    w[7] = (addr >> 32) as u32;
    let mut out = [0u64; 4];
    for i in 0..4 {
        out[i] = u64::from(w[2 * i]) | (u64::from(w[2 * i + 1]) << 32);
    }
    out
}

#[test]
fn events_decode_from_qemu_layout() {
    let e = Event::decode(&qemu_event(0x10, 0x08, 0x4021_1400, false, true));
    assert_eq!(
        e,
        Event { kind: Kind::Translation, code: 0x10, sid: 8, addr: 0x4021_1400, write: true, stage2: true }
    );
    let e = Event::decode(&qemu_event(0x13, 0x0108, 0x4400_5000, false, true));
    assert_eq!((e.kind, e.sid, e.write), (Kind::Permission, 0x108, true));
    let e = Event::decode(&qemu_event(0x10, 8, 0x1000, true, true));
    assert!(!e.write, "RnW = 1 is a read");
    // Configuration errors carry no address.
    let e = Event::decode(&qemu_event(u32::from(event::C_BAD_STREAMID), 0xffff, 0x1234, false, false));
    assert_eq!((e.kind, e.sid, e.addr, e.write), (Kind::BadStreamId, 0xffff, 0, false));
    let e = Event::decode(&qemu_event(0x77, 3, 0, false, false));
    assert_eq!((e.kind, e.code), (Kind::Other, 0x77));
}

#[test]
fn queue_indices_wrap() {
    let q = Queue { log2: 2 };
    assert!(q.is_empty(0, 0));
    assert!(q.is_empty(0b100, 0b100));
    assert!(!q.is_empty(1, 0));
    assert!(q.is_full(0b100, 0), "index equal, wrap differs");
    assert!(!q.is_full(0b011, 0));
    assert_eq!(q.next(0b011), 0b100, "wrap flag toggles");
    assert_eq!(q.next(0b111), 0b000);
    assert_eq!(q.slot(0b110), 2);
    // OVFLG (bit 31) is not part of the index.
    assert!(q.is_empty(super::queue::OVERFLOW_FLAG | 3, 3));
    let mut v = 0;
    for _ in 0..8 {
        v = q.next(v);
    }
    assert_eq!(v, 0, "two laps return to the start");
}

#[test]
fn runs_fold_per_access_faults() {
    use super::event::{Coalescer, Run};
    let ev =
        |code: u32, sid: u32, addr: u64, rnw: bool| Event::decode(&qemu_event(code, sid, addr, rnw, true));
    let mut c = Coalescer::new();
    let mut runs: std::vec::Vec<Run> = std::vec::Vec::new();
    // A 16-byte write to hyp memory, one event per 4 bytes (QEMU).
    for a in (0x4020_0000..0x4020_0010).step_by(4) {
        runs.extend(c.push(ev(0x10, 8, a, false)));
    }
    assert!(runs.is_empty(), "still one run");
    // A read of the same range: another run.
    runs.extend(c.push(ev(0x10, 8, 0x4020_0000, true)));
    // Another device, same address: another run.
    runs.extend(c.push(ev(0x10, 0x10, 0x4020_0004, true)));
    // A gap of more than 8 bytes: another run.
    runs.extend(c.push(ev(0x10, 0x10, 0x4020_0100, true)));
    // Permission faults on a page table.
    runs.extend(c.push(ev(0x13, 0x10, 0x4020_0104, true)));
    runs.extend(c.finish());
    let summary: std::vec::Vec<(u32, u8, u64, u64, u32, bool)> = runs
        .iter()
        .map(|r| (r.first.sid, r.first.code, r.first.addr, r.last_addr, r.count, r.first.write))
        .collect();
    assert_eq!(
        summary,
        [
            (8, 0x10, 0x4020_0000, 0x4020_000c, 4, true),
            (8, 0x10, 0x4020_0000, 0x4020_0000, 1, false),
            (0x10, 0x10, 0x4020_0004, 0x4020_0004, 1, false),
            (0x10, 0x10, 0x4020_0100, 0x4020_0100, 1, false),
            (0x10, 0x13, 0x4020_0104, 0x4020_0104, 1, false),
        ]
    );
    assert_eq!(c.finish(), None);
    // Configuration errors (no address) of one stream repeat into one run.
    let mut c = Coalescer::new();
    for _ in 0..3 {
        assert_eq!(c.push(ev(u32::from(event::C_BAD_STREAMID), 0x100, 0, false)), None);
    }
    assert_eq!(c.finish().map(|r| r.count), Some(3));
}
