//! Per-vCPU counters that generated code updates without a callback.

use qemu_xplugin_sys as sys;

/// A `u64` per vCPU, in a QEMU scoreboard: [`crate::Tb::inline_add`] and
/// [`crate::Insn::inline_add`] update it from generated code, each vCPU its
/// own, so counting needs no callback and no lock. Lives as long as the
/// plugin.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    entry: sys::qemu_plugin_u64,
}

// SAFETY: the scoreboard is owned by QEMU, never freed by the SDK, and QEMU's
// scoreboard functions may be called from any thread.
unsafe impl Send for Counter {}
// SAFETY: as above; each vCPU writes only its own slot.
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

    /// Adds `n` for vCPU `vcpu`.
    pub fn add(&self, vcpu: u32, n: u64) {
        // SAFETY: valid scoreboard entry; QEMU checks the index.
        unsafe { sys::qemu_plugin_u64_add(self.entry, vcpu, n) }
    }

    /// The value for vCPU `vcpu`.
    pub fn get(&self, vcpu: u32) -> u64 {
        // SAFETY: as above.
        unsafe { sys::qemu_plugin_u64_get(self.entry, vcpu) }
    }

    /// The sum over all vCPUs.
    pub fn sum(&self) -> u64 {
        // SAFETY: valid scoreboard entry.
        unsafe { sys::qemu_plugin_u64_sum(self.entry) }
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}
