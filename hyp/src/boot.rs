//! Start-up: from the loader's DTB to the guest's first instruction.
//!
//! 0. (boot.S, placement.rs) move porwatch to the top of RAM;
//! 1. read the platform from the device tree (MMU still off);
//! 2. take porwatch.* options from the command line;
//! 3. turn on the EL2 MMU (identity map, hyp image W^X);
//! 4. write the guest's DTB where porwatch was loaded (trace UART removed,
//!    hyp memory carved out, porwatch.* options removed from bootargs, a
//!    `/psci` node added after an EL3 entry if there is none, DMA-capable
//!    devices removed unless behind porwatch's SMMU: crate::dma);
//! 5. build stage 2 (guest RAM and device MMIO, trace UART and hidden
//!    devices unmapped), start the SMMU on it;
//! 6. configure EL2 and enter the guest at EL1h.
//!
//! The boot CPU is CPU 0 (porwatch_monitor::cpus). The others start when
//! the guest's PSCI CPU_ON asks (psci.rs): boot.S `secondary_entry` turns on
//! the EL2 map built here, then [`hyp_secondary`] configures the CPU's EL2
//! and enters the guest where CPU_ON said. After an EL3 entry they wait in
//! porwatch's pen first (arch/pen.rs; `open_pen` before the loaded copy of
//! porwatch becomes guest RAM). docs/smp.md.
use crate::arch::cpu::IdRegs;
use crate::arch::frame::GuestRegs;
use crate::arch::layout::Layout;
use crate::arch::pl011::Pl011;
use crate::arch::table_pool::TablePool;
use crate::arch::{el2, enter_guest, fast_path, gic_el3, mmu, percpu, semihosting, stage2};
use crate::console::{Msg, To};
use crate::placement::{self, PlaceError};
use crate::run_end::stop;
use crate::take_once::TakeOnce;
use crate::trace_out;
use crate::{dma, integrity};
use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, MPIDR_EL1};
use porwatch_monitor::cmdline::{self, CmdlineError, Options, SelfTest, TraceSel};
use porwatch_monitor::cpus::{Topology, TopologyError, MAX_CPUS};
use porwatch_monitor::fdt::{self, Edits, Platform};
use porwatch_monitor::vpoe::{self, Mode, PoeRefusal};
use porwatch_trace::{Event, MemKind, OverlayEnforced, PoeMode, FORMAT_VERSION};
use spin::Once;

/// Exit status when porwatch cannot start the guest (bad options, no
/// guest, unusable device tree): EX_CONFIG from sysexits.h.
pub const STATUS_BAD_CONFIG: u32 = 78;

/// Everything decided at boot that the trap path needs.
pub struct Config {
    /// Options, minus the boot-only trace selection (it borrows the
    /// loader's DTB, which becomes guest memory).
    pub opts: Options<'static>,
    pub ids: IdRegs,
    pub layout: Layout,
    /// How FEAT_S1POE is provided (porwatch_monitor::vpoe::select_mode).
    pub poe: Mode,
    /// The guest's CPUs, by dense index (the boot CPU is 0).
    pub cpus: Topology,
}

static CONFIG: Once<Config> = Once::new();

/// Defaults stand in until the command line is read (a failure that early
/// must still be able to stop the machine).
static EARLY: Config = Config {
    opts: Options::DEFAULT,
    ids: IdRegs::ZERO,
    poe: Mode::None,
    layout: Layout::EMPTY,
    cpus: Topology::single(0),
};

pub fn config() -> &'static Config {
    CONFIG.get().unwrap_or(&EARLY)
}

/// CurrentEL.EL of an EL3 entry (boot.S passes CurrentEL, EL in bits [3:2]).
const EL3: u64 = 3;

/// Set first thing when entered at EL3 (boot.S dropped to EL2): no firmware
/// runs at EL3, so nothing may be forwarded with SMC — porwatch answers PSCI
/// itself and ends the run with semihosting.
static NO_FIRMWARE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether an EL3 firmware (PSCI provider) exists: false after an EL3 entry.
pub fn has_firmware() -> bool {
    !NO_FIRMWARE.load(core::sync::atomic::Ordering::Relaxed)
}

