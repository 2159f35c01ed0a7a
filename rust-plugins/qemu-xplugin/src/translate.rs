//! Translation time: blocks and instructions, and what to run when they do.

use std::marker::PhantomData;

use qemu_xplugin_sys as sys;

use crate::ffi;
use crate::hooks::{ExecHook, MemHook, MemRw};
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
        // SAFETY: valid block; the hook's data outlives every block it is
        // attached to: an ExecHook made by Install::exec_hook is leaked
        // (lives forever); one made by on_exec_fn (for_one_block) is freed
        // only after QEMU flushed every translated block, with every vCPU
        // stopped (free_block_closures), so no block still holds it.
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
    /// flushes all its translated code (its code cache fills up, a reset),
    /// not when this one block is dropped: QEMU says nothing when it
    /// invalidates single blocks (a guest that rewrites its code, a JIT, a
    /// program loader, `munmap`), so a guest that does that without
    /// filling the cache makes the closures of its dropped blocks pile up
    /// until the next flush. A hook shared by many blocks is an
    /// [`ExecHook`], made once.
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
        // SAFETY: valid instruction; the hook's data outlives the block, as
        // for Tb::on_exec: leaked, or freed only after a full flush.
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

/// A comparison of a [`Counter`]'s value (for the executing vCPU) with an
/// immediate, for conditional callbacks: [`Tb::on_exec_if`],
/// [`Insn::on_exec_if`]. Generated code compares; the callback only runs
/// when the comparison holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// counter == imm
    Eq,
    /// counter != imm
    Ne,
    /// counter < imm (unsigned)
    Lt,
    /// counter <= imm
    Le,
    /// counter > imm
    Gt,
    /// counter >= imm
    Ge,
}

impl Cond {
    fn raw(self) -> sys::qemu_plugin_cond {
        use sys::qemu_plugin_cond as C;
        match self {
            Cond::Eq => C::QEMU_PLUGIN_COND_EQ,
            Cond::Ne => C::QEMU_PLUGIN_COND_NE,
            Cond::Lt => C::QEMU_PLUGIN_COND_LT,
            Cond::Le => C::QEMU_PLUGIN_COND_LE,
            Cond::Gt => C::QEMU_PLUGIN_COND_GT,
            Cond::Ge => C::QEMU_PLUGIN_COND_GE,
        }
    }
}

/// Generated-code operations on a [`Counter`] (no callback), and
/// conditional hooks.
impl Tb<'_> {
    /// Runs `hook` when the block starts executing and `counter` (of the
    /// executing vCPU) compares to `imm` as `cond` says: the comparison is
    /// generated code, so the blocks that do not call cost no callback.
    pub fn on_exec_if(&self, hook: &ExecHook, counter: &Counter, cond: Cond, imm: u64) {
        // SAFETY: valid block; the hook's data outlives it (as for
        // on_exec); the counter's scoreboard lives as long as the plugin.
        unsafe {
            sys::qemu_plugin_register_vcpu_tb_exec_cond_cb(
                self.raw,
                Some(hook.trampoline),
                hook.access.flags(),
                cond.raw(),
                counter.entry(),
                imm,
                hook.udata(),
            )
        }
    }

    /// Stores `value` into `counter` (for the executing vCPU) every time
    /// the block executes, in generated code.
    pub fn inline_store(&self, counter: &Counter, value: u64) {
        // SAFETY: valid block; the scoreboard lives as long as the plugin.
        unsafe {
            sys::qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(
                self.raw,
                sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_STORE_U64,
                counter.entry(),
                value,
            )
        }
    }
}

/// Generated-code operations on a [`Counter`] (no callback), and
/// conditional hooks.
impl Insn<'_> {
    /// Runs `hook` when the instruction is about to execute and `counter`
    /// compares to `imm` as `cond` says (see [`Tb::on_exec_if`]).
    pub fn on_exec_if(&self, hook: &ExecHook, counter: &Counter, cond: Cond, imm: u64) {
        // SAFETY: as for Tb::on_exec_if.
        unsafe {
            sys::qemu_plugin_register_vcpu_insn_exec_cond_cb(
                self.raw,
                Some(hook.trampoline),
                hook.access.flags(),
                cond.raw(),
                counter.entry(),
                imm,
                hook.udata(),
            )
        }
    }

    /// Stores `value` into `counter` every time the instruction executes,
    /// in generated code.
    pub fn inline_store(&self, counter: &Counter, value: u64) {
        // SAFETY: valid instruction; the scoreboard lives as long as the
        // plugin.
        unsafe {
            sys::qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(
                self.raw,
                sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_STORE_U64,
                counter.entry(),
                value,
            )
        }
    }

    /// Adds `n` to `counter` on every memory access of the instruction
    /// that `rw` selects, in generated code.
    pub fn inline_mem_add(&self, rw: MemRw, counter: &Counter, n: u64) {
        self.inline_mem(
            rw,
            sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64,
            counter,
            n,
        );
    }

    /// Stores `value` into `counter` on every memory access of the
    /// instruction that `rw` selects, in generated code.
    pub fn inline_mem_store(&self, rw: MemRw, counter: &Counter, value: u64) {
        self.inline_mem(
            rw,
            sys::qemu_plugin_op::QEMU_PLUGIN_INLINE_STORE_U64,
            counter,
            value,
        );
    }

    fn inline_mem(&self, rw: MemRw, op: sys::qemu_plugin_op, counter: &Counter, imm: u64) {
        // SAFETY: valid instruction; the scoreboard lives as long as the
        // plugin; `op` is an add or a store (the only ops QEMU has).
        unsafe {
            sys::qemu_plugin_register_vcpu_mem_inline_per_vcpu(
                self.raw,
                rw.raw(),
                op,
                counter.entry(),
                imm,
            )
        }
    }
}
