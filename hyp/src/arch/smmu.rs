//! The SMMUv3 porwatch takes for itself (mechanism; the encodings and
//! decisions are porwatch_monitor::smmu's). Every stream gets the same
//! stage-2-only STE pointing at the CPU's stage-2 tables, so a device
//! reaches exactly what the guest's CPU reaches; faults are terminated (the
//! device gets an abort) and recorded in the event queue, which porwatch
//! polls (the SMMU's interrupts would go to the guest's GIC, and the guest
//! does not know the SMMU exists).
//!
//! The tables and queues live in hyp memory (never mapped for the guest or
//! for devices). The SMMU's walks are coherent with the CPU's caches
//! (IDR0.COHACC, required), so a stage-2 change needs only a TLB
//! invalidation ([`invalidate_ipa`]), issued through the command queue and
//! completed with CMD_SYNC before the guest runs again.
use super::cpu::dsb_ish;
use crate::take_once::TakeOnce;
use core::ptr::{read_volatile, write_volatile};
use porwatch_monitor::smmu::cmd::Command;
use porwatch_monitor::smmu::event::Event;
use porwatch_monitor::smmu::queue::{Queue, OVERFLOW_FLAG};
use porwatch_monitor::smmu::regs::{self as r, Features, StreamTable, StreamTableFormat, Unusable};
use porwatch_monitor::smmu::ste::{self, Ste};
use porwatch_monitor::smmu::{geometry, ste::Stage2};
use spin::Mutex;

/// Command queue: 2^8 entries (4 KiB). porwatch waits for each batch, so
/// it never holds more than a few.
pub const CMDQ_LOG2: u8 = 8;
/// Event queue: 2^11 entries (64 KiB) between two polls before it
/// overflows (an overflow is reported, never silent). QEMU records a
/// faulting DMA once per 4-byte access: a 4 KiB transfer is 1024 events.
pub const EVTQ_LOG2: u8 = 11;
/// The level-2 STE array (or linear table) and the level-1 descriptors
/// (porwatch_monitor::smmu::regs::StreamTable).
const STES: usize = 1 << r::STE_SPLIT;
const L1_DESCS: usize = 1 << r::MAX_L1_LOG2;

/// VMID of the guest's streams (the CPU uses the same number; the SMMU's
/// VMIDs are its own namespace).
pub const GUEST_VMID: u16 = 1;

/// Polls of an acknowledge or completion before giving up (QEMU answers at
/// once; hardware within microseconds).
const SPIN_LIMIT: u32 = 1_000_000;

/// Everything the SMMU reads or writes, in one block. Each table and queue
/// must be aligned to its size (IHI 0070 6.3: the SMMU ignores the low
/// address bits): largest first from a 64 KiB boundary does it.
#[repr(C, align(65536))]
struct SmmuMem {
    evtq: [[u64; 4]; 1 << EVTQ_LOG2],
    stes: [Ste; STES],
    cmdq: [[u64; 2]; 1 << CMDQ_LOG2],
    l1: [u64; L1_DESCS],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(SmmuMem, evtq) % size_of::<[[u64; 4]; 1 << EVTQ_LOG2]>() == 0);
    assert!(offset_of!(SmmuMem, stes) % size_of::<[Ste; STES]>() == 0);
    assert!(offset_of!(SmmuMem, cmdq) % size_of::<[[u64; 2]; 1 << CMDQ_LOG2]>() == 0);
    assert!(offset_of!(SmmuMem, l1) % size_of::<[u64; L1_DESCS]>() == 0);
    assert!(size_of::<[[u64; 4]; 1 << EVTQ_LOG2]>() <= 65536);
};

static MEM: TakeOnce<SmmuMem> = TakeOnce::new(SmmuMem {
    evtq: [[0; 4]; 1 << EVTQ_LOG2],
    stes: [[0; 8]; STES],
    cmdq: [[0; 2]; 1 << CMDQ_LOG2],
    l1: [0; L1_DESCS],
});

struct Smmu {
    base: usize,
    mem: &'static mut SmmuMem,
    cmdq: Queue,
    evtq: Queue,
    cmd_prod: u32,
    evt_cons: u32,
}

static SMMU: Mutex<Option<Smmu>> = Mutex::new(None);

fn read32(base: usize, off: usize) -> u32 {
    unsafe { read_volatile((base + off) as *const u32) }
}

