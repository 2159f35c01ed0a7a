//! The vCPU a callback runs on: registers, memory, control flow.

use std::ops::Deref;

use qemu_xplugin_sys as sys;

use crate::ffi;
use crate::regs::{self, Reg, RegValue};
use crate::thread::{Context, ExecThread};
use crate::{Error, ErrorKind, Result};

/// What a callback may do with the vCPU's registers. QEMU keeps the guest's
/// registers in host registers across callbacks that do not need them, so
/// asking for less makes the guest run faster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegAccess {
    /// No register access.
    None,
    /// Read registers.
    Read,
    /// Read and write registers.
    ReadWrite,
    /// Read and write registers, and redirect the vCPU with [`Vcpu::set_pc`].
    ReadWritePc,
}

impl RegAccess {
    pub(crate) fn flags(self) -> sys::qemu_plugin_cb_flags {
        match self {
            RegAccess::None => sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
            RegAccess::Read => sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS,
            RegAccess::ReadWrite => sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_RW_REGS,
            RegAccess::ReadWritePc => sys::qemu_plugin_cb_flags::QEMU_PLUGIN_CB_RW_REGS_PC,
        }
    }
}

/// The vCPU a callback runs on.
///
/// Register and memory access is only valid during the callback, on the
/// vCPU's own thread, which is why a `Vcpu` is only ever lent to one
/// callback and is neither `Send` nor `Sync`. It dereferences to the
/// [`crate::QemuThread`] token, so it can be passed where one is needed.
///
/// `C` is where the callback runs: execution and memory hooks get a
/// `Vcpu` (`Vcpu<ExecThread>`), which dereferences to an [`ExecThread`]
/// (counters can be read there); syscall, syscall filter, hypercall, vCPU
/// init/idle/resume and discontinuity callbacks get a `Vcpu<QemuThread>`,
/// which dereferences to a [`crate::QemuThread`] only.
pub struct Vcpu<C: Context = ExecThread> {
    index: u32,
    access: RegAccess,
    redirect: Option<u64>,
    thread: C,
}

impl<C: Context> std::fmt::Debug for Vcpu<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcpu")
            .field("index", &self.index)
            .field("access", &self.access)
            .finish()
    }
}

impl<C: Context> Deref for Vcpu<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.thread
    }
}

impl<C: Context> Vcpu<C> {
    /// Only trampolines make one, for the vCPU QEMU runs the callback on.
    pub(crate) fn new(index: u32, access: RegAccess) -> Self {
        Self {
            index,
            access,
            redirect: None,
            thread: C::here(),
        }
    }

    /// The vCPU's index, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The register access this callback was registered with.
    pub fn access(&self) -> RegAccess {
        self.access
    }

    /// The names of the vCPU's registers, as QEMU's gdbstub knows them.
    pub fn register_names(&self) -> Vec<String> {
        let mut names: Vec<_> = regs::with_table(self.index, |r| r.keys().cloned().collect());
        names.sort();
        names
    }

    /// The guest program QEMU runs (user mode; `None` in system mode):
    /// its path and where its code is. QEMU answers from the running
    /// vCPU's task, hence a `Vcpu` (not available during install).
    pub fn binary(&self) -> Option<crate::Binary> {
        // SAFETY: on a vCPU thread in a callback (Vcpu), where QEMU's
        // current_cpu is set: user mode reads its task's program, and
        // returns a g_strdup'ed copy, which take_g_string frees; system
        // mode returns NULL. Scenario that would break it: a call without
        // a current vCPU (during install: QEMU dereferences NULL).
        let path = unsafe { ffi::take_g_string(sys::qemu_plugin_path_to_binary().cast_mut()) }?;
        // SAFETY: as above (user mode: the running task's layout).
        let (start_code, end_code, entry) = unsafe {
            (
                sys::qemu_plugin_start_code(),
                sys::qemu_plugin_end_code(),
                sys::qemu_plugin_entry_code(),
            )
        };
        Some(crate::Binary {
            path,
            start_code,
            end_code,
            entry,
        })
    }

