//! Plugins calling each other: exported functions and named events, with
//! their types checked across plugins.
//!
//! QEMU links plugins by name only. So that a mismatch is an error and not
//! undefined behaviour, every SDK plugin keeps what it exports in a table:
//! for each exported function its address and type, for each event its
//! data type, both as [`Shared`] descriptions (layouts, defining crates and
//! versions). The table is reached through one exported entry point,
//! [`qemu_xplugin_lookup_v2`]; an importer compares the type found there
//! with its own and calls the address found there: what is checked is
//! what is called. Plugin authors export no symbol themselves.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CString};
use std::marker::PhantomData;
use std::mem;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use qemu_xplugin_sys as sys;

use crate::ffi::{self, c_string, in_callback};
use crate::link;
use crate::{Error, ErrorKind, Install, QemuThread, Result, Shared};

/// The types exported functions can have: `extern "C" fn` pointers of up to
/// six [`Shared`] arguments with a [`Shared`] result. Calling one is safe;
/// the SDK checks, when importing, that both plugins agree on the type.
pub trait ExternFn: Copy + Send + Sync + 'static + private::Sealed {
    /// The type as the other plugin must describe it too.
    #[doc(hidden)]
    fn signature() -> String;

    /// The function's address.
    #[doc(hidden)]
    fn addr(self) -> *const c_void;

    /// Converts an address found in another plugin's table.
    ///
    /// # Safety
    /// `ptr` is a function of exactly this type.
    #[doc(hidden)]
    unsafe fn from_ptr(ptr: *const c_void) -> Self;
}

mod private {
    pub trait Sealed {}
}