/// Entered from boot.S at EL3 (still Secure, MMU off), before the drop to
/// EL2: what firmware would have set up for a Non-secure OS and only the
/// Secure side can, from the device tree: every GICv3 interrupt handed to
/// Group 1 Non-secure (arch/gic_el3.rs). A device tree that does not parse
/// is left for hyp_main to report.
#[unsafe(no_mangle)]
extern "C" fn el3_setup(dtb: usize) {
    let mut plat = Platform::new();
    if fdt::discover(unsafe { dtb_slice(dtb) }, &mut plat).is_err() {
        return;
    }
    if let Some(gic) = &plat.gic {
        let mpidr = aarch64_cpu::registers::MPIDR_EL1.get();
        gic_el3::hand_to_non_secure(gic, porwatch_monitor::gic::gicr_affinity(mpidr));
    }
    // CNTFRQ_EL0 is writable only at the highest EL, and firmware normally
    // sets it; QEMU resets it to its counter's frequency, an FVP to 0.
    if let Some(hz) = plat.timer.and_then(|t| t.clock_frequency) {
        if CNTFRQ_EL0.get() == 0 {
            crate::arch::regs::CNTFRQ_EL0_REG.set(hz as u64);
        }
    }
}

/// The tables of porwatch's own EL2 map (arch::mmu builds them).
static EL2_POOL: TakeOnce<TablePool<{ mmu::EL2_TABLES }>> = TakeOnce::new(TablePool::new());

/// What another CPU's EL3 set-up needs from the boot CPU's device tree (the
/// loader's tree becomes guest memory): read with that CPU's MMU off, so
/// cleaned to the point of coherency once written.
struct El3Info {
    gic: Option<fdt::platform::Gic>,
    /// The counter frequency the boot CPU set (or found) in CNTFRQ_EL0.
    cntfrq: u64,
}

struct El3InfoCell(core::cell::UnsafeCell<El3Info>);
// SAFETY: written once by the boot CPU before any other CPU leaves the pen
// (pen::open), then only read.
unsafe impl Sync for El3InfoCell {}
static EL3_INFO: El3InfoCell = El3InfoCell(core::cell::UnsafeCell::new(El3Info { gic: None, cntfrq: 0 }));

/// Entered from boot.S's pen at EL3 (still Secure, MMU off, on this CPU's
/// stack) on a CPU CPU_ON released: this CPU's part of what `el3_setup`
/// did for the boot CPU (its GIC redistributor, CNTFRQ_EL0).
#[unsafe(no_mangle)]
extern "C" fn el3_setup_secondary(_index: u64) {
    // SAFETY: see El3InfoCell.
    let info = unsafe { &*EL3_INFO.0.get() };
    if let Some(gic) = &info.gic {
        let mpidr = aarch64_cpu::registers::MPIDR_EL1.get();
        gic_el3::redistributor_to_non_secure(gic, porwatch_monitor::gic::gicr_affinity(mpidr));
    }
    if CNTFRQ_EL0.get() == 0 && info.cntfrq != 0 {
        crate::arch::regs::CNTFRQ_EL0_REG.set(info.cntfrq);
    }
}

/// How long the boot CPU waits for the other CPUs to reach the pen, in
/// seconds of the system counter (they only run a few instructions; this
/// is for a loaded host).
const PEN_WAIT_S: u64 = 10;

/// After an EL3 entry: every CPU of the machine but this one must wait in
/// the moved copy's pen before the loaded copy becomes guest RAM (the DTB
/// window); stops the boot if one does not arrive.
fn open_pen(plat: &Platform, cpus: &Topology) {
    // SAFETY: no other CPU runs Rust yet (see El3InfoCell).
    unsafe { *EL3_INFO.0.get() = El3Info { gic: plat.gic.clone(), cntfrq: CNTFRQ_EL0.get() } };
    crate::arch::mmu::clean_to_poc(EL3_INFO.0.get() as u64, core::mem::size_of::<El3Info>() as u64);
    crate::arch::pen::open(cpus);
    let deadline = aarch64_cpu::registers::CNTPCT_EL0.get() + PEN_WAIT_S * CNTFRQ_EL0.get().max(1);
    if let Err(mpidr) = crate::arch::pen::all_arrived(cpus, deadline) {
        Msg::new(To::Both)
            .s("cannot start: CPU ")
            .hex(mpidr)
            .s(" (MPIDR) did not reach porwatch's pen within ")
            .dec(PEN_WAIT_S)
            .s(" s")
            .end();
        stop(STATUS_BAD_CONFIG, false);
    }
}