    /// The vCPU's current address space ID, the value that selects its
    /// page tables when paging is on (x86: CR3, whole): `None` in user mode
    /// and on targets QEMU does not implement it for. Needs no register
    /// access, so any callback may ask. See
    /// [`crate::Install::on_asid_change`].
    ///
    /// QEMU answers for the vCPU it runs the callback for (its
    /// `current_cpu`), not by [`Vcpu::index`]: the two are the same vCPU
    /// in every callback but, in principle, a vCPU init callback for a
    /// vCPU added while others run with one thread for all vCPUs
    /// (`-accel tcg,thread=single`), where QEMU may run it with another
    /// vCPU current. [`Vcpu::is_kernel_mode`] likewise.
    pub fn asid(&self) -> Option<u64> {
        let mut asid = 0;
        // SAFETY: on a vCPU thread inside a callback (Vcpu only exists
        // there and is !Send), where QEMU's current_cpu is set (QEMU
        // asserts it); asid is a valid out pointer, which QEMU writes
        // only when it returns true. Scenario that would break it: a call
        // without a current vCPU (during install: QEMU aborts).
        unsafe { sys::qemu_plugin_vcpu_get_asid(&mut asid) }.then_some(asid)
    }

    /// Whether the vCPU runs at its most privileged level (x86: CPL 0),
    /// where an operating system's kernel runs, but also, on x86, real
    /// mode (firmware, boot loaders), System Management Mode and the host
    /// of an SVM guest: `Some(false)` always in user mode, `None` on
    /// targets QEMU does not implement it for. Needs no register access.
    /// In an [`crate::Install::on_asid_change`] callback, it may still
    /// answer for the state before the switch.
    pub fn is_kernel_mode(&self) -> Option<bool> {
        let mut kernel = false;
        // SAFETY: as for asid; kernel is a valid out pointer to a bool,
        // which QEMU writes (with true or false) only when it returns
        // true.
        unsafe { sys::qemu_plugin_vcpu_get_kernel_mode(&mut kernel) }.then_some(kernel)
    }

    /// Reads register `reg`: the cheapest register read, as cheap as QEMU's
    /// C API (no lookup: the handle was resolved once). Errors: the
    /// callback's [`RegAccess`] is [`RegAccess::None`]
    /// ([`ErrorKind::NotAllowed`]), the vCPU has no such register
    /// ([`ErrorKind::UnknownRegister`]) or it has another size than `T`
    /// ([`ErrorKind::RegisterSize`]).
    #[inline]
    pub fn read<T: RegValue>(&self, reg: Reg<T>) -> Result<T> {
        self.need(RegAccess::Read, || {
            format!("read register '{}'", reg.name())
        })?;
        let handle = reg.handle(self.index)?;
        ffi::with_scratch(|buf| {
            // SAFETY: a vCPU callback with read access (checked above), on
            // the vCPU's thread (Vcpu is !Send); the handle was resolved
            // for this vCPU's register list; buf is a valid GByteArray that
            // QEMU appends the register's bytes to.
            let size = unsafe { sys::qemu_plugin_read_register(handle, buf.as_ptr()) };
            let bytes = buf.as_slice();
            if size as usize != T::SIZE || bytes.len() != T::SIZE {
                return Err(read_failed(reg.name(), size));
            }
            Ok(T::from_bytes(bytes))
        })
    }

    /// Writes register `reg` (its size is `T`'s, checked once when the
    /// handle was resolved). Needs [`RegAccess::ReadWrite`].
    #[inline]
    pub fn write<T: RegValue>(&mut self, reg: Reg<T>, value: T) -> Result<()> {
        self.need(RegAccess::ReadWrite, || {
            format!("write register '{}'", reg.name())
        })?;
        let handle = reg.handle(self.index)?;
        write_handle(handle, reg.name(), value.to_bytes().as_ref())
    }

    /// Reads register `name`, in the guest's byte order. Looks the name up
    /// on every call: a callback that runs often uses a [`Reg`].
    pub fn read_register(&self, name: &str) -> Result<Vec<u8>> {
        self.read_register_with(name, <[u8]>::to_vec)
    }

    /// Reads register `name` into a glib buffer and hands its bytes to `f`.
    fn read_register_with<R>(&self, name: &str, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.need(RegAccess::Read, || format!("read register '{name}'"))?;
        read_handle(register(self.index, name)?, name, f)
    }

