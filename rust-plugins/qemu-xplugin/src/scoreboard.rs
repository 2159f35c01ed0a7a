//! Per-vCPU counters that generated code updates without a callback.

use std::sync::atomic::{AtomicU8, Ordering};

use qemu_xplugin_sys as sys;

use crate::{Error, ErrorKind, ExecThread, Result, Vcpu};

/// A `u64` per vCPU, in a QEMU scoreboard: [`crate::Tb::inline_add`] and
/// [`crate::Insn::inline_add`] update it from generated code, each vCPU its
/// own, so counting needs no callback and no lock. Lives as long as the
/// plugin.
#[derive(Clone, Copy, Debug)]
pub struct Counter {
    entry: sys::qemu_plugin_u64,
}

// SAFETY: the handle is a pointer to a scoreboard QEMU owns and the SDK
// never frees. Moving it between threads is harmless; what touches the
// scoreboard's data takes a `&Vcpu` (a `Vcpu<ExecThread>`: writes, only
// the running vCPU's own slot) or a `&ExecThread` (reads), which exist only
// where no vCPU can start (see `ExecThread`), since QEMU reallocates the
// data when a vCPU with a new index starts, stopping only the vCPUs inside
// guest code. Scenario that would break it: a method reading or writing
// the data with a mere `&QemuThread` (a syscall or vCPU init callback: the
// reviewer's probe read 0x5a, freed memory, from a slot there).
unsafe impl Send for Counter {}
// SAFETY: as above.
unsafe impl Sync for Counter {}

impl Counter {
    /// A counter at 0 on every vCPU. Only at install ([`Install::counter`]):
    /// QEMU sizes a new scoreboard without its lock, so one created while a
    /// vCPU starts elsewhere (from a syscall callback, or a thread the
    /// plugin spawned) could keep the old size and never grow.
    ///
    /// [`Install::counter`]: crate::Install::counter
    pub(crate) fn new() -> Self {
        // SAFETY: creates a scoreboard of u64 entries; it resizes itself as
        // vCPUs are added. Called only from Install (the main thread,
        // before any vCPU runs, or a reinstall closure in QEMU's safe
        // work), where no vCPU can start concurrently.
        let score = unsafe { sys::qemu_plugin_scoreboard_new(std::mem::size_of::<u64>()) };
        Self {
            entry: sys::qemu_plugin_u64 { score, offset: 0 },
        }
    }

    /// A counter on a `u64` of a [`Scoreboard`].
    pub(crate) fn from_entry(entry: sys::qemu_plugin_u64) -> Self {
        Self { entry }
    }

    pub(crate) fn entry(&self) -> sys::qemu_plugin_u64 {
        self.entry
    }

    /// Adds `n` to the slot of `vcpu`, the vCPU running this callback: no
    /// other thread writes that slot (QEMU's add is a plain `+=`). Only in
    /// execution and memory hooks, whose `Vcpu` is inside guest code (see
    /// [`ExecThread`]): elsewhere a vCPU starting on another thread may
    /// move the scoreboard.
    pub fn add(&self, vcpu: &Vcpu, n: u64) {
        // SAFETY: valid scoreboard entry; the index is the running vCPU's,
        // which QEMU has sized the scoreboard for before its first
        // callback; only this thread writes that slot (Vcpu is !Send and
        // !Sync, and made only for the vCPU QEMU runs the callback on);
        // the vCPU is inside guest code (a Vcpu<ExecThread>), so no
        // reallocation runs during the call.
        unsafe { sys::qemu_plugin_u64_add(self.entry, vcpu.index(), n) }
    }

    /// The value of vCPU `index`, or `None` for a vCPU QEMU has not
    /// started. `on`: where no vCPU can start ([`ExecThread`]: a `&Vcpu`
    /// of an execution hook, a flush or exit callback).
    pub fn get(&self, _on: &ExecThread, index: u32) -> Option<u64> {
        // Not qemu_plugin_num_vcpus(): QEMU raises it when a vCPU starts,
        // before it grows the scoreboards for it, and the growth waits for
        // the vCPUs in guest code (perhaps this one, the token's): in
        // between, the new vCPU's slot does not exist. The SDK counts a
        // vCPU once its init callbacks run, after the growth.
        if index >= crate::regs::started_vcpus() {
            return None;
        }
        // SAFETY: valid entry; a slot the scoreboard was grown for (above),
        // which stays put while an ExecThread exists (no growth can run).
        // Scenario that would break it: bounding by qemu_plugin_num_vcpus()
        // with 17 or more vCPUs (QEMU allocates 16 slots first): a read
        // past the array while vCPU 16 starts.
        Some(unsafe { sys::qemu_plugin_u64_get(self.entry, index) })
    }

