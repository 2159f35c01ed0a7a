//! The C functions QEMU calls for the registry's events: each takes the
//! event's closures from the registry (`registry.rs`) and runs them with
//! what the closures get (a [`Vcpu`], a [`Tb`], a [`QemuThread`]).
//! Callbacks that may redirect the vCPU share one path,
//! [`run_redirecting`]: snapshot, iterate, stop at the first redirect or
//! answer, redirect last.

use std::ffi::{c_uint, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use qemu_xplugin_sys as sys;

use crate::ffi::in_callback;
use crate::ffi::report;
use crate::hooks::free_block_closures;
use crate::install::{AsidChange, Discontinuity, DiscontinuityKind, Hypercall, Syscall};
use crate::mmio::{size_mask, MmioAccess, MmioAction, MmioCallbackScope};
use crate::registry::{plugin_id, registry, List, VcpuFn};
use crate::translate::Tb;
use crate::vcpu::{apply_redirect, RegAccess, Vcpu};
use crate::{ExecThread, QemuThread, VcpuExit};

/// Runs the closures of a vCPU event (init, exit, idle, resume), where QEMU
/// allows register access but not redirection.
fn run_vcpu_callbacks(list: &List<VcpuFn>, vcpu_index: c_uint, what: &str) {
    in_callback(|| {
        for f in list.snapshot().iter() {
            let mut vcpu = Vcpu::new(vcpu_index, RegAccess::ReadWrite);
            report(f(&mut vcpu), what);
        }
    });
}

/// Registered for every plugin at install (and again after a reset): the
/// SDK reads each vCPU's register list as it starts, before its guest
/// code runs, for [`crate::Reg`] (`regs.rs`).
pub(crate) fn ensure_vcpu_init() {
    // SAFETY: a registration of this plugin, with a trampoline of the
    // callback's type. Registering it again replaces it with itself.
    unsafe { sys::qemu_plugin_register_vcpu_init_cb(plugin_id(), Some(vcpu_init)) }
}

pub(crate) extern "C" fn vcpu_init(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    in_callback(|| crate::regs::record_vcpu(vcpu_index));
    run_vcpu_callbacks(&registry().vcpu_init, vcpu_index, "vCPU init");
}

/// QEMU calls this on the vCPU's thread, or, when a vCPU is unplugged in
/// system mode (`cpu_common_unrealizefn`), on its main thread with no
/// current vCPU: the closures get the index only ([`VcpuExit`]), nothing
/// that reads registers (QEMU asserts a current vCPU) or resets or
/// uninstalls the plugin (QEMU would do it at once, under running vCPUs).
pub(crate) extern "C" fn vcpu_exit(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    in_callback(|| {
        let vcpu = VcpuExit::new(vcpu_index);
        for f in registry().vcpu_exit.snapshot().iter() {
            report(f(&vcpu), "vCPU exit");
        }
    });
}

pub(crate) extern "C" fn vcpu_idle(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    run_vcpu_callbacks(&registry().vcpu_idle, vcpu_index, "vCPU idle");
}

pub(crate) extern "C" fn vcpu_resume(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    run_vcpu_callbacks(&registry().vcpu_resume, vcpu_index, "vCPU resume");
}

/// Whether [`flush`] is registered with QEMU (a reset unregisters it).
static FLUSH_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Registers [`flush`] unless it is: it runs the plugin's flush closures
/// and frees the closures attached to the blocks QEMU dropped.
pub(crate) fn ensure_flush() {
    if !FLUSH_REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: a registration of this plugin, with a trampoline of the
        // callback's type.
        unsafe { sys::qemu_plugin_register_flush_cb(plugin_id(), Some(flush)) }
    }
}

/// QEMU removed every callback (a reset): [`flush`] too.
pub(crate) fn flush_unregistered() {
    FLUSH_REGISTERED.store(false, Ordering::Release);
}

extern "C" fn flush(_id: sys::qemu_plugin_id_t) {
    in_callback(|| {
        free_block_closures();
        // QEMU runs flush callbacks in an exclusive section (every vCPU
        // out of guest code, none starting): see ExecThread.
        let thread = ExecThread::here();
        for f in registry().flush.snapshot().iter() {
            f(&thread);
        }
    });
}

pub(crate) extern "C" fn translate(_id: sys::qemu_plugin_id_t, tb: *mut sys::qemu_plugin_tb) {
    in_callback(|| {
        let tb = Tb::new(tb);
        for f in registry().translate.snapshot().iter() {
            f(&tb);
        }
    });
}