    /// Reads register `name` as an integer (little-endian guest, up to 8
    /// bytes).
    pub fn read_register_u64(&self, name: &str) -> Result<u64> {
        self.read_register_with(name, |bytes| {
            let mut le = [0u8; 8];
            let n = bytes.len().min(8);
            le[..n].copy_from_slice(&bytes[..n]);
            (bytes.len(), u64::from_le_bytes(le))
        })
        .and_then(|(len, value)| {
            if len > 8 {
                Err(Error::with_kind(
                    ErrorKind::RegisterSize,
                    format!("register '{name}' is {len} bytes, too wide for a u64"),
                ))
            } else {
                Ok(value)
            }
        })
    }

    /// Writes register `name`; `value` must have the register's size.
    pub fn write_register(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let (handle, size) = self.writable_register(name)?;
        if value.len() != size {
            return Err(Error::with_kind(
                ErrorKind::RegisterSize,
                format!(
                    "register '{name}' is {size} bytes, cannot write {} bytes to it",
                    value.len()
                ),
            ));
        }
        write_handle(handle, name, value)
    }

    /// Writes register `name` from an integer (little-endian guest), which
    /// must fit the register.
    pub fn write_register_u64(&mut self, name: &str, value: u64) -> Result<()> {
        let (handle, size) = self.writable_register(name)?;
        if size > 8 || (size < 8 && value >> (size * 8) != 0) {
            return Err(Error::with_kind(
                ErrorKind::RegisterSize,
                format!("value {value:#x} does not fit register '{name}' ({size} bytes)"),
            ));
        }
        write_handle(handle, name, &value.to_le_bytes()[..size])
    }

    /// Checks write access to register `name`; its handle and its size
    /// (QEMU writes as many bytes as the register has: callers check the
    /// value's size against it first).
    fn writable_register(&self, name: &str) -> Result<(*mut sys::qemu_plugin_register, usize)> {
        self.need(RegAccess::ReadWrite, || format!("write register '{name}'"))?;
        let handle = register(self.index, name)?;
        Ok((handle, read_handle(handle, name, <[u8]>::len)?))
    }

    /// Reads `len` bytes of guest memory at virtual address `vaddr`.
    pub fn read_memory(&self, vaddr: u64, len: usize) -> Result<Vec<u8>> {
        let mut bytes = vec![0; len];
        self.read_memory_into(vaddr, &mut bytes)?;
        Ok(bytes)
    }

