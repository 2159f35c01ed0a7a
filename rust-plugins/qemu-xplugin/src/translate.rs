//! Translation time: blocks and instructions, and what runs when they do.

use std::ffi::{c_uint, c_void};
use std::marker::PhantomData;

use qemu_xplugin_sys as sys;

use crate::ffi::{self, in_callback};
use crate::vcpu::{apply_redirect, RegAccess, Vcpu};
use crate::{Counter, Result};

type MemFn = dyn Fn(&mut Vcpu, &MemAccess) -> Result<()> + Send + Sync;

/// A closure to run when an instruction or block executes, made once with
/// [`crate::Install::exec_hook`] and attached to any number of them. It lives
/// as long as the plugin, so attaching it allocates nothing, and its
/// trampoline is made for its closure type, so the closure is inlined into
/// the function QEMU calls.
#[derive(Clone, Copy)]
pub struct ExecHook {
    access: RegAccess,
    trampoline: extern "C" fn(c_uint, *mut c_void),
    /// The leaked `ExecData<F>` of the trampoline's `F`.
    data: usize,
}

struct ExecData<F> {
    access: RegAccess,
    f: F,
}

impl ExecHook {
    pub(crate) fn new<F>(access: RegAccess, f: F) -> Self
    where
        F: Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    {
        let data: &'static ExecData<F> = Box::leak(Box::new(ExecData { access, f }));
        Self {
            access,
            trampoline: exec_trampoline::<F>,
            data: data as *const ExecData<F> as usize,
        }
    }

    fn udata(&self) -> *mut c_void {
        self.data as *mut c_void
    }
}

extern "C" fn exec_trampoline<F>(vcpu_index: c_uint, udata: *mut c_void)
where
    F: Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
{
    // SAFETY: udata is the leaked, never freed ExecData<F> of an ExecHook
    // made with this trampoline.
    let hook = unsafe { &*(udata as *const ExecData<F>) };
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
    inner: &'static MemInner,
}

struct MemInner {
    access: RegAccess,
    rw: MemRw,
    f: Box<MemFn>,
}

impl MemHook {
    pub(crate) fn new(
        access: RegAccess,
        rw: MemRw,
        f: impl Fn(&mut Vcpu, &MemAccess) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Box::leak(Box::new(MemInner {
                access,
                rw,
                f: Box::new(f),
            })),
        }
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
    fn raw(self) -> sys::qemu_plugin_mem_rw {
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

extern "C" fn mem_trampoline(
    vcpu_index: c_uint,
    info: sys::qemu_plugin_meminfo_t,
    vaddr: u64,
    udata: *mut c_void,
) {
    // SAFETY: udata is the leaked, never freed MemInner of a MemHook.
    let hook = unsafe { &*(udata as *const MemInner) };
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

/// An error a callback returned: logged, the guest goes on.
#[inline(always)]
pub(crate) fn report(result: Result<()>, what: &str) {
    if let Err(err) = result {
        report_error(&err, what);
    }
}

#[cold]
#[inline(never)]
fn report_error(err: &crate::Error, what: &str) {
    tracing::error!("{what} callback: {err}");
}

/// A translation block being translated. Valid during the translation
/// callback only, as are its instructions.
pub struct Tb<'a> {
    raw: *mut sys::qemu_plugin_tb,
    _callback: PhantomData<&'a ()>,
}

impl<'a> Tb<'a> {
    pub(crate) fn new(raw: *mut sys::qemu_plugin_tb) -> Self {
        Self {
            raw,
            _callback: PhantomData,
        }
    }

    /// Virtual address of the block's first instruction.
    pub fn vaddr(&self) -> u64 {
        // SAFETY: raw is the block of the running translation callback.
        unsafe { sys::qemu_plugin_tb_vaddr(self.raw) }
    }

    /// Number of instructions.
    pub fn len(&self) -> usize {
        // SAFETY: as above.
        unsafe { sys::qemu_plugin_tb_n_insns(self.raw) }
    }

    /// Whether the block has no instructions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block's instructions, in order.
    pub fn insns(&self) -> impl Iterator<Item = Insn<'a>> + '_ {
        (0..self.len()).map(move |i| Insn {
            // SAFETY: i < len; the handle is valid for the callback.
            raw: unsafe { sys::qemu_plugin_tb_get_insn(self.raw, i) },
            _callback: PhantomData,
        })
    }

    /// Runs `hook` every time the block starts executing.
    pub fn on_exec(&self, hook: &ExecHook) {
        // SAFETY: valid block; the hook's data lives forever.
        unsafe {
            sys::qemu_plugin_register_vcpu_tb_exec_cb(
                self.raw,
                Some(hook.trampoline),
                hook.access.flags(),
                hook.udata(),
            )
        }
    }

    /// Runs `f` every time the block starts executing: for a closure that
    /// captures data about this block. Each call keeps a small allocation
    /// until QEMU exits; a hook shared by many blocks is an [`ExecHook`].
    pub fn on_exec_fn(
        &self,
        access: RegAccess,
        f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    ) {
        self.on_exec(&ExecHook::new(access, f));
    }

    /// Adds `n` to `counter` (for the executing vCPU) every time the block
    /// executes, in generated code: no callback.
    pub fn inline_add(&self, counter: &Counter, n: u64) {
        // SAFETY: valid block; the counter's scoreboard lives forever.
        unsafe {
            sys::qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
                self.raw,
                sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                counter.entry(),
                n,
            )
        }
    }
}

/// An instruction being translated.
pub struct Insn<'a> {
    raw: *mut sys::qemu_plugin_insn,
    _callback: PhantomData<&'a ()>,
}