    /// The sum over all vCPUs. `on`: as for [`Counter::get`].
    pub fn sum(&self, on: &ExecThread) -> u64 {
        // Not qemu_plugin_u64_sum(), which bounds by qemu_plugin_num_vcpus()
        // (see get).
        (0..crate::regs::started_vcpus())
            .filter_map(|i| self.get(on, i))
            .fold(0, u64::wrapping_add)
    }
}

/// Plain old data: a type for which every bit pattern of its size is a
/// valid value, with no padding, so that the SDK may copy it in and out of
/// memory QEMU and generated code write as bytes.
///
/// Implemented for the integers, `f32`, `f64` and arrays of `Pod`; for a
/// struct, `#[derive(Pod)]` (it needs `#[repr(C)]`, every field `Pod`,
/// and no padding, all checked at compile time). Not `bool`, `char`,
/// references or enums: some bit patterns are not values of theirs.
///
/// # Safety
/// Every sequence of `size_of::<Self>()` bytes is a valid `Self`: all
/// zeroes (what QEMU fills a new scoreboard with), a value that
/// generated code changed 8 bytes of, and a mix of two values (a read that
/// races a write). And `Self` has no padding, so that copying its bytes
/// reads no uninitialised memory.
pub unsafe trait Pod: Copy + Send + Sync + 'static {}

macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: an integer or float: every bit pattern is a value, no
        // padding.
        unsafe impl Pod for $t {}
    )*};
}

pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: an array of Pod elements has no padding between them (its size
// is N times theirs) and every bit pattern of each is valid.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// A `T` per vCPU, in a QEMU scoreboard: callbacks read and write their
/// own vCPU's `T`, generated code adds to and stores into its `u64`
/// fields ([`Scoreboard::counter`] and the inline operations of
/// [`crate::Tb`] and [`crate::Insn`]), and the totals are read at the end.
/// Lives as long as the plugin. `T` is [`Pod`]: QEMU starts every slot at
/// all-zero bytes, and generated code writes 8 bytes at a time.
///
/// ```no_run
/// use qemu_xplugin::{Install, Pod, RegAccess, Result};
///
/// #[repr(C)]
/// #[derive(Pod, Clone, Copy, Default)]
/// struct Stats {
///     blocks: u64,
///     last_pc: u64,
/// }
///
/// fn install(plugin: &mut Install) -> Result<()> {
///     let stats = plugin.scoreboard::<Stats>();
///     // Counted in generated code, no callback.
///     let blocks = stats.counter(std::mem::offset_of!(Stats, blocks))?;
///     let hook = plugin.exec_hook(RegAccess::None, move |vcpu| {
///         stats.update(vcpu, |s| s.last_pc = 0x1000);
///         Ok(())
///     });
///     plugin.on_translate(move |tb| {
///         tb.inline_add(&blocks, 1);
///         tb.on_exec(&hook);
///     });
///     plugin.on_exit(move |thread| {
///         for (vcpu, s) in stats.read_all(thread) {
///             qemu_xplugin::outs(&format!("vCPU {vcpu}: {} blocks\n", s.blocks));
///         }
///     });
///     Ok(())
/// }
/// ```
pub struct Scoreboard<T: Pod> {
    score: *mut sys::qemu_plugin_scoreboard,
    _value: std::marker::PhantomData<T>,
}

impl<T: Pod> Clone for Scoreboard<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Pod> Copy for Scoreboard<T> {}

impl<T: Pod> std::fmt::Debug for Scoreboard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scoreboard<{}>", std::any::type_name::<T>())
    }
}

// SAFETY: the handle points to a scoreboard QEMU owns and the SDK never
// frees; every access to its data takes an ExecThread token (see `slot`),
// so QEMU does not reallocate the data meanwhile, and copies with atomic
// byte accesses, so two threads never race non-atomic Rust accesses.
// Scenario that would break it: a method touching the data with a mere
// QemuThread (a syscall or vCPU init callback, while another thread starts
// a vCPU and QEMU moves the data).
unsafe impl<T: Pod> Send for Scoreboard<T> {}
// SAFETY: as above.
unsafe impl<T: Pod> Sync for Scoreboard<T> {}

impl<T: Pod> Scoreboard<T> {
    pub(crate) fn new() -> Self {
        let size = std::mem::size_of::<T>().max(1);
        // SAFETY: creates a scoreboard of `size`-byte entries, zeroed, that
        // QEMU grows as vCPUs start. Only Install calls this, where no vCPU
        // can start concurrently (QEMU reads the size to give it without
        // its lock: see Counter::new).
        let score = unsafe { sys::qemu_plugin_scoreboard_new(size) };
        Self {
            score,
            _value: std::marker::PhantomData,
        }
    }

