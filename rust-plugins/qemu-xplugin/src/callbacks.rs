//! The plugin context and the callbacks that QEMU calls without user data.

use std::ffi::{c_uint, c_void};
use std::sync::{Arc, OnceLock, RwLock};

use qemu_xplugin_sys as sys;

use crate::ffi::in_callback;
use crate::translate::{report, ExecHook, MemHook, MemRw, Tb};
use crate::vcpu::{apply_redirect, RegAccess, Vcpu};
use crate::{Counter, Result};

/// What QEMU tells a plugin about the machine when it is installed.
#[derive(Clone, Debug)]
pub struct PluginInfo {
    /// The guest architecture, e.g. `"x86_64"`.
    pub target: String,
    /// System emulation (else user mode).
    pub system_emulation: bool,
    /// Initial number of vCPUs (system emulation).
    pub smp_vcpus: u32,
    /// Maximum number of vCPUs (system emulation).
    pub max_vcpus: u32,
}

/// A syscall as the guest made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// The syscall number.
    pub num: i64,
    /// The arguments; how many are meaningful depends on the syscall.
    pub args: [u64; 8],
}

/// The kind of a control flow discontinuity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscontinuityKind {
    /// An asynchronous interrupt.
    Interrupt,
    /// A synchronous exception.
    Exception,
    /// A host call (semihosting).
    HostCall,
}

/// An interrupt, exception or host call: the vCPU went from `from` to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Discontinuity {
    /// What happened.
    pub kind: DiscontinuityKind,
    /// PC of the instruction that was interrupted or faulted.
    pub from: u64,
    /// PC where execution continues.
    pub to: u64,
}

type VcpuFn = dyn Fn(&mut Vcpu) -> Result<()> + Send + Sync;
type TranslateFn = dyn Fn(&Tb<'_>) + Send + Sync;
type SyscallFn = dyn Fn(&mut Vcpu, &Syscall) -> Result<()> + Send + Sync;
type SyscallRetFn = dyn Fn(&mut Vcpu, i64, i64) -> Result<()> + Send + Sync;
type FilterFn = dyn Fn(&mut Vcpu, &Syscall) -> Option<i64> + Send + Sync;
type DisconFn = dyn Fn(&mut Vcpu, &Discontinuity) -> Result<()> + Send + Sync;
type ExitFn = dyn Fn() + Send + Sync;

/// This plugin's state: QEMU identifies a plugin by its ID, and callbacks
/// without user data find their closures here. Each plugin library has its
/// own copy of the SDK, so this is per plugin.
#[derive(Default)]
struct Registry {
    vcpu_init: RwLock<Vec<Arc<VcpuFn>>>,
    vcpu_exit: RwLock<Vec<Arc<VcpuFn>>>,
    vcpu_idle: RwLock<Vec<Arc<VcpuFn>>>,
    vcpu_resume: RwLock<Vec<Arc<VcpuFn>>>,
    flush: RwLock<Vec<Arc<ExitFn>>>,
    translate: RwLock<Vec<Arc<TranslateFn>>>,
    syscall: RwLock<Vec<Arc<SyscallFn>>>,
    syscall_ret: RwLock<Vec<Arc<SyscallRetFn>>>,
    discon: RwLock<Vec<Arc<DisconFn>>>,
    exit: RwLock<Vec<Arc<ExitFn>>>,
}

struct Plugin {
    id: sys::qemu_plugin_id_t,
    name: String,
    info: PluginInfo,
}

static PLUGIN: OnceLock<Plugin> = OnceLock::new();
static REGISTRY: OnceLock<Registry> = OnceLock::new();

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(Registry::default)
}

/// Forgets every closure: called once QEMU has removed this plugin's
/// callbacks (a reset), so that the next registration registers again.
pub(crate) fn clear_registry() {
    let r = registry();
    for list in [&r.vcpu_init, &r.vcpu_exit, &r.vcpu_idle, &r.vcpu_resume] {
        clear(list);
    }
    clear(&r.flush);
    clear(&r.exit);
    clear(&r.translate);
    clear(&r.syscall);
    clear(&r.syscall_ret);
    clear(&r.discon);
}

pub(crate) fn plugin_name() -> &'static str {
    PLUGIN.get().map_or("plugin", |p| p.name.as_str())
}

pub(crate) fn plugin_id() -> sys::qemu_plugin_id_t {
    PLUGIN.get().expect("the plugin is installed").id
}

