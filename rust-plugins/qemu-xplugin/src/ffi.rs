//! The boundary with C: panics stop here, strings and buffers cross here.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr, CString};
use std::io::Write;

use qemu_xplugin_sys as sys;

/// Writes `text` to QEMU's log (`-d plugin`, `-D file`).
pub fn outs(text: &str) {
    // Interior NUL bytes cannot cross into C; show them instead of truncating.
    let text = CString::new(text.replace('\0', "\\0")).expect("NUL bytes were replaced");
    // SAFETY: `text` is a valid NUL-terminated string that outlives the call;
    // QEMU copies it.
    unsafe { sys::qemu_plugin_outs(text.as_ptr()) }
}

/// Runs the body of a callback QEMU called. It adds nothing at run time: a
/// panic never unwinds into QEMU's C frames (undefined behaviour) because
/// the panic hook [`install_panic_hook`] sets reports it and ends QEMU
/// with exit status 1 before any unwinding starts. A plugin whose state a
/// panic left half-updated cannot go on anyway.
#[inline(always)]
pub(crate) fn in_callback<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// An error a callback returned: logged, the guest goes on.
#[inline(always)]
pub(crate) fn report(result: crate::Result<()>, what: &str) {
    if let Err(err) = result {
        report_error(&err, what);
    }
}

#[cold]
#[inline(never)]
fn report_error(err: &crate::Error, what: &str) {
    tracing::error!("{what} callback: {err}");
}

/// Makes every panic of this plugin (each plugin library has its own
/// standard library, so its own hook) print where it happened, to QEMU's
/// log and to standard error, and end QEMU with status 1 at once.
///
/// At once means `_exit`, not `exit`: `exit` would run QEMU's atexit
/// handlers, among them this plugin's exit callbacks, on the panicking
/// thread, which may hold a lock those callbacks take (a deadlock), while
/// other vCPUs go on. `_exit` ends every thread; nothing of QEMU or the
/// plugins runs after the message.
///
/// The hook runs before unwinding, so it also ends QEMU on a panic that a
/// `std::panic::catch_unwind` in the plugin would have caught: in a plugin,
/// a panic is never recoverable. It writes with errors ignored (a closed
/// standard error, EPIPE, must not panic inside the hook, which would
/// abort with status 134 instead of exiting with 1).
///
/// Should a plugin replace the hook, a panic reaching a callback's
/// `extern "C"` boundary aborts the process instead (Rust 1.81 and later,
/// the workspace's `rust-version`), which is still defined behaviour.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let reason = panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = format!(
            "{}: panic: {reason}{place}; stopping QEMU\n",
            crate::plugin_name()
        );
        outs(&msg);
        let _ = std::io::stderr().write_all(msg.as_bytes());
        // SAFETY: _exit ends the process without running atexit handlers
        // or destructors; it has no precondition. QEMU's log was flushed
        // by outs (qemu_log_unlock flushes) and stderr is unbuffered.
        unsafe { libc::_exit(1) }
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// A C string for a call into QEMU; an interior NUL byte is an error that
/// names what the string was for.
pub(crate) fn c_string(what: &str, value: &str) -> Result<CString, crate::Error> {
    CString::new(value)
        .map_err(|_| crate::Error::new(format!("{what} '{value}' contains a NUL byte")))
}

/// Copies a C string owned by QEMU.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn copy_c_str(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid NUL-terminated string.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Takes a string that QEMU allocated with glib (an error message, a
/// disassembly), freeing it.
///
/// # Safety
/// `ptr` is NULL or a string allocated by glib that nothing else frees.
pub(crate) unsafe fn take_g_string(ptr: *mut c_char) -> Option<String> {
    // SAFETY: forwarded from the caller.
    let text = unsafe { copy_c_str(ptr) };
    // SAFETY: the caller passes ownership of the glib allocation (or NULL,
    // which g_free accepts).
    unsafe { sys::g_free(ptr.cast()) };
    text
}

/// A glib byte array, owned here and freed on drop (a lent scratch array
/// is wrapped in `ManuallyDrop`).
pub(crate) struct ByteArray(*mut sys::GByteArray);

impl ByteArray {
    fn new() -> Self {
        // SAFETY: g_byte_array_new has no preconditions; it aborts rather than
        // return NULL.
        Self(unsafe { sys::g_byte_array_new() })
    }

    /// Replaces the contents with `bytes`.
    pub(crate) fn set(&mut self, bytes: &[u8]) {
        let len = u32::try_from(bytes.len()).expect("buffers of 4 GiB or more are not supported");
        self.clear();
        // SAFETY: the array is valid; glib copies `len` bytes from `bytes`,
        // which cannot point into the array: that would need a borrow of
        // it (as_slice) while we hold it mutably.
        unsafe { sys::g_byte_array_append(self.0, bytes.as_ptr(), len) };
    }

