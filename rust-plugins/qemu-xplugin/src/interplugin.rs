//! Plugins calling each other: exported functions and named events, with
//! their Rust types checked across plugins.
//!
//! QEMU links plugins by name only. So that a mismatch is an error and not
//! undefined behaviour, every SDK plugin answers, through the exported
//! function `qemu_xplugin_signature`, the Rust type of each function and
//! event it exports; an importer compares it with its own.

use std::any::type_name;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::marker::PhantomData;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use qemu_xplugin_sys as sys;

use crate::ffi::{self, c_string, in_callback};
use crate::registry::plugin_id;
use crate::{Error, Install, QemuThread, Result};

/// The types exported functions can have: `extern "C" fn` pointers of up to
/// six arguments. Calling one is safe; the SDK checks, when importing, that
/// both plugins agree on the type.
pub trait ExternFn: Copy + Send + Sync + 'static + private::Sealed {
    /// Converts an address from QEMU.
    ///
    /// # Safety
    /// `ptr` is a function of exactly this type.
    #[doc(hidden)]
    unsafe fn from_ptr(ptr: *mut c_void) -> Self;
}

mod private {
    pub trait Sealed {}
}

macro_rules! extern_fn {
    ($($arg:ident),*) => {
        impl<R: 'static, $($arg: 'static),*> private::Sealed for extern "C" fn($($arg),*) -> R {}
        impl<R: 'static, $($arg: 'static),*> ExternFn for extern "C" fn($($arg),*) -> R {
            unsafe fn from_ptr(ptr: *mut c_void) -> Self {
                // SAFETY: the caller guarantees the type; function and data
                // pointers have the same size on every host QEMU supports.
                unsafe { std::mem::transmute::<*mut c_void, Self>(ptr) }
            }
        }
    };
}

extern_fn!();
extern_fn!(A);
extern_fn!(A, B);
extern_fn!(A, B, C);
extern_fn!(A, B, C, D);
extern_fn!(A, B, C, D, E);
extern_fn!(A, B, C, D, E, F);

/// What this plugin exports: name -> Rust type, as NUL-terminated strings
/// that live as long as the plugin (their addresses are handed out).
fn signatures() -> &'static Mutex<HashMap<String, CString>> {
    static SIGNATURES: OnceLock<Mutex<HashMap<String, CString>>> = OnceLock::new();
    SIGNATURES.get_or_init(Default::default)
}

fn declare(key: String, signature: String) -> Result<()> {
    let signature = c_string("signature", &signature)?;
    let mut map = signatures().lock().unwrap_or_else(|e| e.into_inner());
    if map.contains_key(&key) {
        return Err(Error::new(format!("{key} is already exported")));
    }
    map.insert(key, signature);
    Ok(())
}

/// Answers another plugin: the Rust type under which this plugin exports
/// `key` (`"fn NAME"` or `"event NAME"`), or NULL.
#[no_mangle]
pub extern "C" fn qemu_xplugin_signature(key: *const c_char) -> *const c_char {
    in_callback(|| {
        // SAFETY: importers pass a NUL-terminated key.
        let Some(key) = (unsafe { ffi::copy_c_str(key) }) else {
            return ptr::null();
        };
        let map = signatures().lock().unwrap_or_else(|e| e.into_inner());
        // The CString's buffer does not move when the map grows.
        map.get(&key).map_or(ptr::null(), |s| s.as_ptr())
    })
}

/// Asks plugin `plugin` for the type under which it exports `key`, and
/// checks that it is `expected`.
fn check_signature(plugin: &str, key: &str, expected: &str) -> Result<()> {
    let lookup: extern "C" fn(*const c_char) -> *const c_char =
        import_raw(plugin, "qemu_xplugin_signature").map_err(|e| {
            Error::new(format!(
                "{e} (is '{plugin}' a plugin built with qemu-xplugin?)"
            ))
        })?;
    let c_key = c_string("name", key)?;
    // SAFETY: the answer is NULL or a string that lives as long as `plugin`,
    // which cannot be unloaded while this plugin imports from it.
    let found = unsafe { ffi::copy_c_str(lookup(c_key.as_ptr())) };
    match found {
        None => Err(Error::new(format!(
            "plugin '{plugin}' does not export {key} (with Install::export or Install::create_event)"
        ))),
        Some(found) if found != expected => Err(Error::new(format!(
            "plugin '{plugin}' exports {key} as {found}, but '{}' expects {expected}",
            crate::plugin_name()
        ))),
        Some(_) => Ok(()),
    }
}

/// Looks up `function` in `plugin` without a type check.
fn import_raw<F: ExternFn>(plugin: &str, function: &str) -> Result<F> {
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
        return Err(Error::new(
            unsafe { ffi::take_g_string(err) }.unwrap_or_default(),
        ));
    }
    // SAFETY: the callers check the type first (qemu_xplugin_signature's
    // type is fixed by this crate).
    Ok(unsafe { F::from_ptr(addr) })
}

/// Signature string of an event's data type: name, size and alignment.
fn event_signature<T: EventData>() -> String {
    format!(
        "{} ({} bytes, align {})",
        type_name::<T>(),
        std::mem::size_of::<T>(),
        std::mem::align_of::<T>()
    )
}

/// The data an event carries. Both sides must use the same type, best
/// defined in a crate they share and `#[repr(C)]`.
pub trait EventData: Send + 'static {}
impl<T: Send + 'static> EventData for T {}

/// A named event this plugin fires; other plugins subscribe to it by this
/// plugin's name and the event's name.
pub struct Event<T: EventData> {
    raw: *mut sys::qemu_plugin_named_event,
    _data: PhantomData<fn(&mut T)>,
}

