//! Translation time: blocks and instructions, and what to run when they do.

use std::marker::PhantomData;

use qemu_xplugin_sys as sys;

use crate::ffi;
use crate::hooks::{ExecHook, MemHook};
use crate::vcpu::{RegAccess, Vcpu};
use crate::{Counter, Result};

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
    /// captures data about this block. The closure is freed when QEMU
    /// flushes its translated code; a hook shared by many blocks is an
    /// [`ExecHook`].
    pub fn on_exec_fn(
        &self,
        access: RegAccess,
        f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    ) {
        self.on_exec(&ExecHook::for_one_block(access, f));
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
        self.on_exec(&ExecHook::for_one_block(access, f));
    }

    /// Runs `hook` after every memory access the instruction makes.
    pub fn on_mem(&self, hook: &MemHook) {
        // SAFETY: valid instruction; the hook's data lives forever.
        unsafe {
            sys::qemu_plugin_register_vcpu_mem_cb(
                self.raw,
                Some(hook.trampoline),
                hook.access.flags(),
                hook.rw.raw(),
                hook.udata(),
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
