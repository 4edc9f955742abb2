//! Where porwatch runs: at the top of RAM, so that the guest's RAM is one
//! range from the RAM base (porwatch_monitor::layout decides; boot.S moves
//! the image). [`hyp_place`] is asked first, at the load address with the
//! MMU off; hyp_main asks [`plan`] again with the same inputs, gets the same
//! answer, and refuses to start with the reason when there is none.
use crate::arch::layout::Layout;
use crate::boot::dtb_slice;
use crate::console::Msg;
use porwatch_monitor::fdt::{self, Platform};
use porwatch_monitor::layout::{self, Occupant, Occupied, Plan, PlanError, Request, Span};

/// Reservations (`/memreserve/`, `/reserved-memory`) considered; more is
/// refused rather than risk overwriting one.
const MAX_KEEP: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    Plan(PlanError),
    /// `/memreserve/` or `/reserved-memory` could not be read.
    BadReservations,
    /// More than [`MAX_KEEP`] reservations.
    TooManyReservations,
    /// boot.S did not move porwatch where the plan says (a porwatch bug).
    NotMoved {
        planned: u64,
        at: u64,
    },
}

impl PlaceError {
    /// Appends why to `m` (the wording of PlanError's Display, without
    /// core::fmt).
    pub fn explain(self, m: Msg) -> Msg {
        const MIB_SHIFT: u32 = 20;
        match self {
            PlaceError::Plan(PlanError::NoRam) => m.s("the device tree describes no RAM"),
            PlaceError::Plan(PlanError::TooMuchRam { ram }) => m
                .dec(ram >> MIB_SHIFT)
                .s(" MiB of RAM is more than porwatch supports (")
                .dec(layout::MAX_GUEST_RAM >> MIB_SHIFT)
                .s(" MiB): give the machine less memory"),
            PlaceError::Plan(PlanError::NoRoom { need }) => m
                .s("no room for porwatch (")
                .dec(need >> MIB_SHIFT)
                .s(" MiB) in RAM clear of the device tree, initrd and reserved memory"),
            PlaceError::Plan(PlanError::NoDtbWindow) => {
                m.s("no 2 MiB of RAM left for the guest's device tree")
            }
            PlaceError::BadReservations => {
                m.s("cannot read the device tree's reserved memory (/memreserve/, /reserved-memory)")
            }
            PlaceError::TooManyReservations => m.s("more reserved-memory ranges than porwatch handles"),
            PlaceError::NotMoved { planned, at } => {
                m.s("porwatch runs at ").hex(at).s(", not where it planned to (").hex(planned).s(")")
            }
        }
    }
}

/// The plan for porwatch loaded at `load` (its static image taking
/// `static_size` bytes there) with the loader's device tree `dtb`.
pub fn plan(dtb: &[u8], plat: &Platform, load: u64, static_size: u64) -> Result<Plan, PlaceError> {
    let mut ram: heapless::Vec<Span, { fdt::platform::MAX_MEMORY }> = heapless::Vec::new();
    for m in plat.memory.iter() {
        let _ = ram.push(Span::new(m.base, m.base.saturating_add(m.size)));
    }
    let mut devices: heapless::Vec<Span, { fdt::platform::MAX_MMIO }> = heapless::Vec::new();
    for r in plat.mmio.iter() {
        let _ = devices.push(Span::new(r.base, r.base.saturating_add(r.size)));
    }
    let mut keep: heapless::Vec<Occupied, MAX_KEEP> = heapless::Vec::new();
    let dtb_start = dtb.as_ptr() as u64;
    let mut full = keep
        .push(Occupied {
            span: Span::new(dtb_start, dtb_start + dtb.len() as u64),
            what: Occupant::LoaderDtb,
        })
        .is_err();
    if let Some((s, e)) = plat.chosen.initrd {
        full |= keep.push(Occupied { span: Span::new(s, e), what: Occupant::Initrd }).is_err();
    }
    fdt::reserved::reservations(dtb, |base, size| {
        let span = Span::new(base, base.saturating_add(size));
        // The reservation block and /reserved-memory, told apart only for
        // the record: both are kept.
        full |= keep.push(Occupied { span, what: Occupant::ReservedMemory }).is_err();
    })
    .map_err(|_| PlaceError::BadReservations)?;
    if full {
        return Err(PlaceError::TooManyReservations);
    }
    let req = Request {
        ram: &ram,
        loaded: Span::new(load, load + static_size),
        static_size,
        devices: &devices,
        keep: &keep,
    };
    layout::plan(&req).map_err(PlaceError::Plan)
}

/// Called by boot.S at EL2, relocated at the load address, MMU off:
/// returns where porwatch must run (its load address when it stays, which
/// includes every failure: hyp_main then reports it).
#[unsafe(no_mangle)]
extern "C" fn hyp_place(dtb: usize, load: u64) -> u64 {
    let here = Layout::from_linker();
    let bytes = unsafe { dtb_slice(dtb) };
    let mut plat = Platform::new();
    if fdt::discover(bytes, &mut plat).is_err() {
        return load;
    }
    match plan(bytes, &plat, load, here.static_size()) {
        Ok(p) => p.hyp.start,
        Err(_) => load,
    }
}
