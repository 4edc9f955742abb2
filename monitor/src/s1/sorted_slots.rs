//! A fixed-capacity sequence kept in a caller-chosen order (the tracker's
//! tables, by address) whose elements never move: they sit in fixed slots,
//! and only a `u16` slot number per element is shifted on insertion and
//! removal. The tracker's tables are 24 bytes; shifting them was ≈ 6,000
//! instructions per table linked or unlinked under Linux (≈ 600 tables),
//! most of the cost of those stores. Positions (`usize`) mean the same as
//! in a sorted `Vec`.

use core::ops::{Index, IndexMut};
use heapless::Vec;

pub(crate) struct SortedSlots<T: Copy, const N: usize> {
    slots: [T; N],
    /// Slot numbers, in order.
    order: Vec<u16, N>,
    /// Slots freed by `remove`/`retain`, reused first.
    free: Vec<u16, N>,
    /// Slots `next..N` have never been used.
    next: usize,
}

impl<T: Copy, const N: usize> SortedSlots<T, N> {
    /// Empty; `fill` is what unused slots hold. `N` must fit a `u16`.
    pub const fn new(fill: T) -> Self {
        assert!(N <= u16::MAX as usize + 1);
        Self { slots: [fill; N], order: Vec::new(), free: Vec::new(), next: 0 }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.order.len()
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.order.is_full()
    }

    #[inline]
    pub fn get(&self, pos: usize) -> Option<&T> {
        self.order.get(pos).map(|&s| &self.slots[s as usize])
    }

    #[inline]
    pub fn get_mut(&mut self, pos: usize) -> Option<&mut T> {
        let s = *self.order.get(pos)?;
        Some(&mut self.slots[s as usize])
    }

    /// In order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.order.iter().map(|&s| &self.slots[s as usize])
    }

    /// Calls `f` on every element, in order.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        for &s in self.order.iter() {
            f(&mut self.slots[s as usize]);
        }
    }

    /// Inserts `e` at `pos` (0..=len); gives it back when full.
    pub fn insert(&mut self, pos: usize, e: T) -> Result<(), T> {
        if self.is_full() || pos > self.len() {
            return Err(e);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.next += 1;
                (self.next - 1) as u16
            }
        };
        self.slots[slot as usize] = e;
        // Cannot fail: not full, pos checked.
        let _ = self.order.insert(pos, slot);
        Ok(())
    }

    /// Removes and returns the element at `pos` (panics if out of range, as
    /// `Vec::remove`).
    pub fn remove(&mut self, pos: usize) -> T {
        let slot = self.order.remove(pos);
        // Cannot fail: at most N slots are ever free.
        let _ = self.free.push(slot);
        self.slots[slot as usize]
    }

    /// Keeps the elements for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let slots = &self.slots;
        let free = &mut self.free;
        self.order.retain(|&s| {
            let k = keep(&slots[s as usize]);
            if !k {
                let _ = free.push(s);
            }
            k
        });
    }

    /// As `slice::binary_search_by_key`, over the elements in order.
    pub fn binary_search_by_key<K: Ord>(&self, key: &K, f: impl Fn(&T) -> K) -> Result<usize, usize> {
        self.order.binary_search_by(|&s| f(&self.slots[s as usize]).cmp(key))
    }
}

impl<T: Copy, const N: usize> Index<usize> for SortedSlots<T, N> {
    type Output = T;
    #[inline]
    fn index(&self, pos: usize) -> &T {
        &self.slots[self.order[pos] as usize]
    }
}

impl<T: Copy, const N: usize> IndexMut<usize> for SortedSlots<T, N> {
    #[inline]
    fn index_mut(&mut self, pos: usize) -> &mut T {
        &mut self.slots[self.order[pos] as usize]
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec as StdVec;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32),
        Remove(usize),
        Retain(u32),
        Bump(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u32>().prop_map(|k| Op::Insert(k % 64)),
            2 => any::<usize>().prop_map(Op::Remove),
            1 => any::<u32>().prop_map(|m| Op::Retain(m % 7 + 2)),
            2 => any::<usize>().prop_map(Op::Bump),
        ]
    }

    proptest! {
        /// Behaves as a sorted Vec of (key, payload): same positions, same
        /// contents, same search results, slots reused, capacity kept.
        #[test]
        fn same_as_a_sorted_vec(ops in proptest::collection::vec(op(), 0..300)) {
            let mut s: SortedSlots<(u32, u32), 16> = SortedSlots::new((0, 0));
            let mut m: StdVec<(u32, u32)> = StdVec::new();
            for o in ops {
                match o {
                    Op::Insert(k) => {
                        let pos = m.binary_search_by_key(&k, |e| e.0).unwrap_or_else(|p| p);
                        prop_assert_eq!(s.binary_search_by_key(&k, |e| e.0).unwrap_or_else(|p| p), pos);
                        let r = s.insert(pos, (k, 0));
                        if m.len() < 16 {
                            prop_assert!(r.is_ok());
                            m.insert(pos, (k, 0));
                        } else {
                            prop_assert_eq!(r, Err((k, 0)));
                        }
                    }
                    Op::Remove(i) if !m.is_empty() => {
                        let i = i % m.len();
                        prop_assert_eq!(s.remove(i), m.remove(i));
                    }
                    Op::Remove(_) => {}
                    Op::Retain(d) => {
                        s.retain(|e| e.0 % d != 0);
                        m.retain(|e| e.0 % d != 0);
                    }
                    Op::Bump(i) if !m.is_empty() => {
                        let i = i % m.len();
                        s[i].1 += 1;
                        m[i].1 += 1;
                        let k0 = m[0].0;
                        s.for_each_mut(|e| if e.0 == k0 { e.1 += 10 });
                        m.iter_mut().filter(|e| e.0 == k0).for_each(|e| e.1 += 10);
                    }
                    Op::Bump(_) => {}
                }
                prop_assert_eq!(s.len(), m.len());
                prop_assert_eq!(s.is_full(), m.len() == 16);
                prop_assert_eq!(s.iter().copied().collect::<StdVec<_>>(), m.clone());
                for (i, e) in m.iter().enumerate() {
                    prop_assert_eq!(s.get(i), Some(e));
                }
                prop_assert_eq!(s.get(m.len()), None);
                let mut n = 0;
                s.for_each_mut(|_| n += 1);
                prop_assert_eq!(n, m.len());
            }
        }
    }
}
