//! Device accesses a plugin interposes on: [`crate::Install::on_mmio`].
//! The types its callbacks see; the registration is in `install.rs`, the
//! trampoline in `trampolines.rs`.

use std::cell::Cell;
use std::ops::{Bound, RangeBounds};

use qemu_xplugin_sys as sys;

use crate::{Error, ErrorKind, Result};

thread_local! {
    /// Set while this thread runs an MMIO callback: QEMU holds the BQL.
    static IN_MMIO_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Whether this thread runs an MMIO callback, with the BQL held: a vCPU
/// inside [`crate::PerVcpu::with`] may be waiting for that lock (a
/// [`crate::Vcpu::read_physical`] of a device), so nothing here may wait
/// for that vCPU's value.
pub(crate) fn in_mmio_callback() -> bool {
    IN_MMIO_CALLBACK.with(Cell::get)
}

/// Marks this thread as running an MMIO callback until dropped (a panic
/// ends QEMU: no unwinding to worry about, but dropping restores anyway).
pub(crate) struct MmioCallbackScope(bool);

impl MmioCallbackScope {
    pub(crate) fn enter() -> Self {
        Self(IN_MMIO_CALLBACK.with(|c| c.replace(true)))
    }
}

impl Drop for MmioCallbackScope {
    fn drop(&mut self) {
        IN_MMIO_CALLBACK.with(|c| c.set(self.0));
    }
}

/// The bits of a value that an access of `size` bytes keeps:
/// `0xffff_ffff` for 4 bytes (QEMU passes 1 to 8).
pub(crate) fn size_mask(size: u32) -> u64 {
    match size {
        0 => 0,
        1..=7 => (1u64 << (size * 8)) - 1,
        _ => u64::MAX,
    }
}

/// What becomes of a device access once an [`crate::Install::on_mmio`]
/// callback returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the access goes on (Pass) or is complete (Done): say which"]
pub enum MmioAction {
    /// The access goes on: to the callback of the next range that it
    /// overlaps (this plugin's or another's), then to the device, or to
    /// unassigned memory. A store stores [`MmioAccess::value`], changed
    /// or not; a load's value is not used.
    Pass,
    /// The callback completed the access: a load returns
    /// [`MmioAccess::value`], a store is dropped. No later callback and
    /// no device sees the access, and an access to unassigned memory
    /// raises no bus error.
    Done,
}

impl MmioAction {
    pub(crate) fn raw(self) -> sys::qemu_plugin_mmio_result {
        match self {
            MmioAction::Pass => sys::qemu_plugin_mmio_result::QEMU_PLUGIN_MMIO_PASS,
            MmioAction::Done => sys::qemu_plugin_mmio_result::QEMU_PLUGIN_MMIO_DONE,
        }
    }
}

/// One load or store of guest code to a device (memory-mapped I/O) or to
/// unassigned memory, as an [`crate::Install::on_mmio`] callback sees it,
/// before it happens. Only the SDK makes one.
///
/// The value holds the access's bytes in memory order, the first one in
/// the least significant position, whatever the byte order of the target
/// and of the access: the bytes at [`MmioAccess::paddr`] are
/// `value.to_le_bytes()[..size]`. Only its low `size` bytes count:
/// [`MmioAccess::set_value`] drops the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    paddr: u64,
    size: u32,
    flags: u32,
    value: u64,
}

impl MmioAccess {
    /// The access as QEMU passes it: `size` bytes (1 to 8) at `paddr`,
    /// `flags` a mask of `qemu_plugin_mmio_flags`, `value` the data.
    pub(crate) fn new(paddr: u64, size: u32, flags: u32, value: u64) -> Self {
        let mut access = Self {
            paddr,
            size,
            flags,
            value: 0,
        };
        access.set_value(value);
        access
    }

    /// The guest physical address of the access: its first byte, which
    /// may lie before the registered range (an access overlapping its
    /// start).
    pub fn paddr(&self) -> u64 {
        self.paddr
    }

    /// The size of the access in bytes, 1 to 8. QEMU hands a larger
    /// access, or one that crosses a page, over in parts of at most 8
    /// bytes, of any size (an 8-byte load 3 bytes before the end of a page
    /// comes as 3 bytes, then 5).
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// A store (else a load).
    pub fn is_store(&self) -> bool {
        self.flags & sys::qemu_plugin_mmio_flags::QEMU_PLUGIN_MMIO_WRITE.0 != 0
    }

    /// The access, or a part of it, fails to decode: no device is mapped
    /// there, or the device mapped there refuses an access of this size
    /// or alignment. Without a plugin, that part of a load returns 0, of a
    /// store is discarded (and a target with bus errors raises one).
    pub fn is_unassigned(&self) -> bool {
        self.flags & sys::qemu_plugin_mmio_flags::QEMU_PLUGIN_MMIO_UNASSIGNED.0 != 0
    }

