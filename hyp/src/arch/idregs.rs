//! Reading the ID registers a trapped guest MRS asks for (HCR_EL2.TID3 traps
//! op0=3, op1=0, CRn=0, CRm=1..7): system-register accesses need constant
//! encodings, so each is its own MRS.

macro_rules! id_reads {
    ($crm:expr, $op2:expr; $(($c:literal, $o:literal)),* $(,)?) => {
        match ($crm, $op2) {
            $(($c, $o) => {
                let v: u64;
                unsafe {
                    core::arch::asm!(concat!("mrs {}, s3_0_c0_c", $c, "_", $o), out(reg) v,
                                     options(nomem, nostack));
                }
                Some(v)
            })*
            _ => None,
        }
    };
}

/// The CPU's value of the ID register at (CRm, op2), CRm 1..=7.
pub fn read(crm: u8, op2: u8) -> Option<u64> {
    id_reads!(crm, op2;
        (1,0),(1,1),(1,2),(1,3),(1,4),(1,5),(1,6),(1,7),
        (2,0),(2,1),(2,2),(2,3),(2,4),(2,5),(2,6),(2,7),
        (3,0),(3,1),(3,2),(3,3),(3,4),(3,5),(3,6),(3,7),
        (4,0),(4,1),(4,2),(4,3),(4,4),(4,5),(4,6),(4,7),
        (5,0),(5,1),(5,2),(5,3),(5,4),(5,5),(5,6),(5,7),
        (6,0),(6,1),(6,2),(6,3),(6,4),(6,5),(6,6),(6,7),
        (7,0),(7,1),(7,2),(7,3),(7,4),(7,5),(7,6),(7,7),
    )
}

/// The CPU's values of the whole TID3 space, for porwatch_monitor::idregs.
pub fn read_all() -> porwatch_monitor::idregs::Raw {
    use porwatch_monitor::idregs::{slot_id, Raw, REGS};
    let mut r = Raw::ZERO;
    for (i, v) in r.0.iter_mut().enumerate().take(REGS) {
        let id = slot_id(i);
        *v = read(id.crm(), id.op2()).unwrap_or(0);
    }
    r
}
