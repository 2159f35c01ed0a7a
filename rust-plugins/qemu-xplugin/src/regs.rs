//! Registers: QEMU's handles by vCPU, and [`Reg`], a typed handle resolved
//! once so that an access in a callback looks nothing up.
//!
//! QEMU's register handles are gdbstub register numbers, which depend on
//! the CPU class (its features add registers): a machine that mixes classes
//! numbers a register differently on different vCPUs. The SDK reads the
//! register list of every vCPU when it starts, before it runs guest code
//! (the vCPU init trampoline, registered for every plugin). The first list
//! read is the *common* one; while every vCPU's list equals it, a [`Reg`]
//! resolved once against it is right on every vCPU, and an access costs two
//! relaxed atomic loads and a branch. Once a vCPU with another list starts
//! (or a vCPU may have started unseen, around a reset), [`MIXED`] is set
//! for good and accesses look the register up in their own vCPU's list.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use qemu_xplugin_sys as sys;

use crate::ffi;
use crate::{Error, ErrorKind, Result};

/// A value a register holds, for [`Reg`]: an unsigned integer of the
/// register's size (little-endian guests: x86, Arm, RISC-V), or its bytes
/// in the guest's order (`[u8; N]`, e.g. a vector register).
pub trait RegValue: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The register size this type reads and writes, in bytes.
    const SIZE: usize;
    /// The bytes QEMU reads and writes.
    type Bytes: AsRef<[u8]>;
    /// From exactly [`RegValue::SIZE`] bytes.
    fn from_bytes(bytes: &[u8]) -> Self;
    /// To the bytes of the register.
    fn to_bytes(self) -> Self::Bytes;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl RegValue for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            type Bytes = [u8; std::mem::size_of::<$t>()];
            #[inline(always)]
            fn from_bytes(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("the caller checked the size"))
            }
            #[inline(always)]
            fn to_bytes(self) -> Self::Bytes {
                self.to_le_bytes()
            }
        }
    )*};
}

int_value!(u8, u16, u32, u64, u128);

impl<const N: usize> sealed::Sealed for [u8; N] {}
impl<const N: usize> RegValue for [u8; N] {
    const SIZE: usize = N;
    type Bytes = [u8; N];
    #[inline(always)]
    fn from_bytes(bytes: &[u8]) -> Self {
        bytes.try_into().expect("the caller checked the size")
    }
    #[inline(always)]
    fn to_bytes(self) -> Self::Bytes {
        self
    }
}

/// A register by name, typed by its size, made once with
/// [`crate::Install::register`] and used in callbacks with
/// [`crate::Vcpu::read`] and [`crate::Vcpu::write`]. The name and size are
/// checked against the vCPU's registers once (at its first use), not on
/// every access: an access is as cheap as QEMU's C API allows.
///
/// ```no_run
/// # use qemu_xplugin::{Install, Reg, RegAccess};
/// # fn install(plugin: &mut Install) {
/// let rax: Reg<u64> = plugin.register("rax");
/// let hook = plugin.exec_hook(RegAccess::ReadWrite, move |vcpu| {
///     let value = vcpu.read(rax)?;
///     vcpu.write(rax, value + 1)
/// });
/// # }
/// ```
pub struct Reg<T: RegValue = u64> {
    inner: &'static RegInner,
    _value: PhantomData<fn() -> T>,
}

impl<T: RegValue> Clone for Reg<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: RegValue> Copy for Reg<T> {}

impl<T: RegValue> std::fmt::Debug for Reg<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reg({:?}, {} bytes)", self.inner.name, T::SIZE)
    }
}

/// What a [`Reg`] resolved to against the common register list, in one
/// word so that a callback reads it with one load: the low byte is the
/// state, the high 32 bits the handle (found) or the actual size (wrong
/// size).
const UNRESOLVED: u64 = 0;
const FOUND: u64 = 1;
const UNKNOWN: u64 = 2;
const WRONG_SIZE: u64 = 3;

struct RegInner {
    name: Box<str>,
    size: usize,
    state: AtomicU64,
}

/// The handles made so far, one per name and size: making the same handle
/// again (a reset installs again) reuses it.
static HANDLES: Mutex<Vec<&'static RegInner>> = Mutex::new(Vec::new());