    /// Empties the array, keeping its allocation: what
    /// `g_byte_array_set_size(array, 0)` does for a byte array (glib's
    /// `g_array_remove_range` of every element: no element destructor, no
    /// terminating zero, `len` set to 0), without its two calls, which
    /// cost as much as the rest of a register read.
    #[inline(always)]
    pub(crate) fn clear(&mut self) {
        // SAFETY: the array is valid and ours (`&mut self`); `len` is the
        // public field of GByteArray, and lowering it to 0 leaves `data`
        // and the capacity glib tracks behind it untouched, so the array
        // stays consistent: glib itself only ever reads `len` bytes of
        // `data`. Scenario that would break it: a zero-terminated or
        // element-clearing GArray (g_array_new(TRUE, ..) or with a clear
        // function), which a GByteArray never is.
        unsafe { (*self.0).len = 0 };
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::GByteArray {
        self.0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: the array is valid; data points to len initialised bytes
        // (or is NULL with len 0), borrowed as long as the array.
        unsafe {
            let array = &*self.0;
            if array.data.is_null() || array.len == 0 {
                &[]
            } else {
                std::slice::from_raw_parts(array.data, array.len as usize)
            }
        }
    }
}

thread_local! {
    /// This thread's scratch array when it is not lent, NULL before its
    /// first use and while [`with_buffer`] lends it: a constant
    /// initialiser and no destructor make the access a thread-local load
    /// and store, which the compiler inlines into a callback (a `RefCell`
    /// with a destructor made every register read a call of
    /// `LocalKey::with`).
    static SCRATCH: Cell<*mut sys::GByteArray> = const { Cell::new(std::ptr::null_mut()) };
    /// Owns the scratch array, to free it when the thread ends.
    static SCRATCH_OWNER: RefCell<Option<ScratchOwner>> = const { RefCell::new(None) };
}

/// Frees a thread's scratch array at its end, and forgets it first.
struct ScratchOwner {
    /// Dropped (freed) with the owner.
    _array: ByteArray,
}

impl Drop for ScratchOwner {
    fn drop(&mut self) {
        // SCRATCH has no destructor, so it is still there.
        SCRATCH.with(|p| p.set(std::ptr::null_mut()));
    }
}

fn new_scratch() {
    let array = ByteArray::new();
    let p = array.0;
    SCRATCH_OWNER.with(|owner| *owner.borrow_mut() = Some(ScratchOwner { _array: array }));
    SCRATCH.with(|s| s.set(p));
}

/// Lends `f` this thread's glib byte array, emptied, for one register or
/// memory access: an access then costs no allocation.
///
/// Re-entrant: `f` may reach `with_scratch` or [`with_buffer`] again, and
/// does when QEMU calls back into the plugin from inside `f`. A CR3
/// write through `qemu_plugin_write_register()` is one: QEMU reports the
/// address space change from inside that call, and the change callback
/// may read memory. The nested lender then gets an array of its own
/// (see [`with_buffer`]), so the array `f` holds, and any slice of it,
/// stays as `f` left it. Only SDK code passes an `f`; plugin code never
/// gets the array.
#[inline(always)]
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut ByteArray) -> R) -> R {
    with_buffer(|buf| {
        buf.clear();
        f(buf)
    })
}

/// [`with_scratch`] without emptying the array first, for QEMU calls that
/// set its size themselves (memory reads): a read of the size the array
/// has already costs no glib call.
///
/// The array is taken out of `SCRATCH` while `f` holds it and put back
/// afterwards: a nested call finds `SCRATCH` empty and lends a new array,
/// freed when it returns, instead of resizing the one `f` holds.
#[inline(always)]
pub(crate) fn with_buffer<R>(f: impl FnOnce(&mut ByteArray) -> R) -> R {
    let p = SCRATCH.with(|s| s.replace(std::ptr::null_mut()));
    if p.is_null() {
        return with_other_buffer(f);
    }
    let mut lent = Lent(std::mem::ManuallyDrop::new(ByteArray(p)));
    f(&mut lent.0)
}

/// The scratch array while [`with_buffer`] lends it: puts it back in
/// `SCRATCH` when dropped. The owner (`SCRATCH_OWNER`) frees it, not this.
struct Lent(std::mem::ManuallyDrop<ByteArray>);

impl Drop for Lent {
    fn drop(&mut self) {
        let p = self.0.as_ptr();
        SCRATCH.with(|s| s.set(p));
    }
}

/// [`with_buffer`] when `SCRATCH` is empty: on the thread's first use,
/// creates the scratch array and lends it; when nested inside another
/// lender (or once the thread's locals are being destroyed), lends a
/// temporary array.
#[cold]
#[inline(never)]
fn with_other_buffer<R>(f: impl FnOnce(&mut ByteArray) -> R) -> R {
    let first_use = SCRATCH_OWNER
        .try_with(|owner| owner.try_borrow().is_ok_and(|o| o.is_none()))
        .unwrap_or(false);
    if first_use {
        new_scratch();
        return with_buffer(f);
    }
    let mut temporary = ByteArray::new();
    f(&mut temporary)
}

impl Drop for ByteArray {
    fn drop(&mut self) {
        // SAFETY: the array was created by g_byte_array_new and is freed once,
        // with its data.
        unsafe { sys::g_byte_array_free(self.0, true as sys::gboolean) };
    }
}