/// Guest part of bootargs (porwatch.* words removed).
static GUEST_BOOTARGS: TakeOnce<[u8; 2048]> = TakeOnce::new([0; 2048]);

/// Entered from boot.S with the MMU off, at the top of RAM (placement.rs)
/// unless there was no place: then where the loader put porwatch (`load`),
/// to report why.
#[unsafe(no_mangle)]
extern "C" fn hyp_main(dtb: usize, load: u64, current_el: u64) -> ! {
    // The boot CPU is CPU 0 (porwatch_monitor::cpus); its per-CPU block,
    // through TPIDR_EL2, before anything traces.
    percpu::install(0, MPIDR_EL1.get());
    let here = Layout::from_linker();
    if !here.stacks_as_expected() {
        stop(STATUS_BAD_CONFIG, false); // linker/hyp.ld and arch/layout.rs disagree: a build bug
    }
    let ids = IdRegs::read();
    if current_el >> 2 == EL3 {
        NO_FIRMWARE.store(true, core::sync::atomic::Ordering::Relaxed);
    }

    let dtb_bytes = unsafe { dtb_slice(dtb) };
    let mut plat = Platform::new();
    if fdt::discover(dtb_bytes, &mut plat).is_err() {
        // No console is known yet: nothing can be printed.
        stop(STATUS_BAD_CONFIG, false);
    }
    let console = plat.console().map(|u| u.regs.base);

    let bootargs = plat.chosen.bootargs.unwrap_or("");
    let Some(guest_args) = GUEST_BOOTARGS.take() else { stop(STATUS_BAD_CONFIG, false) };
    let parsed = cmdline::split(bootargs, guest_args);
    let opts = match &parsed {
        Ok((o, _)) => *o,
        // Still honour semihosting, so the refusal reaches the host as a
        // non-zero exit status.
        Err(_) => Options { semihosting: cmdline::semihosting_requested(bootargs), ..Options::DEFAULT },
    };
    let trace_pick = pick_trace_uart(&plat, &opts);
    let trace_uart = trace_pick.ok().flatten();
    // Bus masters (crate::dma): the device pages hyp needs come from there.
    let surveyed = dma::survey(dtb_bytes, &plat);
    // The same plan boot.S followed (same inputs), or why there is none.
    let placed = placement::plan(dtb_bytes, &plat, load, here.static_size()).and_then(|p| {
        if p.hyp.start == here.start {
            Ok(p)
        } else {
            Err(PlaceError::NotMoved { planned: p.hyp.start, at: here.start })
        }
    });
    let layout = match &placed {
        Ok(p) => here.with_plan(p),
        Err(_) => here,
    };

    let poe_pick = vpoe::select_mode(vpoe::hw_has_s1poe(ids.mmfr3), opts.poe, opts.tap);
    let poe = poe_pick.unwrap_or(Mode::None);
    let topology = Topology::new(&plat.cpus, plat.cpus_listed, ids.mpidr);
    let cpus = topology.unwrap_or(Topology::single(ids.mpidr));
    let cfg = CONFIG.call_once(|| Config { opts: Options { trace: None, ..opts }, ids, layout, poe, cpus });
    // After CONFIG: a refusal here must stop with semihosting when asked.
    // The console works with the MMU off too (device memory).
    let console_uart = console.map(|b| unsafe { Pl011::new(b as usize) });
    crate::console::init(console_uart, None);
    let Some(pool) = EL2_POOL.take() else { stop(STATUS_BAD_CONFIG, false) };
    if let Err(what) =
        mmu::enable(pool, &ids, &layout, &plat, &surveyed.el2_devices([console, trace_uart.map(|u| u.0)]))
    {
        Msg::new(To::Console).s("cannot map porwatch's own memory at EL2: ").s(what).end();
        stop(STATUS_BAD_CONFIG, false);
    }
    let trace = trace_uart.map(|(b, _)| unsafe { Pl011::new(b as usize) });
    if let Some(t) = trace {
        t.enable_tx();
    }
    crate::console::init(console_uart, trace);
    let file = match opts.trace {
        Some(TraceSel::Semihosting(name)) => Some(open_trace_file(name, opts.semihosting)),
        _ => None,
    };
    trace_out::init(match (trace, file) {
        (Some(u), _) => Some(trace_out::Sink::Uart(u)),
        (None, Some(f)) => Some(trace_out::Sink::File(f)),
        (None, None) => None,
    });

    let guest_len = match parsed {
        Ok((_, n)) => n,
        Err(e) => {
            // The wording of CmdlineError's Display, without core::fmt.
            let m = Msg::new(To::Both);
            match e {
                CmdlineError::UnknownKey(k) => m.s("unknown option porwatch.").s(k),
                CmdlineError::BadValue { key, value } => {
                    m.s("bad value \"").s(value).s("\" for porwatch.").s(key)
                }
                CmdlineError::MissingValue(k) => m.s("porwatch.").s(k).s(" needs a value"),
                CmdlineError::Duplicate(k) => m.s("porwatch.").s(k).s(" given more than once"),
                CmdlineError::Quoted(w) => m.s("quotes are not allowed in ").s(w),
                CmdlineError::OutputTooSmall => m.s("guest command line too long"),
            }
            .end();
            stop(STATUS_BAD_CONFIG, false);
        }
    };
    if let Err(why) = trace_pick {
        refuse_trace(why, &opts);
    }
    if let Err(why) = placed {
        why.explain(Msg::new(To::Both).s("cannot start: ")).end();
        stop(STATUS_BAD_CONFIG, false);
    }
    if let Err(why) = topology {
        let m = Msg::new(To::Both).s("cannot start: ");
        match why {
            TopologyError::TooMany { listed } => m
                .s("the machine has ")
                .dec(listed as u64)
                .s(" CPUs, more than porwatch supports (")
                .dec(MAX_CPUS as u64)
                .s("): give it fewer (-smp)"),
            TopologyError::BootCpuMissing { mpidr } => {
                m.s("the boot CPU (MPIDR ").hex(mpidr).s(") is not in the device tree's /cpus")
            }
            TopologyError::Duplicate { mpidr } => m.s("/cpus lists MPIDR ").hex(mpidr).s(" twice"),
        }
        .end();
        stop(STATUS_BAD_CONFIG, false);
    }
    if let Err(why) = poe_pick {
        let m = Msg::new(To::Both);
        match why {
            PoeRefusal::NoFeature => m
                .s("porwatch.poe=native: this CPU has no FEAT_S1POE (ID_AA64MMFR3_EL1.S1POE is 0); \
                 porwatch.poe=virtual (or auto) provides it"),
            PoeRefusal::NeedsTap => {
                m.s("porwatch.poe=virtual needs the exception-entry tap, and porwatch.tap=off turns it off")
            }
        }
        .end();
        stop(STATUS_BAD_CONFIG, false);
    }

    // The header's option bits include the trace selection, which cfg.opts
    // leaves out.
    let bits = opts.bits();
    emit_header(cfg, bits, current_el, dtb as u64, console.unwrap_or(0), trace_uart.map_or(0, |u| u.0));

    let Some(entry) = opts.guest else {
        Msg::new(To::Console).s("no guest: give porwatch.guest=ADDRESS on the command line").end();
        stop(STATUS_BAD_CONFIG, false);
    };

    // Which devices the guest keeps (crate::dma).
    let plan = match surveyed.decide(stage2::vtcr(&ids).unwrap_or(0), trace_uart.map(|u| u.1)) {
        Ok(p) => p,
        Err(e) => {
            Msg::new(To::Both).s(e).end();
            stop(STATUS_BAD_CONFIG, false);
        }
    };

    // Guest DTB.
    let guest_bootargs = core::str::from_utf8(&guest_args[..guest_len]).unwrap_or("");
    let carve = [(layout.start, layout.end - layout.start)];
    let edits = Edits {
        remove: plan.removals(),
        carve_out: &carve,
        bootargs: Some(guest_bootargs),
        reserve: &[],
        // Without firmware porwatch is the guest's PSCI (SMC is trapped):
        // describe it, as QEMU does when it provides PSCI itself.
        psci: (!has_firmware() && plat.psci.is_none()).then_some("smc"),
        drop_props: plan.dropped_props(),
    };
    // The window is guest RAM, normally where the loader put porwatch
    // (layout.rs): cleared first then, so the guest finds no stale copy of
    // porwatch there.
    let window = unsafe {
        core::slice::from_raw_parts_mut(layout.dtb_window as *mut u8, layout.dtb_window_size as usize)
    };
    if !has_firmware() {
        open_pen(&plat, &cfg.cpus);
    }
    if layout.dtb_window == load {
        window.fill(0);
    }
    let dtb_size = match fdt::rewrite(dtb_bytes, &edits, window) {
        Ok(n) => n as u64,
        Err(e) => {
            let m = Msg::new(To::Both).s("cannot write the guest device tree");
            match e {
                fdt::FdtError::OutputTooSmall => m.s(": it does not fit its 2 MiB window"),
                _ => m.s(": the loader's device tree is malformed"),
            }
            .end();
            stop(STATUS_BAD_CONFIG, false);
        }
    };

    // Stage 2.
    let s2 = match stage2::build(&ids, &plat, &layout, trace_uart.map(|u| u.0), plan.holes(), cfg.cpus.len())
    {
        Ok(s2) => s2,
        Err(e) => {
            let m = Msg::new(To::Both).s("cannot build stage 2: ").s(e.what);
            match e.range {
                Some((start, end)) => m.s(" ").hex(start).s("..").hex(end),
                None => m,
            }
            .end();
            stop(STATUS_BAD_CONFIG, false);
        }
    };
    stage2::guest_ram(&plat, &layout, |s, e| {
        trace_out::emit(Event::MemRegion { base: s, size: e - s, kind: MemKind::GuestRam as u64 });
    });
    stage2::passthrough(&plat, trace_uart.map(|u| u.0), plan.holes(), |s, e| {
        trace_out::emit(Event::MemRegion { base: s, size: e - s, kind: MemKind::Mmio as u64 });
    });
    trace_out::emit(Event::MemRegion {
        base: layout.start,
        size: layout.end - layout.start,
        kind: MemKind::Hyp as u64,
    });
    trace_out::emit(Event::MemRegion {
        base: layout.dtb_window,
        size: dtb_size,
        kind: MemKind::GuestDtb as u64,
    });
    if let Some(t) = trace_uart {
        trace_out::emit(Event::MemRegion { base: t.0, size: 0x1000, kind: MemKind::HiddenMmio as u64 });
    }
    if plan.start(s2.vtcr, s2.root).is_err() {
        stop(STATUS_BAD_CONFIG, false);
    }

    if !stage2::is_guest_ram(&plat, &layout, entry) {
        let m = Msg::new(To::Both).s("guest entry ").hex(entry).s(" is not in guest RAM");
        if (layout.start..layout.end).contains(&entry) {
            m.s(": porwatch's own memory (")
                .hex(layout.start)
                .s("..")
                .hex(layout.end)
                .s(", the top of RAM); load the guest lower")
                .end();
        } else {
            m.end();
        }
        stop(STATUS_BAD_CONFIG, false);
    }

    crate::cpu_view::init(cfg);
    VTCR.call_once(|| s2.vtcr);
    el2::configure_for_guest(&guest_setup(cfg, 0), cfg.ids.mpidr);
    crate::arch::inject::set_mte(cfg.ids.has_mte());
    if opts.track {
        fast_path::enable_stores();
        crate::audit::init();
    }
    crate::tap::configure();
    crate::por_sites::configure();
    match opts.selftest {
        Some(SelfTest::Panic) => panic!("porwatch.selftest=panic: deliberate hypervisor panic"),
        Some(SelfTest::El2Fault) => unsafe { core::arch::asm!("udf #0") },
        Some(SelfTest::Drop) => trace_out::refuse_droppable(trace_out::DropTest::All),
        Some(SelfTest::DropHalf) => trace_out::refuse_droppable(trace_out::DropTest::Half),
        None => {}
    }

    integrity::record(&layout);
    trace_out::emit(Event::GuestStart {
        entry,
        dtb: layout.dtb_window,
        dtb_size,
        spsr: el2::GUEST_ENTRY_SPSR,
    });
    trace_out::flush();
    crate::psci::boot_cpu_on();
    enter_guest_at(0, entry, layout.dtb_window)
}

