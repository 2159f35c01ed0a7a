//! Every call into QEMU's inter-plugin API (import a function, create,
//! subscribe to, unsubscribe from and fire a named event) is here, and
//! nowhere else, so that a change of that C API stays in this file.
//!
//! Today's API reports failure as NULL/false and a message (`char **errp`),
//! which does not say which failure it was: the kinds below are the most
//! likely one for each call. The next API returns a
//! `qemu_plugin_link_status`, which maps one to one onto
//! [`ErrorKind::NoPlugin`], [`ErrorKind::Ambiguous`],
//! [`ErrorKind::NotFound`], [`ErrorKind::Exists`] and
//! [`ErrorKind::Invalid`].

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use qemu_xplugin_sys as sys;

use crate::ffi::{self, c_string};
use crate::registry::plugin_id;
use crate::{Error, ErrorKind, Result};

/// A subscriber as QEMU calls it: the event data and the user data.
pub(crate) type EventCb = extern "C" fn(*mut c_void, *mut c_void);

/// Takes QEMU's error message (`errp`) as an error of kind `kind`.
///
/// # Safety
/// `err` is NULL or a glib string QEMU allocated for us.
unsafe fn failure(kind: ErrorKind, err: *mut c_char) -> Error {
    // SAFETY: forwarded from the caller.
    Error::with_kind(kind, unsafe { ffi::take_g_string(err) }.unwrap_or_default())
}

/// The address of function `function` of plugin `plugin`.
pub(crate) fn import_function(plugin: &str, function: &str) -> Result<*mut c_void> {
    let c_plugin = c_string("plugin name", plugin)?;
    let c_function = c_string("function name", function)?;
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: valid strings and error pointer; the result is NULL or the
    // function's address, which stays loaded while this plugin is.
    let addr = unsafe {
        sys::qemu_plugin_import_function(
            plugin_id(),
            c_plugin.as_ptr(),
            c_function.as_ptr(),
            &mut err,
        )
    };
    if addr.is_null() {
        // SAFETY: on failure QEMU sets err to a message we own.
        return Err(unsafe { failure(ErrorKind::NotFound, err) });
    }
    Ok(addr)
}

/// Creates this plugin's event `name`; the handle lives until QEMU exits.
pub(crate) fn create_event(name: &str) -> Result<*mut sys::qemu_plugin_named_event> {
    let c_name = c_string("event name", name)?;
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: valid strings and error pointer.
    let raw = unsafe { sys::qemu_plugin_create_event(plugin_id(), c_name.as_ptr(), &mut err) };
    if raw.is_null() {
        // SAFETY: on failure QEMU sets err to a message we own.
        return Err(unsafe { failure(ErrorKind::Exists, err) });
    }
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
    let mut err: *mut c_char = ptr::null_mut();
    // SAFETY: valid strings, callback and error pointer; udata: the caller.
    let ok = unsafe {
        sys::qemu_plugin_subscribe_event(
            plugin_id(),
            plugin.as_ptr(),
            event.as_ptr(),
            Some(cb),
            udata,
            &mut err,
        )
    };
    if !ok {
        // SAFETY: on failure QEMU sets err to a message we own.
        return Err(unsafe { failure(ErrorKind::NotFound, err) });
    }
    Ok(())
}

/// Ends the subscription made with the same arguments.
pub(crate) fn unsubscribe(plugin: &CStr, event: &CStr, cb: EventCb, udata: *mut c_void) -> bool {
    // SAFETY: valid strings; QEMU only compares cb and udata.
    unsafe {
        sys::qemu_plugin_unsubscribe_event(
            plugin_id(),
            plugin.as_ptr(),
            event.as_ptr(),
            Some(cb),
            udata,
        )
    }
}

/// Fires `event` with `data`.
///
/// # Safety
/// `event` is a handle from [`create_event`]; `data` is valid and
/// exclusive for the call, of the type its subscribers checked; the
/// thread is one QEMU registered with RCU.
pub(crate) unsafe fn fire(event: *mut sys::qemu_plugin_named_event, data: *mut c_void) {
    // SAFETY: forwarded from the caller.
    unsafe { sys::qemu_plugin_fire_event(event, data) }
}