fn write32(base: usize, off: usize, v: u32) {
    unsafe { write_volatile((base + off) as *mut u32, v) }
}

fn write64(base: usize, off: usize, v: u64) {
    unsafe { write_volatile((base + off) as *mut u64, v) }
}

fn wait(what: impl Fn() -> bool) -> Result<(), Unusable> {
    for _ in 0..SPIN_LIMIT {
        if what() {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(Unusable::NoAck)
}

/// Reads the identification registers of the SMMU whose register frame
/// (pages 0 and 1) is mapped at `base`.
pub fn probe(base: u64) -> Features {
    let b = base as usize;
    Features::decode(read32(b, r::IDR0), read32(b, r::IDR1), read32(b, r::IDR5))
}

/// For an SMMU porwatch cannot use (PCI is hidden then): translation off
/// and every transaction aborted (GBPA.ABORT), so that no device behind it
/// does DMA even if it were reachable. Best effort: a missing acknowledge is
/// not an error (the guest cannot reach PCI anyway).
pub fn abort_all(base: u64) {
    let b = base as usize;
    write32(b, r::GBPA, r::GBPA_ABORT | r::GBPA_UPDATE);
    let _ = wait(|| read32(b, r::GBPA) & r::GBPA_UPDATE == 0);
    let _ = set_cr0(b, 0);
}

/// Writes CR0 and waits for CR0ACK to match.
fn set_cr0(base: usize, v: u32) -> Result<(), Unusable> {
    write32(base, r::CR0, v);
    wait(|| read32(base, r::CR0ACK) == v)
}

/// Takes the SMMU at `base`: every stream translated by `s2` (built from
/// the CPU's VTCR_EL2 and root with porwatch_monitor::smmu::geometry),
/// faults recorded, queues set up, translation on. Runs once, at boot,
/// before the guest.
pub fn enable(base: u64, f: &Features, vtcr: u64, root: u64) -> Result<(), Unusable> {
    r::check(f, CMDQ_LOG2, EVTQ_LOG2)?;
    let s2: Stage2 = geometry::for_smmu(f, vtcr, root, GUEST_VMID)?;
    let b = base as usize;
    let table = StreamTable::choose(f);
    let mem = MEM.take().ok_or(Unusable::NoAck)?;
    let entry = ste::stage2(&s2);
    for s in mem.stes.iter_mut().take(table.ste_entries()) {
        *s = entry;
    }
    let stes_pa = mem.stes.as_ptr() as u64;
    let strtab = match table.format {
        StreamTableFormat::TwoLevel => {
            // Every level-1 descriptor points at the one level-2 array.
            for d in mem.l1.iter_mut().take(table.l1_entries()) {
                *d = ste::l1_descriptor(stes_pa, table.split);
            }
            mem.l1.as_ptr() as u64
        }
        StreamTableFormat::Linear => stes_pa,
    };
    dsb_ish();

    // Quiesce whatever firmware left: translation off, every transaction
    // aborted meanwhile (GBPA.ABORT) rather than let through.
    write32(b, r::GBPA, r::GBPA_ABORT | r::GBPA_UPDATE);
    wait(|| read32(b, r::GBPA) & r::GBPA_UPDATE == 0)?;
    set_cr0(b, 0)?;
    write32(b, r::IRQ_CTRL, 0);
    wait(|| read32(b, r::IRQ_CTRLACK) == 0)?;
    write32(b, r::CR1, r::CR1_VALUE);
    write32(b, r::CR2, r::CR2_VALUE);
    write64(b, r::STRTAB_BASE, r::strtab_base(strtab));
    write32(b, r::STRTAB_BASE_CFG, table.base_cfg());

    let (cmdq_pa, evtq_pa) = (mem.cmdq.as_ptr() as u64, mem.evtq.as_ptr() as u64);
    let mut s = Smmu {
        base: b,
        mem,
        cmdq: Queue { log2: CMDQ_LOG2 },
        evtq: Queue { log2: EVTQ_LOG2 },
        cmd_prod: 0,
        evt_cons: 0,
    };
    write64(b, r::CMDQ_BASE, r::queue_base(cmdq_pa, CMDQ_LOG2));
    write32(b, r::CMDQ_PROD, 0);
    write32(b, r::CMDQ_CONS, 0);
    write64(b, r::EVENTQ_BASE, r::queue_base(evtq_pa, EVTQ_LOG2));
    write32(b, r::EVENTQ_PROD, 0);
    write32(b, r::EVENTQ_CONS, 0);
    set_cr0(b, r::CR0_CMDQEN)?;
    // Nothing cached from before: configuration and every TLB entry.
    s.submit(&[Command::CfgiAll, Command::TlbiNsnhAll, Command::Sync])?;
    set_cr0(b, r::CR0_CMDQEN | r::CR0_EVENTQEN)?;
    set_cr0(b, r::CR0_CMDQEN | r::CR0_EVENTQEN | r::CR0_SMMUEN)?;
    *SMMU.lock() = Some(s);
    Ok(())
}

impl Smmu {
    /// Queues `cmds` (ending with a CMD_SYNC) and waits until the SMMU has
    /// consumed them all.
    fn submit(&mut self, cmds: &[Command]) -> Result<(), Unusable> {
        for c in cmds {
            self.mem.cmdq[self.cmdq.slot(self.cmd_prod)] = c.encode();
            self.cmd_prod = self.cmdq.next(self.cmd_prod);
        }
        // The entries must be visible before the SMMU sees PROD move.
        dsb_ish();
        write32(self.base, r::CMDQ_PROD, self.cmd_prod);
        let (base, prod, cmdq) = (self.base, self.cmd_prod, self.cmdq);
        wait(|| {
            let cons = read32(base, r::CMDQ_CONS);
            cmdq.is_empty(prod, cons)
                || cons & r::CMDQ_CONS_ERR_MASK != 0
                || gerror_active(base, r::GERROR_CMDQ_ERR)
        })?;
        let cons = read32(base, r::CMDQ_CONS);
        if cons & r::CMDQ_CONS_ERR_MASK != 0 || gerror_active(base, r::GERROR_CMDQ_ERR) {
            return Err(Unusable::NoAck);
        }
        Ok(())
    }

    /// Hands every queued event to `f`, oldest first; an overflow (or an
    /// event the SMMU could not write) first as `None`.
    fn drain(&mut self, mut f: impl FnMut(Option<Event>)) {
        let prod = read32(self.base, r::EVENTQ_PROD);
        let mut lost = (prod ^ self.evt_cons) & OVERFLOW_FLAG != 0;
        if gerror_active(self.base, r::GERROR_EVENTQ_ABT_ERR) {
            // Acknowledged by toggling the bit in GERRORN.
            let n = read32(self.base, r::GERRORN);
            write32(self.base, r::GERRORN, n ^ r::GERROR_EVENTQ_ABT_ERR);
            lost = true;
        }
        if lost {
            f(None);
        }
        // The entries are read after PROD (a load-load order across the
        // device and memory: a full barrier).
        dsb_ish();
        let mut cons = self.evt_cons & !OVERFLOW_FLAG;
        while !self.evtq.is_empty(prod, cons) {
            // SAFETY: a slot of our queue; the SMMU wrote it before moving
            // PROD past it (volatile: the compiler cannot see that write).
            let rec = unsafe { read_volatile(&self.mem.evtq[self.evtq.slot(cons)]) };
            f(Some(Event::decode(&rec)));
            cons = self.evtq.next(cons);
        }
        // Free the slots and acknowledge the overflow flag.
        self.evt_cons = cons | (prod & OVERFLOW_FLAG);
        write32(self.base, r::EVENTQ_CONS, self.evt_cons);
    }
}

fn gerror_active(base: usize, bit: u32) -> bool {
    (read32(base, r::GERROR) ^ read32(base, r::GERRORN)) & bit != 0
}

/// After a stage-2 permission change at `ipa`: drops the SMMU's cached
/// translation of that page and waits until no device can use it. A
/// failure means devices might still write a page the guest's CPU no
/// longer can: porwatch stops (a hypervisor failure) rather than carry on.
pub fn invalidate_ipa(ipa: u64) {
    let mut g = SMMU.lock();
    let Some(s) = g.as_mut() else { return };
    if s.submit(&[Command::TlbiS2Ipa { vmid: GUEST_VMID, ipa }, Command::Sync]).is_err() {
        drop(g);
        panic!("SMMU: a TLB invalidation failed; devices may see a stale stage 2");
    }
}

/// Hands the SMMU's queued events to `f` (see `Smmu::drain`); nothing
/// without an SMMU.
pub fn drain_events(f: impl FnMut(Option<Event>)) {
    if let Some(s) = SMMU.lock().as_mut() {
        s.drain(f);
    }
}