    /// Fills `bytes` from guest memory at virtual address `vaddr`, without
    /// allocating: the cheapest way to read memory on every instruction.
    #[inline]
    pub fn read_memory_into(&self, vaddr: u64, bytes: &mut [u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        ffi::with_buffer(|buf| {
            // SAFETY: called from a vCPU callback (Vcpu only exists there,
            // and is !Send); buf is a valid GByteArray, which QEMU resizes
            // to the length asked for before filling it.
            if !unsafe { sys::qemu_plugin_read_memory_vaddr(vaddr, buf.as_ptr(), bytes.len()) } {
                return Err(unmapped("read", bytes.len(), vaddr));
            }
            let read = buf.as_slice();
            if read.len() != bytes.len() {
                return Err(unmapped("read", bytes.len(), vaddr));
            }
            bytes.copy_from_slice(read);
            Ok(())
        })
    }

    /// Reads a little-endian `u64` of guest memory at virtual address `vaddr`.
    #[inline]
    pub fn read_memory_u64(&self, vaddr: u64) -> Result<u64> {
        ffi::with_buffer(|buf| {
            // SAFETY: as in read_memory_into.
            if !unsafe { sys::qemu_plugin_read_memory_vaddr(vaddr, buf.as_ptr(), 8) } {
                return Err(unmapped("read", 8, vaddr));
            }
            match <[u8; 8]>::try_from(buf.as_slice()) {
                Ok(bytes) => Ok(u64::from_le_bytes(bytes)),
                Err(_) => Err(unmapped("read", 8, vaddr)),
            }
        })
    }

    /// Writes `bytes` to guest memory at virtual address `vaddr`. Code
    /// written over translated code runs from its next execution.
    pub fn write_memory(&mut self, vaddr: u64, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        ffi::with_scratch(|buf| {
            buf.set(bytes);
            // SAFETY: vCPU callback; buf is valid.
            if !unsafe { sys::qemu_plugin_write_memory_vaddr(vaddr, buf.as_ptr()) } {
                return Err(unmapped("write", bytes.len(), vaddr));
            }
            Ok(())
        })
    }

    /// Translates virtual address `vaddr` to a physical address (system
    /// emulation only).
    pub fn translate(&self, vaddr: u64) -> Result<u64> {
        let mut hwaddr = 0;
        // SAFETY: vCPU callback; hwaddr is a valid out pointer.
        if !unsafe { sys::qemu_plugin_translate_vaddr(vaddr, &mut hwaddr) } {
            return Err(Error::with_kind(
                ErrorKind::Memory,
                format!(
                "cannot translate virtual address {vaddr:#x}: not mapped, or not system emulation"
            ),
            ));
        }
        Ok(hwaddr)
    }

    /// Reads `len` bytes at physical address `hwaddr` (system emulation).
    pub fn read_physical(&self, hwaddr: u64, len: usize) -> Result<Vec<u8>> {
        ffi::with_scratch(|buf| {
            // SAFETY: vCPU callback; buf is valid.
            let result = unsafe { sys::qemu_plugin_read_memory_hwaddr(hwaddr, buf.as_ptr(), len) };
            hwaddr_result(result, "read", len, hwaddr)?;
            Ok(buf.as_slice().to_vec())
        })
    }

    /// Writes `bytes` at physical address `hwaddr` (system emulation).
    pub fn write_physical(&mut self, hwaddr: u64, bytes: &[u8]) -> Result<()> {
        ffi::with_scratch(|buf| {
            buf.set(bytes);
            // SAFETY: vCPU callback; buf is valid.
            let result = unsafe { sys::qemu_plugin_write_memory_hwaddr(hwaddr, buf.as_ptr()) };
            hwaddr_result(result, "write", bytes.len(), hwaddr)
        })
    }

    /// Continues the vCPU at `pc` once this callback returns, instead of at
    /// the next instruction. Register writes made in the callback are kept;
    /// after a syscall callback, the syscall is skipped.
    ///
    /// Allowed in callbacks registered with [`RegAccess::ReadWritePc`], and
    /// in syscall, syscall filter and discontinuity callbacks.
    pub fn set_pc(&mut self, pc: u64) -> Result<()> {
        self.need(RegAccess::ReadWritePc, || format!("set the PC to {pc:#x}"))?;
        self.redirect = Some(pc);
        Ok(())
    }

    /// The PC [`Vcpu::set_pc`] asked for, for the trampoline to apply.
    pub(crate) fn take_redirect(&mut self) -> Option<u64> {
        self.redirect.take()
    }

    /// Checks the callback's access; `what` is only formatted on error.
    #[inline(always)]
    fn need(&self, access: RegAccess, what: impl FnOnce() -> String) -> Result<()> {
        if self.access < access {
            return Err(self.denied(access, what()));
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn denied(&self, access: RegAccess, what: String) -> Error {
        Error::with_kind(
            ErrorKind::NotAllowed,
            format!(
                "cannot {what}: this callback was registered with {:?} access, {access:?} is needed",
                self.access
            ),
        )
    }
}

#[cold]
#[inline(never)]
fn unmapped(op: &str, len: usize, vaddr: u64) -> Error {
    Error::with_kind(
        ErrorKind::Memory,
        format!("cannot {op} {len} bytes at virtual address {vaddr:#x}: not mapped"),
    )
}

#[cold]
#[inline(never)]
fn read_failed(name: &str, size: i32) -> Error {
    if size <= 0 {
        Error::with_kind(
            ErrorKind::NotAllowed,
            format!("cannot read register '{name}'"),
        )
    } else {
        Error::with_kind(
            ErrorKind::RegisterSize,
            format!("register '{name}' read {size} bytes, not the size of its handle's type"),
        )
    }
}

/// Reads the register behind `handle` (called `name`) and hands its bytes
/// to `f`. The caller has checked read access.
fn read_handle<R>(
    handle: *mut sys::qemu_plugin_register,
    name: &str,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    ffi::with_scratch(|buf| {
        // SAFETY: we are in a vCPU callback with read access (checked by the
        // caller); the handle came from qemu_plugin_get_registers and buf is
        // valid.
        let size = unsafe { sys::qemu_plugin_read_register(handle, buf.as_ptr()) };
        if size <= 0 {
            return Err(Error::with_kind(
                ErrorKind::NotAllowed,
                format!("cannot read register '{name}'"),
            ));
        }
        Ok(f(buf.as_slice()))
    })
}

/// Writes `value`, which has the register's size, to the register behind
/// `handle` (called `name`). The caller has checked write access.
fn write_handle(handle: *mut sys::qemu_plugin_register, name: &str, value: &[u8]) -> Result<()> {
    // In linux-user, QEMU loads a segment selector written through the
    // register API as the guest would, and a bad one raises a guest
    // exception there: QEMU then longjmps out of the write, over this
    // plugin's frames (values with destructors: undefined behaviour).
    if is_user_segment_selector(name) {
        return Err(Error::with_kind(
            ErrorKind::NotAllowed,
            format!(
                "cannot write register '{name}' in user mode: QEMU would raise a guest \
                 exception inside the write"
            ),
        ));
    }
    // QEMU may call back into this plugin from inside the write (a CR3
    // write reports an address space change, whose callbacks may read
    // memory): with_scratch lends those a buffer of their own.
    ffi::with_scratch(|buf| {
        buf.set(value);
        // SAFETY: vCPU callback with write access (checked by the caller);
        // buf holds exactly the register's size.
        let written = unsafe { sys::qemu_plugin_write_register(handle, buf.as_ptr()) };
        if written <= 0 {
            // SAFETY: a handle from qemu_plugin_get_registers; the query
            // only decodes it.
            let why = if unsafe { sys::qemu_plugin_register_is_readonly(handle) } {
                ": it is read-only (to redirect the vCPU, use Vcpu::set_pc)"
            } else {
                ""
            };
            return Err(Error::with_kind(
                ErrorKind::NotAllowed,
                format!("cannot write register '{name}'{why}"),
            ));
        }
        Ok(())
    })
}

/// A segment selector (x86) whose write may fault inside QEMU: user mode
/// only (system mode loads the segment cache without checks).
fn is_user_segment_selector(name: &str) -> bool {
    matches!(name, "cs" | "ss" | "ds" | "es" | "fs" | "gs")
        && !crate::registry::plugin_info().system_emulation
}

/// Redirects the vCPU now. Call it last, from the C trampoline, once every
/// Rust value that needs dropping is gone: QEMU longjmps out.
#[inline]
pub(crate) fn apply_redirect(pc: Option<u64>) {
    if let Some(pc) = pc {
        redirect(pc);
    }
}

#[cold]
fn redirect(pc: u64) -> ! {
    // SAFETY: qemu_plugin_set_pc() does not return: it longjmps to the vCPU
    // loop, or aborts QEMU if the callback may not redirect. It may here:
    // Vcpu::set_pc only records a redirect when the callback was
    // registered with RegAccess::ReadWritePc or is one QEMU runs with
    // QEMU_PLUGIN_CB_RW_REGS_PC (syscall, filter, discontinuity); and no
    // Rust frame above holds a value with a destructor, so the longjmp
    // skips nothing that needs to run.
    unsafe { sys::qemu_plugin_set_pc(pc) }
}

fn hwaddr_result(
    result: sys::qemu_plugin_hwaddr_operation_result,
    op: &str,
    len: usize,
    hwaddr: u64,
) -> Result<()> {
    use sys::qemu_plugin_hwaddr_operation_result as R;
    let (kind, why) = match result {
        R::QEMU_PLUGIN_HWADDR_OPERATION_OK => return Ok(()),
        R::QEMU_PLUGIN_HWADDR_OPERATION_DEVICE_ERROR => (ErrorKind::Memory, "device error"),
        R::QEMU_PLUGIN_HWADDR_OPERATION_ACCESS_DENIED => (ErrorKind::Memory, "access denied"),
        R::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS => (ErrorKind::Memory, "invalid address"),
        R::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS_SPACE => {
            (ErrorKind::Memory, "invalid address space")
        }
        _ => (
            ErrorKind::Unsupported,
            "not available (user-mode emulation has no physical addresses)",
        ),
    };
    Err(Error::with_kind(
        kind,
        format!("cannot {op} {len} bytes at physical address {hwaddr:#x}: {why}"),
    ))
}

fn register(index: u32, name: &str) -> Result<*mut sys::qemu_plugin_register> {
    regs::with_table(index, |t| t.get(name).map(|e| e.handle))
        .map(|handle| handle as usize as *mut sys::qemu_plugin_register)
        .ok_or_else(|| regs::unknown_register(name))
}
