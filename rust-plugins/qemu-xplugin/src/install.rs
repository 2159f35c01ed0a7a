//! The public registration API: [`Install`], the context a plugin's
//! install function gets, and the types its callbacks see. A registration
//! puts the closure in the registry (`registry.rs`) and, for the first
//! closure of an event, registers that event's trampoline
//! (`trampolines.rs`) with QEMU.

use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::sync::Arc;

use qemu_xplugin_sys as sys;

use crate::hooks::{ExecHook, MemHook, MemRw};
use crate::mmio::{MmioAccess, MmioAction};
use crate::registry::{plugin_id, plugin_info, plugin_name, registry, List};
use crate::scoreboard::{Pod, Scoreboard};
use crate::trampolines;
use crate::translate::Tb;
use crate::vcpu::{RegAccess, Vcpu};
use crate::{Counter, ExecThread, QemuThread, Reg, RegValue, Result, VcpuExit};

/// The guest program of user-mode emulation: [`Vcpu::binary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binary {
    /// Its path, as given to QEMU.
    pub path: String,
    /// Start of its code (guest virtual address).
    pub start_code: u64,
    /// End of its code.
    pub end_code: u64,
    /// Its entry point.
    pub entry: u64,
}

/// Control of the guest's virtual clock, from
/// [`Install::request_time_control`]: QEMU gives it to one plugin only.
#[derive(Debug)]
pub struct TimeControl {
    /// QEMU's token (an address QEMU owns for its whole life).
    handle: usize,
}

impl TimeControl {
    /// Sets the guest's virtual clock to `ns` nanoseconds. QEMU applies it
    /// on `vcpu` (outside its callback, where it may take its global
    /// lock), so it needs a running vCPU: a `&Vcpu` of any callback.
    ///
    /// The clock only moves forward, and under TCG without `-icount` QEMU
    /// moves it by waiting, holding its global lock, until host time has
    /// caught up with `ns`: a value far ahead stops the guest that long
    /// (an hour ahead, an hour; QEMU then ignores SIGTERM). Move it in
    /// small steps, as QEMU's `contrib/plugins/ips.c` does.
    pub fn set_ns<C: crate::Context>(&self, _vcpu: &Vcpu<C>, ns: i64) {
        // SAFETY: the token QEMU returned to this plugin; on a vCPU thread
        // inside a callback (the Vcpu, which only exists there and is
        // !Send), where QEMU's current_cpu is set: QEMU queues the update
        // on it. Scenario that would break it: a call without a current
        // vCPU (a plugin thread, the main thread in an exit callback):
        // QEMU would queue work on a NULL CPU.
        unsafe { sys::qemu_plugin_update_ns(self.handle as *const std::ffi::c_void, ns) }
    }
}

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

/// A hypercall as the guest made it (on x86: `CPUID` with the number in
/// `EAX` and the arguments in `RBX`, `RCX`, `RDX`, `RSI`; 32-bit values
/// outside 64-bit code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypercall {
    /// The hypercall number.
    pub num: u64,
    /// The arguments; how many are meaningful depends on the call.
    pub args: [u64; 4],
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

/// A vCPU switched address spaces: [`Install::on_asid_change`]. An
/// address space ID is the value that selects the vCPU's page tables
/// (x86: CR3, whole), as [`Vcpu::asid`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsidChange {
    /// The address space ID the vCPU leaves.
    pub old: u64,
    /// The one it enters, already in effect.
    pub new: u64,
}

/// The plugin being installed: register callbacks, hooks, exports and
/// events here. Hooks made here are attached to blocks and instructions
/// later, from the translation callback. Only the SDK makes one, on a
/// QEMU thread, and it stays there (not `Send`).
pub struct Install {
    thread: QemuThread,
    _not_send: PhantomData<*mut ()>,
}

impl Install {
    pub(crate) fn new() -> Self {
        Self {
            thread: QemuThread::here(),
            _not_send: PhantomData,
        }
    }

