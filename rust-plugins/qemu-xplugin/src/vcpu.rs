//! The vCPU a callback runs on: registers, memory, control flow.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use qemu_xplugin_sys as sys;

use crate::ffi;
use crate::{Error, QemuThread, Result};

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
/// [`QemuThread`] token, so it can be passed where one is needed.
pub struct Vcpu {
    index: u32,
    access: RegAccess,
    redirect: Option<u64>,
    thread: QemuThread,
}

impl std::fmt::Debug for Vcpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vcpu")
            .field("index", &self.index)
            .field("access", &self.access)
            .finish()
    }
}

impl Deref for Vcpu {
    type Target = QemuThread;

    fn deref(&self) -> &QemuThread {
        &self.thread
    }
}

impl Vcpu {
    /// Only trampolines make one, for the vCPU QEMU runs the callback on.
    pub(crate) fn new(index: u32, access: RegAccess) -> Self {
        Self {
            index,
            access,
            redirect: None,
            thread: QemuThread::here(),
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
        let mut names: Vec<_> = with_registers(self.index, |r| r.keys().cloned().collect());
        names.sort();
        names
    }

    /// Reads register `name`, in the guest's byte order.
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
                Err(Error::new(format!(
                    "register '{name}' is {len} bytes, too wide for a u64"
                )))
            } else {
                Ok(value)
            }
        })
    }

    /// Writes register `name`; `value` must have the register's size.
    pub fn write_register(&mut self, name: &str, value: &[u8]) -> Result<()> {
        let (handle, size) = self.writable_register(name)?;
        if value.len() != size {
            return Err(Error::new(format!(
                "register '{name}' is {size} bytes, cannot write {} bytes to it",
                value.len()
            )));
        }
        write_handle(handle, name, value)
    }

    /// Writes register `name` from an integer (little-endian guest), which
    /// must fit the register.
    pub fn write_register_u64(&mut self, name: &str, value: u64) -> Result<()> {
        let (handle, size) = self.writable_register(name)?;
        if size > 8 || (size < 8 && value >> (size * 8) != 0) {
            return Err(Error::new(format!(
                "value {value:#x} does not fit register '{name}' ({size} bytes)"
            )));
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
    pub fn read_memory_into(&self, vaddr: u64, bytes: &mut [u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        ffi::with_scratch(|buf| {
            // SAFETY: called from a vCPU callback (Vcpu only exists there);
            // buf is valid and QEMU grows it to the length asked for.
            if !unsafe { sys::qemu_plugin_read_memory_vaddr(vaddr, buf.as_ptr(), bytes.len()) } {
                return Err(Error::new(format!(
                    "cannot read {} bytes at virtual address {vaddr:#x}: not mapped",
                    bytes.len()
                )));
            }
            bytes.copy_from_slice(buf.as_slice());
            Ok(())
        })
    }

    /// Reads a little-endian `u64` of guest memory at virtual address `vaddr`.
    pub fn read_memory_u64(&self, vaddr: u64) -> Result<u64> {
        let mut bytes = [0; 8];
        self.read_memory_into(vaddr, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
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
                return Err(Error::new(format!(
                    "cannot write {} bytes at virtual address {vaddr:#x}: not mapped",
                    bytes.len()
                )));
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
            return Err(Error::new(format!(
                "cannot translate virtual address {vaddr:#x}: not mapped, or not system emulation"
            )));
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
    #[inline]
    fn need(&self, access: RegAccess, what: impl FnOnce() -> String) -> Result<()> {
        if self.access < access {
            return Err(Error::new(format!(
                "cannot {}: this callback was registered with {:?} access, {access:?} is needed",
                what(),
                self.access
            )));
        }
        Ok(())
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
            return Err(Error::new(format!("cannot read register '{name}'")));
        }
        Ok(f(buf.as_slice()))
    })
}

/// Writes `value`, which has the register's size, to the register behind
/// `handle` (called `name`). The caller has checked write access.
fn write_handle(handle: *mut sys::qemu_plugin_register, name: &str, value: &[u8]) -> Result<()> {
    ffi::with_scratch(|buf| {
        buf.set(value);
        // SAFETY: vCPU callback with write access (checked by the caller);
        // buf holds exactly the register's size.
        let written = unsafe { sys::qemu_plugin_write_register(handle, buf.as_ptr()) };
        if written <= 0 {
            return Err(Error::new(format!("cannot write register '{name}'")));
        }
        Ok(())
    })
}

/// Redirects the vCPU now. Call it last, from the C trampoline, once every
/// Rust value that needs dropping is gone: on success QEMU longjmps out.
#[inline]
pub(crate) fn apply_redirect(pc: Option<u64>) {
    if let Some(pc) = pc {
        redirect(pc);
    }
}

#[cold]
fn redirect(pc: u64) {
    // SAFETY: called from a vCPU callback that QEMU allows to redirect (the
    // SDK registered it so); no Rust frame above holds a value with a
    // destructor, so the longjmp skips nothing that needs to run.
    unsafe { sys::qemu_plugin_set_pc(pc) };
    ffi::outs(&format!(
        "{}: QEMU refused to set the PC to {pc:#x} in this callback\n",
        crate::plugin_name()
    ));
}

fn hwaddr_result(
    result: sys::qemu_plugin_hwaddr_operation_result,
    op: &str,
    len: usize,
    hwaddr: u64,
) -> Result<()> {
    use sys::qemu_plugin_hwaddr_operation_result as R;
    let why = match result {
        R::QEMU_PLUGIN_HWADDR_OPERATION_OK => return Ok(()),
        R::QEMU_PLUGIN_HWADDR_OPERATION_DEVICE_ERROR => "device error",
        R::QEMU_PLUGIN_HWADDR_OPERATION_ACCESS_DENIED => "access denied",
        R::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS => "invalid address",
        R::QEMU_PLUGIN_HWADDR_OPERATION_INVALID_ADDRESS_SPACE => "invalid address space",
        _ => "not available (user-mode emulation has no physical addresses)",
    };
    Err(Error::new(format!(
        "cannot {op} {len} bytes at physical address {hwaddr:#x}: {why}"
    )))
}

/// FNV-1a: register names are short and trusted, so a hash built for
/// them beats the default SipHash on every register access.
#[derive(Default)]
struct Fnv(u64);

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

type Registers = HashMap<String, usize, BuildHasherDefault<Fnv>>;

/// Register handles by vCPU index: QEMU's handles are per CPU class (the
/// gdbstub register number), and a machine may mix classes, so each vCPU
/// has its own table, read once from QEMU on that vCPU.
static TABLES: Mutex<Vec<Option<Arc<Registers>>>> = Mutex::new(Vec::new());

thread_local! {
    /// The table of the vCPU this thread ran last: a thread runs one vCPU
    /// (MTTCG, user mode) or takes turns (round-robin TCG).
    static LAST: RefCell<Option<(u32, Arc<Registers>)>> = const { RefCell::new(None) };
}

/// Runs `f` with the register table of vCPU `index`, which must be the
/// vCPU of the running callback (a `Vcpu` is only made there).
fn with_registers<R>(index: u32, f: impl FnOnce(&Registers) -> R) -> R {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((i, table)) if *i == index => return f(table),
            _ => {}
        }
        let table = {
            let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
            let i = index as usize;
            if tables.len() <= i {
                tables.resize(i + 1, None);
            }
            tables[i]
                .get_or_insert_with(|| Arc::new(read_registers()))
                .clone()
        };
        let r = f(&table);
        *last = Some((index, table));
        r
    })
}