pub(crate) fn set_plugin(id: sys::qemu_plugin_id_t, name: String, info: PluginInfo) {
    // A second install of the same library cannot happen: QEMU refuses two
    // plugins with one name, and one file has one name.
    let _ = PLUGIN.set(Plugin { id, name, info });
}

/// Snapshot of a callback list: the lock is released before the callbacks
/// run, so a callback may register more.
fn snapshot<T: ?Sized>(list: &RwLock<Vec<Arc<T>>>) -> Vec<Arc<T>> {
    list.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn clear<T: ?Sized>(list: &RwLock<Vec<Arc<T>>>) {
    list.write().unwrap_or_else(|e| e.into_inner()).clear();
}

fn push<T: ?Sized>(list: &RwLock<Vec<Arc<T>>>, f: Arc<T>) -> bool {
    let mut list = list.write().unwrap_or_else(|e| e.into_inner());
    list.push(f);
    list.len() == 1
}

/// The plugin being installed: register callbacks, hooks, exports and
/// events here. Hooks made here are attached to blocks and instructions
/// later, from the translation callback.
pub struct Install {
    _private: (),
}

impl Install {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// This plugin's name (its file name without `lib` and extension,
    /// unless it declares another with [`crate::plugin!`]).
    pub fn name(&self) -> &'static str {
        plugin_name()
    }

    /// What QEMU said about the machine.
    pub fn info(&self) -> &'static PluginInfo {
        &PLUGIN.get().expect("the plugin is installed").info
    }

    /// Runs `f` on each vCPU when it starts (with register access).
    pub fn on_vcpu_init(&mut self, f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static) {
        add_vcpu_fn(
            &registry().vcpu_init,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_init_cb,
            vcpu_init,
        );
    }

    /// Runs `f` on each vCPU when it stops.
    pub fn on_vcpu_exit(&mut self, f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static) {
        add_vcpu_fn(
            &registry().vcpu_exit,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_exit_cb,
            vcpu_exit,
        );
    }

    /// Runs `f` when a vCPU goes idle (system mode: it halted and waits).
    pub fn on_vcpu_idle(&mut self, f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static) {
        add_vcpu_fn(
            &registry().vcpu_idle,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_idle_cb,
            vcpu_idle,
        );
    }

    /// Runs `f` when an idle vCPU resumes.
    pub fn on_vcpu_resume(&mut self, f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static) {
        add_vcpu_fn(
            &registry().vcpu_resume,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_resume_cb,
            vcpu_resume,
        );
    }

    /// Runs `f` when QEMU flushes its translated code (all vCPUs stopped):
    /// blocks will be translated, and hooks attached, again.
    pub fn on_flush(&mut self, f: impl Fn() + Send + Sync + 'static) {
        if push(&registry().flush, Arc::new(f)) {
            // SAFETY: as above.
            unsafe { sys::qemu_plugin_register_flush_cb(plugin_id(), Some(flush)) }
        }
    }

    /// Runs `f` every time QEMU translates a block; `f` attaches hooks and
    /// inline counters to the block and its instructions.
    pub fn on_translate(&mut self, f: impl Fn(&Tb<'_>) + Send + Sync + 'static) {
        if push(&registry().translate, Arc::new(f)) {
            // SAFETY: as above.
            unsafe { sys::qemu_plugin_register_vcpu_tb_trans_cb(plugin_id(), Some(translate)) }
        }
    }

    /// A closure to attach to blocks and instructions with
    /// [`Tb::on_exec`] and [`crate::Insn::on_exec`].
    pub fn exec_hook(
        &mut self,
        access: RegAccess,
        f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    ) -> ExecHook {
        ExecHook::new(access, f)
    }

    /// A closure to attach to instructions' memory accesses with
    /// [`crate::Insn::on_mem`].
    pub fn mem_hook(
        &mut self,
        access: RegAccess,
        rw: MemRw,
        f: impl Fn(&mut Vcpu, &crate::MemAccess) -> Result<()> + Send + Sync + 'static,
    ) -> MemHook {
        MemHook::new(access, rw, f)
    }

    /// A new per-vCPU counter for inline operations.
    pub fn counter(&mut self) -> Counter {
        Counter::new()
    }

    /// Runs `f` when the guest makes a syscall (user mode), before it is
    /// handled. `f` may write registers and call [`Vcpu::set_pc`], which
    /// skips the syscall.
    pub fn on_syscall(
        &mut self,
        f: impl Fn(&mut Vcpu, &Syscall) -> Result<()> + Send + Sync + 'static,
    ) {
        if push(&registry().syscall, Arc::new(f)) {
            // SAFETY: as above.
            unsafe { sys::qemu_plugin_register_vcpu_syscall_cb(plugin_id(), Some(syscall)) }
        }
    }

    /// Runs `f` with the syscall number and return value when a syscall
    /// returns (user mode).
    pub fn on_syscall_return(
        &mut self,
        f: impl Fn(&mut Vcpu, i64, i64) -> Result<()> + Send + Sync + 'static,
    ) {
        if push(&registry().syscall_ret, Arc::new(f)) {
            // SAFETY: as above.
            unsafe { sys::qemu_plugin_register_vcpu_syscall_ret_cb(plugin_id(), Some(syscall_ret)) }
        }
    }

    /// Lets `f` handle syscalls instead of QEMU (user mode): when it returns
    /// `Some(value)` the syscall is skipped and returns `value`. Filters run
    /// after [`Install::on_syscall`] callbacks; of several, the one
    /// registered last is asked first, and the first `Some` wins.
    pub fn on_syscall_filter(
        &mut self,
        f: impl Fn(&mut Vcpu, &Syscall) -> Option<i64> + Send + Sync + 'static,
    ) {
        let f: Box<Box<FilterFn>> = Box::new(Box::new(f));
        // SAFETY: the trampoline matches the filter signature; its user data
        // is leaked and lives as long as the plugin.
        unsafe {
            sys::qemu_plugin_register_vcpu_syscall_filter_cb(
                plugin_id(),
                Some(syscall_filter),
                Box::into_raw(f).cast(),
            )
        }
    }

    /// Runs `f` on interrupts, exceptions and host calls (system mode).
    pub fn on_discontinuity(
        &mut self,
        f: impl Fn(&mut Vcpu, &Discontinuity) -> Result<()> + Send + Sync + 'static,
    ) {
        if push(&registry().discon, Arc::new(f)) {
            // SAFETY: as above.
            unsafe {
                sys::qemu_plugin_register_vcpu_discon_cb(
                    plugin_id(),
                    sys::qemu_plugin_discon_type::QEMU_PLUGIN_DISCON_ALL,
                    Some(discontinuity),
                )
            }
        }
    }

    /// Runs `f` once when the guest has finished, e.g. to print results.
    pub fn on_exit(&mut self, f: impl Fn() + Send + Sync + 'static) {
        if push(&registry().exit, Arc::new(f)) {
            // SAFETY: as above; no user data.
            unsafe {
                sys::qemu_plugin_register_atexit_cb(
                    plugin_id(),
                    Some(at_exit),
                    std::ptr::null_mut(),
                )
            }
        }
    }
}

