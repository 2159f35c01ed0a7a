//! The layouts `osi` needs, from the guest kernel's BTF.
//!
//! The kernel is given as a bzImage (`vmlinuz`: its xz payload is an ELF
//! `vmlinux` with a `.BTF` section), an ELF `vmlinux`, or a raw BTF blob
//! (`/sys/kernel/btf/vmlinux`). Every member `osi` reads is looked up by
//! name here, once: a missing one is a start-up error naming it.

use std::io::Read;

use btf_rs::{Btf, Type};
use object::{Object, ObjectSection};

/// An error at start-up: a message for the user.
pub type Error = String;

/// x86_64 per-CPU variables are linked at 0 in `.data..percpu` (up to
/// Linux 6.14): a variable's offset in that section is its offset from a
/// CPU's per-CPU base (`gs`).
const PERCPU_SECTION: &str = ".data..percpu";

/// Refuses a kernel whose `.data..percpu` section is not linked at 0
/// (`addr`: its address, when the kernel is an ELF). Since Linux 6.15
/// (9d7de2aa8b41, "x86/percpu/64: Use relative percpu offsets") x86_64
/// links per-CPU variables at their kernel address like any other; `gs`
/// holds the CPU's area minus `__per_cpu_start`, so `current_task` is at
/// `gs` plus its KASLR-shifted address, which `osi` does not know (it
/// would need the KASLR slide). Its BTF offsets are still from the start
/// of the section, so without this check `osi` would read the wrong word.
pub fn percpu_linked_at_zero(addr: Option<u64>) -> Result<(), Error> {
    match addr {
        Some(addr) if addr != 0 => Err(format!(
            "the kernel links its per-CPU variables at {addr:#x}, not 0 (section {PERCPU_SECTION}): \
             relative per-CPU offsets (Linux 6.15 and later), where the current task is not at a \
             fixed offset from the per-CPU base; osi does not support them"
        )),
        _ => Ok(()),
    }
}

/// Offsets (bytes) of everything `osi` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Per-CPU offset of the current task pointer (`current_task`, or
    /// `pcpu_hot.current_task` on newer kernels).
    pub current_task: u64,
    /// Where the current task pointer was found, for the log.
    pub current_task_name: &'static str,
    /// `task_struct` members.
    pub task: TaskLayout,
    /// `mm_struct` members.
    pub mm: MmLayout,
    /// Maple tree nodes (the `mm_struct.mm_mt` of the VMAs).
    pub maple: MapleLayout,
    /// `vm_area_struct` members.
    pub vma: VmaLayout,
    /// `file.f_path.dentry`.
    pub file_dentry: u64,
    /// `dentry.d_parent`.
    pub dentry_parent: u64,
    /// `dentry.d_name.name`.
    pub dentry_name: u64,
    /// `struct module` members; None if the BTF lacks one (no modules).
    pub module: Option<ModuleLayout>,
}

/// `struct module` members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleLayout {
    /// `list`: the list of `modules`.
    pub list: u64,
    /// `name`, and its length.
    pub name: u64,
    /// Length of `name` (`MODULE_NAME_LEN`).
    pub name_len: u64,
    /// The code's base (`core_layout.base`, or `mem[MOD_TEXT].base`).
    pub base: u64,
    /// The code's size (an `unsigned int`).
    pub size: u64,
}

/// `task_struct` members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskLayout {
    /// Size of the struct.
    pub size: u64,
    /// `pid`
    pub pid: u64,
    /// `tgid`
    pub tgid: u64,
    /// `comm` (16 bytes)
    pub comm: u64,
    /// `flags` (`PF_KTHREAD`)
    pub flags: u64,
    /// `tasks`: the list of all thread group leaders.
    pub tasks: u64,
    /// `mm`
    pub mm: u64,
    /// `real_parent`
    pub real_parent: u64,
    /// `group_leader`
    pub group_leader: u64,
    /// How the threads of a process are linked.
    pub threads: Threads,
}

/// How a process's threads are linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// `task_struct.signal` -> `signal_struct.thread_head`, a list of
    /// `task_struct.thread_node` (6.7+, and backported to 6.1.y).
    SignalHead {
        /// `task_struct.signal`
        signal: u64,
        /// `signal_struct.thread_head`
        head: u64,
        /// `task_struct.thread_node`
        node: u64,
    },
    /// `task_struct.thread_group`: a circular list without a head.
    ThreadGroup {
        /// `task_struct.thread_group`
        node: u64,
    },
}