/// Runs `list`'s closures, with a [`Vcpu`] that may redirect, until one
/// answers (`each` returns `Some`) or redirects: the closures after it
/// are not run, as QEMU would not run later callbacks after a redirect.
/// The redirect is applied last, once every Rust value of the call is
/// dropped (QEMU leaves by longjmp).
fn run_redirecting<T: ?Sized, R>(
    list: &List<T>,
    vcpu_index: c_uint,
    mut each: impl FnMut(&T, &mut Vcpu<QemuThread>) -> Option<R>,
) -> Option<R> {
    let (answer, redirect) = in_callback(|| {
        let mut vcpu = Vcpu::new(vcpu_index, RegAccess::ReadWritePc);
        for f in list.snapshot().iter() {
            let answer = each(f, &mut vcpu);
            let redirect = vcpu.take_redirect();
            if answer.is_some() || redirect.is_some() {
                return (answer, redirect);
            }
        }
        (None, None)
    });
    apply_redirect(redirect);
    answer
}

#[allow(clippy::too_many_arguments)]
pub(crate) extern "C" fn syscall(
    _id: sys::qemu_plugin_id_t,
    vcpu_index: c_uint,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
) {
    let call = Syscall {
        num,
        args: [a1, a2, a3, a4, a5, a6, a7, a8],
    };
    run_redirecting(&registry().syscall, vcpu_index, |f, vcpu| {
        report(f(vcpu, &call), "syscall");
        None::<()>
    });
}

pub(crate) extern "C" fn syscall_ret(
    _id: sys::qemu_plugin_id_t,
    vcpu_index: c_uint,
    num: i64,
    ret: i64,
) {
    run_redirecting(&registry().syscall_ret, vcpu_index, |f, vcpu| {
        report(f(vcpu, num, ret), "syscall return");
        None::<()>
    });
}

#[allow(clippy::too_many_arguments)]
pub(crate) extern "C" fn syscall_filter(
    vcpu_index: c_uint,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
    sysret: *mut i64,
    _udata: *mut c_void,
) -> bool {
    let call = Syscall {
        num,
        args: [a1, a2, a3, a4, a5, a6, a7, a8],
    };
    match run_redirecting(&registry().syscall_filter, vcpu_index, |f, vcpu| {
        f(vcpu, &call)
    }) {
        Some(value) => {
            // SAFETY: QEMU passes a valid pointer for the return value.
            unsafe { *sysret = value };
            true
        }
        None => false,
    }
}

/// QEMU's hypercall callback, for every number this plugin registered: runs
/// the number's handler with a [`Vcpu`] that reads and writes registers
/// (QEMU sets `QEMU_PLUGIN_CB_RW_REGS`, not `_PC`: no redirect). On x86
/// QEMU hands the handler the full `EFLAGS` and loads back what it wrote,
/// and ends the translation block after `CPUID`, so flag, code and mode
/// changes take effect at the next instruction.
#[allow(clippy::too_many_arguments)]
pub(crate) extern "C" fn hypercall(
    vcpu_index: c_uint,
    num: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    ret: *mut u64,
    _udata: *mut c_void,
) -> bool {
    let call = Hypercall {
        num,
        args: [a1, a2, a3, a4],
    };
    let answer = in_callback(|| {
        let f = registry().hypercall(num)?;
        let mut vcpu = Vcpu::new(vcpu_index, RegAccess::ReadWrite);
        f(&mut vcpu, &call)
    });
    match answer {
        Some(value) => {
            // SAFETY: QEMU passes a valid, writable pointer for the return
            // value, which it reads once the callback returns.
            unsafe { *ret = value };
            true
        }
        None => false,
    }
}

pub(crate) extern "C" fn discontinuity(
    _id: sys::qemu_plugin_id_t,
    vcpu_index: c_uint,
    kind: sys::qemu_plugin_discon_type,
    from: u64,
    to: u64,
) {
    let kind = match kind {
        sys::qemu_plugin_discon_type::QEMU_PLUGIN_DISCON_INTERRUPT => DiscontinuityKind::Interrupt,
        sys::qemu_plugin_discon_type::QEMU_PLUGIN_DISCON_EXCEPTION => DiscontinuityKind::Exception,
        _ => DiscontinuityKind::HostCall,
    };
    let event = Discontinuity { kind, from, to };
    run_redirecting(&registry().discon, vcpu_index, |f, vcpu| {
        report(f(vcpu, &event), "discontinuity");
        None::<()>
    });
}

