//! What the `osi` plugin offers other plugins: Linux guest introspection
//! (x86_64, system emulation) from the guest kernel's own BTF.
//!
//! Functions (import them with `Install::import(PLUGIN, NAME)`):
//!
//! - [`CURRENT`] ([`CurrentFn`]): the task a vCPU runs, as `osi` read it
//!   at the last point it observed that vCPU (the start of every block
//!   that holds a `syscall` / `int 0x80` instruction or starts right after
//!   one: a block callback, which runs before every instruction callback
//!   of the block, whichever plugin registered it);
//! - [`PROCESS_COUNT`] / [`PROCESS`]: the process list (threads included),
//!   as of the last refresh (at every exec only: a process that exited
//!   stays in it until the next exec);
//! - [`MAPPING_COUNT`] / [`MAPPING`]: the memory mappings of a process,
//!   read at the same refresh, for the processes some plugin asked for
//!   with [`WANT_MAPPINGS`] only (reading every process's at every exec
//!   costs thousands of guest reads per process).
//!
//! - [`MODULE_COUNT`] / [`MODULE`]: the loaded kernel modules, read at
//!   the same refresh (none when `osi` has no symbol table: `kernel=` a
//!   BTF blob).
//!
//! Events: [`EXEC_EVENT`] ([`ProcessStart`]), [`EXIT_EVENT`]
//! ([`ProcessExit`]), [`SWITCH_EVENT`] ([`TaskSwitch`]).
//!
//! Every value read from the guest may be unknown: `pid` -1, an empty
//! `comm` (`?` from [`Task::name`]), a zero address.

/// The provider's name.
pub const PLUGIN: &str = "osi";

/// Exported function: [`CurrentFn`].
pub const CURRENT: &str = "osi_current";
/// Exported function: [`CountFn`], number of tasks in the last process list.
pub const PROCESS_COUNT: &str = "osi_process_count";
/// Exported function: [`ProcessFn`], one task of the last process list.
pub const PROCESS: &str = "osi_process";
/// Exported function: [`MappingCountFn`], number of mappings of a process.
pub const MAPPING_COUNT: &str = "osi_mapping_count";
/// Exported function: [`MappingFn`], one mapping of a process.
pub const MAPPING: &str = "osi_mapping";
/// Exported function: [`CountFn`], number of loaded kernel modules at the
/// last refresh.
pub const MODULE_COUNT: &str = "osi_module_count";
/// Exported function: [`ModuleFn`], one kernel module.
pub const MODULE: &str = "osi_module";
/// Exported function: [`WantMappingsFn`], asks for the mappings of the
/// processes of a name.
pub const WANT_MAPPINGS: &str = "osi_want_mappings";

/// Event fired when a process starts a new program, with a
/// [`ProcessStart`], after the process list was refreshed.
pub const EXEC_EVENT: &str = "exec";
/// Event fired when a process calls `exit_group` (or its last thread
/// `exit`), with a [`ProcessExit`].
pub const EXIT_EVENT: &str = "exit";
/// Event fired when `osi` observes another task on a vCPU than the last
/// time it looked, with a [`TaskSwitch`].
pub const SWITCH_EVENT: &str = "switch";

/// `osi_current(vcpu_index)`: the task the vCPU runs.
pub type CurrentFn = extern "C" fn(u32) -> Task;
/// `osi_process_count()`, `osi_mapping_count(tgid)`.
pub type CountFn = extern "C" fn() -> u32;
/// `osi_process(index)`: a task of the last process list, in list order
/// (processes in creation order, each followed by its other threads); an
/// index out of range gives [`Task::default`] (`pid` -1).
pub type ProcessFn = extern "C" fn(u32) -> Task;
/// `osi_mapping_count(tgid)`: number of mappings of a process at the
/// last refresh (0: unknown process, a kernel thread, or a process whose
/// mappings nobody asked for with [`WantMappingsFn`]).
pub type MappingCountFn = extern "C" fn(i32) -> u32;
/// `osi_mapping(tgid, index)`: a mapping, by start address; out of range
/// gives [`Mapping::default`].
pub type MappingFn = extern "C" fn(i32, u32) -> Mapping;
/// `osi_module(index)`: a loaded kernel module, in the kernel's list order
/// (the last loaded first); out of range gives [`Module::default`].
pub type ModuleFn = extern "C" fn(u32) -> Module;
/// `osi_want_mappings(name)`: from the next refresh on, read the mappings
/// of the processes whose group leader is named `name` (an empty
/// [`Comm`]: of every process). Call it at install (with `requires =
/// ["osi"]`) or later; requests add up.
pub type WantMappingsFn = extern "C" fn(Comm);

/// A process name, NUL-padded like the kernel's `task_struct.comm`.
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Comm(pub [u8; 16]);

impl Comm {
    /// At most 15 bytes of `name`.
    pub fn new(name: &str) -> Self {
        let mut comm = [0u8; 16];
        let n = name.len().min(15);
        comm[..n].copy_from_slice(&name.as_bytes()[..n]);
        Self(comm)
    }

    /// The name as text (empty if unknown; bytes that are not UTF-8 are
    /// replaced).
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.0[..end])
    }
}

/// Bits of [`Task::flags`].
pub mod flags {
    /// The task was read (else every field is unknown).
    pub const KNOWN: u32 = 1;
    /// A kernel thread (`PF_KTHREAD`: no user address space).
    pub const KERNEL_THREAD: u32 = 2;
    /// The vCPU was in user mode when observed ([`super::CURRENT`] only).
    /// `osi` observes at user-mode points only (syscall instructions and
    /// the instructions after them), so a known current task has it.
    pub const USER_MODE: u32 = 4;
    /// The vCPU was in kernel mode when observed ([`super::CURRENT`] only).
    /// Not set by `osi` today (it does not observe in kernel mode); kept
    /// for providers that do.
    pub const KERNEL_MODE: u32 = 8;
}