    /// A [`Counter`] on the `u64` at byte `offset` of `T` (use
    /// [`std::mem::offset_of!`]), for the inline operations: generated code
    /// adds to and stores into it. `offset` must be a multiple of 8 inside
    /// `T`, and `T`'s size a multiple of 8 (so that every vCPU's field is
    /// aligned); else an error of kind [`crate::ErrorKind::Invalid`].
    pub fn counter(&self, offset: usize) -> Result<Counter> {
        let size = std::mem::size_of::<T>();
        if offset % 8 != 0 || offset + 8 > size || size % 8 != 0 {
            return Err(Error::with_kind(
                ErrorKind::Invalid,
                format!(
                    "no aligned u64 at offset {offset} of {} ({size} bytes): the offset must be \
                     a multiple of 8 inside it, and its size a multiple of 8",
                    std::any::type_name::<T>()
                ),
            ));
        }
        Ok(Counter::from_entry(sys::qemu_plugin_u64 {
            score: self.score,
            offset,
        }))
    }

    /// The slot of vCPU `index`. Callers hold an [`ExecThread`] (a
    /// `&Vcpu` of an execution or memory hook, a flush or exit callback):
    /// QEMU reallocates scoreboards when a vCPU starts, in an exclusive
    /// section that cannot run while such a token exists, so the pointer
    /// stays valid while they use it.
    fn slot(&self, index: u32) -> *mut u8 {
        // SAFETY: a live scoreboard; QEMU has sized it for every started
        // vCPU, and callers pass a started vCPU's index.
        unsafe { sys::qemu_plugin_scoreboard_find(self.score, index) }.cast()
    }

    /// The value of the running vCPU.
    pub fn get(&self, vcpu: &Vcpu) -> T {
        // SAFETY: the running vCPU's slot (started: it runs), with an
        // ExecThread (the Vcpu's), so the data stays put during the copy.
        unsafe { load(self.slot(vcpu.index())) }
    }

    /// Sets the value of the running vCPU.
    pub fn set(&self, vcpu: &Vcpu, value: T) {
        // SAFETY: as in get. Other threads may read this slot meanwhile;
        // both sides copy with atomic byte accesses.
        unsafe { store(self.slot(vcpu.index()), value) }
    }

    /// Changes the value of the running vCPU with `f`.
    pub fn update(&self, vcpu: &Vcpu, f: impl FnOnce(&mut T)) {
        let mut value = self.get(vcpu);
        f(&mut value);
        self.set(vcpu, value);
    }

    /// The value of every started vCPU, by index. `on`: as for
    /// [`Counter::get`]. A value another vCPU is changing meanwhile may be
    /// seen half-changed (`T` is [`Pod`]: still a value).
    pub fn read_all(&self, _on: &ExecThread) -> Vec<(u32, T)> {
        // Not qemu_plugin_num_vcpus(): QEMU raises it before it grows the
        // scoreboards for a new vCPU (the growth then waits for the
        // vCPUs in guest code, this one perhaps), so its last slot may not
        // exist yet. The SDK counts vCPUs once their init callbacks run,
        // after the growth.
        (0..crate::regs::started_vcpus())
            // SAFETY: slots of vCPUs the scoreboards were grown for (see
            // above), with an ExecThread (see slot).
            .map(|i| (i, unsafe { load(self.slot(i)) }))
            .collect()
    }
}

/// Copies a `T` out of `slot` byte by byte with atomic loads: generated
/// code and other vCPUs may write it meanwhile (a torn value is still a
/// `T`: [`Pod`]).
///
/// # Safety
/// `slot` points to `size_of::<T>()` bytes that stay allocated during the
/// call.
unsafe fn load<T: Pod>(slot: *const u8) -> T {
    let mut value = std::mem::MaybeUninit::<T>::uninit();
    let out = value.as_mut_ptr().cast::<u8>();
    for i in 0..std::mem::size_of::<T>() {
        // SAFETY: in bounds of the slot (caller) and of `value`; an
        // AtomicU8 has the size and alignment of u8.
        unsafe {
            let byte = (*slot.add(i).cast::<AtomicU8>()).load(Ordering::Relaxed);
            out.add(i).write(byte);
        }
    }
    // SAFETY: every byte is written, and any bytes are a valid T (Pod).
    unsafe { value.assume_init() }
}

/// Copies `value` into `slot` byte by byte with atomic stores (see
/// [`load`]).
///
/// # Safety
/// As for [`load`].
unsafe fn store<T: Pod>(slot: *mut u8, value: T) {
    let bytes = (&value as *const T).cast::<u8>();
    for i in 0..std::mem::size_of::<T>() {
        // SAFETY: in bounds of both; T has no padding (Pod), so every byte
        // of `value` is initialised.
        unsafe {
            (*slot.add(i).cast::<AtomicU8>()).store(*bytes.add(i), Ordering::Relaxed);
        }
    }
}
