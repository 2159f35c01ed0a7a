//! x86_64 page walks (4- and 5-level, 1 GiB and 2 MiB pages), for reading
//! the kernel through its own page table when the vCPU's current one is
//! the user page table of page table isolation (KPTI), which maps neither
//! the per-CPU areas nor the `task_struct`s.
//!
//! Under KPTI a process has two top-level tables in one 8 KiB block: the
//! kernel's, then the user one (`kernel_to_user_pgdp()`:
//! `PTI_PGTABLE_SWITCH_BIT` is `PAGE_SHIFT`); CR3 in user mode points at
//! the user one, so the kernel's is CR3 with bit 12 cleared. Bits 0-11 of
//! CR3 are the PCID (and cache flags) when PCIDs are on.

/// Bits 12-51: a page table's or a page's physical address in CR3 and in
/// an entry (bit 63 is NX, bits 52-62 are ignored or protection keys).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The bit of CR3 that selects KPTI's user page table.
pub const PTI_USER_BIT: u64 = 1 << 12;

/// `CR4.LA57`: 5-level paging.
pub const CR4_LA57: u64 = 1 << 12;

const PRESENT: u64 = 1;
/// `PS` in a PDPTE (1 GiB page) or a PDE (2 MiB page).
const LARGE: u64 = 1 << 7;

/// Physical memory.
pub trait Phys {
    /// Fills `buf` from physical address `addr`; false if it cannot.
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// The physical address of `vaddr` through the page table whose root
/// (PML4, or PML5 when `la57`) is at physical `root`, and the number of
/// bytes from it to the end of its page. None if not mapped.
pub fn translate(phys: &impl Phys, root: u64, la57: bool, vaddr: u64) -> Option<(u64, u64)> {
    let shifts: &[u32] = if la57 {
        &[48, 39, 30, 21, 12]
    } else {
        &[39, 30, 21, 12]
    };
    let mut table = root & ADDR_MASK;
    for &shift in shifts {
        let mut entry = [0u8; 8];
        let at = table | (((vaddr >> shift) & 0x1ff) * 8);
        if !phys.read_phys(at, &mut entry) {
            return None;
        }
        let entry = u64::from_le_bytes(entry);
        if entry & PRESENT == 0 {
            return None;
        }
        if shift == 12 || ((shift == 30 || shift == 21) && entry & LARGE != 0) {
            let size = 1u64 << shift;
            let offset = vaddr & (size - 1);
            // A large page's entry has its PAT bit at 12: not address.
            let base = entry & ADDR_MASK & !(size - 1);
            return Some((base | offset, size - offset));
        }
        table = entry & ADDR_MASK;
    }
    None
}

/// Fills `buf` from virtual address `vaddr` through the page table at
/// `root`, page by page; false if any byte is not mapped or unreadable.
pub fn read(phys: &impl Phys, root: u64, la57: bool, vaddr: u64, buf: &mut [u8]) -> bool {
    let mut done = 0usize;
    while done < buf.len() {
        let Some(at) = vaddr.checked_add(done as u64) else {
            return false;
        };
        let Some((pa, left)) = translate(phys, root, la57, at) else {
            return false;
        };
        let n = (buf.len() - done).min(usize::try_from(left).unwrap_or(usize::MAX));
        if !phys.read_phys(pa, &mut buf[done..done + n]) {
            return false;
        }
        done += n;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Physical memory of 4 KiB frames; absent frames read as unreadable.
    #[derive(Default)]
    struct Frames(BTreeMap<u64, Vec<u8>>);

    impl Frames {
        fn set_u64(&mut self, addr: u64, v: u64) {
            let frame = self.0.entry(addr & !0xfff).or_insert_with(|| vec![0; 4096]);
            let at = (addr & 0xfff) as usize;
            frame[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        fn fill(&mut self, addr: u64, byte: u8) {
            self.0.insert(addr & !0xfff, vec![byte; 4096]);
        }
    }

    impl Phys for Frames {
        fn read_phys(&self, addr: u64, buf: &mut [u8]) -> bool {
            let mut done = 0;
            while done < buf.len() {
                let a = addr + done as u64;
                let Some(frame) = self.0.get(&(a & !0xfff)) else {
                    return false;
                };
                let at = (a & 0xfff) as usize;
                let n = (buf.len() - done).min(4096 - at);
                buf[done..done + n].copy_from_slice(&frame[at..at + n]);
                done += n;
            }
            true
        }
    }

    fn index(vaddr: u64, shift: u32) -> u64 {
        ((vaddr >> shift) & 0x1ff) * 8
    }

    #[test]
    fn four_levels_a_4k_page_across_into_a_2m_page_and_a_1g_page() {
        let mut m = Frames::default();
        let (pml4, pdpt, pd, pt) = (0x1000, 0x2000, 0x3000, 0x4000);
        // 0xffff_8880_0000_0000 + ...: the direct map.
        let va = 0xffff_8880_001f_f000u64;
        m.set_u64(pml4 + index(va, 39), pdpt | 0x63);
        m.set_u64(pdpt + index(va, 30), pd | 0x63);
        m.set_u64(pd + index(va, 21), pt | 0x63);
        m.set_u64(pt + index(va, 12), 0x10_0000 | 0x63 | 1 << 63);
        m.fill(0x10_0000, 0xaa);
        // The next 2 MiB: a large page at 0x4000_0000 (PAT bit 12 set).
        let next = va + 0x1000;
        m.set_u64(pd + index(next, 21), 0x4000_0000 | 0x1000 | 0xe3);
        m.fill(0x4000_0000, 0xbb);
        assert_eq!(translate(&m, pml4, false, va + 5), Some((0x10_0005, 4091)));
        assert_eq!(
            translate(&m, pml4 | 0x5, false, next + 0x10),
            Some((0x4000_0010, 0x20_0000 - 0x10)),
            "PCID bits of CR3 ignored"
        );
        let mut buf = [0u8; 8];
        assert!(read(&m, pml4, false, va + 4092, &mut buf));
        assert_eq!(buf, [0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb]);
        // A 1 GiB page.
        let gb = 0xffff_ffff_8000_0000u64;
        m.set_u64(pml4 + index(gb, 39), 0x5000 | 0x63);
        m.set_u64(0x5000 + index(gb, 30), 0x8000_0000 | 0xe3);
        assert_eq!(
            translate(&m, pml4, false, gb + 0x123_4567),
            Some((0x8123_4567, 0x4000_0000 - 0x123_4567))
        );
        // Not present, and an address past the end of the address space.
        assert_eq!(translate(&m, pml4, false, 0xffff_9000_0000_0000), None);
        assert!(!read(&m, pml4, false, u64::MAX - 2, &mut buf));
    }

    #[test]
    fn five_levels() {
        let mut m = Frames::default();
        let (pml5, pml4, pdpt, pd) = (0x1000, 0x2000, 0x3000, 0x4000);
        // The LA57 direct map.
        let va = 0xff11_0000_0020_0000u64;
        m.set_u64(pml5 + index(va, 48), pml4 | 0x63);
        m.set_u64(pml4 + index(va, 39), pdpt | 0x63);
        m.set_u64(pdpt + index(va, 30), pd | 0x63);
        m.set_u64(pd + index(va, 21), 0x60_0000 | 0xe3);
        assert_eq!(
            translate(&m, pml5, true, va + 8),
            Some((0x60_0008, 0x20_0000 - 8))
        );
        // Walked as 4-level, the same root gives something else.
        assert_ne!(
            translate(&m, pml5, false, va + 8),
            Some((0x60_0008, 0x20_0000 - 8))
        );
    }
}