macro_rules! extern_fn {
    ($($arg:ident),*) => {
        impl<R: Shared, $($arg: Shared),*> private::Sealed for extern "C" fn($($arg),*) -> R {}
        impl<R: Shared, $($arg: Shared),*> ExternFn for extern "C" fn($($arg),*) -> R {
            fn signature() -> String {
                let args: Vec<String> = vec![$($arg::describe()),*];
                format!("extern \"C\" fn({}) -> {}", args.join(", "), R::describe())
            }

            fn addr(self) -> *const c_void {
                self as *const c_void
            }

            unsafe fn from_ptr(ptr: *const c_void) -> Self {
                // SAFETY: the caller guarantees the type; function and data
                // pointers have the same size on every host QEMU supports.
                unsafe { std::mem::transmute::<*const c_void, Self>(ptr) }
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

/// One entry of the table: the type, and the function's address (NULL for
/// an event). Both live as long as the plugin (the string's address is
/// handed out).
struct Entry {
    signature: CString,
    addr: usize,
}

/// What this plugin exports, by key (`"fn NAME"` or `"event NAME"`).
fn table() -> &'static Mutex<HashMap<String, Entry>> {
    static TABLE: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn declare(key: String, signature: String, addr: *const c_void) -> Result<()> {
    let signature = c_string("signature", &signature)?;
    let mut map = table().lock().unwrap_or_else(|e| e.into_inner());
    if map.contains_key(&key) {
        return Err(Error::with_kind(
            ErrorKind::Exists,
            format!("{key} is already exported"),
        ));
    }
    map.insert(
        key,
        Entry {
            signature,
            addr: addr as usize,
        },
    );
    Ok(())
}

/// The one symbol an SDK plugin exports to other plugins: looks up `key`
/// (`"fn NAME"` or `"event NAME"`) in this plugin's table, stores the
/// function's address (NULL for an event) in `*addr` and returns the
/// type's description, or returns NULL.
#[no_mangle]
pub extern "C" fn qemu_xplugin_lookup_v2(
    key: *const c_char,
    addr: *mut *const c_void,
) -> *const c_char {
    in_callback(|| {
        // SAFETY: importers pass a NUL-terminated key.
        let Some(key) = (unsafe { ffi::copy_c_str(key) }) else {
            return ptr::null();
        };
        let map = table().lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = map.get(&key) else {
            return ptr::null();
        };
        if !addr.is_null() {
            // SAFETY: the importer passes a valid out pointer.
            unsafe { *addr = entry.addr as *const c_void };
        }
        // The CString's buffer does not move when the map grows.
        entry.signature.as_ptr()
    })
}

/// The type `lookup` itself has: fixed by its name.
type LookupFn = extern "C" fn(*const c_char, *mut *const c_void) -> *const c_char;

/// Looks `key` up in plugin `plugin`'s table and checks that it has the
/// type `expected`; the address found.
fn lookup(plugin: &str, key: &str, expected: &str) -> Result<*const c_void> {
    let addr = link::import_function(plugin, "qemu_xplugin_lookup_v2").map_err(|e| {
        Error::with_kind(
            e.kind(),
            format!("{e} (is '{plugin}' a plugin built with this version of qemu-xplugin?)"),
        )
    })?;
    // SAFETY: a plugin exporting this name is an SDK plugin of this
    // protocol version, whose lookup has exactly this type.
    let lookup = unsafe { std::mem::transmute::<*mut c_void, LookupFn>(addr) };
    let c_key = c_string("name", key)?;
    let mut found_addr: *const c_void = ptr::null();
    // SAFETY: the answer is NULL or a string that lives as long as
    // `plugin`, which cannot be unloaded while this plugin imports from it.
    let found = unsafe { ffi::copy_c_str(lookup(c_key.as_ptr(), &mut found_addr)) };
    match found {
        None => Err(Error::with_kind(
            ErrorKind::NotFound,
            format!(
                "plugin '{plugin}' does not export {key} (with Install::export or Install::create_event)"
            ),
        )),
        Some(found) if found != expected => Err(Error::with_kind(
            ErrorKind::TypeMismatch,
            format!(
                "plugin '{plugin}' exports {key} as {found}, but '{}' expects {expected}",
                crate::plugin_name()
            ),
        )),
        Some(_) => Ok(found_addr),
    }
}

/// The data an event carries: a [`Shared`] type, best defined in a crate
/// both plugins depend on.
pub trait EventData: Shared {}
impl<T: Shared> EventData for T {}

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
        // SAFETY: raw is a live event handle; data is valid and exclusive
        // for the call, and subscribers see it as the T they subscribed
        // with (same Shared description, checked); the token puts us on an
        // RCU-registered QEMU thread.
        unsafe { link::fire(self.raw, (data as *mut T).cast(), mem::size_of::<T>()) }
    }
}

/// A subscription to another plugin's event; it lasts until
/// [`Subscription::cancel`] or the end of the plugin.
pub struct Subscription {
    plugin: CString,
    event: CString,
    udata: *mut c_void,
}

// SAFETY: only identifies the subscription (udata is compared, never
// dereferenced, by cancel); the closure behind udata is Send + Sync.
unsafe impl Send for Subscription {}
// SAFETY: as above.
unsafe impl Sync for Subscription {}

impl Subscription {
    /// Ends the subscription. The closure is not freed: a vCPU may still be
    /// running it.
    pub fn cancel(self) -> bool {
        link::unsubscribe(&self.plugin, &self.event, event_trampoline, self.udata)
    }
}

type EventFn = dyn Fn(*mut c_void, usize) + Send + Sync;

extern "C" fn event_trampoline(ev_data: *mut c_void, ev_size: usize, udata: *mut c_void) {
    // SAFETY: udata is the leaked closure of a Subscription.
    let f = unsafe { &*(udata as *const Box<EventFn>) };
    in_callback(|| f(ev_data, ev_size));
}

impl Install {
    /// Exports `function` under `name`, for other plugins to
    /// [`Install::import`]: the SDK keeps its address and type in this
    /// plugin's table; no `#[no_mangle]` is needed.
    ///
    /// ```ignore
    /// extern "C" fn fired() -> u64 { 42 }
    /// plugin.export("fired", fired as extern "C" fn() -> u64)?;
    /// ```
    pub fn export<F: ExternFn>(&mut self, name: &str, function: F) -> Result<()> {
        declare(format!("fn {name}"), F::signature(), function.addr())
    }

    /// Imports function `name` from plugin `plugin`, checking that it was
    /// exported with the type `F` (the same [`Shared`] descriptions).
    ///
    /// ```ignore
    /// let fired: extern "C" fn() -> u64 = plugin.import("provider", "fired")?;
    /// let n = fired();
    /// ```
    pub fn import<F: ExternFn>(&mut self, plugin: &str, name: &str) -> Result<F> {
        let addr = lookup(plugin, &format!("fn {name}"), &F::signature())?;
        // SAFETY: the address is the one exported under this name, with a
        // type whose description equals F's (checked by lookup).
        Ok(unsafe { F::from_ptr(addr) })
    }

    /// Creates event `name`, carrying a `T`.
    pub fn create_event<T: EventData>(&mut self, name: &str) -> Result<Event<T>> {
        let raw = link::create_event(name)?;
        declare(format!("event {name}"), T::describe(), ptr::null())?;
        Ok(Event {
            raw,
            _data: PhantomData,
        })
    }

    /// Subscribes `f` to event `event` of plugin `plugin`, checking that the
    /// event carries a `T` (the same [`Shared`] description).
    pub fn subscribe<T: EventData>(
        &mut self,
        plugin: &str,
        event: &str,
        f: impl Fn(&mut T) + Send + Sync + 'static,
    ) -> Result<Subscription> {
        lookup(plugin, &format!("event {event}"), &T::describe())?;
        let c_plugin = c_string("plugin name", plugin)?;
        let c_event = c_string("event name", event)?;
        let what = format!("event '{event}' of plugin '{plugin}'");
        let f: Box<EventFn> = Box::new(move |data: *mut c_void, size: usize| {
            if size != mem::size_of::<T>() || data.is_null() {
                // Not fired by Event::fire of the owner we checked: a C
                // plugin holding the handle, say. Never read it as a T.
                tracing::error!(
                    "{what} fired with {size} bytes of data, not the {} of a {}",
                    mem::size_of::<T>(),
                    std::any::type_name::<T>()
                );
                return;
            }
            // SAFETY: the owner fires this event with a valid, exclusive T
            // (the type was checked above, and the size just now).
            f(unsafe { &mut *data.cast::<T>() })
        });
        let udata: *mut c_void = Box::into_raw(Box::new(f)).cast();
        // SAFETY: udata is leaked: valid for as long as QEMU may call it.
        unsafe { link::subscribe(&c_plugin, &c_event, event_trampoline, udata)? };
        Ok(Subscription {
            plugin: c_plugin,
            event: c_event,
            udata,
        })
    }
}