    /// The data: for a store, the value the guest stores as the previous
    /// callback left it (the guest's, for the first); for a load, 0 on
    /// entry, then what [`MmioAccess::set_value`] set.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Sets the data, keeping its low [`MmioAccess::size`] bytes (the rest
    /// is dropped, as QEMU would ignore it): for a load, the value it
    /// returns when the callback returns [`MmioAction::Done`]; for a
    /// store, the value it stores when the callback returns
    /// [`MmioAction::Pass`] (a store completed with `Done` is dropped).
    pub fn set_value(&mut self, value: u64) {
        self.value = value & self.mask();
    }

    /// The bits of a value that an access of this size keeps:
    /// `0xffff_ffff` for 4 bytes.
    pub fn mask(&self) -> u64 {
        size_mask(self.size)
    }
}

/// `range` as QEMU's first address and length, or an error naming the
/// problem: an empty range, or one of all 2^64 addresses (QEMU's length
/// is 64 bits: at most `u64::MAX` addresses).
pub(crate) fn range_to_addr_len(range: &impl RangeBounds<u64>) -> Result<(u64, u64)> {
    let shown = show_range(range);
    let invalid =
        |why: &str| Error::with_kind(ErrorKind::Invalid, format!("MMIO range {shown}: {why}"));
    let first = match range.start_bound() {
        Bound::Included(&a) => Some(a),
        Bound::Excluded(&a) => a.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    // The last address, inclusive; None when the range ends before 0.
    let last = match range.end_bound() {
        Bound::Included(&b) => Some(b),
        Bound::Excluded(&b) => b.checked_sub(1),
        Bound::Unbounded => Some(u64::MAX),
    };
    match (first, last) {
        (Some(first), Some(last)) if first <= last => {
            let len = (last - first)
                .checked_add(1)
                .ok_or_else(|| invalid("covers all 2^64 addresses, more than QEMU's 64-bit length holds; end it at u64::MAX (exclusive)"))?;
            Ok((first, len))
        }
        _ => Err(invalid("is empty")),
    }
}

/// `range` as the plugin wrote it, in hexadecimal: `0xfe000000..0xfe000004`.
fn show_range(range: &impl RangeBounds<u64>) -> String {
    let start = match range.start_bound() {
        Bound::Included(a) => format!("{a:#x}"),
        Bound::Excluded(a) => format!("(excluded {a:#x})"),
        Bound::Unbounded => String::new(),
    };
    let end = match range.end_bound() {
        Bound::Included(b) => format!("={b:#x}"),
        Bound::Excluded(b) => format!("{b:#x}"),
        Bound::Unbounded => String::new(),
    };
    format!("{start}..{end}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: u32 = sys::qemu_plugin_mmio_flags::QEMU_PLUGIN_MMIO_WRITE.0;
    const UNASSIGNED: u32 = sys::qemu_plugin_mmio_flags::QEMU_PLUGIN_MMIO_UNASSIGNED.0;

    #[test]
    fn values_keep_the_access_size() {
        let mut access = MmioAccess::new(0xfe00_0000, 4, 0, 0);
        assert!(!access.is_store());
        assert!(!access.is_unassigned());
        access.set_value(0x1122_3344_5566_7788);
        assert_eq!(access.value(), 0x5566_7788);
        for (size, mask) in [(1, 0xff), (2, 0xffff), (4, 0xffff_ffff), (8, u64::MAX)] {
            let access = MmioAccess::new(0, size, WRITE | UNASSIGNED, u64::MAX);
            assert_eq!(access.mask(), mask);
            assert_eq!(access.value(), mask, "QEMU's bits above size are dropped");
            assert_eq!(access.size(), size as usize);
            assert!(access.is_store() && access.is_unassigned());
        }
    }

    #[test]
    fn ranges_become_addr_and_len() {
        assert_eq!(
            range_to_addr_len(&(0xfe00_0000..0xfe00_0004)),
            Ok((0xfe00_0000, 4))
        );
        assert_eq!(range_to_addr_len(&(0x10..=0x10)), Ok((0x10, 1)));
        assert_eq!(
            range_to_addr_len(&(0xffff_f000..)),
            Ok((0xffff_f000, u64::MAX - 0xffff_f000 + 1))
        );
        assert_eq!(range_to_addr_len(&(u64::MAX..=u64::MAX)), Ok((u64::MAX, 1)));
        assert_eq!(range_to_addr_len(&(..u64::MAX)), Ok((0, u64::MAX)));
    }

    #[test]
    fn bad_ranges_are_named() {
        let err = range_to_addr_len(&(0x1000..0x1000)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(err.message(), "MMIO range 0x1000..0x1000: is empty");
        #[allow(clippy::reversed_empty_ranges)]
        let err = range_to_addr_len(&(0x2000..0x1000)).unwrap_err();
        assert_eq!(err.message(), "MMIO range 0x2000..0x1000: is empty");
        assert_eq!(
            range_to_addr_len(&(..0)).unwrap_err().message(),
            "MMIO range ..0x0: is empty"
        );
        assert_eq!(
            range_to_addr_len(&(..)).unwrap_err().message(),
            "MMIO range ..: covers all 2^64 addresses, more than QEMU's 64-bit length holds; end it at u64::MAX (exclusive)"
        );
        assert!(range_to_addr_len(&(0..=u64::MAX)).is_err());
    }
}
