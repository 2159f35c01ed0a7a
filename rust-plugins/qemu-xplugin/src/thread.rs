//! Proof that code runs on a thread QEMU knows.

use std::marker::PhantomData;

/// Lent to callbacks (and reachable from every [`crate::Vcpu`], which
/// dereferences to it): proof that the code holding it runs on a thread
/// QEMU created and registered (a vCPU thread or QEMU's main thread),
/// inside one of this plugin's callbacks or its install function.
///
/// What needs such a thread takes a `&QemuThread`: firing an event (an RCU
/// read section, which an unregistered thread must not enter), reading a
/// counter (the scoreboard is reallocated when a vCPU starts, with every
/// vCPU stopped, which does not stop other threads), [`crate::reset`] and
/// [`crate::uninstall`] (which QEMU defers only when called on a vCPU).
///
/// It is neither `Send` nor `Sync`, and only the SDK makes one, so it
/// cannot reach another thread:
///
/// ```compile_fail
/// fn callback(thread: &qemu_xplugin::QemuThread) {
///     std::thread::scope(|s| {
///         s.spawn(|| thread);
///     });
/// }
/// ```
pub struct QemuThread {
    _not_send: PhantomData<*mut ()>,
}

impl QemuThread {
    /// The token for a callback QEMU is running on this thread.
    pub(crate) const fn here() -> Self {
        Self {
            _not_send: PhantomData,
        }
    }
}