impl<T: RegValue> Reg<T> {
    pub(crate) fn new(name: &str) -> Self {
        let mut handles = HANDLES.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = match handles
            .iter()
            .find(|r| &*r.name == name && r.size == T::SIZE)
        {
            Some(inner) => inner,
            None => {
                let inner: &'static RegInner = Box::leak(Box::new(RegInner {
                    name: name.into(),
                    size: T::SIZE,
                    state: AtomicU64::new(UNRESOLVED),
                }));
                handles.push(inner);
                inner
            }
        };
        Self {
            inner,
            _value: PhantomData,
        }
    }

    /// The register's name.
    pub fn name(&self) -> &'static str {
        &self.inner.name
    }

    /// QEMU's handle for this register on vCPU `index`, the vCPU of the
    /// running callback. The common case is two relaxed loads: the handle
    /// resolved against the common list, and [`MIXED`], which this vCPU
    /// set itself at its init if its list differs (so this thread sees it:
    /// a thread reads its own writes).
    #[inline(always)]
    pub(crate) fn handle(&self, index: u32) -> Result<*mut sys::qemu_plugin_register> {
        let state = self.inner.state.load(Ordering::Relaxed);
        if state & 0xff == FOUND && !MIXED.load(Ordering::Relaxed) {
            return Ok((state >> 32) as usize as *mut sys::qemu_plugin_register);
        }
        self.inner.handle_slow(index)
    }
}

impl RegInner {
    #[cold]
    #[inline(never)]
    fn handle_slow(&self, index: u32) -> Result<*mut sys::qemu_plugin_register> {
        if !MIXED.load(Ordering::Relaxed) {
            if let Some(common) = COMMON.get() {
                let state = self.resolve(common);
                self.state.store(state, Ordering::Relaxed);
                return self.decode(state);
            }
        }
        with_table(index, |table| self.decode(self.resolve(table)))
    }

    fn resolve(&self, table: &Table) -> u64 {
        match table.get(&*self.name) {
            None => UNKNOWN,
            Some(entry) => {
                // A size never read is never assumed: QEMU writes as many
                // bytes as the register has, whatever the buffer holds, so
                // a handle whose size was not checked could make it read
                // past the value. Unreadable: an error, as a wrong size.
                let Some(size) = entry
                    .size
                    .or_else(|| read_size(entry.handle as usize as *mut _))
                else {
                    return WRONG_SIZE;
                };
                if size == self.size {
                    FOUND | (u64::from(entry.handle) << 32)
                } else {
                    WRONG_SIZE | ((size as u64) << 32)
                }
            }
        }
    }

    fn decode(&self, state: u64) -> Result<*mut sys::qemu_plugin_register> {
        match state & 0xff {
            FOUND => Ok((state >> 32) as usize as *mut sys::qemu_plugin_register),
            WRONG_SIZE if state >> 32 == 0 => Err(Error::with_kind(
                ErrorKind::RegisterSize,
                format!(
                    "register '{}': QEMU does not tell its size, so a handle cannot be checked",
                    self.name
                ),
            )),
            WRONG_SIZE => Err(Error::with_kind(
                ErrorKind::RegisterSize,
                format!(
                    "register '{}' is {} bytes, not {} as its handle's type says",
                    self.name,
                    state >> 32,
                    self.size
                ),
            )),
            _ => Err(unknown_register(&self.name)),
        }
    }
}

pub(crate) fn unknown_register(name: &str) -> Error {
    Error::with_kind(
        ErrorKind::UnknownRegister,
        format!("unknown register '{name}'"),
    )
}

/// FNV-1a: register names are short and trusted, so a hash built for
/// them beats the default SipHash on every by-name access.
#[derive(Default)]
pub(crate) struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// A register of one vCPU: QEMU's handle (the gdbstub number plus one) and
/// its size, when it could be read (always at vCPU init).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) handle: u32,
    pub(crate) size: Option<usize>,
}

pub(crate) type Table = HashMap<String, Entry, BuildHasherDefault<Fnv>>;

/// The first register list read: the one [`Reg`]s resolve against.
static COMMON: OnceLock<Arc<Table>> = OnceLock::new();

/// Set for good once a vCPU's list differs from [`COMMON`], or a vCPU may
/// have started without the SDK reading its list.
static MIXED: AtomicBool = AtomicBool::new(false);

/// Register lists by vCPU index.
static TABLES: Mutex<Vec<Option<Arc<Table>>>> = Mutex::new(Vec::new());

thread_local! {
    /// The list of the vCPU this thread ran last: a thread runs one vCPU
    /// (MTTCG, user mode) or takes turns (round-robin TCG).
    static LAST: RefCell<Option<(u32, Arc<Table>)>> = const { RefCell::new(None) };
}

/// One more than the highest index of a vCPU whose init trampoline ran:
/// QEMU has grown every scoreboard for it by then (it grows them before
/// running init callbacks), unlike its own count, which it raises first.
static STARTED: AtomicU32 = AtomicU32::new(0);