/// `mm_struct` members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmLayout {
    /// `mm_mt.ma_root`
    pub mt_root: u64,
    /// `arg_start`
    pub arg_start: u64,
    /// `arg_end`
    pub arg_end: u64,
}

/// Maple tree node layouts (`maple_range_64`, `maple_arange_64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapleLayout {
    /// Size of `struct maple_node`.
    pub node_size: u64,
    /// `maple_range_64.pivot` and its length.
    pub r64_pivot: u64,
    /// Number of pivots of a `maple_range_64`.
    pub r64_pivots: u64,
    /// `maple_range_64.slot`.
    pub r64_slot: u64,
    /// Number of slots of a `maple_range_64`.
    pub r64_slots: u64,
    /// `maple_range_64.meta.end`.
    pub r64_meta_end: u64,
    /// `maple_arange_64.pivot`.
    pub a64_pivot: u64,
    /// Number of pivots of a `maple_arange_64`.
    pub a64_pivots: u64,
    /// `maple_arange_64.slot`.
    pub a64_slot: u64,
    /// Number of slots of a `maple_arange_64`.
    pub a64_slots: u64,
    /// `maple_arange_64.meta.end`.
    pub a64_meta_end: u64,
}

/// `vm_area_struct` members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmaLayout {
    /// Size of the struct.
    pub size: u64,
    /// `vm_start`
    pub start: u64,
    /// `vm_end`
    pub end: u64,
    /// `vm_mm`
    pub mm: u64,
    /// `vm_flags`
    pub flags: u64,
    /// `vm_pgoff`
    pub pgoff: u64,
    /// `vm_file`
    pub file: u64,
}

/// What `osi` takes from the kernel image.
pub struct Image {
    /// The BTF.
    pub btf: Vec<u8>,
    /// Link-time addresses of `init_task` and `modules`: from `.symtab`,
    /// else from kallsyms in `.rodata`; None for a BTF blob, or when not
    /// found.
    pub symbols: Option<crate::kallsyms::Symbols>,
}

/// Where the kernel's BTF is: its bytes from a bzImage, an ELF or a raw
/// blob.
pub fn btf_bytes(path: &str) -> Result<Vec<u8>, Error> {
    image(path).map(|i| i.btf)
}

/// The BTF and the symbols of the kernel image at `path`.
pub fn image(path: &str) -> Result<Image, Error> {
    let data =
        std::fs::read(path).map_err(|e| format!("cannot read the kernel image {path}: {e}"))?;
    raw_btf(data).map_err(|e| format!("{path}: {e}"))
}

/// `init_task` and `modules` from an ELF's `.symtab`, else from kallsyms.
fn elf_symbols(elf: &object::File<'_>) -> Option<crate::kallsyms::Symbols> {
    use object::ObjectSymbol;
    let symbol = |name: &str| {
        elf.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address())
    };
    if let (Some(init_task), Some(modules)) = (symbol("init_task"), symbol("modules")) {
        return Some(crate::kallsyms::Symbols {
            init_task,
            modules,
            current_task: symbol("current_task"),
        });
    }
    crate::kallsyms::symbols(elf.section_by_name(".rodata")?.data().ok()?)
}

fn raw_btf(data: Vec<u8>) -> Result<Image, Error> {
    // BTF magic 0xeB9F, little-endian.
    if data.starts_with(&[0x9f, 0xeb]) {
        return Ok(Image {
            btf: data,
            symbols: None,
        });
    }
    if data.starts_with(b"\x7fELF") {
        let elf = object::File::parse(&*data).map_err(|e| format!("not a valid ELF: {e}"))?;
        percpu_linked_at_zero(elf.section_by_name(PERCPU_SECTION).map(|s| s.address()))?;
        let section = elf
            .section_by_name(".BTF")
            .ok_or("the kernel has no .BTF section (built without CONFIG_DEBUG_INFO_BTF)")?;
        let bytes = section
            .data()
            .map_err(|e| format!("cannot read its .BTF section: {e}"))?;
        return Ok(Image {
            btf: bytes.to_vec(),
            symbols: elf_symbols(&elf),
        });
    }
    // A bzImage: the setup header says "HdrS" at 0x202; the compressed
    // kernel is an xz stream somewhere after it.
    if data.get(0x202..0x206) == Some(b"HdrS") {
        let start = data
            .windows(6)
            .position(|w| w == b"\xfd7zXZ\x00")
            .ok_or("a bzImage without an xz payload (only xz-compressed kernels are supported)")?;
        let elf = unxz(&data[start..])?;
        return raw_btf_elf(elf);
    }
    Err("neither a bzImage, an ELF vmlinux nor a BTF blob".into())
}