/// A thread (a `task_struct`) as read from the guest kernel.
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task {
    /// Guest address of the `task_struct` (0: unknown).
    pub task: u64,
    /// Address of its `mm_struct` (0: a kernel thread, or unknown).
    pub mm: u64,
    /// The thread id (`task_struct.pid`); -1 unknown.
    pub pid: i32,
    /// The process id (`task_struct.tgid`); -1 unknown.
    pub tgid: i32,
    /// The parent process's id (`real_parent->tgid`); -1 unknown.
    pub ppid: i32,
    /// [`flags`] bits.
    pub flags: u32,
    /// `task_struct.comm`: the name the kernel has (empty: unknown).
    pub comm: Comm,
}

impl Default for Task {
    fn default() -> Self {
        Self {
            task: 0,
            mm: 0,
            pid: -1,
            tgid: -1,
            ppid: -1,
            flags: 0,
            comm: Comm::default(),
        }
    }
}

impl Task {
    /// Whether the task was read.
    pub fn is_known(&self) -> bool {
        self.flags & flags::KNOWN != 0
    }

    /// Whether it is a kernel thread.
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & flags::KERNEL_THREAD != 0
    }

    /// Its name, `?` when unknown.
    pub fn name(&self) -> String {
        match self.comm.as_str() {
            name if name.is_empty() => "?".to_owned(),
            name => name.into_owned(),
        }
    }
}

/// A memory mapping (`vm_area_struct`) of a process.
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// Address after the last.
    pub end: u64,
    /// `vm_flags` (`VM_READ` 1, `VM_WRITE` 2, `VM_EXEC` 4, `VM_SHARED` 8).
    pub vm_flags: u64,
    /// Offset in the file, in pages.
    pub pgoff: u64,
    /// The backing file's path (from the dentry names up to the root of
    /// its file system), NUL-terminated; empty for anonymous memory, `?`
    /// when unreadable; a path longer than 255 bytes is cut to end in
    /// `...`.
    pub path: [u8; 256],
}

impl Default for Mapping {
    fn default() -> Self {
        Self {
            start: 0,
            end: 0,
            vm_flags: 0,
            pgoff: 0,
            path: [0; 256],
        }
    }
}

/// A loaded kernel module (`struct module`).
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct Module {
    /// Address of its code (`core_layout.base`, or `mem[MOD_TEXT].base`
    /// from Linux 6.4).
    pub base: u64,
    /// Size of its code.
    pub size: u64,
    /// Its name, NUL-terminated.
    pub name: [u8; 64],
}

impl Default for Module {
    fn default() -> Self {
        Self {
            base: 0,
            size: 0,
            name: [0; 64],
        }
    }
}

impl Module {
    /// The name (`?` if unknown).
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(64);
        if end == 0 {
            "?".into()
        } else {
            String::from_utf8_lossy(&self.name[..end])
        }
    }
}

impl Mapping {
    /// The backing file's path, if any.
    pub fn path(&self) -> Option<std::borrow::Cow<'_, str>> {
        c_text(&self.path)
    }
}

/// Data of [`EXEC_EVENT`]: observed at the new program's first syscall
/// (the task's `mm` changed, or a task first seen with another `mm` than
/// its parent's, as init's).
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct ProcessStart {
    /// The vCPU.
    pub vcpu_index: u32,
    /// The task, with its new name.
    pub task: Task,
    /// The arguments (`mm_struct.arg_start..arg_end`), separated by
    /// spaces, truncated to 255 bytes, NUL-terminated; empty if unreadable.
    pub argv: [u8; 256],
}

impl ProcessStart {
    /// The arguments, space-separated.
    pub fn argv(&self) -> Option<std::borrow::Cow<'_, str>> {
        c_text(&self.argv)
    }
}

/// Data of [`EXIT_EVENT`]: observed on entry of `exit_group` (or `exit`).
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct ProcessExit {
    /// The vCPU.
    pub vcpu_index: u32,
    /// The exiting task.
    pub task: Task,
    /// The exit status it passes.
    pub code: i64,
    /// 1 for `exit_group` (the process), 0 for `exit` (the thread).
    pub group: u32,
}

/// Data of [`SWITCH_EVENT`].
#[repr(C)]
#[derive(qemu_xplugin::Shared, Clone, Copy, Debug)]
pub struct TaskSwitch {
    /// The vCPU.
    pub vcpu_index: u32,
    /// The task seen last time.
    pub from: Task,
    /// The task seen now.
    pub to: Task,
}

fn c_text(bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    (end > 0).then(|| String::from_utf8_lossy(&bytes[..end]))
}

/// Copies `text` into a NUL-terminated buffer, truncated.
pub fn fill(buf: &mut [u8], text: &[u8]) {
    let n = text.len().min(buf.len().saturating_sub(1));
    buf[..n].copy_from_slice(&text[..n]);
    for b in &mut buf[n..] {
        *b = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_task_reads_as_unknown() {
        let t = Task::default();
        assert!(!t.is_known());
        assert_eq!(t.name(), "?");
        assert_eq!(t.pid, -1);
    }

    #[test]
    fn text_fields_truncate_and_read_back() {
        let mut m = Mapping::default();
        assert!(m.path().is_none());
        fill(&mut m.path, b"/bin/busybox");
        assert_eq!(m.path().as_deref(), Some("/bin/busybox"));
        fill(&mut m.path, &[b'x'; 400]);
        assert_eq!(m.path().map(|p| p.len()), Some(255));
        assert_eq!(
            Comm::new("a-very-long-program-name").as_str(),
            "a-very-long-pro"
        );
    }
}