impl Insn<'_> {
    /// Virtual address.
    pub fn vaddr(&self) -> u64 {
        // SAFETY: raw is an instruction of the running translation callback.
        unsafe { sys::qemu_plugin_insn_vaddr(self.raw) }
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        // SAFETY: as above.
        unsafe { sys::qemu_plugin_insn_size(self.raw) }
    }

    /// The instruction's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = vec![0u8; self.size()];
        // SAFETY: bytes has room for size() bytes, which QEMU copies.
        let n =
            unsafe { sys::qemu_plugin_insn_data(self.raw, bytes.as_mut_ptr().cast(), bytes.len()) };
        bytes.truncate(n);
        bytes
    }

    /// Disassembly, as QEMU's disassembler prints it.
    pub fn disas(&self) -> String {
        // SAFETY: QEMU returns a glib-allocated string that we own.
        unsafe { ffi::take_g_string(sys::qemu_plugin_insn_disas(self.raw)) }.unwrap_or_default()
    }

    /// The symbol the instruction belongs to, when the guest binary has
    /// symbols.
    pub fn symbol(&self) -> Option<String> {
        // SAFETY: QEMU returns a static string or NULL.
        unsafe { ffi::copy_c_str(sys::qemu_plugin_insn_symbol(self.raw)) }
    }

    /// Runs `hook` every time the instruction is about to execute.
    pub fn on_exec(&self, hook: &ExecHook) {
        // SAFETY: valid instruction; the hook's data lives forever.
        unsafe {
            sys::qemu_plugin_register_vcpu_insn_exec_cb(
                self.raw,
                Some(hook.trampoline),
                hook.access.flags(),
                hook.udata(),
            )
        }
    }

    /// Runs `f` every time the instruction is about to execute: for a
    /// closure that captures data about this instruction (see
    /// [`Tb::on_exec_fn`]).
    pub fn on_exec_fn(
        &self,
        access: RegAccess,
        f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    ) {
        self.on_exec(&ExecHook::new(access, f));
    }

    /// Runs `hook` after every memory access the instruction makes.
    pub fn on_mem(&self, hook: &MemHook) {
        // SAFETY: valid instruction; the hook's data lives forever.
        unsafe {
            sys::qemu_plugin_register_vcpu_mem_cb(
                self.raw,
                Some(mem_trampoline),
                hook.inner.access.flags(),
                hook.inner.rw.raw(),
                (hook.inner as *const MemInner).cast_mut().cast(),
            )
        }
    }

    /// Adds `n` to `counter` every time the instruction executes, in
    /// generated code.
    pub fn inline_add(&self, counter: &Counter, n: u64) {
        // SAFETY: valid instruction; the scoreboard lives forever.
        unsafe {
            sys::qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
                self.raw,
                sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
                counter.entry(),
                n,
            )
        }
    }
}
