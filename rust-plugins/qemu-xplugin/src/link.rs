//! Every call into QEMU's inter-plugin API (import a function, create,
//! subscribe to, unsubscribe from and fire a named event) is here, and
//! nowhere else, so that a change of that C API stays in this file.
//!
//! QEMU answers each lookup with an `enum qemu_plugin_link_status`, which
//! maps one to one onto [`ErrorKind::NoPlugin`], [`ErrorKind::Ambiguous`],
//! [`ErrorKind::NotFound`], [`ErrorKind::Exists`] and
//! [`ErrorKind::Invalid`]; the messages name both plugins and the function
//! or event, which QEMU leaves to its caller.

use std::ffi::{c_void, CStr};
use std::ptr;

use qemu_xplugin_sys as sys;

use crate::ffi::c_string;
use crate::registry::plugin_id;
use crate::{Error, ErrorKind, Result};

/// A subscriber as QEMU calls it: the event data, its size, the user data.
pub(crate) type EventCb = extern "C" fn(*mut c_void, usize, *mut c_void);

/// Ok, or the error for `status`; `what` says what this plugin tried.
fn check(status: sys::qemu_plugin_link_status, what: impl FnOnce() -> String) -> Result<()> {
    let (kind, why) = match status {
        sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_OK => return Ok(()),
        sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_NO_PLUGIN => {
            (ErrorKind::NoPlugin, "no plugin of that name is installed")
        }
        sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_AMBIGUOUS => (
            ErrorKind::Ambiguous,
            "several loaded plugins have that name (a plugin that others use \
             should choose a unique one: plugin!(name = ...))",
        ),
        sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_NOT_FOUND => {
            (ErrorKind::NotFound, "that plugin has none of that name")
        }
        sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_EXISTS => {
            (ErrorKind::Exists, "it exists already")
        }
        sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_INVALID => {
            (ErrorKind::Invalid, "QEMU refused an argument as invalid")
        }
        _ => (ErrorKind::Other, "QEMU answered with an unknown status"),
    };
    Err(Error::with_kind(
        kind,
        format!("plugin '{}' cannot {}: {why}", crate::plugin_name(), what()),
    ))
}

/// The address of function `function` of plugin `plugin`.
pub(crate) fn import_function(plugin: &str, function: &str) -> Result<*mut c_void> {
    let c_plugin = c_string("plugin name", plugin)?;
    let c_function = c_string("function name", function)?;
    let mut addr: *mut c_void = ptr::null_mut();
    // SAFETY: valid NUL-terminated strings and out pointer; on success
    // `addr` is the function's address, which stays loaded while this
    // plugin is (QEMU holds a reference to the exporter's module for us).
    let status = unsafe {
        sys::qemu_plugin_import_function(
            plugin_id(),
            c_plugin.as_ptr(),
            c_function.as_ptr(),
            &mut addr,
        )
    };
    check(status, || {
        format!("import function '{function}' from plugin '{plugin}'")
    })?;
    Ok(addr)
}

/// Creates this plugin's event `name`; the handle lives until QEMU exits.
pub(crate) fn create_event(name: &str) -> Result<*mut sys::qemu_plugin_named_event> {
    let c_name = c_string("event name", name)?;
    let mut raw: *mut sys::qemu_plugin_named_event = ptr::null_mut();
    // SAFETY: a valid string and out pointer.
    let status = unsafe { sys::qemu_plugin_create_event(plugin_id(), c_name.as_ptr(), &mut raw) };
    check(status, || format!("create event '{name}'"))?;
    Ok(raw)
}

/// Subscribes `cb` with `udata` to event `event` of plugin `plugin`.
///
/// # Safety
/// `udata` stays valid, for `cb`, until the subscription ends and no
/// call of `cb` runs any more (the SDK never frees it).
pub(crate) unsafe fn subscribe(
    plugin: &CStr,
    event: &CStr,
    cb: EventCb,
    udata: *mut c_void,
) -> Result<()> {
    // SAFETY: valid strings and callback; udata: the caller.
    let status = unsafe {
        sys::qemu_plugin_subscribe_event(
            plugin_id(),
            plugin.as_ptr(),
            event.as_ptr(),
            Some(cb),
            udata,
        )
    };
    check(status, || {
        format!(
            "subscribe to event '{}' of plugin '{}'",
            event.to_string_lossy(),
            plugin.to_string_lossy()
        )
    })
}

/// Ends the subscription made with the same arguments; false if there was
/// none.
pub(crate) fn unsubscribe(plugin: &CStr, event: &CStr, cb: EventCb, udata: *mut c_void) -> bool {
    // SAFETY: valid strings; QEMU only compares cb and udata.
    let status = unsafe {
        sys::qemu_plugin_unsubscribe_event(
            plugin_id(),
            plugin.as_ptr(),
            event.as_ptr(),
            Some(cb),
            udata,
        )
    };
    status == sys::qemu_plugin_link_status::QEMU_PLUGIN_LINK_OK
}

/// Fires `event` with `size` bytes of `data`.
///
/// # Safety
/// `event` is a handle from [`create_event`]; `data` is valid for `size`
/// bytes and exclusive for the call, of the type its subscribers checked;
/// the thread is one QEMU registered with RCU.
pub(crate) unsafe fn fire(
    event: *mut sys::qemu_plugin_named_event,
    data: *mut c_void,
    size: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { sys::qemu_plugin_fire_event(event, data, size) }
}
