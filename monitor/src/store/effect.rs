//! What a planned store leaves in memory, without performing it: the bytes
//! a [`Plan`] writes given the bytes there now (fault policy reports the
//! value the hardware would have stored, atomics included), how a store
//! splits at page boundaries (a store that crosses into a table page is
//! translated and checked page by page), and the descriptor a store leaves
//! at a given address.

use super::atomic::ldop_apply;
use super::plan::{Plan, MAX_WRITE_BYTES};

/// The translation granule porwatch splits stores at (4 KiB).
pub const PAGE_BYTES: u64 = 4096;

/// Little-endian value of `bytes` (at most 16), zero-extended.
#[inline]
fn le(bytes: &[u8]) -> u128 {
    bytes.iter().rev().fold(0u128, |v, &b| (v << 8) | b as u128)
}

impl Plan {
    /// The bytes this plan writes over `cur` (the `len` bytes at
    /// [`Plan::addr`] now, little-endian): plain and exclusive stores their
    /// data, CAS/CASP `new` if `cur` equals `expected` (else `cur`: nothing
    /// changes), SWP its value, `LD<op>` the operation applied to `cur`.
    /// `None` for DC ZVA (larger than the buffer: it writes zeros) and
    /// SIMD&FP stores (their data is in FP/SIMD registers, which EL2 never
    /// reads), or when `cur` is shorter than the access.
    pub fn written_bytes(&self, cur: &[u8]) -> Option<[u8; MAX_WRITE_BYTES]> {
        let len = self.len();
        if len > MAX_WRITE_BYTES || cur.len() < len {
            return None;
        }
        let mut out = [0u8; MAX_WRITE_BYTES];
        let put = |out: &mut [u8; MAX_WRITE_BYTES], v: u128| {
            out[..len].copy_from_slice(&v.to_le_bytes()[..len.min(16)]);
        };
        match *self {
            Plan::Write { data, .. } | Plan::Exclusive { data, .. } => {
                out[..len].copy_from_slice(&data[..len])
            }
            Plan::Cas { expected, new, .. } => {
                if len > 16 {
                    return None;
                }
                let now = le(&cur[..len]);
                put(&mut out, if now == expected { new } else { now });
            }
            Plan::Swp { new, .. } => put(&mut out, new as u128),
            Plan::LdOp { op, operand, .. } => {
                let now = le(&cur[..len.min(8)]) as u64;
                put(&mut out, ldop_apply(op, now, operand, len) as u128);
            }
            Plan::ZeroBlock { .. } | Plan::StepAndDiff { .. } => return None,
        }
        Some(out)
    }
}

/// One page's part of a store: `len` bytes at `va`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PagePart {
    pub va: u64,
    pub len: usize,
    /// Offset of this part within the store.
    pub offset: usize,
}

/// The parts of a `len`-byte store at `addr` in each 4 KiB page it touches,
/// in address order: one, or two when it crosses a page boundary (a store
/// porwatch emulates is at most [`MAX_WRITE_BYTES`] bytes, less than a
/// page). Empty for `len == 0`; a store longer than a page gives its first
/// two parts only (callers check `len` first). Address arithmetic wraps.
pub fn page_parts(addr: u64, len: usize) -> heapless::Vec<PagePart, 2> {
    let mut out = heapless::Vec::new();
    if len == 0 {
        return out;
    }
    let to_boundary = (PAGE_BYTES - (addr % PAGE_BYTES)) as usize;
    let first = len.min(to_boundary);
    let _ = out.push(PagePart { va: addr, len: first, offset: 0 });
    if first < len {
        let rest = (len - first).min(PAGE_BYTES as usize);
        let _ = out.push(PagePart { va: addr.wrapping_add(first as u64), len: rest, offset: first });
    }
    out
}

