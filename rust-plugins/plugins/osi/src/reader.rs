//! Readers of the guest kernel's structures. Every read is fallible and
//! bounded: a pointer outside the kernel's half of the address space, a
//! read that fails, a list that does not come back to its start within
//! [`MAX_TASKS`] steps, a cycle, give "unknown" and count a failure.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use osi_api::{flags, Comm, Mapping, Module, Task};

use crate::btf::{Layout, Threads};

/// Guest virtual memory, as the current vCPU sees it.
pub trait Mem {
    /// Fills `buf` from `addr`; false if any byte is unreadable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;

    /// A little-endian u64.
    fn u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// A little-endian i32.
    fn i32(&self, addr: u64) -> Option<i32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b).then(|| i32::from_le_bytes(b))
    }
}

/// Most tasks a list walk visits.
pub const MAX_TASKS: usize = 32768;
/// Most threads of one process.
pub const MAX_THREADS: usize = 4096;
/// Most maple tree nodes of one address space.
pub const MAX_NODES: usize = 8192;
/// Deepest maple tree (the kernel's `MAPLE_HEIGHT_MAX` is 31).
pub const MAX_DEPTH: u32 = 31;
/// Most kernel modules.
pub const MAX_MODULES: usize = 4096;
/// Most path components of a file name.
pub const MAX_COMPONENTS: usize = 64;

/// `PF_KTHREAD` in `task_struct.flags`.
const PF_KTHREAD: u32 = 0x0020_0000;

/// What failed, counted for the report at exit.
#[derive(Default)]
pub struct Failures {
    /// The current task pointer (per-CPU base or the pointer itself).
    pub current: AtomicU64,
    /// A `task_struct` read.
    pub task: AtomicU64,
    /// A task or thread list walk (unreadable, too long, a cycle).
    pub list: AtomicU64,
    /// A maple tree walk or a `vm_area_struct`.
    pub maps: AtomicU64,
    /// A file name.
    pub path: AtomicU64,
    /// A process's arguments.
    pub argv: AtomicU64,
    /// The list of kernel modules.
    pub modules: AtomicU64,
}

impl Failures {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for the log.
    pub fn report(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "failed reads: current task {}, task_struct {}, task lists {}, mappings {}, file names {}, argv {}, modules {}",
            get(&self.current),
            get(&self.task),
            get(&self.list),
            get(&self.maps),
            get(&self.path),
            get(&self.argv),
            get(&self.modules)
        )
    }
}

/// Lowest kernel address with 4-level paging (48-bit virtual addresses).
pub const KERNEL_START: u64 = 0xffff_8000_0000_0000;
/// Lowest kernel address with 5-level paging (`CR4.LA57`: 57-bit virtual
/// addresses; the direct map and per-CPU areas are at `0xff11...`).
pub const KERNEL_START_LA57: u64 = 0xff00_0000_0000_0000;

/// The highest kernel pointer: above are the error codes -4095..-1
/// (`ERR_PTR`, `IS_ERR_VALUE`: `MAX_ERRNO` 4095).
pub const KERNEL_END: u64 = 0xffff_ffff_ffff_f000;

/// Whether `addr` can be a kernel pointer: the upper half of the
/// address space (larger with 5-level paging, `la57`), error codes
/// excluded.
pub fn kernel_ptr(addr: u64, la57: bool) -> bool {
    let start = if la57 {
        KERNEL_START_LA57
    } else {
        KERNEL_START
    };
    (start..=KERNEL_END).contains(&addr)
}

/// Copies `text` into the NUL-terminated `buf`; a text too long ends in
/// `...` (not silently cut).
pub fn fill_marked(buf: &mut [u8], text: &[u8]) {
    let room = buf.len().saturating_sub(1);
    if text.len() <= room {
        osi_api::fill(buf, text);
    } else {
        let mut cut = text[..room.saturating_sub(3)].to_vec();
        cut.extend_from_slice(b"...");
        osi_api::fill(buf, &cut);
    }
}

/// `base + offset`, None on overflow: `base` comes from the guest.
fn at(base: u64, offset: u64) -> Option<u64> {
    base.checked_add(offset)
}

/// Why the current task could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoCurrent {
    /// The per-CPU base is not a kernel address.
    Base(u64),
    /// The per-CPU variable at this address is unreadable.
    Unreadable(u64),
    /// It holds this, which is not a kernel pointer.
    NotAPointer(u64),
}

/// Reads the kernel through `mem` with `layout`, counting failures.
pub struct Reader<'a, M: Mem> {
    /// Guest memory.
    pub mem: &'a M,
    /// The layouts.
    pub layout: &'a Layout,
    /// Failure counters.
    pub failures: &'a Failures,
    /// 5-level paging (`CR4.LA57`): the kernel's half is larger.
    pub la57: bool,
}

