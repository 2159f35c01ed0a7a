//! Ending or restarting this plugin while the guest runs.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

use qemu_xplugin_sys as sys;

use crate::ffi::in_callback;
use crate::registry::{clear_registry, plugin_id};
use crate::{Error, ExecThread, Install, QemuThread, Result};

/// Where the plugin is in its life, for what QEMU allows when.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Installing = 0,
    Running = 1,
    /// From [`reset`] until the reinstall closure has returned.
    Resetting = 2,
    /// From [`uninstall`] on: callbacks already running may still run.
    Uninstalled = 3,
    Exiting = 4,
}

static PHASE: AtomicU8 = AtomicU8::new(Phase::Installing as u8);

pub(crate) fn set_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::Release);
}

/// Moves from `from` to `to`; false when the plugin was not in `from`.
fn change_phase(from: Phase, to: Phase) -> bool {
    PHASE
        .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Whether [`pin_library`] succeeded: the library is never unmapped.
static PINNED: AtomicBool = AtomicBool::new(false);

/// Keeps this plugin's library mapped until the process ends, whatever
/// QEMU does: called at install. QEMU unloads (`dlclose`) an uninstalled
/// plugin once the vCPUs inside guest code are out of it and an RCU grace
/// period has passed, but other threads may still run its code then: a
/// syscall, vCPU init or idle callback (outside guest code and outside any
/// RCU read section), code after the `uninstall` call itself, closures the
/// plugin leaked. Opening the library again with `RTLD_NODELETE` makes
/// every later `dlclose` leave it mapped, so that code and data stay valid
/// and such callbacks finish normally.
pub(crate) fn pin_library() {
    // SAFETY: Dl_info is plain data (pointers and integers), for which all
    // zeroes is a valid value; dladdr only fills it.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr looks an address up in the loader's tables; the
    // address is that of a function of this library (so the answer is this
    // library) and `info` is valid for writes.
    let found = unsafe { libc::dladdr(pin_library as fn() as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return;
    }
    // SAFETY: dli_fname is the loader's NUL-terminated name of this
    // library, valid while it is loaded (it is: this is its code).
    // RTLD_NOLOAD opens nothing new: it returns the loaded library, with
    // RTLD_NODELETE added to it, and one more reference, which is never
    // dropped. Scenario that would break it: a name that resolves to
    // another file (a relative path after a chdir), which NOLOAD does not
    // load: the call fails and uninstall is refused instead.
    let handle = unsafe {
        libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    };
    PINNED.store(!handle.is_null(), Ordering::Release);
}

/// QEMU aborts on an uninstall from the install function, and unloads the
/// plugin under the caller's feet from the exit callback (no vCPU is left
/// to defer it to): both are refused.
fn check_running(what: &str) -> Result<()> {
    match PHASE.load(Ordering::Acquire) {
        p if p == Phase::Running as u8 => Ok(()),
        p if p == Phase::Installing as u8 => Err(Error::new(format!(
            "cannot {what} {} while it installs: return an error from install instead",
            crate::plugin_name()
        ))),
        p if p == Phase::Resetting as u8 => Err(Error::new(format!(
            "cannot {what} {}: a reset is already under way (until its reinstall closure returns)",
            crate::plugin_name()
        ))),
        p if p == Phase::Uninstalled as u8 => Err(Error::new(format!(
            "cannot {what} {}: it is uninstalled",
            crate::plugin_name()
        ))),
        _ => Err(Error::new(format!(
            "cannot {what} {} from its exit callback: the guest has finished",
            crate::plugin_name()
        ))),
    }
}

/// Uninstalls this plugin: QEMU removes its callbacks and unloads it once
/// every vCPU is out of guest code, so a callback already running or about
/// to run may still complete. Its exit callbacks never run; its events
/// lose their subscribers, and its subscriptions end; functions other
/// plugins imported from it stay callable.
///
/// Errors during install and in exit callbacks, where QEMU cannot do it.
/// `on` (a `&Vcpu` will do): QEMU defers the work only when called on one
/// of its threads; from another it would unload the plugin at once, under
/// running vCPUs.
pub fn uninstall(_on: &QemuThread) -> Result<()> {
    if !PINNED.load(Ordering::Acquire) {
        return Err(Error::new(format!(
            "cannot uninstall {}: its library could not be kept loaded, \
             and callbacks still running would lose their code",
            crate::plugin_name()
        )));
    }
    // Also refused during a reset: uninstall would then unregister the
    // callbacks the reinstall closure registers.
    if !change_phase(Phase::Running, Phase::Uninstalled) {
        return check_running("uninstall");
    }
    // SAFETY: the ID is this plugin's, still installed (the phase moved
    // from Running to Uninstalled once, here). QEMU unregisters the
    // callbacks once the vCPUs are out of guest code, deferred because we
    // are on a QEMU thread (the token) and not in install or exit (phase),
    // and then closes the library, which stays mapped (pin_library, checked
    // above): a callback still running on another thread (a syscall
    // callback, outside guest code) or this one after the call keeps valid
    // code and data. Scenario that would break it without the pin: vCPU 1
    // in a syscall callback while vCPU 0 uninstalls: SIGSEGV once vCPU 1
    // returns into unmapped code (the reviewer's probe; tests/lifecycle.rs
    // runs the scenario).
    unsafe { sys::qemu_plugin_uninstall(plugin_id(), Some(uninstalled)) };
    Ok(())
}

type UninstallFn = Box<dyn FnOnce(&ExecThread) + Send>;

/// The closures of [`Install::on_uninstall`].
static ON_UNINSTALL: Mutex<Vec<UninstallFn>> = Mutex::new(Vec::new());

pub(crate) fn add_uninstall_fn(f: UninstallFn) {
    ON_UNINSTALL
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(f);
}

/// QEMU has removed this plugin's callbacks, with every vCPU stopped (a
/// safe work item on a vCPU, or no vCPU yet), and unloads it next.
extern "C" fn uninstalled(_id: sys::qemu_plugin_id_t) {
    in_callback(|| {
        let fs = std::mem::take(&mut *ON_UNINSTALL.lock().unwrap_or_else(|e| e.into_inner()));
        let thread = ExecThread::here();
        for f in fs {
            f(&thread);
        }
    });
}

type Reinstall = Box<dyn FnOnce(&mut Install) -> Result<()> + Send>;

static PENDING_RESET: Mutex<Option<Reinstall>> = Mutex::new(None);

/// Replaces this plugin's callbacks while the guest runs: QEMU removes
/// every callback and subscription of this plugin once every vCPU is out of
/// guest code (so some may still run meanwhile), then `reinstall` registers
/// new ones on a fresh [`Install`]. Events this plugin created, its exports
/// and its counters stay. An error from `reinstall` is logged.
///
/// Errors during install and in exit callbacks, after [`uninstall`], and
/// while an earlier reset is under way, i.e. until its `reinstall` has
/// returned (so `reinstall` cannot reset again). `on`: as for
/// [`uninstall`].
pub fn reset(
    _on: &QemuThread,
    reinstall: impl FnOnce(&mut Install) -> Result<()> + Send + 'static,
) -> Result<()> {
    if !change_phase(Phase::Running, Phase::Resetting) {
        return check_running("reset");
    }
    *PENDING_RESET.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(reinstall));
    // SAFETY: the ID is this plugin's, not uninstalled and not resetting
    // (the phase moved from Running to Resetting here, and goes back only
    // once reset_done is over): QEMU does not drop the request, as it
    // would while its own reset is under way. reset_done is a valid
    // callback for the whole life of the plugin; on a QEMU thread (the
    // token), so QEMU defers the reset until no vCPU runs (as for
    // uninstall).
    unsafe { sys::qemu_plugin_reset(plugin_id(), Some(reset_done)) };
    Ok(())
}

/// QEMU has removed every callback (all vCPUs are stopped): forget the
/// closures, then let the plugin register new ones.
extern "C" fn reset_done(_id: sys::qemu_plugin_id_t) {
    in_callback(|| {
        // QEMU flushed its translated code before removing the callbacks
        // (with every vCPU stopped): the per-block closures can go.
        crate::hooks::free_block_closures();
        clear_registry();
        ON_UNINSTALL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        crate::trampolines::flush_unregistered();
        crate::trampolines::ensure_vcpu_init();
        crate::regs::check_all_recorded();
        let reinstall = PENDING_RESET
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reinstall) = reinstall {
            if let Err(err) = reinstall(&mut Install::new()) {
                tracing::error!("reset: {err}");
            }
        }
        // Back to Running (a compare-exchange: Exiting, should the guest
        // have ended meanwhile, stays).
        change_phase(Phase::Resetting, Phase::Running);
    });
}