fn raw_btf_elf(elf: Vec<u8>) -> Result<Image, Error> {
    if !elf.starts_with(b"\x7fELF") {
        return Err("the bzImage's payload is not an ELF vmlinux".into());
    }
    raw_btf(elf)
}

/// One xz stream, ignoring what follows it (the bzImage's trailer).
fn unxz(input: &[u8]) -> Result<Vec<u8>, Error> {
    let stream = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)
        .map_err(|e| format!("xz decoder: {e}"))?;
    let mut out = Vec::new();
    let mut reader = xz2::bufread::XzDecoder::new_stream(input, stream);
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // Bytes after the stream: what was decoded is complete if it is
        // an ELF whose section headers fit.
        Err(_) if elf_complete(&out) => Ok(out),
        Err(e) => Err(format!("cannot decompress the kernel: {e}")),
    }
}

fn elf_complete(elf: &[u8]) -> bool {
    let field = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at + len)?;
        let mut v = [0u8; 8];
        v[..len].copy_from_slice(bytes);
        Some(u64::from_le_bytes(v))
    };
    match (field(0x28, 8), field(0x3a, 2), field(0x3c, 2)) {
        (Some(shoff), Some(shentsize), Some(shnum)) => {
            // A crafted header must not overflow.
            elf.starts_with(b"\x7fELF")
                && shentsize
                    .checked_mul(shnum)
                    .and_then(|n| n.checked_add(shoff))
                    .is_some_and(|end| end <= elf.len() as u64)
        }
        _ => false,
    }
}

/// The layouts, from BTF bytes. `hide` names members (`struct.member`) to
/// treat as missing: the test hook for the error path.
pub fn layout(bytes: &[u8], hide: &[String]) -> Result<Layout, Error> {
    let btf = Btf::from_bytes(bytes).map_err(|e| format!("invalid BTF: {e}"))?;
    let k = Kernel { btf, hide };
    let (current_task, current_task_name) = k.current_task()?;
    let threads = match (
        k.member("task_struct", "signal"),
        k.member("signal_struct", "thread_head"),
        k.member("task_struct", "thread_node"),
    ) {
        (Ok(signal), Ok(head), Ok(node)) => Threads::SignalHead { signal, head, node },
        _ => Threads::ThreadGroup {
            node: k.member("task_struct", "thread_group").map_err(|e| {
                format!("{e} (and no signal_struct.thread_head / task_struct.thread_node either)")
            })?,
        },
    };
    let task = TaskLayout {
        size: k.size("task_struct")?,
        pid: k.member("task_struct", "pid")?,
        tgid: k.member("task_struct", "tgid")?,
        comm: match k.array_len("task_struct", "comm")? {
            // TASK_COMM_LEN, the size of osi_api::Comm.
            16 => k.member("task_struct", "comm")?,
            n => {
                return Err(format!(
                    "task_struct.comm has {n} bytes in the kernel's BTF, not 16"
                ))
            }
        },
        flags: k.member("task_struct", "flags")?,
        tasks: k.member("task_struct", "tasks")?,
        mm: k.member("task_struct", "mm")?,
        real_parent: k.member("task_struct", "real_parent")?,
        group_leader: k.member("task_struct", "group_leader")?,
        threads,
    };
    let mm = MmLayout {
        mt_root: k.member("mm_struct", "mm_mt")? + k.member("maple_tree", "ma_root")?,
        arg_start: k.member("mm_struct", "arg_start")?,
        arg_end: k.member("mm_struct", "arg_end")?,
    };
    let maple = MapleLayout {
        node_size: k.size("maple_node")?,
        r64_pivot: k.member("maple_range_64", "pivot")?,
        r64_pivots: k.array_len("maple_range_64", "pivot")?,
        r64_slot: k.member("maple_range_64", "slot")?,
        r64_slots: k.array_len("maple_range_64", "slot")?,
        r64_meta_end: k.member("maple_range_64", "meta")? + k.member("maple_metadata", "end")?,
        a64_pivot: k.member("maple_arange_64", "pivot")?,
        a64_pivots: k.array_len("maple_arange_64", "pivot")?,
        a64_slot: k.member("maple_arange_64", "slot")?,
        a64_slots: k.array_len("maple_arange_64", "slot")?,
        a64_meta_end: k.member("maple_arange_64", "meta")? + k.member("maple_metadata", "end")?,
    };
    let vma = VmaLayout {
        size: k.size("vm_area_struct")?,
        start: k.member("vm_area_struct", "vm_start")?,
        end: k.member("vm_area_struct", "vm_end")?,
        mm: k.member("vm_area_struct", "vm_mm")?,
        flags: k.member("vm_area_struct", "vm_flags")?,
        pgoff: k.member("vm_area_struct", "vm_pgoff")?,
        file: k.member("vm_area_struct", "vm_file")?,
    };
    let layout = Layout {
        current_task,
        current_task_name,
        task,
        mm,
        maple,
        vma,
        file_dentry: k.member("file", "f_path")? + k.member("path", "dentry")?,
        dentry_parent: k.member("dentry", "d_parent")?,
        dentry_name: k.member("dentry", "d_name")? + k.member("qstr", "name")?,
        module: module_layout(&k),
    };
    plausible(&layout)?;
    Ok(layout)
}