impl<M: Mem> Reader<'_, M> {
    fn kernel_ptr(&self, addr: u64) -> bool {
        kernel_ptr(addr, self.la57)
    }

    /// The current task pointer of the CPU whose per-CPU base is `base`.
    pub fn current(&self, base: u64) -> Result<u64, NoCurrent> {
        let task = if !self.kernel_ptr(base) {
            Err(NoCurrent::Base(base))
        } else {
            match at(base, self.layout.current_task) {
                None => Err(NoCurrent::Base(base)),
                Some(slot) => match self.mem.u64(slot) {
                    None => Err(NoCurrent::Unreadable(slot)),
                    Some(t) if !self.kernel_ptr(t) => Err(NoCurrent::NotAPointer(t)),
                    Some(t) => Ok(t),
                },
            }
        };
        if task.is_err() {
            Failures::count(&self.failures.current);
        }
        task
    }

    /// The task at `addr`; unknown fields stay as in [`Task::default`].
    pub fn task(&self, addr: u64) -> Task {
        match self.try_task(addr) {
            Some(task) => task,
            None => {
                Failures::count(&self.failures.task);
                Task {
                    task: addr,
                    ..Task::default()
                }
            }
        }
    }

    fn try_task(&self, addr: u64) -> Option<Task> {
        if !self.kernel_ptr(addr) {
            return None;
        }
        let t = &self.layout.task;
        // One read of the span covering every member.
        let fields = [
            t.pid,
            t.tgid,
            t.comm + 16,
            t.flags,
            t.mm + 8,
            t.real_parent + 8,
        ];
        let lo = fields.iter().copied().min()?.min(t.pid);
        let hi = fields.iter().copied().max()?;
        let mut buf = vec![0u8; (hi - lo) as usize + 8];
        if !self.mem.read(at(addr, lo)?, &mut buf) {
            return None;
        }
        let field = |off: u64, len: usize| &buf[(off - lo) as usize..(off - lo) as usize + len];
        let u32_at = |off| u32::from_le_bytes(field(off, 4).try_into().expect("4 bytes"));
        let u64_at = |off| u64::from_le_bytes(field(off, 8).try_into().expect("8 bytes"));
        let mut comm = Comm::default();
        comm.0.copy_from_slice(field(t.comm, 16));
        // The kernel NUL-terminates comm: bytes after the first NUL are
        // not part of the name.
        if let Some(end) = comm.0.iter().position(|&b| b == 0) {
            comm.0[end..].fill(0);
        }
        let task_flags = u32_at(t.flags);
        let parent = u64_at(t.real_parent);
        let ppid = if self.kernel_ptr(parent) {
            at(parent, t.tgid)
                .and_then(|a| self.mem.i32(a))
                .unwrap_or(-1)
        } else {
            -1
        };
        let mut flags = flags::KNOWN;
        if task_flags & PF_KTHREAD != 0 {
            flags |= flags::KERNEL_THREAD;
        }
        Some(Task {
            task: addr,
            mm: u64_at(t.mm),
            pid: u32_at(t.pid) as i32,
            tgid: u32_at(t.tgid) as i32,
            ppid,
            flags,
            comm,
        })
    }

    /// The `mm` of the parent of task `addr`.
    pub fn parent_mm(&self, addr: u64) -> Option<u64> {
        let parent = self.mem.u64(at(addr, self.layout.task.real_parent)?)?;
        if !self.kernel_ptr(parent) {
            return None;
        }
        self.mem.u64(at(parent, self.layout.task.mm)?)
    }

    /// Whether task `addr` leads its thread group.
    pub fn is_leader(&self, addr: u64) -> bool {
        at(addr, self.layout.task.group_leader).and_then(|a| self.mem.u64(a)) == Some(addr)
    }

    /// Follows a circular `list_head` from `head` (its address), giving the
    /// addresses of the entries (`next` minus `member`), excluding the
    /// head itself when `head_is_entry` is false. None if the list does not
    /// close within `max` steps or loops elsewhere.
    fn list(&self, head: u64, member: u64, max: usize, head_is_entry: bool) -> Option<Vec<u64>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        if head_is_entry {
            out.push(head.checked_sub(member)?);
        }
        let mut at = head;
        loop {
            let next = self.mem.u64(at)?;
            if !self.kernel_ptr(next) {
                return None;
            }
            if next == head {
                return Some(out);
            }
            if !seen.insert(next) || out.len() >= max {
                return None;
            }
            out.push(next.checked_sub(member)?);
            at = next;
        }
    }

    /// Every task: the thread group leaders from the `tasks` list (which
    /// goes through `init_task`, so starting from any leader reaches all
    /// of them), each followed by its other threads. Starts from `from`'s
    /// group leader. Rotated to begin at pid 0 (`init_task`). None (and a
    /// failure counted) if the list cannot be walked.
    pub fn all_tasks(&self, from: u64) -> Option<Vec<Task>> {
        let walk = || -> Option<Vec<Task>> {
            let leader = self.mem.u64(at(from, self.layout.task.group_leader)?)?;
            if !self.kernel_ptr(leader) {
                return None;
            }
            let t = &self.layout.task;
            let leaders = self.list(at(leader, t.tasks)?, t.tasks, MAX_TASKS, true)?;
            let mut tasks: Vec<Task> = Vec::new();
            for leader in leaders {
                let task = self.task(leader);
                tasks.push(task);
                for thread in self.threads(leader).unwrap_or_default() {
                    if thread != leader {
                        tasks.push(self.task(thread));
                    }
                }
                // Threads included, at most MAX_TASKS in all.
                if tasks.len() > MAX_TASKS {
                    return None;
                }
            }
            if let Some(zero) = tasks.iter().position(|t| t.pid == 0 && t.is_known()) {
                tasks.rotate_left(zero);
            }
            Some(tasks)
        };
        let tasks = walk();
        if tasks.is_none() {
            Failures::count(&self.failures.list);
        }
        tasks
    }

    /// The threads of the process led by `leader` (the leader included).
    fn threads(&self, leader: u64) -> Option<Vec<u64>> {
        let threads = match self.layout.task.threads {
            Threads::SignalHead { signal, head, node } => {
                let signal = at(leader, signal)
                    .and_then(|a| self.mem.u64(a))
                    .filter(|&s| self.kernel_ptr(s));
                signal.and_then(|s| self.list(at(s, head)?, node, MAX_THREADS, false))
            }
            Threads::ThreadGroup { node } => {
                at(leader, node).and_then(|a| self.list(a, node, MAX_THREADS, true))
            }
        };
        if threads.is_none() {
            Failures::count(&self.failures.list);
        }
        threads
    }

    /// The arguments of the process whose `mm` is `mm`, read through the
    /// current address space (so: of the current process), NULs turned
    /// into spaces, at most `max` bytes.
    pub fn argv(&self, mm: u64, max: usize) -> Option<Vec<u8>> {
        let read = || -> Option<Vec<u8>> {
            if !self.kernel_ptr(mm) {
                return None;
            }
            let start = self.mem.u64(at(mm, self.layout.mm.arg_start)?)?;
            let end = self.mem.u64(at(mm, self.layout.mm.arg_end)?)?;
            if end <= start || self.kernel_ptr(start) {
                return None;
            }
            let len = usize::try_from(end - start).map_or(max, |n| n.min(max));
            let mut buf = vec![0u8; len];
            if !self.mem.read(start, &mut buf) {
                return None;
            }
            while buf.last() == Some(&0) {
                buf.pop();
            }
            for b in &mut buf {
                if *b == 0 {
                    *b = b' ';
                }
            }
            Some(buf)
        };
        let argv = read();
        if argv.is_none() {
            Failures::count(&self.failures.argv);
        }
        argv
    }

    /// The memory mappings of address space `mm`, by start address: the
    /// leaves of its maple tree (`mm_struct.mm_mt`), each entry a
    /// `vm_area_struct` whose `vm_mm` is `mm`.
    pub fn mappings(&self, mm: u64) -> Option<Vec<Mapping>> {
        let maps = self.try_mappings(mm);
        if maps.is_none() {
            Failures::count(&self.failures.maps);
        }
        maps
    }

    fn try_mappings(&self, mm: u64) -> Option<Vec<Mapping>> {
        if !self.kernel_ptr(mm) {
            return None;
        }
        let root = self.mem.u64(at(mm, self.layout.mm.mt_root)?)?;
        let mut vmas = Vec::new();
        let mut nodes = 0usize;
        let mut seen = HashSet::new();
        self.maple_root(root, &mut nodes, &mut seen, &mut vmas)?;
        let mut maps = Vec::new();
        let v = &self.layout.vma;
        for vma in vmas {
            let mut buf = vec![0u8; v.size as usize];
            if !self.mem.read(vma, &mut buf) {
                return None;
            }
            let u64_at = |off: u64| {
                u64::from_le_bytes(buf[off as usize..off as usize + 8].try_into().expect("8"))
            };
            if u64_at(v.mm) != mm || u64_at(v.start) >= u64_at(v.end) {
                tracing::debug!(
                    "vma {vma:#x}: vm_mm {:#x} (mm {mm:#x}), {:#x}-{:#x}",
                    u64_at(v.mm),
                    u64_at(v.start),
                    u64_at(v.end)
                );
                // Not a VMA of this address space: the tree changed under
                // us, or a stale slot.
                return None;
            }
            let mut map = Mapping {
                start: u64_at(v.start),
                end: u64_at(v.end),
                vm_flags: u64_at(v.flags),
                pgoff: u64_at(v.pgoff),
                ..Mapping::default()
            };
            let file = u64_at(v.file);
            if file != 0 {
                let path = self.file_path(file);
                fill_marked(&mut map.path, path.as_deref().unwrap_or("?").as_bytes());
            }
            maps.push(map);
        }
        maps.sort_by_key(|m| m.start);
        if maps.windows(2).any(|w| w[0].end > w[1].start) {
            tracing::debug!("overlapping VMAs of mm {mm:#x}");
            return None;
        }
        Some(maps)
    }

    /// Collects the entries (VMAs) of the maple tree whose `ma_root` is
    /// `root`. Encoding (include/linux/maple_tree.h, lib/maple_tree.c): a
    /// root that is a node has bits 0-1 = 2 (`MAPLE_ROOT_NODE`, as
    /// `xa_is_node`: above 4096); else it is the only entry. A node
    /// pointer, the root's and the slots' of internal nodes, is
    /// `node | type << 3 | 4`: the node at `pointer & !0xff`, its type in
    /// bits 3-6: 0 dense, 1 leaf_64, 2 range_64, 3 arange_64.
    fn maple_root(
        &self,
        root: u64,
        nodes: &mut usize,
        seen: &mut HashSet<u64>,
        out: &mut Vec<u64>,
    ) -> Option<()> {
        if root & 3 == 2 && root > 4096 {
            self.maple(root, u64::MAX, 0, nodes, seen, out)
        } else if root == 0 {
            Some(())
        } else {
            self.maple_leaf_entry(root, out)
        }
    }

    /// Collects the entries of the maple subtree at node pointer `entry`,
    /// covering indices up to `max`.
    fn maple(
        &self,
        entry: u64,
        max: u64,
        depth: u32,
        nodes: &mut usize,
        seen: &mut HashSet<u64>,
        out: &mut Vec<u64>,
    ) -> Option<()> {
        let node = entry & !0xff;
        *nodes += 1;
        if !self.kernel_ptr(node) || depth > MAX_DEPTH || *nodes > MAX_NODES || !seen.insert(node) {
            return None;
        }
        let m = &self.layout.maple;
        let mut buf = vec![0u8; m.node_size as usize];
        if !self.mem.read(node, &mut buf) {
            return None;
        }
        let word = |off: u64| -> Option<u64> {
            Some(u64::from_le_bytes(
                buf.get(off as usize..off as usize + 8)?.try_into().ok()?,
            ))
        };
        let kind = (entry >> 3) & 0xf;
        let (pivot, pivots, slot, slots, meta_end) = match kind {
            1 | 2 => (
                m.r64_pivot,
                m.r64_pivots,
                m.r64_slot,
                m.r64_slots,
                m.r64_meta_end,
            ),
            3 => (
                m.a64_pivot,
                m.a64_pivots,
                m.a64_slot,
                m.a64_slots,
                m.a64_meta_end,
            ),
            // Dense nodes are not used for VMAs.
            _ => {
                tracing::debug!("maple node {entry:#x}: dense");
                return None;
            }
        };
        let meta = u64::from(*buf.get(meta_end as usize)?);
        // ma_data_end(): the last used slot.
        let last_pivot = word(pivot + 8 * (pivots - 1))?;
        let end = if kind == 3 || last_pivot == 0 {
            meta
        } else if last_pivot == max {
            pivots - 1
        } else {
            pivots
        };
        if end >= slots {
            tracing::debug!("maple node {entry:#x}: end {end} of {slots} slots");
            return None;
        }
        for i in 0..=end {
            let child = word(slot + 8 * i)?;
            let child_max = if i < pivots {
                match word(pivot + 8 * i)? {
                    0 if i > 0 => max,
                    p => p,
                }
            } else {
                max
            };
            if child == 0 {
                continue;
            }
            if kind == 1 {
                self.maple_leaf_entry(child, out)?;
            } else {
                self.maple(child, child_max, depth + 1, nodes, seen, out)?;
            }
        }
        Some(())
    }

    fn maple_leaf_entry(&self, entry: u64, out: &mut Vec<u64>) -> Option<()> {
        match entry & 3 {
            0 if self.kernel_ptr(entry) && entry & 7 == 0 => out.push(entry),
            // XA_ZERO_ENTRY and other reserved values: no VMA.
            2 if entry <= 4096 => {}
            _ => {
                tracing::debug!("maple leaf entry {entry:#x}");
                return None;
            }
        }
        Some(())
    }

    /// The kernel modules on the list whose head (`modules`) is at `head`.
    /// None (and a failure counted) if the list cannot be walked, or the
    /// BTF has no `struct module` layout.
    pub fn modules(&self, head: u64) -> Option<Vec<Module>> {
        let read = || -> Option<Vec<Module>> {
            let m = self.layout.module.as_ref()?;
            let entries = self.list(head, m.list, MAX_MODULES, false)?;
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let mut module = Module::default();
                let len = usize::try_from(m.name_len).ok()?.min(63);
                if !self.mem.read(at(e, m.name)?, &mut module.name[..len]) {
                    return None;
                }
                module.name[len..].fill(0);
                if let Some(end) = module.name.iter().position(|&b| b == 0) {
                    module.name[end..].fill(0);
                }
                module.base = self.mem.u64(at(e, m.base)?)?;
                module.size = u64::from(self.mem.i32(at(e, m.size)?)? as u32);
                out.push(module);
            }
            Some(out)
        };
        let modules = read();
        if modules.is_none() {
            Failures::count(&self.failures.modules);
        }
        modules
    }

    /// The path of the file at `file` (`struct file`): the dentry names up
    /// to the root of its file system (mount points are not crossed).
    pub fn file_path(&self, file: u64) -> Option<String> {
        let path = self.try_file_path(file);
        if path.is_none() {
            Failures::count(&self.failures.path);
        }
        path
    }

    fn try_file_path(&self, file: u64) -> Option<String> {
        if !self.kernel_ptr(file) {
            return None;
        }
        let mut dentry = self.mem.u64(at(file, self.layout.file_dentry)?)?;
        let mut parts: Vec<String> = Vec::new();
        for _ in 0..MAX_COMPONENTS {
            if !self.kernel_ptr(dentry) {
                return None;
            }
            let parent = self.mem.u64(at(dentry, self.layout.dentry_parent)?)?;
            if parent == dentry {
                parts.reverse();
                return Some(format!("/{}", parts.join("/")));
            }
            let name = self.mem.u64(at(dentry, self.layout.dentry_name)?)?;
            parts.push(self.c_string(name, 256)?);
            dentry = parent;
        }
        None
    }

    /// A NUL-terminated string of at most `max` bytes.
    fn c_string(&self, addr: u64, max: usize) -> Option<String> {
        if !self.kernel_ptr(addr) {
            return None;
        }
        let mut out = Vec::new();
        let mut chunk = [0u8; 32];
        while out.len() < max {
            let here = at(addr, out.len() as u64)?;
            // Do not cross into an unmapped page with a larger read.
            let n = chunk.len().min(4096 - (here & 0xfff) as usize);
            if !self.mem.read(here, &mut chunk[..n]) {
                return None;
            }
            match chunk[..n].iter().position(|&b| b == 0) {
                Some(end) => {
                    out.extend_from_slice(&chunk[..end]);
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                None => out.extend_from_slice(&chunk[..n]),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::btf::{MapleLayout, MmLayout, TaskLayout, VmaLayout};

    /// Guest memory made of regions; a read outside them fails.
    #[derive(Default)]
    struct Fake(BTreeMap<u64, Vec<u8>>);

    impl Fake {
        fn put(&mut self, addr: u64, bytes: &[u8]) {
            // Writes into an existing region when inside one.
            if let Some((start, region)) = self.0.range_mut(..=addr).next_back() {
                let at = (addr - start) as usize;
                if at + bytes.len() <= region.len() {
                    region[at..at + bytes.len()].copy_from_slice(bytes);
                    return;
                }
            }
            self.0.insert(addr, bytes.to_vec());
        }
        fn put_u64(&mut self, addr: u64, v: u64) {
            self.put(addr, &v.to_le_bytes());
        }
        fn zeroed(&mut self, addr: u64, len: usize) {
            self.0.insert(addr, vec![0; len]);
        }
    }

    impl Mem for Fake {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            match self.0.range(..=addr).next_back() {
                Some((start, region)) => {
                    let at = (addr - start) as usize;
                    match region.get(at..at + buf.len()) {
                        Some(bytes) => {
                            buf.copy_from_slice(bytes);
                            true
                        }
                        None => false,
                    }
                }
                None => false,
            }
        }
    }

    const TASK: usize = 0x200;

    fn layout() -> Layout {
        Layout {
            current_task: 0x10,
            current_task_name: "current_task",
            task: TaskLayout {
                size: TASK as u64,
                pid: 0x40,
                tgid: 0x44,
                comm: 0x100,
                flags: 0x08,
                tasks: 0x20,
                mm: 0x30,
                real_parent: 0x50,
                group_leader: 0x58,
                threads: Threads::ThreadGroup { node: 0x60 },
            },
            mm: MmLayout {
                mt_root: 0x8,
                arg_start: 0x10,
                arg_end: 0x18,
            },
            maple: MapleLayout {
                node_size: 256,
                r64_pivot: 8,
                r64_pivots: 15,
                r64_slot: 128,
                r64_slots: 16,
                r64_meta_end: 248,
                a64_pivot: 8,
                a64_pivots: 9,
                a64_slot: 80,
                a64_slots: 10,
                a64_meta_end: 240,
            },
            vma: VmaLayout {
                size: 0x40,
                start: 0,
                end: 8,
                mm: 0x10,
                flags: 0x18,
                pgoff: 0x20,
                file: 0x28,
            },
            file_dentry: 0x18,
            dentry_parent: 0x18,
            dentry_name: 0x28,
            module: Some(crate::btf::ModuleLayout {
                list: 0x8,
                name: 0x18,
                name_len: 56,
                base: 0x60,
                size: 0x68,
            }),
        }
    }

    const K: u64 = 0xffff_8880_0000_0000;

    /// A task at `addr`, alone in its thread group, in no list yet.
    fn task(mem: &mut Fake, addr: u64, pid: i32, parent: u64, comm: &str) {
        let l = layout().task;
        mem.zeroed(addr, TASK);
        mem.put(addr + l.pid, &pid.to_le_bytes());
        mem.put(addr + l.tgid, &pid.to_le_bytes());
        mem.put(addr + l.comm, comm.as_bytes());
        mem.put_u64(addr + l.real_parent, parent);
        mem.put_u64(addr + l.group_leader, addr);
        mem.put_u64(addr + 0x60, addr + 0x60);
    }

    /// Links the `tasks` lists of `addrs` in a circle.
    fn link(mem: &mut Fake, addrs: &[u64]) {
        let off = layout().task.tasks;
        for (i, a) in addrs.iter().enumerate() {
            let next = addrs[(i + 1) % addrs.len()];
            mem.put_u64(a + off, next + off);
        }
    }

    fn reader<'a>(mem: &'a Fake, layout: &'a Layout, failures: &'a Failures) -> Reader<'a, Fake> {
        Reader {
            mem,
            layout,
            failures,
            la57: false,
        }
    }

    #[test]
    fn the_task_list_starts_at_pid_0_and_has_every_task() {
        let mut mem = Fake::default();
        let (a, b, c) = (K + 0x1000, K + 0x2000, K + 0x3000);
        task(&mut mem, a, 0, a, "swapper/0");
        task(&mut mem, b, 1, a, "init");
        task(&mut mem, c, 7, b, "sh");
        link(&mut mem, &[a, b, c]);
        let (l, f) = (layout(), Failures::default());
        let r = reader(&mem, &l, &f);
        let tasks = r.all_tasks(c).expect("a list");
        let pids: Vec<(i32, i32, String)> =
            tasks.iter().map(|t| (t.pid, t.ppid, t.name())).collect();
        assert_eq!(
            pids,
            [
                (0, 0, "swapper/0".into()),
                (1, 0, "init".into()),
                (7, 1, "sh".into())
            ]
        );
        assert!(f
            .report()
            .ends_with("task lists 0, mappings 0, file names 0, argv 0, modules 0"));
    }

    #[test]
    fn a_cycle_or_a_bad_pointer_in_the_list_is_unknown_and_counted() {
        let mut mem = Fake::default();
        let (a, b, c) = (K + 0x1000, K + 0x2000, K + 0x3000);
        for (addr, pid) in [(a, 0), (b, 1), (c, 2)] {
            task(&mut mem, addr, pid, a, "t");
        }
        // a -> b -> c -> b: never back to a.
        link(&mut mem, &[a, b, c]);
        let off = layout().task.tasks;
        mem.put_u64(c + off, b + off);
        let (l, f) = (layout(), Failures::default());
        assert!(reader(&mem, &l, &f).all_tasks(a).is_none());
        assert_eq!(f.list.load(Ordering::Relaxed), 1);
        // A user-space pointer in the list.
        mem.put_u64(c + off, 0x1000);
        assert!(reader(&mem, &l, &f).all_tasks(a).is_none());
        assert_eq!(f.list.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn an_unreadable_task_is_unknown_and_counted() {
        let mem = Fake::default();
        let (l, f) = (layout(), Failures::default());
        let r = reader(&mem, &l, &f);
        let t = r.task(K + 0x5000);
        assert!(!t.is_known());
        assert_eq!((t.pid, t.tgid, t.ppid, t.name()), (-1, -1, -1, "?".into()));
        assert_eq!(
            r.current(0x1234),
            Err(NoCurrent::Base(0x1234)),
            "a per-CPU base in user space"
        );
        assert_eq!(r.current(K), Err(NoCurrent::Unreadable(K + 0x10)));
        assert_eq!(f.task.load(Ordering::Relaxed), 1);
        assert_eq!(f.current.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn error_pointers_and_addresses_near_the_top_are_unknown_not_a_panic() {
        let mut mem = Fake::default();
        let a = K + 0x1000;
        // real_parent = ERR_PTR(-ENOMEM), then a pointer near the top.
        task(&mut mem, a, 7, 0xffff_ffff_ffff_fff4, "t");
        let (mut l, f) = (layout(), Failures::default());
        let r = reader(&mem, &l, &f);
        let t = r.task(a);
        assert!(t.is_known());
        assert_eq!((t.pid, t.ppid), (7, -1));
        assert_eq!(r.parent_mm(a), None);
        mem.put_u64(a + l.task.real_parent, 0xffff_ffff_ffff_ff00);
        assert_eq!(reader(&mem, &l, &f).task(a).ppid, -1);
        assert!(!kernel_ptr(0xffff_ffff_ffff_f001, false));
        assert!(kernel_ptr(KERNEL_END, false));
        // The highest kernel pointer plus offsets that wrap around.
        l.current_task = 0x1000;
        l.task.group_leader = 0x2000;
        l.task.real_parent = 0x1800;
        l.mm.arg_start = 0x1000;
        l.mm.mt_root = 0x1000;
        l.file_dentry = 0x1000;
        let r = reader(&mem, &l, &f);
        assert!(!r.is_leader(KERNEL_END));
        assert_eq!(r.parent_mm(KERNEL_END), None);
        assert!(r.all_tasks(KERNEL_END).is_none());
        assert!(r.argv(KERNEL_END, 16).is_none());
        assert!(r.file_path(KERNEL_END).is_none());
        assert!(r.mappings(KERNEL_END).is_none());
        assert!(!r.task(KERNEL_END).is_known());
        assert_eq!(r.current(KERNEL_END), Err(NoCurrent::Base(KERNEL_END)));
        // A list whose next pointer is an error code.
        let l = layout();
        mem.put_u64(a + l.task.tasks, 0xffff_ffff_ffff_fffe);
        assert!(reader(&mem, &l, &f).all_tasks(a).is_none());
    }

    /// A VMA at `addr` of `mm` for `start..end`, with `file`.
    fn vma(mem: &mut Fake, addr: u64, mm: u64, start: u64, end: u64, file: u64) {
        mem.zeroed(addr, 0x40);
        mem.put_u64(addr, start);
        mem.put_u64(addr + 8, end);
        mem.put_u64(addr + 0x10, mm);
        mem.put_u64(addr + 0x18, 5);
        mem.put_u64(addr + 0x28, file);
    }

    /// A dentry named `name` under `parent` (itself when 0).
    fn dentry(mem: &mut Fake, addr: u64, parent: u64, name: &str) {
        mem.zeroed(addr, 0x40);
        mem.put_u64(addr + 0x18, if parent == 0 { addr } else { parent });
        mem.put_u64(addr + 0x28, addr + 0x1000);
        mem.zeroed(addr + 0x1000, 64);
        mem.put(addr + 0x1000, name.as_bytes());
    }

    #[test]
    fn mappings_from_a_two_level_maple_tree_with_file_names() {
        let mut mem = Fake::default();
        let mm = K + 0x10_0000;
        mem.zeroed(mm, 0x40);
        // /bin/busybox
        let (root, bin, busybox, file) =
            (K + 0x20_0000, K + 0x21_0000, K + 0x22_0000, K + 0x23_0000);
        dentry(&mut mem, root, 0, "/");
        dentry(&mut mem, bin, root, "bin");
        dentry(&mut mem, busybox, bin, "busybox");
        mem.zeroed(file, 0x40);
        mem.put_u64(file + 0x18, busybox);
        // VMAs 0x400000-0x401000 (file), 0x500000-0x501000, 0x7000000-...
        let vmas = [K + 0x30_0000, K + 0x30_1000, K + 0x30_2000];
        vma(&mut mem, vmas[0], mm, 0x40_0000, 0x40_1000, file);
        vma(&mut mem, vmas[1], mm, 0x50_0000, 0x50_1000, 0);
        vma(&mut mem, vmas[2], mm, 0x700_0000, 0x700_1000, 0);
        // Two leaves (leaf_64) under an arange_64 root.
        let (n_root, leaf1, leaf2) = (K + 0x40_0000, K + 0x40_0100, K + 0x40_0200);
        for n in [n_root, leaf1, leaf2] {
            mem.zeroed(n, 256);
        }
        // leaf1: [0, 0x3fffff] gap, [0x400000, 0x400fff] vma0, up to
        // 0x4fffff gap; end = 2 (meta, last pivot 0).
        mem.put_u64(leaf1 + 8, 0x3f_ffff);
        mem.put_u64(leaf1 + 16, 0x40_0fff);
        mem.put_u64(leaf1 + 24, 0x4f_ffff);
        mem.put_u64(leaf1 + 128 + 8, vmas[0]);
        mem.put(leaf1 + 248, &[2]);
        // leaf2: vma1, gap, vma2, gap to the end.
        mem.put_u64(leaf2 + 8, 0x50_0fff);
        mem.put_u64(leaf2 + 16, 0x6ff_ffff);
        mem.put_u64(leaf2 + 24, 0x700_0fff);
        mem.put_u64(leaf2 + 128, vmas[1]);
        mem.put_u64(leaf2 + 128 + 16, vmas[2]);
        mem.put(leaf2 + 248, &[3]);
        // The root: two children, node | leaf_64 << 3 | 4.
        mem.put_u64(n_root + 8, 0x4f_ffff);
        mem.put_u64(n_root + 80, leaf1 | 1 << 3 | 4);
        mem.put_u64(n_root + 88, leaf2 | 1 << 3 | 4);
        mem.put(n_root + 240, &[1]);
        // ma_root: node | arange_64 << 3 | 4 | MAPLE_ROOT_NODE.
        mem.put_u64(mm + 8, n_root | 3 << 3 | 4 | 2);

        let (l, f) = (layout(), Failures::default());
        let r = reader(&mem, &l, &f);
        let maps = r.mappings(mm).expect("mappings");
        let got: Vec<(u64, u64, String)> = maps
            .iter()
            .map(|m| (m.start, m.end, m.path().unwrap_or_default().into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                (0x40_0000, 0x40_1000, "/bin/busybox".to_owned()),
                (0x50_0000, 0x50_1000, String::new()),
                (0x700_0000, 0x700_1000, String::new()),
            ]
        );

        // A VMA of another mm in the tree: the tree changed under us.
        mem.put_u64(vmas[2] + 0x10, mm + 8);
        assert!(reader(&mem, &l, &f).mappings(mm).is_none());
        // A node that is its own child: a cycle, not a hang.
        mem.put_u64(vmas[2] + 0x10, mm);
        mem.put_u64(n_root + 88, n_root | 3 << 3 | 4);
        assert!(reader(&mem, &l, &f).mappings(mm).is_none());
        assert_eq!(f.maps.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn kernel_modules_from_their_list() {
        let mut mem = Fake::default();
        let head = K + 0x9000;
        let (a, b) = (K + 0xa000, K + 0xb000);
        for (m, name, base) in [
            (a, "e1000", 0xffff_ffff_c000_0000u64),
            (b, "virtio_blk", 0xffff_ffff_c001_0000),
        ] {
            mem.zeroed(m, 0x100);
            mem.put(m + 0x18, name.as_bytes());
            mem.put_u64(m + 0x60, base);
            mem.put(m + 0x68, &0x3000u32.to_le_bytes());
        }
        mem.zeroed(head, 16);
        mem.put_u64(head, a + 0x8);
        mem.put_u64(a + 0x8, b + 0x8);
        mem.put_u64(b + 0x8, head);
        let (l, f) = (layout(), Failures::default());
        let r = reader(&mem, &l, &f);
        let got: Vec<(String, u64, u64)> = r
            .modules(head)
            .expect("modules")
            .iter()
            .map(|m| (m.name().into_owned(), m.base, m.size))
            .collect();
        assert_eq!(
            got,
            [
                ("e1000".to_owned(), 0xffff_ffff_c000_0000, 0x3000),
                ("virtio_blk".to_owned(), 0xffff_ffff_c001_0000, 0x3000)
            ]
        );
        // An empty list: the head points at itself.
        mem.put_u64(head, head);
        assert_eq!(reader(&mem, &l, &f).modules(head).map(|m| m.len()), Some(0));
        // A wrong head (a wrong KASLR slide): unreadable, counted.
        assert!(reader(&mem, &l, &f).modules(K + 0x7_0000).is_none());
        assert_eq!(f.modules.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_long_path_ends_in_dots() {
        let mut buf = [0xffu8; 8];
        fill_marked(&mut buf, b"/bin/sh");
        assert_eq!(&buf, b"/bin/sh\0");
        fill_marked(&mut buf, b"/usr/bin/python3");
        assert_eq!(&buf, b"/usr...\0");
    }

    #[test]
    fn a_dentry_cycle_is_an_unknown_path() {
        let mut mem = Fake::default();
        let (a, b, file) = (K + 0x1000, K + 0x3000, K + 0x5000);
        dentry(&mut mem, a, b, "a");
        dentry(&mut mem, b, a, "b");
        mem.zeroed(file, 0x40);
        mem.put_u64(file + 0x18, a);
        let (l, f) = (layout(), Failures::default());
        assert_eq!(reader(&mem, &l, &f).file_path(file), None);
        assert_eq!(f.path.load(Ordering::Relaxed), 1);
    }
}
