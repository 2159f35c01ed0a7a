//! Linux guest introspection from the kernel's own BTF (x86_64, system
//! emulation): which process and thread runs, the process list, memory
//! mappings, exec/exit/task-switch events. Types: the `osi-api` crate.
//!
//! `-plugin libosi.so,kernel=build/linux/vmlinuz`
//!
//! - `kernel=PATH` (required): the guest's kernel, a bzImage (xz), an ELF
//!   `vmlinux` or a raw BTF blob; every structure layout comes from its
//!   BTF. A missing member is a start-up error naming it.
//! - `hide=STRUCT.MEMBER` (repeatable, for tests): treat that member as
//!   absent from the BTF.
//!
//! How: KASLR moves the kernel, not the per-CPU layout. The current task
//! is the per-CPU variable `current_task` (`pcpu_hot.current_task` on
//! newer kernels), at its `.data..percpu` offset from the CPU's per-CPU
//! base: `gs_base` in kernel mode, `k_gs_base` in user mode (the kernel's
//! `swapgs` exchanges them). `osi` reads it at the start of every block
//! that holds a `syscall` / `int 0x80` instruction or starts right after
//! one (the return): user-mode points only. It walks `task_struct.tasks` (which goes through `init_task`) for the
//! process list.
//!
//! Reads go through the vCPU's current page table; under page table
//! isolation (KPTI), whose user page table maps neither the per-CPU areas
//! nor the `task_struct`s, a read that fails there goes through the
//! kernel's page table instead (walked by [`paging`], read physically).
//! With 5-level paging (`CR4.LA57`) the kernel's half of the address space
//! starts at `0xff00...`, not `0xffff_8...`.
//!
//! Load `osi` before `syscalls` on the command line: `syscalls` imports
//! `osi_current` when it is installed, so `osi` must exist by then (`osi`
//! refuses to be installed after it). The order of the callbacks does not
//! depend on it: QEMU runs the translation callbacks of the plugin
//! installed last first, but `osi` observes in a block callback, which runs
//! before every instruction callback of its block, whoever registered it.

pub mod btf;
pub mod kallsyms;
pub mod paging;
pub mod reader;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use osi_api::{
    flags, Mapping, ProcessExit, ProcessStart, Task, TaskSwitch, CURRENT, EXEC_EVENT, EXIT_EVENT,
    MAPPING, MAPPING_COUNT, MODULE, MODULE_COUNT, PROCESS, PROCESS_COUNT, SWITCH_EVENT,
    WANT_MAPPINGS,
};
use qemu_xplugin::{Args, Event, Install, Reg, RegAccess, Result, Vcpu};

use crate::btf::Layout;
use crate::reader::{kernel_ptr, Failures, Mem, NoCurrent, Reader};

/// `syscall` and `int 0x80`.
const SYSCALL: [u8; 2] = [0x0f, 0x05];
const INT80: [u8; 2] = [0xcd, 0x80];
/// x86_64 `exit` and `exit_group`.
const NR_EXIT: u64 = 60;
const NR_EXIT_GROUP: u64 = 231;
/// Linux's `__USER32_CS`: a 32-bit (compatibility mode) process, whose
/// `syscall` (AMD) and `int 0x80` use the i386 numbers.
const USER32_CS: u32 = 0x23;

/// Most return sites remembered (addresses right after a syscall
/// instruction, of every address space: the translation callback has no
/// address space to key them by): cleared when full. A block translated
/// after that and starting at a return site is not observed until the
/// syscall instruction before it is translated again.
const MAX_RETURN_SITES: usize = 1 << 18;

/// Most tasks remembered for exec detection.
const MAX_SEEN: usize = 1 << 16;

/// The task each vCPU ran when last observed, by vCPU index.
static CURRENT_TASKS: Mutex<Vec<Task>> = Mutex::new(Vec::new());

/// The last process list and the mappings of its processes.
#[derive(Default)]
struct Snapshot {
    tasks: Vec<Task>,
    maps: HashMap<i32, Vec<Mapping>>,
    /// The kernel modules; None: unknown.
    modules: Option<Vec<osi_api::Module>>,
}

