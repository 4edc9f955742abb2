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
use crate::arch::cpu::IdRegs;
use crate::arch::frame::GuestRegs;
use crate::arch::pl011::Pl011;
use crate::arch::{el2, enter_guest, fast_path, gic_el3, mmu, semihosting, stage2};
use crate::console::{Msg, To};
use crate::placement::{self, PlaceError};
use crate::run_end::stop;
use crate::take_once::TakeOnce;
use crate::trace_out;
use crate::{dma, integrity};
use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, MPIDR_EL1};
use porwatch_monitor::cmdline::{self, CmdlineError, Options, SelfTest, TraceSel};
use porwatch_monitor::fdt::{self, Edits, Platform};
use porwatch_monitor::vpoe::{self, Mode, PoeRefusal};
use porwatch_trace::{Event, MemKind, OverlayEnforced, PoeMode, FORMAT_VERSION};
use spin::Once;

/// MPIDR_EL1.Aff0: the CPU number within its cluster (fast_path's block).
const MPIDR_AFF0: u64 = 0xff;

/// Exit status when porwatch cannot start the guest (bad options, no
/// guest, unusable device tree): EX_CONFIG from sysexits.h.
pub const STATUS_BAD_CONFIG: u32 = 78;

/// Where hyp is at run time (hyp is PIE): its image from the linker
/// script, the stage-2 pool after it, and the guest DTB window
/// (porwatch_monitor::layout::Plan).
#[derive(Clone, Copy)]
pub struct Layout {
    pub start: u64,
    pub text_end: u64,
    pub rodata_end: u64,
    pub stack_guard: u64,
    pub stack_bottom: u64,
    /// The stage-2 table pool [pool_start, pool_end): after the image,
    /// .bss and stack (2 MiB aligned), up to `end`.
    pub pool_start: u64,
    pub pool_end: u64,
    /// End of hyp-owned memory (exclusive).
    pub end: u64,
    /// The guest DTB window: guest RAM, where the loader put porwatch (or
    /// just below porwatch).
    pub dtb_window: u64,
    pub dtb_window_size: u64,
}

unsafe extern "C" {
    static __hyp_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __stack_guard: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
    static __hyp_end: u8;
}

impl Layout {
    /// The image where it runs now, without a pool or DTB window yet.
    pub fn from_linker() -> Self {
        let a = |s: *const u8| s as u64;
        let start = a(&raw const __hyp_start);
        let end = a(&raw const __hyp_end);
        Self {
            start,
            text_end: a(&raw const __text_end),
            rodata_end: a(&raw const __rodata_end),
            stack_guard: a(&raw const __stack_guard),
            stack_bottom: a(&raw const __stack_bottom),
            pool_start: end,
            pool_end: end,
            end,
            dtb_window: 0,
            dtb_window_size: 0,
        }
    }

    /// Image, .bss and stack: what the loader keeps free (`image_size`).
    pub fn static_size(&self) -> u64 {
        self.pool_start - self.start
    }

    /// With the stage-2 pool and DTB window `plan` gives porwatch, now
    /// running at `plan.hyp.start`.
    fn with_plan(self, plan: &porwatch_monitor::layout::Plan) -> Self {
        Self {
            pool_start: plan.pool.start,
            pool_end: plan.pool.end,
            end: plan.hyp.end,
            dtb_window: plan.dtb_window.start,
            dtb_window_size: plan.dtb_window.len(),
            ..self
        }
    }

    pub fn stack_top() -> u64 {
        &raw const __stack_top as u64
    }
}

/// Everything decided at boot that the trap path needs.
pub struct Config {
    /// Options, minus the boot-only trace selection (it borrows the
    /// loader's DTB, which becomes guest memory).
    pub opts: Options<'static>,
    pub ids: IdRegs,
    pub layout: Layout,
    /// How FEAT_S1POE is provided (porwatch_monitor::vpoe::select_mode).
    pub poe: Mode,
}

static CONFIG: Once<Config> = Once::new();

/// Defaults stand in until the command line is read (a failure that early
/// must still be able to stop the machine).
static EARLY: Config = Config {
    opts: Options::DEFAULT,
    ids: IdRegs::ZERO,
    poe: Mode::None,
    layout: Layout {
        start: 0,
        text_end: 0,
        rodata_end: 0,
        stack_guard: 0,
        stack_bottom: 0,
        pool_start: 0,
        pool_end: 0,
        end: 0,
        dtb_window: 0,
        dtb_window_size: 0,
    },
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

/// Guest part of bootargs (porwatch.* words removed).
static GUEST_BOOTARGS: TakeOnce<[u8; 2048]> = TakeOnce::new([0; 2048]);

/// Entered from boot.S with the MMU off, at the top of RAM (placement.rs)
/// unless there was no place: then where the loader put porwatch (`load`),
/// to report why.
#[unsafe(no_mangle)]
extern "C" fn hyp_main(dtb: usize, load: u64, current_el: u64) -> ! {
    let here = Layout::from_linker();
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
    let cfg = CONFIG.call_once(|| Config { opts: Options { trace: None, ..opts }, ids, layout, poe });
    // After CONFIG: a refusal here must stop with semihosting when asked.
    // The console works with the MMU off too (device memory).
    let console_uart = console.map(|b| unsafe { Pl011::new(b as usize) });
    crate::console::init(console_uart, None);
    if let Err(what) =
        mmu::enable(&ids, &layout, &plat, &surveyed.el2_devices([console, trace_uart.map(|u| u.0)]))
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
    let s2 = match stage2::build(&ids, &plat, &layout, trace_uart.map(|u| u.0), plan.holes()) {
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

    el2::configure_for_guest(cfg, s2.vtcr, s2.vttbr);
    // vectors.S's fast paths find this vCPU's state through TPIDR_EL2.
    fast_path::install((MPIDR_EL1.get() & MPIDR_AFF0) as usize % fast_path::MAX_VCPUS);
    if opts.track {
        fast_path::enable_stores();
    }
    crate::tap::configure();
    match opts.selftest {
        Some(SelfTest::Panic) => panic!("porwatch.selftest=panic: deliberate hypervisor panic"),
        Some(SelfTest::El2Fault) => unsafe { core::arch::asm!("udf #0") },
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

    // The first guest frame sits at the top of the EL2 stack; every trap
    // reuses it (vectors.S).
    let frame = (Layout::stack_top() as usize - core::mem::size_of::<GuestRegs>()) as *mut GuestRegs;
    unsafe {
        frame.write(GuestRegs::default());
        (*frame).x[0] = layout.dtb_window;
        (*frame).elr = entry;
        (*frame).spsr = el2::GUEST_ENTRY_SPSR;
        enter_guest(frame)
    }
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
