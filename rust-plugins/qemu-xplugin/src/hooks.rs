//! Hooks: closures QEMU runs when a block or instruction executes or
//! accesses memory. One way of erasing a closure for all of them: the
//! closure and its register access go in a `HookData<F>` on the heap, and
//! the C trampoline is instantiated for `F`, so QEMU calls code in which
//! the closure is inlined and the user data is the `HookData<F>`.

use std::ffi::{c_uint, c_void};
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
        F: Fn(&mut Vcpu, &MemAccess) -> Result<()> + Send + Sync + 'static,
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

/// One memory access, as a [`MemHook`] sees it (after the access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    /// Virtual address.
    pub vaddr: u64,
    /// A store (else a load).
    pub is_store: bool,
    /// Size in bytes.
    pub size: u32,
    /// The value loaded or stored (the low 64 bits of a 128-bit access).
    pub value: u64,
}

extern "C" fn mem_trampoline<F>(
    vcpu_index: c_uint,
    info: sys::qemu_plugin_meminfo_t,
    vaddr: u64,
    udata: *mut c_void,
) where
    F: Fn(&mut Vcpu, &MemAccess) -> Result<()> + Send + Sync + 'static,
{
    // SAFETY: udata is the leaked, never freed HookData<F> of a MemHook
    // made with this trampoline.
    let hook = unsafe { &*(udata as *const HookData<F>) };
    let redirect = in_callback(|| {
        // SAFETY: info is the handle QEMU passed to this callback.
        let access = unsafe {
            let value = sys::qemu_plugin_mem_get_value(info);
            MemAccess {
                vaddr,
                is_store: sys::qemu_plugin_mem_is_store(info),
                size: 1 << sys::qemu_plugin_mem_size_shift(info),
                value: match value.type_ {
                    sys::qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U8 => {
                        value.data.u8_.into()
                    }
                    sys::qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U16 => {
                        value.data.u16_.into()
                    }
                    sys::qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U32 => {
                        value.data.u32_.into()
                    }
                    sys::qemu_plugin_mem_value_type::QEMU_PLUGIN_MEM_VALUE_U64 => value.data.u64_,
                    _ => value.data.u128_.low,
                },
            }
        };
        let mut vcpu = Vcpu::new(vcpu_index, hook.access);
        report((hook.f)(&mut vcpu, &access), "memory");
        vcpu.take_redirect()
    });
    apply_redirect(redirect);
}