static SNAPSHOT: Mutex<Option<Snapshot>> = Mutex::new(None);

/// The names of the processes whose mappings a refresh reads (an empty
/// name: every process), as plugins asked with `osi_want_mappings`.
static WANTED: Mutex<Vec<osi_api::Comm>> = Mutex::new(Vec::new());

extern "C" fn osi_want_mappings(name: osi_api::Comm) {
    let mut wanted = lock(&WANTED);
    if !wanted.contains(&name) {
        wanted.push(name);
    }
}

/// Whether the mappings of `task` were asked for.
fn wanted(wanted: &[osi_api::Comm], task: &Task) -> bool {
    wanted
        .iter()
        .any(|w| *w == osi_api::Comm::default() || *w == task.comm)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

extern "C" fn osi_current(vcpu_index: u32) -> Task {
    lock(&CURRENT_TASKS)
        .get(vcpu_index as usize)
        .copied()
        .unwrap_or_default()
}

extern "C" fn osi_process_count() -> u32 {
    lock(&SNAPSHOT).as_ref().map_or(0, |s| s.tasks.len() as u32)
}

extern "C" fn osi_process(index: u32) -> Task {
    lock(&SNAPSHOT)
        .as_ref()
        .and_then(|s| s.tasks.get(index as usize).copied())
        .unwrap_or_default()
}

extern "C" fn osi_module_count() -> u32 {
    lock(&SNAPSHOT)
        .as_ref()
        .and_then(|s| s.modules.as_ref())
        .map_or(0, |m| m.len() as u32)
}

extern "C" fn osi_module(index: u32) -> osi_api::Module {
    lock(&SNAPSHOT)
        .as_ref()
        .and_then(|s| s.modules.as_ref()?.get(index as usize).copied())
        .unwrap_or_default()
}

extern "C" fn osi_mapping_count(tgid: i32) -> u32 {
    lock(&SNAPSHOT)
        .as_ref()
        .and_then(|s| s.maps.get(&tgid))
        .map_or(0, |m| m.len() as u32)
}

extern "C" fn osi_mapping(tgid: i32, index: u32) -> Mapping {
    lock(&SNAPSHOT)
        .as_ref()
        .and_then(|s| s.maps.get(&tgid)?.get(index as usize).copied())
        .unwrap_or_default()
}

/// Guest memory through the vCPU of a callback: its current page table,
/// else the kernel's (KPTI).
struct VcpuMem<'a> {
    vcpu: &'a Vcpu,
    /// The kernel's page table (physical) when the current one may be
    /// KPTI's user page table (CR3 bit 12 set): CR3 with bit 12 cleared.
    kernel_root: Option<u64>,
    /// 5-level paging.
    la57: bool,
    /// Reads that went through `kernel_root`.
    walked: std::cell::Cell<u64>,
    /// Whether a kernel address was read through the current page table:
    /// then it is no KPTI user page table (whose kernel half maps only the
    /// entry code and the CPU entry areas, never the per-CPU areas read
    /// first), and a page table at CR3 - 4 KiB would be some other page.
    maps_kernel: std::cell::Cell<bool>,
}

impl<'a> VcpuMem<'a> {
    fn new(vcpu: &'a Vcpu, cr3: u64, la57: bool) -> Self {
        Self {
            vcpu,
            kernel_root: (cr3 & paging::PTI_USER_BIT != 0)
                .then_some(cr3 & paging::ADDR_MASK & !paging::PTI_USER_BIT),
            la57,
            walked: std::cell::Cell::new(0),
            maps_kernel: std::cell::Cell::new(false),
        }
    }
}

impl Mem for VcpuMem<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let kernel = kernel_ptr(addr, self.la57);
        if self.vcpu.read_memory_into(addr, buf).is_ok() {
            if kernel {
                self.maps_kernel.set(true);
            }
            return true;
        }
        // The user half is the same in both page tables of KPTI.
        match self.kernel_root {
            Some(root) if kernel && !self.maps_kernel.get() => {
                let ok = paging::read(self, root, self.la57, addr, buf);
                self.walked.set(self.walked.get() + u64::from(ok));
                ok
            }
            _ => false,
        }
    }
}