/// VTCR_EL2 of the guest's stage 2 (boot builds it once).
static VTCR: Once<u64> = Once::new();

/// What CPU `index`'s EL2 is configured with (arch::el2): the same for
/// every CPU but VTTBR_EL2, the CPU's own stage-2 root.
fn guest_setup(cfg: &'static Config, index: usize) -> el2::GuestSetup<'static> {
    let cpu = crate::cpu_view::get();
    let vtcr = VTCR.get().copied().unwrap_or(0);
    let vttbr = stage2::vttbr(index);
    let o = &cfg.opts;
    el2::GuestSetup {
        ids: &cfg.ids,
        controls: &cpu.controls,
        pmuv3: cpu.pmuv3(),
        watch: el2::Watch {
            tap: o.tap,
            track: o.track,
            exc_return: o.exc_return,
            poe: cfg.poe,
            por_trap: o.por == porwatch_monitor::cmdline::PorWatch::Trap,
            por_carrier: cpu.por_carrier,
        },
        vtcr,
        vttbr,
    }
}

/// Enters the guest on this CPU (`cpu`) at `entry` with x0 = `x0`, EL1h,
/// interrupts masked (the arm64 boot protocol, and PSCI's CPU_ON). The
/// first guest frame sits at the top of the CPU's EL2 stack; every trap
/// reuses it (vectors.S), and whatever was on the stack is abandoned.
fn enter_guest_at(cpu: usize, entry: u64, x0: u64) -> ! {
    let top = config().layout.stack_top(cpu);
    let frame = (top as usize - core::mem::size_of::<GuestRegs>()) as *mut GuestRegs;
    // SAFETY: the frame is at the top of this CPU's own stack, below which
    // nothing still in use lives once enter_guest switches SP to it.
    unsafe {
        frame.write(GuestRegs::default());
        (*frame).x[0] = x0;
        (*frame).elr = entry;
        (*frame).spsr = el2::GUEST_ENTRY_SPSR;
        enter_guest(frame)
    }
}

/// Entered from boot.S `secondary_entry` on a CPU that CPU_ON started (or
/// that resumes from a power-down CPU_SUSPEND): EL2, MMU on, its own stack
/// and vectors. Sets EL2 up for the guest and enters it where the guest
/// asked.
#[unsafe(no_mangle)]
extern "C" fn hyp_secondary(cpu: u64) -> ! {
    let cpu = cpu as usize;
    let mpidr = MPIDR_EL1.get();
    percpu::install(cpu, mpidr);
    if config().cpus.index_of(mpidr) != Some(cpu) {
        // Firmware passed another CPU's context ID: nothing sensible to do.
        crate::run_end::park();
    }
    enter_guest_here(cpu)
}

/// This CPU (`cpu`, started or resumed) enters the guest: its EL2 set up
/// again (VMPIDR_EL2 its own MPIDR_EL1), a fresh tap, a `cpu_start`
/// record, then the guest's entry with its context ID.
pub fn enter_guest_here(cpu: usize) -> ! {
    let cfg = config();
    let mpidr = MPIDR_EL1.get();
    el2::configure_for_guest(&guest_setup(cfg, cpu), mpidr);
    crate::tap::reset_this_cpu();
    let Some(start) = crate::psci::take_start(cpu) else { crate::run_end::park() };
    trace_out::emit(Event::CpuStart {
        mpidr,
        entry: start.entry,
        context: start.context,
        reason: start.reason as u64,
    });
    enter_guest_at(cpu, start.entry, start.context)
}

/// `porwatch.trace=semihosting:NAME`: opens the host file the trace goes
/// to, or stops with a console message (the options are refused: exit 78).
/// Semihosting traps (HLT) only when porwatch.semihosting says a debugger
/// or model is there to catch them; never otherwise.
fn open_trace_file(name: &str, semihosting: bool) -> semihosting::HostFile {
    if !semihosting {
        Msg::new(To::Console)
            .s("porwatch.trace=semihosting:")
            .s(name)
            .s(" needs porwatch.semihosting=1 (a debugger or model that serves semihosting)")
            .end();
        stop(STATUS_BAD_CONFIG, false);
    }
    match semihosting::open_write(name.as_bytes()) {
        Some(f) => f,
        None => {
            Msg::new(To::Console).s("cannot open the semihosting trace file ").s(name).end();
            stop(STATUS_BAD_CONFIG, false);
        }
    }
}

/// Why no trace UART could be chosen.
#[derive(Clone, Copy)]
enum TraceRefusal {
    /// `porwatch.trace=` names the guest's console.
    Console,
    /// `porwatch.trace=` names no enabled PL011.
    NotFound,
    /// Not given, and there is no PL011 besides the console.
    NoSecond,
}

/// The trace UART: `porwatch.trace=` if given, else the first enabled PL011
/// that is not the console. Returns (base, node path), or None for
/// `none` and `semihosting:FILE`.
fn pick_trace_uart<'p>(
    plat: &'p Platform,
    opts: &Options<'_>,
) -> Result<Option<(u64, &'p str)>, TraceRefusal> {
    let u = match &opts.trace {
        Some(TraceSel::None | TraceSel::Semihosting(_)) => return Ok(None),
        Some(TraceSel::Path(p)) => plat.uart_by_path(p).ok_or(TraceRefusal::NotFound)?,
        Some(TraceSel::Addr(a)) => plat.uart_by_base(*a).ok_or(TraceRefusal::NotFound)?,
        None => plat.uarts.iter().find(|u| !u.console).ok_or(TraceRefusal::NoSecond)?,
    };
    if u.console {
        return Err(TraceRefusal::Console); // never steal the guest's console
    }
    Ok(Some((u.regs.base, u.path.as_str())))
}