/// The vCPUs every scoreboard has a slot for (see [`STARTED`]).
pub(crate) fn started_vcpus() -> u32 {
    STARTED.load(Ordering::Acquire)
}

/// Reads the list of vCPU `index`, which is starting on this thread (the
/// vCPU init trampoline, with register access), and records it.
pub(crate) fn record_vcpu(index: u32) {
    let table = Arc::new(read_table(true));
    let common = COMMON.get_or_init(|| table.clone());
    if **common != *table {
        MIXED.store(true, Ordering::Relaxed);
    }
    let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    let i = index as usize;
    if tables.len() <= i {
        tables.resize(i + 1, None);
    }
    tables[i] = Some(table);
    LAST.with(|last| *last.borrow_mut() = None);
    STARTED.fetch_max(index + 1, Ordering::AcqRel);
}

/// After a reset, every vCPU QEMU knows must have been recorded: one whose
/// start raced the reset may have missed the init trampoline. Called with
/// every vCPU stopped (in the reset's done callback).
pub(crate) fn check_all_recorded() {
    extern "C" fn each(_id: sys::qemu_plugin_id_t, index: std::ffi::c_uint) {
        let tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(tables.get(index as usize), Some(Some(_))) {
            MIXED.store(true, Ordering::Relaxed);
        }
    }
    // SAFETY: our plugin's ID; `each` has the callback's signature and
    // only touches the SDK's tables (QEMU calls it on this thread).
    unsafe { sys::qemu_plugin_vcpu_for_each(crate::registry::plugin_id(), Some(each)) };
}

/// Runs `f` with the register list of vCPU `index`, which must be the vCPU
/// of the running callback (a `Vcpu` is only made there).
pub(crate) fn with_table<R>(index: u32, f: impl FnOnce(&Table) -> R) -> R {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((i, table)) = &*last {
            if *i == index {
                return f(table);
            }
        }
        let table = {
            let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
            let i = index as usize;
            if tables.len() <= i {
                tables.resize(i + 1, None);
            }
            tables[i]
                .get_or_insert_with(|| {
                    // A vCPU the init trampoline did not see start: handles
                    // resolved against the common list may not fit it.
                    MIXED.store(true, Ordering::Relaxed);
                    // It runs a callback, so QEMU has finished its init,
                    // growth of the scoreboards included: count it (not in
                    // check_all_recorded, where a vCPU may be in QEMU's
                    // table while its growth still waits).
                    STARTED.fetch_max(index + 1, Ordering::AcqRel);
                    Arc::new(read_table(false))
                })
                .clone()
        };
        let r = f(&table);
        *last = Some((index, table));
        r
    })
}

/// The size of the register behind `handle`, read now (the callback must
/// allow reading registers, else `None`).
fn read_size(handle: *mut sys::qemu_plugin_register) -> Option<usize> {
    ffi::with_scratch(|buf| {
        // SAFETY: on a vCPU thread inside a callback (only reached through
        // a Vcpu or the vCPU init trampoline); the handle came from QEMU's
        // list for this vCPU; buf is a valid GByteArray. Without register
        // access QEMU returns -1.
        let size = unsafe { sys::qemu_plugin_read_register(handle, buf.as_ptr()) };
        usize::try_from(size).ok().filter(|&s| s > 0)
    })
}

/// The registers of the vCPU running this callback, from QEMU; with their
/// sizes when `sizes` (the callback allows reading registers).
fn read_table(sizes: bool) -> Table {
    let mut map = Table::default();
    // SAFETY: only called on a vCPU thread inside a callback (the init
    // trampoline, or through a Vcpu, which exists only there), where
    // qemu_plugin_get_registers is allowed and describes that vCPU. The
    // GArray holds `len` descriptors whose names are interned strings; we
    // free the array, not the strings, as the API says. Scenario that
    // would break it: a call from a thread without a current vCPU (QEMU
    // asserts); a Vcpu cannot get there (it is !Send and !Sync).
    unsafe {
        let array = sys::qemu_plugin_get_registers();
        if !array.is_null() {
            let descs = (*array).data as *const sys::qemu_plugin_reg_descriptor;
            for i in 0..(*array).len as usize {
                let desc = &*descs.add(i);
                if let Some(name) = ffi::copy_c_str(desc.name) {
                    let handle = desc.handle as usize as u32;
                    map.insert(name, Entry { handle, size: None });
                }
            }
            sys::g_array_free(array, true as sys::gboolean);
        }
    }
    if sizes {
        for entry in map.values_mut() {
            entry.size = read_size(entry.handle as usize as *mut _);
        }
    }
    map
}