/// Bounds the readers rely on: what they read of a struct lies within it,
/// and no struct is larger than a kernel's could be (a corrupt or crafted
/// BTF must not make a reader allocate gigabytes or slice out of range).
fn plausible(l: &Layout) -> Result<(), Error> {
    let within = |what: &str, size: u64, max: u64, fields: &[(&str, u64, u64)]| {
        if size == 0 || size > max {
            return Err(format!(
                "implausible size {size} of {what} in the kernel's BTF"
            ));
        }
        for (name, offset, len) in fields {
            if offset + len > size {
                return Err(format!(
                    "{what}.{name} at {offset} (+{len}) lies outside the struct ({size} bytes) in the kernel's BTF"
                ));
            }
        }
        Ok(())
    };
    let t = &l.task;
    within(
        "task_struct",
        t.size,
        1 << 16,
        &[
            ("pid", t.pid, 4),
            ("tgid", t.tgid, 4),
            ("comm", t.comm, 16),
            ("flags", t.flags, 4),
            ("tasks", t.tasks, 16),
            ("mm", t.mm, 8),
            ("real_parent", t.real_parent, 8),
            ("group_leader", t.group_leader, 8),
        ],
    )?;
    let v = &l.vma;
    within(
        "vm_area_struct",
        v.size,
        4096,
        &[
            ("vm_start", v.start, 8),
            ("vm_end", v.end, 8),
            ("vm_mm", v.mm, 8),
            ("vm_flags", v.flags, 8),
            ("vm_pgoff", v.pgoff, 8),
            ("vm_file", v.file, 8),
        ],
    )?;
    let m = &l.maple;
    within(
        "maple_node",
        m.node_size,
        4096,
        &[
            ("pivot", m.r64_pivot, 8 * m.r64_pivots),
            ("slot", m.r64_slot, 8 * m.r64_slots),
            ("meta.end", m.r64_meta_end, 1),
            ("pivot", m.a64_pivot, 8 * m.a64_pivots),
            ("slot", m.a64_slot, 8 * m.a64_slots),
            ("meta.end", m.a64_meta_end, 1),
        ],
    )?;
    for (what, pivots, slots) in [
        ("maple_range_64", m.r64_pivots, m.r64_slots),
        ("maple_arange_64", m.a64_pivots, m.a64_slots),
    ] {
        if pivots == 0 || slots != pivots + 1 {
            return Err(format!(
                "{what} has {pivots} pivots and {slots} slots in the kernel's BTF (expected n and n + 1)"
            ));
        }
    }
    Ok(())
}