/// The 8-byte descriptor at `desc_addr` (8-byte aligned; now `old`) after
/// `data` is written at `addr`: the bytes the store covers replaced, the
/// others kept. Works in any address space (VA or IPA) as long as both
/// addresses are in the same one.
pub fn descriptor_after(desc_addr: u64, old: u64, addr: u64, data: &[u8]) -> u64 {
    let mut b = old.to_le_bytes();
    for (k, byte) in b.iter_mut().enumerate() {
        let at = desc_addr.wrapping_add(k as u64);
        let i = at.wrapping_sub(addr);
        if i < data.len() as u64 {
            *byte = data[i as usize];
        }
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::super::atomic::AtomicOp;
    use super::*;

    fn write_plan(addr: u64, bytes: &[u8]) -> Plan {
        let mut data = [0u8; MAX_WRITE_BYTES];
        data[..bytes.len()].copy_from_slice(bytes);
        Plan::Write { addr, len: bytes.len(), unit: 1, data, writeback: None, tag: None }
    }

    #[test]
    fn atomics_write_what_the_instruction_would() {
        let cur = 0x1000_0000_0000_0f03u64.to_le_bytes();
        let cas = |expected: u128| Plan::Cas {
            addr: 0,
            len: 8,
            expected,
            new: 0x55,
            result_reg: 0,
            result_reg2: None,
        };
        // CAS that swaps, and one that does not (memory unchanged).
        assert_eq!(cas(0x1000_0000_0000_0f03).written_bytes(&cur).unwrap()[..8], 0x55u64.to_le_bytes());
        assert_eq!(cas(0x1234).written_bytes(&cur).unwrap()[..8], cur);
        let swp = Plan::Swp { addr: 0, len: 8, new: 7, result_reg: 1 };
        assert_eq!(swp.written_bytes(&cur).unwrap()[..8], 7u64.to_le_bytes());
        let op = |op, operand| Plan::LdOp { addr: 0, len: 8, op, operand, result_reg: 2 };
        let got = |p: Plan| u64::from_le_bytes(p.written_bytes(&cur).unwrap()[..8].try_into().unwrap());
        assert_eq!(got(op(AtomicOp::Set, 0x0400)), 0x1000_0000_0000_0f03 | 0x400);
        assert_eq!(got(op(AtomicOp::Clr, 0x3)), 0x1000_0000_0000_0f00);
        assert_eq!(got(op(AtomicOp::Add, 1)), 0x1000_0000_0000_0f04);
        assert_eq!(got(op(AtomicOp::Umin, 2)), 2);
        // A 4-byte LDEOR leaves the upper bytes of the buffer alone.
        let w = Plan::LdOp { addr: 0, len: 4, op: AtomicOp::Eor, operand: 0xffff_ffff, result_reg: 2 };
        assert_eq!(w.written_bytes(&cur).unwrap()[..4], 0xffff_f0fcu32.to_le_bytes());
        // CASP of X registers: 16 bytes compared and written.
        let mut cur16 = [0u8; 16];
        cur16[..8].copy_from_slice(&1u64.to_le_bytes());
        cur16[8..].copy_from_slice(&2u64.to_le_bytes());
        let casp = Plan::Cas {
            addr: 0,
            len: 16,
            expected: 1 | 2 << 64,
            new: 3 | 4 << 64,
            result_reg: 0,
            result_reg2: Some(1),
        };
        let b = casp.written_bytes(&cur16).unwrap();
        assert_eq!((b[0], b[8]), (3, 4));
        // Plain stores: their data; DC ZVA and SIMD: not known here.
        assert_eq!(write_plan(0, &[1, 2]).written_bytes(&cur).unwrap()[..2], [1, 2]);
        assert_eq!(Plan::ZeroBlock { addr: 0, len: 64 }.written_bytes(&[0; 64]), None);
        assert_eq!(Plan::StepAndDiff { addr: 0, len: 16 }.written_bytes(&[0; 16]), None);
        assert_eq!(swp.written_bytes(&cur[..4]), None, "cur shorter than the access");
    }

    #[test]
    fn parts_split_at_the_page_boundary() {
        let p = page_parts(0x4000_0ffc, 8);
        assert_eq!(
            p.as_slice(),
            [
                PagePart { va: 0x4000_0ffc, len: 4, offset: 0 },
                PagePart { va: 0x4000_1000, len: 4, offset: 4 }
            ]
        );
        assert_eq!(page_parts(0x4000_0ff8, 8).as_slice(), [PagePart { va: 0x4000_0ff8, len: 8, offset: 0 }]);
        assert_eq!(page_parts(0x4000_0fff, 16)[1], PagePart { va: 0x4000_1000, len: 15, offset: 1 });
        assert!(page_parts(0x1000, 0).is_empty());
        // Wrapping at the top of the address space does not panic.
        assert_eq!(page_parts(u64::MAX - 1, 4)[1].va, 0);
    }

    #[test]
    fn descriptor_after_a_partial_or_straddling_store() {
        let old = 0x1111_2222_3333_4444u64;
        // STR X at descriptor + 4: the low half stays, the high half is the
        // data's first four bytes.
        let data = 0xaaaa_bbbb_cccc_ddddu64.to_le_bytes();
        assert_eq!(descriptor_after(0x1000, old, 0x1004, &data), 0xcccc_dddd_3333_4444);
        // The next descriptor gets the data's last four bytes.
        assert_eq!(descriptor_after(0x1008, old, 0x1004, &data), 0x1111_2222_aaaa_bbbb);
        // A store that ends before the descriptor, or starts after it.
        assert_eq!(descriptor_after(0x1008, old, 0x1000, &data), old);
        assert_eq!(descriptor_after(0x1000, old, 0x1008, &data), old);
        // A whole aligned descriptor.
        assert_eq!(descriptor_after(0x1000, old, 0x1000, &data), 0xaaaa_bbbb_cccc_dddd);
    }
}
