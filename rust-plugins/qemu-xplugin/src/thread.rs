//! Proof that code runs on a thread QEMU knows, and where on it.

use std::marker::PhantomData;
use std::ops::Deref;

/// Lent to callbacks (and reachable from every [`crate::Vcpu`], which
/// dereferences to it): proof that the code holding it runs on a thread
/// QEMU created and registered (a vCPU thread or QEMU's main thread),
/// inside one of this plugin's callbacks or its install function.
///
/// What needs such a thread takes a `&QemuThread`: firing an event (an RCU
/// read section, which an unregistered thread must not enter),
/// [`crate::reset`] and [`crate::uninstall`] (which QEMU defers only when
/// called on a vCPU). Reading a counter needs more: an [`ExecThread`].
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

    /// The number of vCPUs QEMU has started so far (user mode: one per
    /// guest thread, counting those that ended).
    pub fn num_vcpus(&self) -> u32 {
        // SAFETY: no argument; QEMU reads a counter.
        unsafe { qemu_xplugin_sys::qemu_plugin_num_vcpus() }.max(0) as u32
    }
}

/// A [`QemuThread`] (it dereferences to one) at a point where no vCPU can
/// start: QEMU reallocates its scoreboards (the memory of every
/// [`crate::Counter`]) when a vCPU with a new index starts, in an
/// "exclusive section" that waits for every vCPU to leave guest code
/// (`cpu_exec`), and nothing else. So scoreboards stay put while the
/// holder runs:
///
/// - inside guest code on a vCPU: execution and memory hooks
///   ([`crate::Install::exec_hook`], [`crate::Install::mem_hook`],
///   [`crate::Tb::on_exec_fn`]), whose [`crate::Vcpu`] dereferences to an
///   `ExecThread`, and address space changes
///   ([`crate::Install::on_asid_change`]), which QEMU reports only while
///   the vCPU runs guest code;
/// - in an exclusive section: flush callbacks ([`crate::Install::on_flush`]);
/// - at exit ([`crate::Install::on_exit`]): see there for what QEMU
///   guarantees.
///
/// Syscall, syscall filter, vCPU init/idle/resume and discontinuity
/// callbacks run outside guest code, where another thread may be starting
/// a vCPU: their `Vcpu` dereferences to a plain [`QemuThread`], and a
/// counter cannot be read there. Hypercall callbacks get one too,
/// conservatively (they run inside guest code, in `CPUID`'s helper).
///
/// Neither `Send` nor `Sync`, made only by the SDK:
///
/// ```compile_fail
/// fn callback(thread: &qemu_xplugin::ExecThread) {
///     std::thread::scope(|s| {
///         s.spawn(|| thread);
///     });
/// }
/// ```
pub struct ExecThread {
    thread: QemuThread,
}

impl ExecThread {
    /// The token for a callback QEMU runs where no vCPU can start (see the
    /// type's documentation): only the trampolines of such callbacks call
    /// this.
    pub(crate) const fn here() -> Self {
        Self {
            thread: QemuThread::here(),
        }
    }
}

impl Deref for ExecThread {
    type Target = QemuThread;

    fn deref(&self) -> &QemuThread {
        &self.thread
    }
}

/// What a [`crate::Vcpu`] dereferences to: [`QemuThread`] or
/// [`ExecThread`]. Sealed: only the SDK's token types implement it.
pub trait Context: private::Sealed {}

impl Context for QemuThread {}
impl Context for ExecThread {}

pub(crate) mod private {
    /// Only the SDK makes tokens.
    pub trait Sealed {
        /// The token for a callback of this kind QEMU runs on this thread.
        fn here() -> Self;
    }

    impl Sealed for super::QemuThread {
        fn here() -> Self {
            super::QemuThread::here()
        }
    }

    impl Sealed for super::ExecThread {
        fn here() -> Self {
            super::ExecThread::here()
        }
    }
}

/// The vCPU an [`crate::Install::on_vcpu_exit`] callback is about: its
/// index only. QEMU may run that callback on its main thread, for a vCPU
/// that is being unplugged (no vCPU is current then), where reading
/// registers aborts QEMU and [`crate::reset`] or [`crate::uninstall`]
/// would not be deferred; so it gives no register or memory access and no
/// [`QemuThread`] token.
///
/// ```compile_fail
/// fn install(plugin: &mut qemu_xplugin::Install) {
///     plugin.on_vcpu_exit(|vcpu| {
///         qemu_xplugin::uninstall(vcpu)?;
///         Ok(())
///     });
/// }
/// ```
#[derive(Debug)]
pub struct VcpuExit {
    index: u32,
    _not_send: PhantomData<*mut ()>,
}

impl VcpuExit {
    /// Only the exit trampoline makes one.
    pub(crate) fn new(index: u32) -> Self {
        Self {
            index,
            _not_send: PhantomData,
        }
    }

    /// The vCPU's index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }
}