impl paging::Phys for VcpuMem<'_> {
    fn read_phys(&self, addr: u64, buf: &mut [u8]) -> bool {
        match self.vcpu.read_physical(addr, buf.len()) {
            Ok(bytes) if bytes.len() == buf.len() => {
                buf.copy_from_slice(&bytes);
                true
            }
            _ => false,
        }
    }
}

/// What `osi` knows of a task it has seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    pid: i32,
    tgid: i32,
    mm: u64,
}

/// Whether `task`, observed now, started a new program since `seen` (what
/// was observed at its address before): the same task (same pid; or the
/// same thread group, now led by it: a thread other than the leader that
/// called execve takes the leader's pid in `de_thread()`, at its own
/// address) whose `mm` changed. None: another task at a reused address, or
/// a first observation.
fn exec_since(seen: Option<&Seen>, task: &Task) -> Option<bool> {
    let s = seen?;
    let same = s.pid == task.pid || (s.tgid == task.tgid && task.pid == task.tgid);
    same.then_some(s.mm != task.mm && task.mm != 0)
}

/// Indices of [`Osi::counts`].
const EXEC: usize = 0;
const EXIT: usize = 1;
const SWITCH: usize = 2;

/// The warning for the first failed read of the current task: the page
/// tables in use and the cause.
fn no_current_message(
    why: NoCurrent,
    cr3: u64,
    la57: bool,
    kernel_root: Option<u64>,
    layout: &Layout,
) -> String {
    let paging = if la57 { "5-level" } else { "4-level" };
    let cause = match why {
        NoCurrent::Base(base) => format!(
            "the per-CPU base (GS base / KERNEL_GS_BASE) {base:#x} is not a kernel address"
        ),
        NoCurrent::Unreadable(at) => match kernel_root {
            Some(root) => format!(
                "the per-CPU variable at {at:#x} is mapped neither by the current page table nor by the kernel's (KPTI) at {root:#x}"
            ),
            None => format!(
                "the per-CPU variable at {at:#x} is not mapped by the current page table (and CR3 is not a KPTI user page table)"
            ),
        },
        NoCurrent::NotAPointer(value) => format!(
            "{} (per-CPU offset {:#x}) holds {value:#x}, not a task pointer: the offset does not fit the running kernel (not the kernel= one, or Linux 6.15+ with relative per-CPU offsets, which osi refuses when kernel= is an image but cannot tell from a BTF blob)",
            layout.current_task_name, layout.current_task
        ),
    };
    format!(
        "cannot read the current task (CR3 {cr3:#x}, {paging} paging): {cause}; syscalls are attributed to an unknown task until it can (counted as failed current-task reads in the report at exit)"
    )
}

struct Osi {
    layout: Layout,
    /// Link-time addresses of `init_task` and `modules`, if known.
    symbols: Option<kallsyms::Symbols>,
    /// Whether the KASLR slide was reported.
    noted_slide: AtomicBool,
    failures: Failures,
    /// Tasks seen, by `task_struct` address.
    seen: Mutex<HashMap<u64, Seen>>,
    cs: Reg<u32>,
    cr3: Reg<u64>,
    cr4: Reg<u64>,
    gs_base: Reg<u64>,
    k_gs_base: Reg<u64>,
    rax: Reg<u64>,
    rdi: Reg<u64>,
    rbx: Reg<u64>,
    exec: Event<ProcessStart>,
    exit: Event<ProcessExit>,
    switch: Event<TaskSwitch>,
    /// Events fired, for the report.
    counts: [std::sync::atomic::AtomicU64; 3],
    /// Whether the first failed read of the current task was reported.
    warned: AtomicBool,
    /// Whether the first read through the kernel's page table (KPTI), and
    /// 5-level paging, were reported.
    noted_kpti: AtomicBool,
    noted_la57: AtomicBool,
    /// Reads through the kernel's page table, for the report.
    walked: std::sync::atomic::AtomicU64,
}

impl Osi {
    fn reader<'a, M: Mem>(&'a self, mem: &'a M, la57: bool) -> Reader<'a, M> {
        Reader {
            mem,
            layout: &self.layout,
            failures: &self.failures,
            la57,
        }
    }