impl<T: EventData> Clone for Event<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: EventData> Copy for Event<T> {}

// SAFETY: the handle is never freed while the plugin is loaded, and moving
// it between threads does nothing. Firing enters an RCU read section,
// which only threads registered with QEMU's RCU may do: `fire` therefore
// takes a `&QemuThread`, which exists only on such threads (vCPU threads
// and the main thread, inside callbacks) and cannot leave them. Scenario
// that would break it: a way to fire without that token, from a thread
// the plugin spawned, racing an unsubscribe (use after free).
unsafe impl<T: EventData> Send for Event<T> {}
// SAFETY: as above.
unsafe impl<T: EventData> Sync for Event<T> {}

impl<T: EventData> Event<T> {
    /// Runs every subscriber with `data`, in this thread; subscribers may
    /// change it, which is how they answer. `on` (a `&Vcpu` will do) shows
    /// that this is a thread QEMU knows.
    pub fn fire(&self, _on: &QemuThread, data: &mut T) {
        // SAFETY: raw is a live event handle; data is valid for the call and
        // subscribers see it as the T they subscribed with (checked); the
        // token puts us on an RCU-registered QEMU thread.
        unsafe { sys::qemu_plugin_fire_event(self.raw, (data as *mut T).cast()) }
    }
}

/// A subscription to another plugin's event; it lasts until
/// [`Subscription::cancel`] or the end of the plugin.
pub struct Subscription {
    plugin: CString,
    event: CString,
    udata: *mut c_void,
}

// SAFETY: only identifies the subscription; the closure behind udata is
// Send + Sync.
unsafe impl Send for Subscription {}
// SAFETY: as above.
unsafe impl Sync for Subscription {}

impl Subscription {
    /// Ends the subscription. The closure is not freed: a vCPU may still be
    /// running it.
    pub fn cancel(self) -> bool {
        // SAFETY: same arguments as the subscription.
        unsafe {
            sys::qemu_plugin_unsubscribe_event(
                plugin_id(),
                self.plugin.as_ptr(),
                self.event.as_ptr(),
                Some(event_trampoline),
                self.udata,
            )
        }
    }
}

type EventFn = dyn Fn(*mut c_void) + Send + Sync;

extern "C" fn event_trampoline(ev_data: *mut c_void, udata: *mut c_void) {
    // SAFETY: udata is the leaked closure of a Subscription.
    let f = unsafe { &*(udata as *const Box<EventFn>) };
    in_callback(|| f(ev_data));
}

impl Install {
    /// Exports `function` under `name`, for other plugins to
    /// [`Install::import`]. The function itself must be visible to QEMU:
    /// define it `#[no_mangle] pub extern "C" fn name(...)`.
    ///
    /// The function argument only names its type: the export is by name.
    pub fn export<F: ExternFn>(&mut self, name: &str, _function: F) -> Result<()> {
        declare(format!("fn {name}"), type_name::<F>().to_owned())
    }

    /// Imports function `name` from plugin `plugin`, checking that it was
    /// exported with the type `F`.
    ///
    /// ```ignore
    /// let fired: extern "C" fn() -> u64 = plugin.import("provider", "provider_fired")?;
    /// let n = fired();
    /// ```
    pub fn import<F: ExternFn>(&mut self, plugin: &str, name: &str) -> Result<F> {
        check_signature(plugin, &format!("fn {name}"), type_name::<F>())?;
        import_raw(plugin, name)
    }

    /// Creates event `name`, carrying a `T`.
    pub fn create_event<T: EventData>(&mut self, name: &str) -> Result<Event<T>> {
        let c_name = c_string("event name", name)?;
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: valid strings and error pointer.
        let raw = unsafe { sys::qemu_plugin_create_event(plugin_id(), c_name.as_ptr(), &mut err) };
        if raw.is_null() {
            // SAFETY: on failure QEMU sets err to a message we own.
            return Err(Error::new(
                unsafe { ffi::take_g_string(err) }.unwrap_or_default(),
            ));
        }
        declare(format!("event {name}"), event_signature::<T>())?;
        Ok(Event {
            raw,
            _data: PhantomData,
        })
    }

    /// Subscribes `f` to event `event` of plugin `plugin`, checking that the
    /// event carries a `T`.
    pub fn subscribe<T: EventData>(
        &mut self,
        plugin: &str,
        event: &str,
        f: impl Fn(&mut T) + Send + Sync + 'static,
    ) -> Result<Subscription> {
        check_signature(plugin, &format!("event {event}"), &event_signature::<T>())?;
        let c_plugin = c_string("plugin name", plugin)?;
        let c_event = c_string("event name", event)?;
        let f: Box<EventFn> = Box::new(move |data: *mut c_void| {
            // SAFETY: the owner fires this event with a valid, exclusive T
            // (the type was checked above).
            f(unsafe { &mut *data.cast::<T>() })
        });
        let udata: *mut c_void = Box::into_raw(Box::new(f)).cast();
        let mut err: *mut c_char = ptr::null_mut();
        // SAFETY: valid strings, trampoline and error pointer; udata is
        // leaked and outlives the subscription.
        let ok = unsafe {
            sys::qemu_plugin_subscribe_event(
                plugin_id(),
                c_plugin.as_ptr(),
                c_event.as_ptr(),
                Some(event_trampoline),
                udata,
                &mut err,
            )
        };
        if !ok {
            // SAFETY: on failure QEMU sets err to a message we own.
            return Err(Error::new(
                unsafe { ffi::take_g_string(err) }.unwrap_or_default(),
            ));
        }
        Ok(Subscription {
            plugin: c_plugin,
            event: c_event,
            udata,
        })
    }
}