/// Adds `f` to the closures of a vCPU event; the first one registers the
/// event's trampoline with QEMU through `register`.
fn add_vcpu_fn(
    list: &RwLock<Vec<Arc<VcpuFn>>>,
    f: Arc<VcpuFn>,
    register: unsafe extern "C" fn(sys::qemu_plugin_id_t, sys::qemu_plugin_vcpu_simple_cb_t),
    trampoline: extern "C" fn(sys::qemu_plugin_id_t, c_uint),
) {
    if push(list, f) {
        // SAFETY: `register` is one of QEMU's vCPU event registrations and
        // `trampoline` has the signature of its callbacks.
        unsafe { register(plugin_id(), Some(trampoline)) }
    }
}

/// Runs the closures of a vCPU event (init, exit, idle, resume), where QEMU
/// allows register access but not redirection.
fn run_vcpu_callbacks(list: &RwLock<Vec<Arc<VcpuFn>>>, vcpu_index: c_uint, what: &str) {
    in_callback(|| {
        for f in snapshot(list) {
            let mut vcpu = Vcpu::new(vcpu_index, RegAccess::ReadWrite);
            report(f(&mut vcpu), what);
        }
    });
}

extern "C" fn vcpu_init(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    run_vcpu_callbacks(&registry().vcpu_init, vcpu_index, "vCPU init");
}

extern "C" fn vcpu_exit(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    run_vcpu_callbacks(&registry().vcpu_exit, vcpu_index, "vCPU exit");
}

extern "C" fn vcpu_idle(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    run_vcpu_callbacks(&registry().vcpu_idle, vcpu_index, "vCPU idle");
}

extern "C" fn vcpu_resume(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint) {
    run_vcpu_callbacks(&registry().vcpu_resume, vcpu_index, "vCPU resume");
}