    /// Says once, in the log, why the current task cannot be read: until
    /// it can, every syscall is attributed to `?`.
    fn warn_no_current(&self, why: NoCurrent, cr3: u64, mem: &VcpuMem<'_>) {
        if self.warned.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            "{}",
            no_current_message(why, cr3, mem.la57, mem.kernel_root, &self.layout)
        );
    }

    fn count(&self, which: usize) {
        self.counts[which].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The per-CPU base: `gs_base` in kernel mode (unless the kernel has
    /// not done its `swapgs` yet), `k_gs_base` in user mode.
    fn percpu_base(&self, vcpu: &Vcpu, la57: bool) -> Result<(u64, bool)> {
        let user = vcpu.read(self.cs)? & 3 == 3;
        let gs = vcpu.read(self.gs_base)?;
        let kgs = vcpu.read(self.k_gs_base)?;
        Ok(if user || !kernel_ptr(gs, la57) {
            (kgs, user)
        } else {
            (gs, user)
        })
    }

    /// Observes the vCPU: who runs, whether it changed, whether it started
    /// a new program.
    fn observe(&self, vcpu: &Vcpu) -> Result<()> {
        let cr3 = vcpu.read(self.cr3)?;
        let la57 = vcpu.read(self.cr4)? & paging::CR4_LA57 != 0;
        let mem = VcpuMem::new(vcpu, cr3, la57);
        let reader = self.reader(&mem, la57);
        let (base, user) = self.percpu_base(vcpu, la57)?;
        let mut task = match reader.current(base) {
            Ok(addr) => reader.task(addr),
            Err(why) => {
                self.warn_no_current(why, cr3, &mem);
                Task::default()
            }
        };
        if la57 && !self.noted_la57.swap(true, Ordering::Relaxed) {
            tracing::info!("5-level paging (CR4.LA57)");
        }
        let walked = mem.walked.get();
        if walked > 0 {
            self.walked.fetch_add(walked, Ordering::Relaxed);
            if !self.noted_kpti.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    "CR3 {cr3:#x} does not map the kernel (KPTI's user page table): reading it through the kernel's page table at {:#x}",
                    mem.kernel_root.unwrap_or_default()
                );
            }
        }
        tracing::trace!("observed pid {} {}", task.pid, task.name());
        task.flags |= if user {
            flags::USER_MODE
        } else {
            flags::KERNEL_MODE
        };
        let index = vcpu.index() as usize;
        let previous = {
            let mut current = lock(&CURRENT_TASKS);
            if current.len() <= index {
                current.resize(index + 1, Task::default());
            }
            std::mem::replace(&mut current[index], task)
        };
        // A failed read of the current task is no switch (to nothing).
        if previous.task != task.task && previous.task != 0 && task.task != 0 {
            let mut data = TaskSwitch {
                vcpu_index: vcpu.index(),
                from: previous,
                to: task,
            };
            self.count(SWITCH);
            self.switch.fire(vcpu, &mut data);
        }
        if !task.is_known() {
            return Ok(());
        }
        let exec = {
            let mut seen = lock(&self.seen);
            let now = Seen {
                pid: task.pid,
                tgid: task.tgid,
                mm: task.mm,
            };
            match exec_since(seen.get(&task.task), &task) {
                Some(changed) => {
                    seen.insert(task.task, now);
                    changed
                }
                None => {
                    // Tasks that end without exit/exit_group (killed) stay
                    // in the map: bound it.
                    if seen.len() >= MAX_SEEN {
                        seen.clear();
                    }
                    seen.insert(task.task, now);
                    // First seen: a program a kernel thread started
                    // (init, usermode helpers): its parent has no mm. A
                    // forked child is first seen returning from fork.
                    task.mm != 0
                        && task.pid == task.tgid
                        && reader.is_leader(task.task)
                        && reader.parent_mm(task.task) == Some(0)
                }
            }
        };
        if exec && user {
            self.refresh(&reader, task.task);
            let mut data = ProcessStart {
                vcpu_index: vcpu.index(),
                task,
                argv: [0; 256],
            };
            if let Some(argv) = reader.argv(task.mm, 255) {
                osi_api::fill(&mut data.argv, &argv);
            }
            self.count(EXEC);
            // The process list, mappings and argv: reads too.
            self.walked
                .fetch_add(mem.walked.get() - walked, Ordering::Relaxed);
            self.exec.fire(vcpu, &mut data);
        }
        Ok(())
    }

    /// `exit` or `exit_group` (`nr`) with status `code`, on the syscall
    /// instruction: the task is the one the block's start observed.
    fn exiting(&self, vcpu: &Vcpu, nr: u64, code: i64) {
        let task = osi_current(vcpu.index());
        if !task.is_known() {
            return;
        }
        let group = nr == NR_EXIT_GROUP;
        let mut data = ProcessExit {
            vcpu_index: vcpu.index(),
            task,
            code,
            group: group.into(),
        };
        {
            let mut seen = lock(&self.seen);
            if group {
                // The other threads go too; their addresses may be
                // reused.
                let tgid = task.tgid;
                let snapshot = lock(&SNAPSHOT);
                let threads: Vec<u64> = snapshot
                    .as_ref()
                    .map(|s| {
                        s.tasks
                            .iter()
                            .filter(|t| t.tgid == tgid)
                            .map(|t| t.task)
                            .collect()
                    })
                    .unwrap_or_default();
                for t in threads {
                    seen.remove(&t);
                }
            }
            seen.remove(&task.task);
        }
        self.count(EXIT);
        self.exit.fire(vcpu, &mut data);
    }

    /// Reads the process list and the mappings of the processes asked
    /// for.
    fn refresh<M: Mem>(&self, reader: &Reader<'_, M>, from: u64) {
        let Some(tasks) = reader.all_tasks(from) else {
            return;
        };
        let want = lock(&WANTED).clone();
        let mut maps = HashMap::new();
        for t in &tasks {
            if t.pid == t.tgid && t.mm != 0 && !t.is_kernel_thread() && wanted(&want, t) {
                match reader.mappings(t.mm) {
                    Some(m) => {
                        maps.insert(t.tgid, m);
                    }
                    None => tracing::debug!("mappings of {} {}: unreadable", t.pid, t.name()),
                }
            }
        }
        let modules = self.symbols.and_then(|symbols| {
            // The KASLR slide: init_task (the list's pid-0 entry) where it
            // runs minus where it was linked.
            let init = tasks.iter().find(|t| t.pid == 0 && t.is_known())?;
            let slide = init.task.wrapping_sub(symbols.init_task);
            let head = symbols.modules.wrapping_add(slide);
            if !self.noted_slide.swap(true, Ordering::Relaxed) {
                tracing::info!(
                    "KASLR slide {slide:#x} (init_task at {:#x}, linked at {:#x}): the module list at {head:#x}",
                    init.task,
                    symbols.init_task
                );
            }
            reader.modules(head)
        });
        *lock(&SNAPSHOT) = Some(Snapshot {
            tasks,
            maps,
            modules,
        });
    }
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let info = plugin.info();
    if !info.system_emulation || info.target != "x86_64" {
        return Err(format!(
            "needs qemu-system-x86_64, not {} {}",
            info.target,
            if info.system_emulation {
                "system"
            } else {
                "user"
            }
        )
        .into());
    }
    let kernel: String = args.require("kernel")?;
    let hide: Vec<String> = args.take_all("hide")?;
    let (layout, symbols) = btf::image(&kernel)
        .and_then(|image| Ok((btf::layout(&image.btf, &hide)?, image.symbols)))
        .map_err(|e| format!("kernel={kernel}: {e}"))?;
    match (&symbols, &layout.module) {
        (Some(s), Some(_)) => tracing::info!(
            "{kernel}: init_task linked at {:#x}, modules at {:#x}",
            s.init_task,
            s.modules
        ),
        (None, _) => tracing::info!(
            "{kernel}: no symbol table (kallsyms not found, or a BTF blob): kernel modules are not listed"
        ),
        (_, None) => tracing::info!(
            "{kernel}: no struct module layout in the BTF: kernel modules are not listed"
        ),
    }
    tracing::info!(
        "{kernel}: current task at per-CPU offset {:#x} ({})",
        layout.current_task,
        layout.current_task_name
    );

    // syscalls imports osi_current when installed: after us.
    if plugin
        .import::<syscalls_api::UsesOsiFn>(syscalls_api::PLUGIN, syscalls_api::USES_OSI)
        .is_ok()
    {
        return Err(
            "syscalls was installed before osi and cannot use it: put -plugin ...osi... before syscalls"
                .into(),
        );
    }
    plugin.export(CURRENT, osi_current as osi_api::CurrentFn)?;
    plugin.export(PROCESS_COUNT, osi_process_count as osi_api::CountFn)?;
    plugin.export(PROCESS, osi_process as osi_api::ProcessFn)?;
    plugin.export(MAPPING_COUNT, osi_mapping_count as osi_api::MappingCountFn)?;
    plugin.export(MAPPING, osi_mapping as osi_api::MappingFn)?;
    plugin.export(WANT_MAPPINGS, osi_want_mappings as osi_api::WantMappingsFn)?;
    plugin.export(MODULE_COUNT, osi_module_count as osi_api::CountFn)?;
    plugin.export(MODULE, osi_module as osi_api::ModuleFn)?;
    let osi = Arc::new(Osi {
        layout,
        symbols,
        noted_slide: AtomicBool::new(false),
        failures: Failures::default(),
        seen: Mutex::new(HashMap::new()),
        cs: plugin.register("cs"),
        cr3: plugin.register("cr3"),
        cr4: plugin.register("cr4"),
        gs_base: plugin.register("gs_base"),
        k_gs_base: plugin.register("k_gs_base"),
        rax: plugin.register("rax"),
        rdi: plugin.register("rdi"),
        rbx: plugin.register("rbx"),
        exec: plugin.create_event(EXEC_EVENT)?,
        exit: plugin.create_event(EXIT_EVENT)?,
        switch: plugin.create_event(SWITCH_EVENT)?,
        counts: Default::default(),
        warned: AtomicBool::new(false),
        noted_kpti: AtomicBool::new(false),
        noted_la57: AtomicBool::new(false),
        walked: Default::default(),
    });

    // Observation points: the start of every block that contains a
    // `syscall` / `int 0x80` or starts right after one (a return site).
    // Block callbacks run before the instruction callbacks of the block,
    // whatever plugin registered those, and a block runs from its start
    // without an interrupt: what `osi` reads at the start is the task of
    // the syscall (or of the return) when another plugin's instruction
    // callback asks, even though QEMU runs the translation callbacks of
    // the plugins installed last first. Exits are seen on the instruction
    // itself (the number is in rax only then).
    let return_sites = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let translating = osi.clone();
    plugin.on_translate(move |tb| {
        let start = tb.vaddr();
        let mut observe = lock(&return_sites).contains(&start);
        for insn in tb.insns() {
            if insn.size() != 2 {
                continue;
            }
            let int80 = match insn.bytes().as_slice() {
                b if b == SYSCALL => false,
                b if b == INT80 => true,
                _ => continue,
            };
            observe = true;
            {
                let mut sites = lock(&return_sites);
                if sites.len() >= MAX_RETURN_SITES {
                    sites.clear();
                }
                sites.insert(insn.vaddr().wrapping_add(2));
            }
            let osi = translating.clone();
            insn.on_exec_fn(RegAccess::Read, move |vcpu| {
                // The i386 ABI (int 0x80 anywhere; syscall in a 32-bit
                // process, by its code segment, not by the instruction)
                // numbers exit 1 and exit_group 252.
                let compat = int80 || vcpu.read(osi.cs)? == USER32_CS;
                let (nr, code) = match (compat, vcpu.read(osi.rax)?) {
                    (false, nr @ (NR_EXIT | NR_EXIT_GROUP)) => (nr, vcpu.read(osi.rdi)?),
                    (true, 1) => (NR_EXIT, vcpu.read(osi.rbx)? & 0xffff_ffff),
                    (true, 252) => (NR_EXIT_GROUP, vcpu.read(osi.rbx)? & 0xffff_ffff),
                    _ => return Ok(()),
                };
                osi.exiting(vcpu, nr, code as i32 as i64);
                Ok(())
            });
        }
        if observe {
            let osi = translating.clone();
            tb.on_exec_fn(RegAccess::Read, move |vcpu| osi.observe(vcpu));
        }
    });
    plugin.on_exit(move |_| {
        let get = |i: usize| osi.counts[i].load(std::sync::atomic::Ordering::Relaxed);
        let modules = match lock(&SNAPSHOT).as_ref().and_then(|s| s.modules.clone()) {
            Some(m) => format!(
                "{} kernel modules at the last refresh{}{}\n",
                m.len(),
                if m.is_empty() { "" } else { ": " },
                m.iter()
                    .map(|m| format!("{} {:#x}+{:#x}", m.name(), m.base, m.size))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => "kernel modules unknown\n".to_owned(),
        };
        qemu_xplugin::outs(&format!("osi: {modules}"));
        qemu_xplugin::outs(&format!(
            "osi: {} exec, {} exit, {} task-switch events; {} reads through the kernel's page table (KPTI); {}\n",
            get(EXEC),
            get(EXIT),
            get(SWITCH),
            osi.walked.load(Ordering::Relaxed),
            osi.failures.report()
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(install);

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pid: i32, tgid: i32, mm: u64) -> Task {
        Task {
            task: 0xffff_8880_0000_1000,
            mm,
            pid,
            tgid,
            ppid: 1,
            flags: flags::KNOWN,
            comm: Default::default(),
        }
    }

    #[test]
    fn the_warning_names_the_cause() {
        let Ok(btf) = btf::btf_bytes(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../build/linux/vmlinux.btf"
        )) else {
            return;
        };
        let layout = btf::layout(&btf, &[]).expect("layout");
        let m = no_current_message(
            NoCurrent::Unreadable(0xff11_0000_0001_fb80),
            0x2a03000,
            true,
            Some(0x2a02000),
            &layout,
        );
        assert!(m.starts_with("cannot read the current task (CR3 0x2a03000, 5-level paging): the per-CPU variable at 0xff1100000001fb80 is mapped neither by the current page table nor by the kernel's (KPTI) at 0x2a02000;"), "{m}");
        let m = no_current_message(NoCurrent::Base(0), 0x1000, false, None, &layout);
        assert!(m.contains("4-level paging): the per-CPU base (GS base / KERNEL_GS_BASE) 0x0 is not a kernel address"), "{m}");
        let m = no_current_message(NoCurrent::NotAPointer(7), 0x1000, false, None, &layout);
        assert!(
            m.contains("current_task (per-CPU offset 0x1fb80) holds 0x7, not a task pointer"),
            "{m}"
        );
        assert!(m.contains("Linux 6.15+"), "{m}");
    }

    #[test]
    fn exec_is_an_mm_change_of_the_same_task() {
        let seen = |pid, tgid, mm| Seen { pid, tgid, mm };
        // First seen.
        assert_eq!(exec_since(None, &task(5, 5, 0x100)), None);
        // The same task, same mm; then a new mm: exec.
        assert_eq!(
            exec_since(Some(&seen(5, 5, 0x100)), &task(5, 5, 0x100)),
            Some(false)
        );
        assert_eq!(
            exec_since(Some(&seen(5, 5, 0x100)), &task(5, 5, 0x200)),
            Some(true)
        );
        // Thread 7 of process 5 calls execve: de_thread() gives it pid 5.
        assert_eq!(
            exec_since(Some(&seen(7, 5, 0x100)), &task(5, 5, 0x200)),
            Some(true)
        );
        // Another task at a reused address: another process, or a new
        // thread of the same one.
        assert_eq!(
            exec_since(Some(&seen(7, 5, 0x100)), &task(9, 9, 0x200)),
            None
        );
        assert_eq!(
            exec_since(Some(&seen(7, 5, 0x100)), &task(8, 5, 0x100)),
            None
        );
        // A kernel thread's mm 0 is no exec.
        assert_eq!(
            exec_since(Some(&seen(5, 5, 0x100)), &task(5, 5, 0)),
            Some(false)
        );
    }
}