/// `struct module`, 6.1 (`core_layout`) or 6.4+ (`mem[]`, `MOD_TEXT` 0).
fn module_layout(k: &Kernel<'_>) -> Option<ModuleLayout> {
    let (code, base, size) = match k.member("module", "core_layout") {
        Ok(at) => (
            at,
            k.member("module_layout", "base").ok()?,
            k.member("module_layout", "size").ok()?,
        ),
        Err(_) => (
            k.member("module", "mem").ok()?,
            k.member("module_memory", "base").ok()?,
            k.member("module_memory", "size").ok()?,
        ),
    };
    let layout = ModuleLayout {
        list: k.member("module", "list").ok()?,
        name: k.member("module", "name").ok()?,
        name_len: k.array_len("module", "name").ok()?,
        base: code + base,
        size: code + size,
    };
    let struct_size = k.size("module").ok()?;
    let fits = [
        (layout.list, 16),
        (layout.name, layout.name_len),
        (layout.base, 8),
        (layout.size, 4),
    ]
    .iter()
    .all(|&(at, len)| at + len <= struct_size);
    (fits && layout.name_len <= 64 && struct_size <= 1 << 16).then_some(layout)
}

struct Kernel<'a> {
    btf: Btf,
    hide: &'a [String],
}

impl Kernel<'_> {
    fn missing(what: &str) -> Error {
        format!("{what} is missing from the kernel's BTF")
    }

    /// The struct (not a forward declaration) of this name.
    fn structure(&self, name: &str) -> Result<btf_rs::Struct, Error> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| Self::missing(&format!("struct {name}")))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| Self::missing(&format!("struct {name}")))
    }

    fn size(&self, name: &str) -> Result<u64, Error> {
        Ok(self.structure(name)?.size() as u64)
    }

    /// Offset of `member` in struct `name`, looking into anonymous struct
    /// and union members as C does.
    fn member(&self, name: &str, member: &str) -> Result<u64, Error> {
        self.member_type(name, member).map(|(offset, _)| offset)
    }

    fn member_type(&self, name: &str, member: &str) -> Result<(u64, Type), Error> {
        let what = format!("{name}.{member}");
        if self.hide.contains(&what) {
            return Err(Self::missing(&what));
        }
        let s = self.structure(name)?;
        self.find(&s.members, member, 0, 0)
            .ok_or_else(|| Self::missing(&what))
    }

    fn find(
        &self,
        members: &[btf_rs::Member],
        name: &str,
        base: u64,
        depth: u32,
    ) -> Option<(u64, Type)> {
        if depth > 8 {
            return None;
        }
        for m in members {
            let offset = base + u64::from(m.bit_offset()) / 8;
            let member_name = self.btf.resolve_name(m).unwrap_or_default();
            if member_name == name {
                return Some((offset, self.btf.resolve_chained_type(m).ok()?));
            }
            if member_name.is_empty() {
                let inner = match self.btf.resolve_chained_type(m).ok()? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => continue,
                };
                if let Some(found) = self.find(&inner.members, name, offset, depth + 1) {
                    return Some(found);
                }
            }
        }
        None
    }

    fn array_len(&self, name: &str, member: &str) -> Result<u64, Error> {
        match self.member_type(name, member)? {
            (_, Type::Array(a)) => Ok(a.len() as u64),
            _ => Err(format!(
                "{name}.{member} is not an array in the kernel's BTF"
            )),
        }
    }

    /// The per-CPU offset of the current task pointer.
    fn current_task(&self) -> Result<(u64, &'static str), Error> {
        let hidden = |what: &str| self.hide.iter().any(|h| h == what);
        let sections = self
            .btf
            .resolve_types_by_name(PERCPU_SECTION)
            .map_err(|_| Self::missing(&format!("the {PERCPU_SECTION} section")))?;
        for section in sections {
            let Type::Datasec(ds) = section else { continue };
            for v in &ds.variables {
                let Ok(Type::Var(var)) = self.btf.resolve_chained_type(v) else {
                    continue;
                };
                let name = self.btf.resolve_name(&var).unwrap_or_default();
                if name == "current_task" && !hidden("current_task") {
                    return Ok((u64::from(v.offset()), "current_task"));
                }
                if name == "pcpu_hot" && !hidden("pcpu_hot.current_task") {
                    let inner = self.member("pcpu_hot", "current_task")?;
                    return Ok((u64::from(v.offset()) + inner, "pcpu_hot.current_task"));
                }
            }
        }
        Err(Self::missing(
            "the per-CPU variable current_task (or pcpu_hot.current_task)",
        ))
    }
}

