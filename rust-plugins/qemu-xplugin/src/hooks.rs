//! Hooks: closures QEMU runs when a block or instruction executes or
//! accesses memory. One way of erasing a closure for all of them: the
//! closure and its register access go in a `HookData<F>` on the heap, and
//! the C trampoline is instantiated for `F`, so QEMU calls code in which
//! the closure is inlined and the user data is the `HookData<F>`.

use std::ffi::{c_uint, c_void};
use std::marker::PhantomData;
use std::sync::Mutex;

use qemu_xplugin_sys as sys;

use crate::ffi::{in_callback, report};
use crate::vcpu::{apply_redirect, RegAccess, Vcpu};
use crate::Result;

struct HookData<F> {
    access: RegAccess,
    f: F,
}

/// A closure to run when an instruction or block executes, made once with
/// [`crate::Install::exec_hook`] and attached to any number of them. It lives
/// as long as the plugin, so attaching it allocates nothing.
#[derive(Clone, Copy)]
pub struct ExecHook {
    pub(crate) access: RegAccess,
    pub(crate) trampoline: extern "C" fn(c_uint, *mut c_void),
    /// The `HookData<F>` of the trampoline's `F`.
    data: usize,
}

impl ExecHook {
    /// A hook whose data is never freed.
    pub(crate) fn leak<F>(access: RegAccess, f: F) -> Self
    where
        F: Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    {
        let data = Box::into_raw(Box::new(HookData { access, f }));
        Self {
            access,
            trampoline: exec_trampoline::<F>,
            data: data as usize,
        }
    }

    /// A hook whose data is freed when QEMU flushes its translated code
    /// (the block it is attached to is gone then).
    pub(crate) fn for_one_block<F>(access: RegAccess, f: F) -> Self
    where
        F: Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    {
        let hook = Self::leak(access, f);
        crate::trampolines::ensure_flush();
        BLOCK_CLOSURES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Owned {
                data: hook.data,
                free: free_hook_data::<F>,
            });
        hook
    }

    pub(crate) fn udata(&self) -> *mut c_void {
        self.data as *mut c_void
    }
}

/// Frees a `HookData<F>` made by [`ExecHook::leak`].
///
/// # Safety
/// `data` came from `Box::into_raw` of a `HookData<F>`, is freed once, and
/// no block that QEMU may still execute has it as user data.
unsafe fn free_hook_data<F>(data: usize) {
    // SAFETY: forwarded from the caller.
    drop(unsafe { Box::from_raw(data as *mut HookData<F>) });
}

/// A hook's data owned by the SDK, freed at the next flush.
struct Owned {
    data: usize,
    free: unsafe fn(usize),
}

/// The data of hooks attached to one block each ([`crate::Tb::on_exec_fn`],
/// [`crate::Insn::on_exec_fn`]) since the last flush.
static BLOCK_CLOSURES: Mutex<Vec<Owned>> = Mutex::new(Vec::new());

/// Frees the data of the hooks attached to one block each. Called only
/// when QEMU has just flushed its translated code, with every vCPU
/// stopped: from the flush callback, and once a reset is done (QEMU
/// flushes before removing the callbacks).
pub(crate) fn free_block_closures() {
    let owned = std::mem::take(&mut *BLOCK_CLOSURES.lock().unwrap_or_else(|e| e.into_inner()));
    for o in owned {
        // SAFETY: each entry was made by for_one_block from Box::into_raw
        // and is taken out of the list once. Its hook was attached to one
        // block translated before this flush, and QEMU calls this after
        // removing every translated block, with every vCPU out of guest
        // code (exclusive section) and no translation under way, so no
        // trampoline is running or will run with this data. Scenario that
        // would break it: calling this at any other time, e.g. from a
        // vCPU callback (blocks still hold the data).
        unsafe { (o.free)(o.data) };
    }
}

extern "C" fn exec_trampoline<F>(vcpu_index: c_uint, udata: *mut c_void)
where
    F: Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
{
    // SAFETY: udata is the HookData<F> of an ExecHook made with this
    // trampoline, alive while a block that has it can run (leaked, or freed
    // only after a flush).
    let hook = unsafe { &*(udata as *const HookData<F>) };
    let redirect = in_callback(|| {
        let mut vcpu = Vcpu::new(vcpu_index, hook.access);
        report((hook.f)(&mut vcpu), "execution");
        vcpu.take_redirect()
    });
    apply_redirect(redirect);
}

/// A closure to run on every memory access of an instruction, made once with
/// [`crate::Install::mem_hook`].
#[derive(Clone, Copy)]
pub struct MemHook {
    pub(crate) access: RegAccess,
    pub(crate) rw: MemRw,
    pub(crate) trampoline: extern "C" fn(c_uint, sys::qemu_plugin_meminfo_t, u64, *mut c_void),
    /// The leaked `HookData<F>` of the trampoline's `F`.
    data: usize,
}

impl MemHook {
    pub(crate) fn new<F>(access: RegAccess, rw: MemRw, f: F) -> Self
    where
        F: Fn(&mut Vcpu, &MemAccess<'_>) -> Result<()> + Send + Sync + 'static,
    {
        let data = Box::into_raw(Box::new(HookData { access, f }));
        Self {
            access,
            rw,
            trampoline: mem_trampoline::<F>,
            data: data as usize,
        }
    }

    pub(crate) fn udata(&self) -> *mut c_void {
        self.data as *mut c_void
    }
}

/// Which memory accesses a [`MemHook`] sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemRw {
    /// Loads.
    Read,
    /// Stores.
    Write,
    /// Both.
    ReadWrite,
}

