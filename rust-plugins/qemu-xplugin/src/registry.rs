//! This plugin's identity and its callback registry: the closures of the
//! callbacks QEMU calls without user data, by event. Registration (in
//! [`crate::Install`]) pushes here; the trampolines (`trampolines.rs`)
//! take a snapshot and run it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use qemu_xplugin_sys as sys;

use crate::install::{AsidChange, Discontinuity, Hypercall, PluginInfo, Syscall};
use crate::mmio::{MmioAccess, MmioAction};
use crate::{Error, ExecThread, QemuThread, Result, Vcpu, VcpuExit};

/// vCPU init, idle, resume: outside guest code (no [`ExecThread`]).
pub(crate) type VcpuFn = dyn Fn(&mut Vcpu<QemuThread>) -> Result<()> + Send + Sync;
/// vCPU exit: maybe on the main thread, for an unplugged vCPU.
pub(crate) type VcpuExitFn = dyn Fn(&VcpuExit) -> Result<()> + Send + Sync;
pub(crate) type TranslateFn = dyn Fn(&crate::Tb<'_>) + Send + Sync;
pub(crate) type SyscallFn = dyn Fn(&mut Vcpu<QemuThread>, &Syscall) -> Result<()> + Send + Sync;
pub(crate) type SyscallRetFn = dyn Fn(&mut Vcpu<QemuThread>, i64, i64) -> Result<()> + Send + Sync;
pub(crate) type FilterFn = dyn Fn(&mut Vcpu<QemuThread>, &Syscall) -> Option<i64> + Send + Sync;
pub(crate) type HypercallFn =
    dyn Fn(&mut Vcpu<QemuThread>, &Hypercall) -> Option<u64> + Send + Sync;
pub(crate) type DisconFn =
    dyn Fn(&mut Vcpu<QemuThread>, &Discontinuity) -> Result<()> + Send + Sync;
/// Address space changes: inside guest code, no register access.
pub(crate) type AsidFn = dyn Fn(&Vcpu, &AsidChange) -> Result<()> + Send + Sync;
/// Device accesses: in the middle of an instruction, with the BQL held,
/// no register access.
pub(crate) type MmioFn = dyn Fn(&Vcpu<QemuThread>, &mut MmioAccess) -> MmioAction + Send + Sync;
/// Flush and exit: where no vCPU starts (see [`ExecThread`]).
pub(crate) type ThreadFn = dyn Fn(&ExecThread) + Send + Sync;

/// The closures of one event, in registration order. The list is
/// replaced, not changed, when a closure is added: a snapshot is then a
/// reference count, not a copy, as events such as address space changes
/// come often.
pub(crate) struct List<T: ?Sized>(RwLock<Arc<[Arc<T>]>>);

impl<T: ?Sized> Default for List<T> {
    fn default() -> Self {
        Self(RwLock::new(Arc::new([])))
    }
}

impl<T: ?Sized> List<T> {
    /// Adds `f`; true when it is the first, i.e. when the event's
    /// trampoline must now be registered with QEMU.
    pub(crate) fn push(&self, f: Arc<T>) -> bool {
        let mut list = self.0.write().unwrap_or_else(|e| e.into_inner());
        *list = list.iter().cloned().chain([f]).collect();
        list.len() == 1
    }

    /// The list as it is now, without allocating: the lock is released
    /// before the closures run, so a closure may register more (it
    /// joins the next snapshot).
    pub(crate) fn snapshot(&self) -> Arc<[Arc<T>]> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn clear(&self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new([]);
    }
}

/// Every event's closures. Each plugin library has its own copy of the
/// SDK, so this is per plugin.
#[derive(Default)]
pub(crate) struct Registry {
    pub(crate) vcpu_init: List<VcpuFn>,
    pub(crate) vcpu_exit: List<VcpuExitFn>,
    pub(crate) vcpu_idle: List<VcpuFn>,
    pub(crate) vcpu_resume: List<VcpuFn>,
    pub(crate) flush: List<ThreadFn>,
    pub(crate) translate: List<TranslateFn>,
    pub(crate) syscall: List<SyscallFn>,
    pub(crate) syscall_ret: List<SyscallRetFn>,
    pub(crate) syscall_filter: List<FilterFn>,
    pub(crate) discon: List<DisconFn>,
    pub(crate) asid: List<AsidFn>,
    pub(crate) exit: List<ThreadFn>,
    /// The hypercall handlers, by number: one per number, as in QEMU.
    pub(crate) hypercalls: RwLock<HashMap<u64, Arc<HypercallFn>>>,
    /// The MMIO callbacks, one per registered range: a range's user data
    /// is its index here.
    pub(crate) mmio: RwLock<Vec<Arc<MmioFn>>>,
}

impl Registry {
    /// The handler of hypercall `num`; the lock is released before it runs,
    /// so that it may register more.
    pub(crate) fn hypercall(&self, num: u64) -> Option<Arc<HypercallFn>> {
        let map = self.hypercalls.read().unwrap_or_else(|e| e.into_inner());
        map.get(&num).cloned()
    }

    /// The callback of the MMIO range registered with user data `index`;
    /// the lock is released before it runs.
    pub(crate) fn mmio(&self, index: usize) -> Option<Arc<MmioFn>> {
        let list = self.mmio.read().unwrap_or_else(|e| e.into_inner());
        list.get(index).cloned()
    }
}

pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Forgets every closure: called once QEMU has removed this plugin's
/// callbacks (a reset), so that the next registration registers again.
pub(crate) fn clear_registry() {
    let r = registry();
    for list in [&r.vcpu_init, &r.vcpu_idle, &r.vcpu_resume] {
        list.clear();
    }
    r.vcpu_exit.clear();
    r.flush.clear();
    r.exit.clear();
    r.translate.clear();
    r.syscall.clear();
    r.syscall_ret.clear();
    r.syscall_filter.clear();
    r.discon.clear();
    r.asid.clear();
    r.hypercalls
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    r.mmio.write().unwrap_or_else(|e| e.into_inner()).clear();
}

struct Plugin {
    id: sys::qemu_plugin_id_t,
    name: String,
    info: PluginInfo,
}

static PLUGIN: OnceLock<Plugin> = OnceLock::new();

pub(crate) fn plugin_name() -> &'static str {
    PLUGIN.get().map_or("plugin", |p| p.name.as_str())
}

pub(crate) fn plugin_id() -> sys::qemu_plugin_id_t {
    PLUGIN.get().expect("the plugin is installed").id
}

pub(crate) fn plugin_info() -> &'static PluginInfo {
    &PLUGIN.get().expect("the plugin is installed").info
}

/// Records this plugin's identity. The dynamic loader maps one file once,
/// whatever name it is loaded under (a link, a copy of the path): a second
/// install would share every static of the first, so it is refused.
pub(crate) fn set_plugin(id: sys::qemu_plugin_id_t, name: String, info: PluginInfo) -> Result<()> {
    let mut first = None;
    PLUGIN.get_or_init(|| {
        first = Some(());
        Plugin {
            id,
            name: name.clone(),
            info,
        }
    });
    if first.is_some() {
        return Ok(());
    }
    Err(Error::new(format!(
        "{name}: this library is already installed as plugin '{}'; \
         to load it twice, load a copy of the file (a link is the same file)",
        plugin_name()
    )))
}
