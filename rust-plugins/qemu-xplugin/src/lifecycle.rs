//! Ending or restarting this plugin while the guest runs.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

use qemu_xplugin_sys as sys;

use crate::ffi::in_callback;
use crate::registry::{clear_registry, plugin_id};
use crate::{Error, Install, QemuThread, Result};

/// Where the plugin is in its life, for what QEMU allows when.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Installing = 0,
    Running = 1,
    Exiting = 2,
}

static PHASE: AtomicU8 = AtomicU8::new(Phase::Installing as u8);

pub(crate) fn set_phase(phase: Phase) {
    PHASE.store(phase as u8, Ordering::Release);
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
    check_running("uninstall")?;
    // SAFETY: the ID is this plugin's; QEMU defers the unloading to a point
    // where no vCPU runs this plugin's code: we are on a QEMU thread (the
    // token) and not in install or exit (checked above), where it would
    // not. Scenario that would break it: a call from a plugin-spawned
    // thread (current_cpu is NULL there: QEMU unloads synchronously).
    unsafe { sys::qemu_plugin_uninstall(plugin_id(), None) };
    Ok(())
}

type Reinstall = Box<dyn FnOnce(&mut Install) -> Result<()> + Send>;

static PENDING_RESET: Mutex<Option<Reinstall>> = Mutex::new(None);

/// Replaces this plugin's callbacks while the guest runs: QEMU removes
/// every callback and subscription of this plugin once every vCPU is out of
/// guest code (so some may still run meanwhile), then `reinstall` registers
/// new ones on a fresh [`Install`]. Events this plugin created, its exports
/// and its counters stay. An error from `reinstall` is logged.
///
/// Errors during install and in exit callbacks, and while an earlier reset
/// is under way. `on`: as for [`uninstall`].
pub fn reset(
    _on: &QemuThread,
    reinstall: impl FnOnce(&mut Install) -> Result<()> + Send + 'static,
) -> Result<()> {
    check_running("reset")?;
    {
        let mut pending = PENDING_RESET.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_some() {
            return Err(Error::new(format!(
                "cannot reset {}: a reset is already under way",
                crate::plugin_name()
            )));
        }
        *pending = Some(Box::new(reinstall));
    }
    // SAFETY: the ID is this plugin's and reset_done is a valid callback
    // for the whole life of the plugin; on a QEMU thread (the token), so
    // QEMU defers the reset until no vCPU runs (as for uninstall).
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
        crate::trampolines::flush_unregistered();
        let reinstall = PENDING_RESET
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reinstall) = reinstall {
            if let Err(err) = reinstall(&mut Install::new()) {
                tracing::error!("reset: {err}");
            }
        }
    });
}