impl MemRw {
    pub(crate) fn raw(self) -> sys::qemu_plugin_mem_rw {
        match self {
            MemRw::Read => sys::qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_R,
            MemRw::Write => sys::qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_W,
            MemRw::ReadWrite => sys::qemu_plugin_mem_rw::QEMU_PLUGIN_MEM_RW,
        }
    }
}

/// One memory access, as a [`MemHook`] sees it (after the access). Valid
/// during the callback only (QEMU answers from the vCPU's state), which the
/// lifetime and its not being `Send` ensure.
pub struct MemAccess<'a> {
    vaddr: u64,
    info: sys::qemu_plugin_meminfo_t,
    _callback: PhantomData<&'a *mut ()>,
}

impl std::fmt::Debug for MemAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemAccess")
            .field("vaddr", &format_args!("{:#x}", self.vaddr))
            .field("is_store", &self.is_store())
            .field("size", &self.size())
            .field("value", &format_args!("{:#x}", self.value()))
            .finish()
    }
}

/// The physical side of a memory access (system emulation):
/// [`MemAccess::hwaddr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hwaddr {
    /// The physical address, also for I/O (`0xfee00300` for the local
    /// APIC's interrupt command register).
    pub addr: u64,
    /// An access to a device (MMIO), not to RAM.
    pub is_io: bool,
    /// The device's name (its memory region's: `apic-msi`, `hpet`), for I/O.
    pub device: Option<String>,
}

impl MemAccess<'_> {
    /// Virtual address.
    pub fn vaddr(&self) -> u64 {
        self.vaddr
    }

    /// A store (else a load).
    pub fn is_store(&self) -> bool {
        // SAFETY: info is the handle QEMU passed to the running callback
        // (the lifetime); the query only decodes it.
        unsafe { sys::qemu_plugin_mem_is_store(self.info) }
    }

    /// Size in bytes: 1, 2, 4, 8 or 16.
    pub fn size(&self) -> usize {
        // SAFETY: as above.
        1 << unsafe { sys::qemu_plugin_mem_size_shift(self.info) }
    }

    /// A sign-extending load.
    pub fn is_sign_extended(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::qemu_plugin_mem_is_sign_extended(self.info) }
    }

    /// A big-endian access.
    pub fn is_big_endian(&self) -> bool {
        // SAFETY: as above.
        unsafe { sys::qemu_plugin_mem_is_big_endian(self.info) }
    }

    /// The value loaded or stored, all of it (up to 16 bytes), zero-extended.
    pub fn value(&self) -> u128 {
        // SAFETY: in the callback of this access (the lifetime) on its vCPU
        // thread (not Send): QEMU returns the value it recorded for it.
        let value = unsafe { sys::qemu_plugin_mem_get_value(self.info) };
        use sys::qemu_plugin_mem_value_type as V;
        // SAFETY: the union member the type field names.
        unsafe {
            match value.type_ {
                V::QEMU_PLUGIN_MEM_VALUE_U8 => value.data.u8_.into(),
                V::QEMU_PLUGIN_MEM_VALUE_U16 => value.data.u16_.into(),
                V::QEMU_PLUGIN_MEM_VALUE_U32 => value.data.u32_.into(),
                V::QEMU_PLUGIN_MEM_VALUE_U64 => value.data.u64_.into(),
                _ => {
                    let v = value.data.u128_;
                    (u128::from(v.high) << 64) | u128::from(v.low)
                }
            }
        }
    }

    /// The physical address and device of the access (system emulation;
    /// `None` in user mode).
    pub fn hwaddr(&self) -> Option<Hwaddr> {
        // SAFETY: in the callback of this access on its vCPU's thread
        // (lifetime, not Send), where QEMU looks the access up in the
        // vCPU's TLB; it returns a pointer to a per-thread record, valid
        // until the next call on this thread, which we copy at once, or
        // NULL (user mode).
        unsafe {
            let h = sys::qemu_plugin_get_hwaddr(self.info, self.vaddr);
            if h.is_null() {
                return None;
            }
            let is_io = sys::qemu_plugin_hwaddr_is_io(h);
            Some(Hwaddr {
                addr: sys::qemu_plugin_hwaddr_phys_addr(h),
                is_io,
                device: if is_io {
                    crate::ffi::copy_c_str(sys::qemu_plugin_hwaddr_device_name(h))
                } else {
                    None
                },
            })
        }
    }
}

extern "C" fn mem_trampoline<F>(
    vcpu_index: c_uint,
    info: sys::qemu_plugin_meminfo_t,
    vaddr: u64,
    udata: *mut c_void,
) where
    F: Fn(&mut Vcpu, &MemAccess<'_>) -> Result<()> + Send + Sync + 'static,
{
    // SAFETY: udata is the leaked, never freed HookData<F> of a MemHook
    // made with this trampoline.
    let hook = unsafe { &*(udata as *const HookData<F>) };
    let redirect = in_callback(|| {
        let access = MemAccess {
            vaddr,
            info,
            _callback: PhantomData,
        };
        let mut vcpu = Vcpu::new(vcpu_index, hook.access);
        report((hook.f)(&mut vcpu, &access), "memory");
        vcpu.take_redirect()
    });
    apply_redirect(redirect);
}