/// The registers of the vCPU running this callback, from QEMU.
fn read_registers() -> Registers {
    let mut map = Registers::default();
    // SAFETY: only called from vCPU callbacks (through Vcpu, which exists
    // only there, on the vCPU's thread), where qemu_plugin_get_registers
    // is allowed and describes that vCPU. The GArray holds `len`
    // descriptors whose names are static strings; we free the array, not
    // the strings, as the API says. Scenario that would break it: a Vcpu
    // used off its thread (prevented: Vcpu is !Send and !Sync).
    unsafe {
        let array = sys::qemu_plugin_get_registers();
        if !array.is_null() {
            let descs = (*array).data as *const sys::qemu_plugin_reg_descriptor;
            for i in 0..(*array).len as usize {
                let desc = &*descs.add(i);
                if let Some(name) = ffi::copy_c_str(desc.name) {
                    map.insert(name, desc.handle as usize);
                }
            }
            sys::g_array_free(array, true as sys::gboolean);
        }
    }
    map
}

fn register(index: u32, name: &str) -> Result<*mut sys::qemu_plugin_register> {
    with_registers(index, |r| r.get(name).copied())
        .map(|handle| handle as *mut sys::qemu_plugin_register)
        .ok_or_else(|| Error::new(format!("unknown register '{name}'")))
}