extern "C" fn flush(_id: sys::qemu_plugin_id_t) {
    in_callback(|| {
        for f in snapshot(&registry().flush) {
            f();
        }
    });
}

extern "C" fn translate(_id: sys::qemu_plugin_id_t, tb: *mut sys::qemu_plugin_tb) {
    in_callback(|| {
        let tb = Tb::new(tb);
        for f in snapshot(&registry().translate) {
            f(&tb);
        }
    });
}

/// Runs callbacks that may redirect the vCPU; the first redirect wins and
/// ends the list, as it would in QEMU.
fn run_redirecting(vcpu_index: c_uint, mut each: impl FnMut(&mut Vcpu) -> bool) -> Option<u64> {
    in_callback(|| {
        let mut vcpu = Vcpu::new(vcpu_index, RegAccess::ReadWritePc);
        while each(&mut vcpu) {
            if let Some(pc) = vcpu.take_redirect() {
                return Some(pc);
            }
        }
        None
    })
}

#[allow(clippy::too_many_arguments)]
extern "C" fn syscall(
    _id: sys::qemu_plugin_id_t,
    vcpu_index: c_uint,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
) {
    let call = Syscall {
        num,
        args: [a1, a2, a3, a4, a5, a6, a7, a8],
    };
    let list = snapshot(&registry().syscall);
    let mut next = list.iter();
    let redirect = run_redirecting(vcpu_index, |vcpu| match next.next() {
        Some(f) => {
            report(f(vcpu, &call), "syscall");
            true
        }
        None => false,
    });
    drop(list);
    apply_redirect(redirect);
}

extern "C" fn syscall_ret(_id: sys::qemu_plugin_id_t, vcpu_index: c_uint, num: i64, ret: i64) {
    let list = snapshot(&registry().syscall_ret);
    let mut next = list.iter();
    let redirect = run_redirecting(vcpu_index, |vcpu| match next.next() {
        Some(f) => {
            report(f(vcpu, num, ret), "syscall return");
            true
        }
        None => false,
    });
    drop(list);
    apply_redirect(redirect);
}

#[allow(clippy::too_many_arguments)]
extern "C" fn syscall_filter(
    vcpu_index: c_uint,
    num: i64,
    a1: u64,
    a2: u64,
    a3: u64,
    a4: u64,
    a5: u64,
    a6: u64,
    a7: u64,
    a8: u64,
    sysret: *mut i64,
    udata: *mut c_void,
) -> bool {
    // SAFETY: udata is the leaked filter closure registered with this
    // trampoline.
    let f = unsafe { &*(udata as *const Box<FilterFn>) };
    let call = Syscall {
        num,
        args: [a1, a2, a3, a4, a5, a6, a7, a8],
    };
    let (ret, redirect) = in_callback(|| {
        let mut vcpu = Vcpu::new(vcpu_index, RegAccess::ReadWritePc);
        let ret = f(&mut vcpu, &call);
        (ret, vcpu.take_redirect())
    });
    apply_redirect(redirect);
    match ret {
        Some(value) => {
            // SAFETY: QEMU passes a valid pointer for the return value.
            unsafe { *sysret = value };
            true
        }
        None => false,
    }
}

extern "C" fn discontinuity(
    _id: sys::qemu_plugin_id_t,
    vcpu_index: c_uint,
    kind: sys::qemu_plugin_discon_type,
    from: u64,
    to: u64,
) {
    let kind = match kind {
        sys::qemu_plugin_discon_type::QEMU_PLUGIN_DISCON_INTERRUPT => DiscontinuityKind::Interrupt,
        sys::qemu_plugin_discon_type::QEMU_PLUGIN_DISCON_EXCEPTION => DiscontinuityKind::Exception,
        _ => DiscontinuityKind::HostCall,
    };
    let event = Discontinuity { kind, from, to };
    let list = snapshot(&registry().discon);
    let mut next = list.iter();
    let redirect = run_redirecting(vcpu_index, |vcpu| match next.next() {
        Some(f) => {
            report(f(vcpu, &event), "discontinuity");
            true
        }
        None => false,
    });
    drop(list);
    apply_redirect(redirect);
}

extern "C" fn at_exit(_id: sys::qemu_plugin_id_t, _udata: *mut c_void) {
    crate::lifecycle::set_phase(crate::lifecycle::Phase::Exiting);
    in_callback(|| {
        for f in snapshot(&registry().exit) {
            f();
        }
    });
}
