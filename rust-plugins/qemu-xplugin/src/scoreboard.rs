//! Per-vCPU counters that generated code updates without a callback.

use qemu_xplugin_sys as sys;

use crate::{QemuThread, Vcpu};

/// A `u64` per vCPU, in a QEMU scoreboard: [`crate::Tb::inline_add`] and
/// [`crate::Insn::inline_add`] update it from generated code, each vCPU its
/// own, so counting needs no callback and no lock. Lives as long as the
/// plugin.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    entry: sys::qemu_plugin_u64,
}

// SAFETY: the handle is a pointer to a scoreboard QEMU owns and the SDK
// never frees. Moving it between threads is harmless; what touches the
// scoreboard's data takes a `&Vcpu` (writes: only the running vCPU's own
// slot) or a `&QemuThread` (reads), both of which exist only on threads
// QEMU knows, inside callbacks. Scenario that would break it: a method
// reading or writing the data without such a token, from a thread that
// races a vCPU start (QEMU reallocates the data then, stopping only vCPUs).
unsafe impl Send for Counter {}
// SAFETY: as above.
unsafe impl Sync for Counter {}

impl Counter {
    /// A counter at 0 on every vCPU.
    pub fn new() -> Self {
        // SAFETY: creates a scoreboard of u64 entries; it resizes itself as
        // vCPUs are added.
        let score = unsafe { sys::qemu_plugin_scoreboard_new(std::mem::size_of::<u64>()) };
        Self {
            entry: sys::qemu_plugin_u64 { score, offset: 0 },
        }
    }

    pub(crate) fn entry(&self) -> sys::qemu_plugin_u64 {
        self.entry
    }

    /// Adds `n` to the slot of `vcpu`, the vCPU running this callback: no
    /// other thread writes that slot (QEMU's add is a plain `+=`).
    pub fn add(&self, vcpu: &Vcpu, n: u64) {
        // SAFETY: valid scoreboard entry; the index is the running vCPU's,
        // which QEMU has sized the scoreboard for before its first
        // callback; only this thread writes that slot (Vcpu is !Send and
        // !Sync, and made only for the vCPU QEMU runs the callback on).
        unsafe { sys::qemu_plugin_u64_add(self.entry, vcpu.index(), n) }
    }

    /// The value of vCPU `index`, or `None` for a vCPU QEMU has not
    /// started.
    pub fn get(&self, _on: &QemuThread, index: u32) -> Option<u64> {
        // SAFETY: no argument; called on a QEMU thread.
        let started = unsafe { sys::qemu_plugin_num_vcpus() };
        if i64::from(index) >= i64::from(started) {
            return None;
        }
        // SAFETY: valid entry, index below the number of started vCPUs
        // (QEMU asserts that); on a QEMU thread (the token), so no vCPU
        // start reallocates the data during the call.
        Some(unsafe { sys::qemu_plugin_u64_get(self.entry, index) })
    }

    /// The sum over all vCPUs.
    pub fn sum(&self, _on: &QemuThread) -> u64 {
        // SAFETY: valid scoreboard entry; on a QEMU thread (as above).
        unsafe { sys::qemu_plugin_u64_sum(self.entry) }
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}