    /// This plugin's name (its file name without `lib` and extension,
    /// unless it declares another with [`crate::plugin!`]).
    pub fn name(&self) -> &'static str {
        plugin_name()
    }

    /// What QEMU said about the machine.
    pub fn info(&self) -> &'static PluginInfo {
        plugin_info()
    }

    /// Proof that the install function runs on a QEMU thread, e.g. to read
    /// a [`Counter`].
    pub fn thread(&self) -> &QemuThread {
        &self.thread
    }

    /// Runs `f` on each vCPU when it starts (with register access).
    pub fn on_vcpu_init(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>) -> Result<()> + Send + Sync + 'static,
    ) {
        add_vcpu_fn(
            &registry().vcpu_init,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_init_cb,
            trampolines::vcpu_init,
        );
    }

    /// Runs `f` for each vCPU that stops: at the end in user mode (a
    /// guest thread exits), when it is unplugged in system mode, where
    /// QEMU runs `f` on its main thread. So `f` gets the vCPU's index only
    /// ([`VcpuExit`]): no registers, memory, or token for
    /// [`crate::reset`] and [`crate::uninstall`].
    pub fn on_vcpu_exit(&mut self, f: impl Fn(&VcpuExit) -> Result<()> + Send + Sync + 'static) {
        add_vcpu_fn(
            &registry().vcpu_exit,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_exit_cb,
            trampolines::vcpu_exit,
        );
    }

    /// Runs `f` when a vCPU goes idle (system mode: it halted and waits).
    pub fn on_vcpu_idle(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>) -> Result<()> + Send + Sync + 'static,
    ) {
        add_vcpu_fn(
            &registry().vcpu_idle,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_idle_cb,
            trampolines::vcpu_idle,
        );
    }

    /// Runs `f` when an idle vCPU resumes.
    pub fn on_vcpu_resume(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>) -> Result<()> + Send + Sync + 'static,
    ) {
        add_vcpu_fn(
            &registry().vcpu_resume,
            Arc::new(f),
            sys::qemu_plugin_register_vcpu_resume_cb,
            trampolines::vcpu_resume,
        );
    }

    /// Runs `f` when QEMU flushes its translated code (all vCPUs stopped):
    /// blocks will be translated, and hooks attached, again.
    pub fn on_flush(&mut self, f: impl Fn(&ExecThread) + Send + Sync + 'static) {
        registry().flush.push(Arc::new(f));
        trampolines::ensure_flush();
    }

    /// Runs `f` every time QEMU translates a block; `f` attaches hooks and
    /// inline counters to the block and its instructions.
    pub fn on_translate(&mut self, f: impl Fn(&Tb<'_>) + Send + Sync + 'static) {
        if registry().translate.push(Arc::new(f)) {
            // SAFETY: a registration of this plugin, with a trampoline of
            // the callback's type; no user data.
            unsafe {
                sys::qemu_plugin_register_vcpu_tb_trans_cb(
                    plugin_id(),
                    Some(trampolines::translate),
                )
            }
        }
    }

    /// A closure to attach to blocks and instructions with
    /// [`Tb::on_exec`] and [`crate::Insn::on_exec`].
    pub fn exec_hook(
        &mut self,
        access: RegAccess,
        f: impl Fn(&mut Vcpu) -> Result<()> + Send + Sync + 'static,
    ) -> ExecHook {
        ExecHook::leak(access, f)
    }

    /// A closure to attach to instructions' memory accesses with
    /// [`crate::Insn::on_mem`].
    pub fn mem_hook(
        &mut self,
        access: RegAccess,
        rw: MemRw,
        f: impl Fn(&mut Vcpu, &crate::MemAccess<'_>) -> Result<()> + Send + Sync + 'static,
    ) -> MemHook {
        MemHook::new(access, rw, f)
    }

    /// A handle on register `name` holding a `T` (`u64` for a 64-bit
    /// general register, `u32`, `[u8; 16]`...), for [`Vcpu::read`] and
    /// [`Vcpu::write`]. The name and size are checked against each vCPU's
    /// registers once, not on every access; an unknown name or another
    /// size is the error of every access
    /// ([`crate::ErrorKind::UnknownRegister`],
    /// [`crate::ErrorKind::RegisterSize`]). Making the same handle twice
    /// returns the same one.
    pub fn register<T: RegValue>(&mut self, name: &str) -> Reg<T> {
        Reg::new(name)
    }

    /// A new per-vCPU counter for inline operations.
    pub fn counter(&mut self) -> Counter {
        Counter::new()
    }

    /// A new per-vCPU [`Scoreboard`] of `T`s, all-zero on every vCPU.
    pub fn scoreboard<T: Pod>(&mut self) -> Scoreboard<T> {
        Scoreboard::new()
    }

    /// Asks for control of the guest's virtual clock (system mode): from
    /// then on the plugin sets the time with [`TimeControl::set_ns`]. One
    /// plugin at most controls time, the first to ask: for the others, and
    /// in user mode (no virtual clock to control), an error of kind
    /// [`crate::ErrorKind::Unsupported`]. QEMU also refuses to migrate a
    /// machine whose time a plugin controls. Control is never given back:
    /// after a reset of this plugin, the `TimeControl` it had stays valid
    /// and asking again fails; after its uninstall, no plugin gets it.
    pub fn request_time_control(&mut self) -> Result<TimeControl> {
        // SAFETY: no arguments; QEMU returns its token, once, or NULL.
        let handle = unsafe { sys::qemu_plugin_request_time_control() };
        if handle.is_null() {
            let why = if plugin_info().system_emulation {
                "another plugin controls it (QEMU grants it to the first plugin that asks)"
            } else {
                "user-mode emulation has no virtual clock"
            };
            return Err(crate::Error::with_kind(
                crate::ErrorKind::Unsupported,
                format!("cannot control time: {why}"),
            ));
        }
        Ok(TimeControl {
            handle: handle as usize,
        })
    }

    /// Runs `f` once this plugin is uninstalled ([`crate::uninstall`]),
    /// with every vCPU stopped, just before QEMU unloads the plugin: the
    /// last callback it gets (its exit callbacks do not run then).
    pub fn on_uninstall(&mut self, f: impl FnOnce(&ExecThread) + Send + 'static) {
        crate::lifecycle::add_uninstall_fn(Box::new(f));
    }

    /// Runs `f` when the guest makes a syscall (user mode), before it is
    /// handled. `f` may write registers and call [`Vcpu::set_pc`], which
    /// skips the syscall.
    pub fn on_syscall(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>, &Syscall) -> Result<()> + Send + Sync + 'static,
    ) {
        if registry().syscall.push(Arc::new(f)) {
            // SAFETY: as for on_translate.
            unsafe {
                sys::qemu_plugin_register_vcpu_syscall_cb(plugin_id(), Some(trampolines::syscall))
            }
        }
    }

    /// Runs `f` with the syscall number and return value when a syscall
    /// returns (user mode).
    pub fn on_syscall_return(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>, i64, i64) -> Result<()> + Send + Sync + 'static,
    ) {
        if registry().syscall_ret.push(Arc::new(f)) {
            // SAFETY: as for on_translate.
            unsafe {
                sys::qemu_plugin_register_vcpu_syscall_ret_cb(
                    plugin_id(),
                    Some(trampolines::syscall_ret),
                )
            }
        }
    }

    /// Lets `f` handle syscalls instead of QEMU (user mode): when it returns
    /// `Some(value)` the syscall is skipped and returns `value`. Filters run
    /// after [`Install::on_syscall`] callbacks, in registration order; the
    /// first `Some` (or the first [`Vcpu::set_pc`]) wins and the filters
    /// after it are not asked.
    pub fn on_syscall_filter(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>, &Syscall) -> Option<i64> + Send + Sync + 'static,
    ) {
        // QEMU keeps one filter per plugin: the SDK registers one
        // trampoline, which asks every filter of the registry.
        if registry().syscall_filter.push(Arc::new(f)) {
            // SAFETY: a registration of this plugin, with a trampoline of
            // the filter's type; its user data is unused.
            unsafe {
                sys::qemu_plugin_register_vcpu_syscall_filter_cb(
                    plugin_id(),
                    Some(trampolines::syscall_filter),
                    std::ptr::null_mut(),
                )
            }
        }
    }

    /// Handles the guest's hypercall `num` (system and user mode; on x86
    /// the guest executes `CPUID` with `num` in `EAX`, see [`Hypercall`]).
    /// `f` runs on the vCPU's thread before the instruction takes effect,
    /// may read and write registers and guest memory, and returns
    /// `Some(value)` to handle the call: the guest continues after the
    /// instruction with `value` in its return register (`RAX`); `None`
    /// leaves the instruction its normal behaviour.
    ///
    /// On x86 `f` reads and writes the guest's full `EFLAGS`, and QEMU ends
    /// the translation block after `CPUID`: flags, code after the
    /// instruction and the CPU mode that `f` changes take effect at the next
    /// instruction. When `f` returns `None`, its register and memory writes
    /// are kept, and `CPUID` then writes its results over `EAX`-`EDX`.
    /// `Vcpu::set_pc` returns an error (QEMU runs hypercall callbacks
    /// with `QEMU_PLUGIN_CB_RW_REGS`, without `_PC`).
    ///
    /// Any guest code can make a hypercall (`CPUID` runs at every privilege
    /// level): treat the arguments as untrusted.
    ///
    /// Hypercall numbers are 32-bit (x86's `EAX`): an error when `num`
    /// exceeds `u32::MAX`, as QEMU would register a number that is never
    /// called. A number belongs to one plugin: an error when this plugin or
    /// another one already handles `num`. A reset or an uninstall frees the
    /// plugin's numbers.
    pub fn on_hypercall(
        &mut self,
        num: u64,
        f: impl Fn(&mut Vcpu<QemuThread>, &Hypercall) -> Option<u64> + Send + Sync + 'static,
    ) -> Result<()> {
        if num > u64::from(u32::MAX) {
            return Err(format!(
                "hypercall {num:#x}: numbers are 32-bit, the guest cannot make this call"
            )
            .into());
        }
        let mut map = registry()
            .hypercalls
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&num) {
            return Err(format!("hypercall {num:#x} is already handled by this plugin").into());
        }
        // Locks (a deadlock argument, not a safety one): an `Install`
        // exists only while QEMU installs or reinstalls this plugin, with
        // its plugin.lock held; the registry's write lock is taken under
        // it, and the registration takes plugin.lock again (recursive).
        // A reset takes plugin.lock, then clears the registry: the same
        // order. The trampoline only takes the registry lock for reading,
        // never plugin.lock.
        // SAFETY: a registration of this plugin, with a trampoline of the
        // callback's type; its user data is unused. QEMU copies what it
        // needs and does not call the trampoline from within the
        // registration.
        let registered = unsafe {
            sys::qemu_plugin_register_vcpu_hypercall_cb(
                plugin_id(),
                num,
                Some(trampolines::hypercall),
                std::ptr::null_mut(),
            )
        };
        if !registered {
            return Err(format!("QEMU refused hypercall {num:#x} (already registered?)").into());
        }
        map.insert(num, Arc::new(f));
        Ok(())
    }

    /// Runs `f` on interrupts, exceptions and host calls (system mode).
    pub fn on_discontinuity(
        &mut self,
        f: impl Fn(&mut Vcpu<QemuThread>, &Discontinuity) -> Result<()> + Send + Sync + 'static,
    ) {
        if registry().discon.push(Arc::new(f)) {
            // SAFETY: as for on_translate.
            unsafe {
                sys::qemu_plugin_register_vcpu_discon_cb(
                    plugin_id(),
                    sys::qemu_plugin_discon_type::QEMU_PLUGIN_DISCON_ALL,
                    Some(trampolines::discontinuity),
                )
            }
        }
    }

    /// Runs `f` every time a vCPU switches to another address space
    /// (system mode; x86: a load of CR3 with a value other than the
    /// current one, and an INIT, which clears CR3; reloading the same
    /// value is not a switch), right after the switch, on the vCPU's
    /// thread while it runs guest code. QEMU reports no switch in user
    /// mode, nor on targets without address space IDs, nor one made
    /// outside guest code (a debugger, a machine reset, loading a
    /// snapshot, a plugin writing CR3 from a vCPU init callback): after
    /// one of those, the next change's `old` is not the previous one's
    /// `new`.
    ///
    /// `f` runs in the middle of the instruction that switched, where
    /// only the [`AsidChange`] is reliable. QEMU's copy of the registers
    /// is not up to date: its `&Vcpu` has no register access
    /// ([`RegAccess::None`]; a read is an error of kind
    /// [`crate::ErrorKind::NotAllowed`]) and cannot write memory or
    /// redirect. The rest of the vCPU's state may be half switched: the
    /// instructions that change more than CR3 (x86: a task switch, RSM,
    /// SVM's VMRUN and #VMEXIT) load it before CR0, EFER or CS, so
    /// [`Vcpu::is_kernel_mode`] and memory reads may still see the state
    /// before the switch, or a mix; a VMRUN that fails after loading CR3
    /// switches back at once, a second change. [`Vcpu::asid`] is the new
    /// ID, and counters can be read and added to (it runs inside guest
    /// code). To see the vCPU's state after a switch, read it in the
    /// vCPU's next block (a hook made with [`Install::exec_hook`], e.g.
    /// conditional on a counter `f` sets).
    ///
    /// Where `f` runs, and what it must not do:
    /// - nested inside another callback's register write, when a plugin
    ///   (this one or another) writes CR3 ([`Vcpu::write`],
    ///   [`Vcpu::write_register`]): a lock held across that write and
    ///   taken in `f` (a `std::sync::Mutex`) deadlocks or panics;
    /// - sometimes with QEMU's global lock (the BQL) held, when the switch
    ///   happens while delivering an interrupt or an INIT: `f` must not
    ///   wait for anything another vCPU may hold while it waits for the
    ///   BQL (a lock another vCPU's callback takes around a device
    ///   access, or another vCPU's progress).
    ///
    /// ```compile_fail,E0596
    /// fn install(plugin: &mut qemu_xplugin::Install) {
    ///     // The `Vcpu` is lent immutably: no memory write, no redirect.
    ///     plugin.on_asid_change(|vcpu, _| vcpu.write_memory(0x1000, &[0]));
    /// }
    /// ```
    pub fn on_asid_change(
        &mut self,
        f: impl Fn(&Vcpu, &AsidChange) -> Result<()> + Send + Sync + 'static,
    ) {
        if registry().asid.push(Arc::new(f)) {
            // SAFETY: a registration of this plugin, with a trampoline of
            // the callback's type; its user data is unused.
            unsafe {
                sys::qemu_plugin_register_vcpu_asid_changed_cb(
                    plugin_id(),
                    Some(trampolines::asid_changed),
                    std::ptr::null_mut(),
                )
            }
        }
    }

    /// Interposes on the guest's device accesses in the physical address
    /// range `range` (system mode): `f` runs before every load and store of
    /// guest code that QEMU sends to a device (memory-mapped I/O) or to
    /// unassigned memory (no device there, or one that refuses the access:
    /// [`MmioAccess::is_unassigned`])
    /// and that overlaps `range`, and decides what becomes of it
    /// ([`MmioAction`]):
    ///
    /// - a load: [`MmioAccess::set_value`] then [`MmioAction::Done`]
    ///   serves it (the device is not accessed: a device that does not
    ///   exist, or one that answers differently); [`MmioAction::Pass`]
    ///   lets it go on;
    /// - a store: `Done` drops it; `Pass` stores [`MmioAccess::value`],
    ///   which `f` may change with `set_value`.
    ///
    /// Values are the access's bytes in memory order, the first one least
    /// significant (`value.to_le_bytes()[..size]`, whatever the target's
    /// byte order), masked to the access's size ([`MmioAccess::size`]: 1
    /// to 8; QEMU hands larger accesses and accesses that cross a page
    /// over in parts). Not seen: accesses to RAM and ROM in the range
    /// (QEMU makes them directly; RAM sharing a page with a device is
    /// seen), instruction fetches, x86 port I/O, DMA by devices, and the
    /// accesses plugins make ([`Vcpu::read_physical`] of a device
    /// included: `f` may read a device that way and return a changed
    /// value; it reads the first, non-secure, address space, while an
    /// access in x86's SMM goes to SMRAM's).
    ///
    /// Order: the callbacks of every range an access overlaps, this
    /// plugin's and other plugins', run in the order the ranges were
    /// registered, until one returns `Done`: a range registered again
    /// after a [`crate::reset`] comes after the other plugins' ranges. A
    /// store's value is what the previous callback left, a load's is 0 on
    /// entry to each. Memory hooks ([`Install::mem_hook`]) of the
    /// instruction run after it and see the value the load returned and
    /// the value the guest stored, before any change made here.
    ///
    /// Where `f` runs, and what it must not do:
    /// - on the thread of the vCPU making the access, in the middle of its
    ///   instruction: QEMU's copy of the registers is out of date, so its
    ///   `&Vcpu` has no register access ([`RegAccess::None`]; a read is an
    ///   error of kind [`crate::ErrorKind::NotAllowed`]) and cannot write
    ///   memory or redirect; it reads memory (virtual and physical) and
    ///   [`Vcpu::asid`]. It gets a [`QemuThread`], not an
    ///   [`crate::ExecThread`]: no counter reads (count with atomics);
    /// - with QEMU's global lock (the BQL) held: the callbacks of all
    ///   vCPUs, of every plugin, run one at a time, serialised with each
    ///   other and with device emulation, so they may share state
    ///   without contention; but `f` must not wait for another vCPU, nor
    ///   for a lock that another thread may hold while it waits for the
    ///   BQL: a lock a hook holds across a [`Vcpu::read_physical`] or
    ///   [`Vcpu::write_physical`] of a device (which takes the BQL), or
    ///   across another plugin's call. The lock order is BQL, then the
    ///   plugin's locks. [`crate::PerVcpu::for_each`], which waits for
    ///   every vCPU's value, panics here for that reason
    ///   ([`crate::PerVcpu::with`] on the calling vCPU is fine);
    /// - possibly on several vCPU threads over time (not at once), hence
    ///   `Send + Sync`.
    ///
    /// A panic in `f` is reported and ends QEMU with exit status 1, as in
    /// every callback of the SDK (the access never completes).
    ///
    /// `range` is any range of `u64`: `0xfe00_0000..0xfe00_0004`,
    /// `0xfee0_0080..=0xfee0_0083`, `0xfe00_0000..` (to the top). Errors:
    /// an empty range and one of all 2^64 addresses (QEMU's length has 64
    /// bits) are [`crate::ErrorKind::Invalid`]; in user mode (no devices)
    /// [`crate::ErrorKind::Unsupported`]. A range takes effect for the
    /// accesses that start after this returns, and lasts until the plugin
    /// is reset or uninstalled; ranges may overlap.
    ///
    /// ```
    /// use qemu_xplugin::{Install, MmioAction, Result};
    ///
    /// // A 32-bit register where no device is: reads 0x600dcafe.
    /// fn install(plugin: &mut Install) -> Result<()> {
    ///     plugin.on_mmio(0xfe00_0000..0xfe00_0004, |_vcpu, access| {
    ///         if access.is_store() {
    ///             return MmioAction::Pass;
    ///         }
    ///         access.set_value(0x600d_cafe);
    ///         MmioAction::Done
    ///     })
    /// }
    /// ```
    ///
    /// ```compile_fail,E0596
    /// fn install(plugin: &mut qemu_xplugin::Install) -> qemu_xplugin::Result<()> {
    ///     // The `Vcpu` is lent immutably: no memory write, no redirect.
    ///     plugin.on_mmio(0x1000..0x2000, |vcpu, _| {
    ///         let _ = vcpu.write_memory(0x1000, &[0]);
    ///         qemu_xplugin::MmioAction::Pass
    ///     })
    /// }
    /// ```
    pub fn on_mmio(
        &mut self,
        range: impl RangeBounds<u64>,
        f: impl Fn(&Vcpu<QemuThread>, &mut MmioAccess) -> MmioAction + Send + Sync + 'static,
    ) -> Result<()> {
        let (addr, len) = crate::mmio::range_to_addr_len(&range)?;
        let shown = format!("{addr:#x}..{:#x}", u128::from(addr) + u128::from(len));
        if !plugin_info().system_emulation {
            return Err(crate::Error::with_kind(
                crate::ErrorKind::Unsupported,
                format!("MMIO range {shown}: user-mode emulation has no devices (MMIO callbacks need system emulation)"),
            ));
        }
        let mut list = registry().mmio.write().unwrap_or_else(|e| e.into_inner());
        let index = list.len();
        // Locks (a deadlock argument, not a safety one): as for
        // on_hypercall, plugin.lock is held (an Install exists only
        // while QEMU installs or reinstalls this plugin), and the
        // registration takes it again. The trampoline takes the
        // registry's read lock holding the BQL, never plugin.lock; no
        // thread holds the registry's write lock waiting for the BQL.
        // SAFETY: a registration of this plugin, with a trampoline of the
        // callback's type. The user data is an integer, the range's index
        // in the registry, never dereferenced (the trampoline looks it up
        // and passes on an index it lacks), so it cannot dangle. QEMU
        // copies what it needs and does not call the trampoline from
        // within the registration.
        let registered = unsafe {
            sys::qemu_plugin_register_vcpu_mmio_cb(
                plugin_id(),
                addr,
                len,
                Some(trampolines::mmio),
                index as *mut std::ffi::c_void,
            )
        };
        if !registered {
            return Err(crate::Error::with_kind(
                crate::ErrorKind::Invalid,
                format!("QEMU refused MMIO range {shown}"),
            ));
        }
        list.push(Arc::new(f));
        Ok(())
    }

    /// Runs `f` once when the guest has finished, e.g. to print results
    /// (counters can be read: `f` gets an [`ExecThread`]).
    pub fn on_exit(&mut self, f: impl Fn(&ExecThread) + Send + Sync + 'static) {
        if registry().exit.push(Arc::new(f)) {
            // SAFETY: as for on_translate.
            unsafe {
                sys::qemu_plugin_register_atexit_cb(
                    plugin_id(),
                    Some(trampolines::at_exit),
                    std::ptr::null_mut(),
                )
            }
        }
    }
}

/// Adds `f` to the closures of a vCPU event; the first one registers the
/// event's trampoline with QEMU through `register`.
fn add_vcpu_fn<T: ?Sized>(
    list: &List<T>,
    f: Arc<T>,
    register: unsafe extern "C" fn(sys::qemu_plugin_id_t, sys::qemu_plugin_vcpu_simple_cb_t),
    trampoline: extern "C" fn(sys::qemu_plugin_id_t, std::ffi::c_uint),
) {
    if list.push(f) {
        // SAFETY: `register` is one of QEMU's vCPU event registrations and
        // `trampoline` has the signature of its callbacks.
        unsafe { register(plugin_id(), Some(trampoline)) }
    }
}