/// Stops the boot with why the trace has nowhere to go.
fn refuse_trace(why: TraceRefusal, opts: &Options<'_>) -> ! {
    let m = Msg::new(To::Console);
    let m = match opts.trace {
        Some(TraceSel::Path(p)) => m.s("porwatch.trace=").s(p),
        Some(TraceSel::Addr(a)) => m.s("porwatch.trace=").hex(a),
        _ => m,
    };
    match why {
        TraceRefusal::Console => m.s(
            " is the guest's console (/chosen/stdout-path), which porwatch never takes: \
             name another PL011, or porwatch.trace=semihosting:FILE or none",
        ),
        TraceRefusal::NotFound => m.s(" names no enabled PL011 in the device tree"),
        TraceRefusal::NoSecond => m.s(
            "no second PL011 for the trace (add a second -serial, or porwatch.trace=semihosting:FILE or none)",
        ),
    }
    .end();
    stop(STATUS_BAD_CONFIG, false);
}

fn emit_header(cfg: &Config, options: u64, current_el: u64, dtb: u64, console: u64, trace: u64) {
    let ids = &cfg.ids;
    trace_out::emit_reliable(Event::Header {
        format_version: FORMAT_VERSION,
        cntfrq: CNTFRQ_EL0.get(),
        midr: ids.midr,
        mpidr: ids.mpidr,
        id_aa64pfr0: ids.pfr0,
        id_aa64pfr1: ids.pfr1,
        id_aa64dfr0: ids.dfr0,
        id_aa64isar0: ids.isar0,
        id_aa64isar1: ids.isar1,
        id_aa64mmfr0: ids.mmfr0,
        id_aa64mmfr1: ids.mmfr1,
        id_aa64mmfr2: ids.mmfr2,
        id_aa64mmfr3: ids.mmfr3,
        poe_mode: match cfg.poe {
            Mode::None => PoeMode::None,
            Mode::Virtual => PoeMode::Virtual,
            Mode::Native => PoeMode::Native,
        } as u64,
        options,
        hyp_base: cfg.layout.start,
        hyp_size: cfg.layout.end - cfg.layout.start,
        overlay_enforced: match cfg.poe {
            Mode::None => OverlayEnforced::None,
            Mode::Virtual => OverlayEnforced::TableWritesOnly,
            Mode::Native => OverlayEnforced::Hardware,
        } as u64,
    });
    trace_out::emit(Event::HypBoot {
        entry_el: current_el >> 2,
        dtb,
        console_uart: console,
        trace_uart: trace,
    });
}

/// The DTB at `addr` as a slice sized by its header (empty if none).
pub unsafe fn dtb_slice(addr: usize) -> &'static [u8] {
    const FDT_MAGIC: u32 = 0xd00d_feed;
    const MAX_DTB: usize = 2 << 20;
    if addr == 0 || !addr.is_multiple_of(8) {
        return &[];
    }
    let hdr = addr as *const u32;
    if u32::from_be(unsafe { hdr.read_volatile() }) != FDT_MAGIC {
        return &[];
    }
    let size = u32::from_be(unsafe { hdr.add(1).read_volatile() }) as usize;
    unsafe { core::slice::from_raw_parts(addr as *const u8, size.min(MAX_DTB)) }
}