/// Makes the kernel's `comm` member names unrecognisable in a raw BTF
/// blob: unit tests of the error path use it.
#[cfg(test)]
fn rename_string(bytes: &mut [u8], from: &[u8], to: &[u8]) -> bool {
    let mut needle = vec![0u8];
    needle.extend_from_slice(from);
    needle.push(0);
    match bytes.windows(needle.len()).position(|w| w == needle) {
        Some(at) => {
            bytes[at + 1..at + 1 + to.len()].copy_from_slice(to);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test guest's kernel, when `make linux-guest` has built it.
    fn kernel_btf() -> Option<Vec<u8>> {
        let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let path = top.join("build/linux/vmlinuz");
        if !path.exists() {
            eprintln!("skipped: no {}", path.display());
            return None;
        }
        Some(btf_bytes(path.to_str()?).expect("BTF of the test kernel"))
    }

    #[test]
    fn the_test_kernel_has_every_member() {
        let Some(btf) = kernel_btf() else { return };
        let layout = layout(&btf, &[]).expect("layout");
        assert!(layout.current_task > 0);
        assert_eq!(layout.maple.node_size, 256);
        assert_eq!(layout.maple.r64_slots, 16);
        assert_eq!(layout.maple.a64_slots, 10);
        assert!(layout.task.comm > layout.task.pid);
    }

    #[test]
    fn a_hidden_or_renamed_member_is_named() {
        let Some(mut btf) = kernel_btf() else { return };
        let err = layout(&btf, &["mm_struct.arg_start".into()]).unwrap_err();
        assert_eq!(err, "mm_struct.arg_start is missing from the kernel's BTF");
        assert!(rename_string(&mut btf, b"comm", b"cxmm"));
        let err = layout(&btf, &[]).unwrap_err();
        assert_eq!(err, "task_struct.comm is missing from the kernel's BTF");
    }

    #[test]
    fn an_implausible_layout_is_refused() {
        let Some(btf) = kernel_btf() else { return };
        let mut l = layout(&btf, &[]).expect("layout");
        l.vma.file = l.vma.size;
        assert!(plausible(&l)
            .unwrap_err()
            .starts_with("vm_area_struct.vm_file at "));
        let mut l = layout(&btf, &[]).expect("layout");
        l.maple.a64_pivots = 0;
        assert!(plausible(&l).is_err());
    }

    #[test]
    fn per_cpu_variables_linked_elsewhere_than_0_are_refused() {
        assert_eq!(percpu_linked_at_zero(None), Ok(()));
        assert_eq!(percpu_linked_at_zero(Some(0)), Ok(()));
        let err = percpu_linked_at_zero(Some(0xffff_ffff_8340_0000)).unwrap_err();
        assert!(err.contains("at 0xffffffff83400000, not 0"), "{err}");
        assert!(err.contains("Linux 6.15"), "{err}");
        // The test kernel (6.1) links them at 0: btf_bytes accepts it.
        let _ = kernel_btf();
    }

    #[test]
    fn kallsyms_of_the_test_kernel() {
        let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
        let path = top.join("build/linux/vmlinuz");
        if !path.exists() {
            return;
        }
        let image = image(path.to_str().expect("UTF-8")).expect("the test kernel");
        let symbols = image.symbols.expect("kallsyms found");
        let layout = layout(&image.btf, &[]).expect("layout");
        // The per-CPU variable's kallsyms value is BTF's offset: the tables
        // were read right.
        assert_eq!(symbols.current_task, Some(layout.current_task));
        assert!(symbols.init_task >= 0xffff_ffff_8000_0000, "{symbols:x?}");
        assert!(symbols.modules >= 0xffff_ffff_8000_0000, "{symbols:x?}");
        assert_ne!(symbols.init_task, symbols.modules);
        eprintln!("{symbols:x?}");
    }

    #[test]
    fn an_elf_without_btf() {
        // This test's own executable: an ELF, built without BTF.
        let exe = std::env::current_exe().expect("the test executable");
        let err = btf_bytes(exe.to_str().expect("a UTF-8 path")).unwrap_err();
        assert!(
            err.ends_with("the kernel has no .BTF section (built without CONFIG_DEBUG_INFO_BTF)"),
            "{err}"
        );
    }

    #[test]
    fn not_a_kernel() {
        assert!(raw_btf(b"hello".to_vec())
            .err()
            .expect("an error")
            .contains("neither"));
        assert!(btf_bytes("/nonexistent/vmlinuz")
            .unwrap_err()
            .contains("cannot read the kernel image /nonexistent/vmlinuz"));
    }
}