/// QEMU calls this on the vCPU's thread while it runs guest code (it
/// reports no change made elsewhere: see
/// qemu_plugin_register_vcpu_asid_changed_cb), in the middle of the
/// instruction that switched, where the registers are not up to date
/// (QEMU refuses to read them): a `Vcpu` inside guest code
/// ([`ExecThread`]: counters can be read), without register access, lent
/// as `&Vcpu` (no memory writes, no redirect). The ExecThread rests on
/// QEMU's check, in qemu_plugin_vcpu_asid_changed(), that the vCPU is
/// between cpu_exec_start() and cpu_exec_end(). Scenario that would break
/// it: a QEMU reporting changes made outside guest code (a plugin's CR3
/// write from a vCPU init callback while another vCPU starts and grows
/// the scoreboards).
pub(crate) extern "C" fn asid_changed(vcpu_index: c_uint, old: u64, new: u64, _udata: *mut c_void) {
    let change = AsidChange { old, new };
    in_callback(|| {
        let vcpu = Vcpu::<ExecThread>::new(vcpu_index, RegAccess::None);
        for f in registry().asid.snapshot().iter() {
            report(f(&vcpu, &change), "address space change");
        }
    });
}

/// QEMU's MMIO callback, for every range this plugin registered: `udata`
/// is not a pointer but the range's index in the registry
/// ([`crate::Install::on_mmio`]), so nothing is dereferenced through it.
/// QEMU removes a plugin's ranges before it reinstalls the plugin after a
/// reset, in exclusive work, so an index always names the closure
/// registered with it; were QEMU to call an index of an earlier install,
/// the closure now at that index would run (or, past the end, the access
/// would pass on): wrong, but not undefined. QEMU calls it on the vCPU's
/// thread, in
/// the middle of a load or store helper, with the BQL held and the
/// registers out of date (`QEMU_PLUGIN_CB_NO_REGS`): the closure gets a
/// `&Vcpu<QemuThread>` without register access (no writes, no
/// redirect), as for [`hypercall`] a `QemuThread` rather than an
/// `ExecThread`, conservatively: QEMU does not check that the access
/// comes from inside guest code.
pub(crate) extern "C" fn mmio(
    vcpu_index: c_uint,
    paddr: u64,
    size: c_uint,
    flags: c_uint,
    value: *mut u64,
    udata: *mut c_void,
) -> sys::qemu_plugin_mmio_result {
    if value.is_null() {
        return MmioAction::Pass.raw();
    }
    // SAFETY: QEMU passes a pointer to the access's value (a uint64_t
    // local of its load or store path, so aligned), valid for reads and
    // writes and not accessed by anything else until the callback
    // returns; checked non-NULL above. Scenario that would break it: a QEMU calling the
    // callback with a dangling pointer, or concurrently with a pointer
    // another thread reads (QEMU's contract says neither happens).
    let initial = unsafe { value.read() };
    let (action, data) = in_callback(|| {
        let Some(f) = registry().mmio(udata as usize) else {
            return (MmioAction::Pass, initial);
        };
        let mut access = MmioAccess::new(paddr, size, flags, initial);
        let vcpu = Vcpu::<QemuThread>::new(vcpu_index, RegAccess::None);
        let action = {
            let _scope = MmioCallbackScope::enter();
            f(&vcpu, &mut access)
        };
        // `f` may have replaced the access with a clone of another one.
        (action, access.value() & size_mask(size))
    });
    // SAFETY: as for the read above: the same pointer, still within the
    // callback, which QEMU reads once it returns.
    unsafe { value.write(data) };
    action.raw()
}

pub(crate) extern "C" fn at_exit(_id: sys::qemu_plugin_id_t, _udata: *mut c_void) {
    crate::lifecycle::set_phase(crate::lifecycle::Phase::Exiting);
    in_callback(|| {
        // An ExecThread: no vCPU starts while exit callbacks run, so
        // counters stay put. System mode: QEMU runs them from atexit(),
        // on the main thread once qemu_cleanup() has paused every vCPU
        // (only the main thread plugs one in), or on a vCPU thread that
        // called exit() from guest code (isa-debug-exit, semihosting):
        // that vCPU is inside cpu_exec, so no exclusive section, hence no
        // scoreboard growth, can start before the process ends. User
        // mode: QEMU runs them from qemu_plugin_user_exit() inside its
        // exclusive section (the series' standalone patch "plugins: run
        // linux-user exit callbacks with the other threads stopped";
        // upstream runs them after end_exclusive()), so a thread starting a
        // vCPU waits. Scenario that would break it: that patch dropped (a
        // guest thread starting its 17th, 33rd ... vCPU while another
        // calls exit_group: check-tcg's threads-at-exit saw the count go
        // from 8 to 202 without it); or, in system mode with more than 16
        // vCPUs, a fatal error on the main thread during startup while
        // vCPU 16 initialises.
        let thread = ExecThread::here();
        for f in registry().exit.snapshot().iter() {
            f(&thread);
        }
    });
}
