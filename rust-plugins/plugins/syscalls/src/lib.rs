//! Syscall provider for x86_64 Linux guests in system emulation.
//!
//! `-plugin libsyscalls.so`: fires `enter` and `return` events (types in
//! the `syscalls-api` crate) for every `syscall` and `int 0x80` a guest
//! process executes. Entry is seen on the instruction itself, before the
//! kernel runs; return on the first instruction after it, when the kernel
//! has returned to the same thread (same address space and TLS base).
//! Subscribers may rewrite the arguments and the return value; the provider
//! writes the changes back to the guest's registers.
//!
//! With the `osi` plugin loaded before it (`-plugin libosi.so,kernel=...
//! -plugin libsyscalls.so`), every event carries the process id, thread id
//! and name the kernel has (`osi` reads `task_struct`). Without it,
//! process names come from the `execve` calls the provider sees (the
//! basename of `argv[0]`, as the kernel's `comm` is the basename of the
//! file) and are inherited across `fork`: kernel memory is not read, so
//! processes started before the plugin are `?`, and pids are -1.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use qemu_xplugin::{Args, ErrorKind, Event, Install, RegAccess, Result, Vcpu};
use syscalls_api::{
    first_arg_is_path, nr, second_arg_is_path, Caller, Comm, SyscallEnter, SyscallReturn,
    ENTER_EVENT, RETURN_EVENT, USES_OSI,
};

/// `syscall` and `int 0x80`.
const SYSCALL: [u8; 2] = [0x0f, 0x05];
const INT80: [u8; 2] = [0xcd, 0x80];

/// Argument registers of the 64-bit and of the 32-bit (`int 0x80`) ABI.
const ARGS64: [&str; 6] = ["rdi", "rsi", "rdx", "r10", "r8", "r9"];
const ARGS32: [&str; 6] = ["rbx", "rcx", "rdx", "rsi", "rdi", "rbp"];

/// Linux's `__USER32_CS`: the code segment of 32-bit processes.
const USER32_CS: u64 = 0x23;

/// Most return sites remembered. They are virtual addresses of every
/// address space (ASLR puts libc's syscall sites at other addresses in
/// each process, so the set grows with the processes run); the
/// translation callback has no address space to key them by. Cleared when
/// full: a return block translated after that, whose syscall instruction
/// was translated before, is not instrumented (its return is not seen)
/// until that code is translated again.
const MAX_RETURN_SITES: usize = 1 << 18;

/// Most calls pending in one thread (signal handlers nested in returns).
const MAX_NESTED: usize = 16;

/// CR3 without the PCID (low 12 bits) and no-flush (bit 63) bits.
const ASID_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A syscall that entered and has not returned yet.
struct Pending {
    return_pc: u64,
    compat: bool,
    nr: u64,
    args: [u64; 6],
}

/// A process creation seen on entry, whose result is still to come.
#[derive(Clone, Copy)]
enum Spawn {
    /// `execve` from address space `from`: the next syscall from another
    /// address space is the new program's.
    Exec { from: u64, name: Comm },
    /// `fork`/`clone` from `from`: the next return from another address
    /// space with no syscall pending is the child's.
    Fork { from: u64, name: Comm },
}

#[derive(Default)]
struct State {
    /// Addresses right after a syscall instruction.
    return_sites: HashSet<u64>,
    /// By thread ([`thread_key`]): the calls that entered and have not
    /// returned, innermost last. More than one when a signal handler runs
    /// on the way back from a call (its syscalls, then `rt_sigreturn`,
    /// which goes back to the interrupted call's return site).
    pending: HashMap<(u64, u64), Vec<Pending>>,
    /// Process names by address space.
    names: HashMap<u64, Comm>,
    spawn: Option<Spawn>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// `osi_current`, when `osi` was installed before this plugin.
static OSI: OnceLock<osi_api::CurrentFn> = OnceLock::new();
static USES: AtomicBool = AtomicBool::new(false);

extern "C" fn syscalls_uses_osi() -> u32 {
    USES.load(Ordering::Relaxed).into()
}

fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(State::default))
}

impl State {
    fn name(&self, asid: u64) -> Comm {
        self.names.get(&asid).copied().unwrap_or(Comm::new("?"))
    }
}

/// Who is running: the address space and the thread, with the name known
/// for the address space. The names are a heuristic that holds while
/// processes are created one at a time (as a shell does): an address space
/// the kernel reuses takes the name of the program created in it.
/// With `osi`, the kernel's view instead: its callbacks ran before ours on
/// the same instruction, so what it answers is the task making this call.
fn caller(vcpu: &Vcpu, state: &State) -> Result<Caller> {
    let asid = vcpu.read_register_u64("cr3")? & ASID_MASK;
    let mut caller = Caller {
        vcpu_index: vcpu.index(),
        asid,
        thread: vcpu.read_register_u64("fs_base")?,
        comm: state.name(asid),
        pid: -1,
        tid: -1,
    };
    if let Some(current) = OSI.get() {
        let task = current(vcpu.index());
        if task.is_known() {
            caller.comm = Comm(task.comm.0);
            caller.pid = task.tgid;
            caller.tid = task.pid;
        }
    }
    Ok(caller)
}

/// Pending calls are matched by thread: the kernel's thread id when known,
/// else the TLS base.
fn thread_key(caller: &Caller) -> (u64, u64) {
    if caller.tid >= 0 {
        (u64::MAX, caller.tid as u64)
    } else {
        (caller.asid, caller.thread)
    }
}

fn current(vcpu: &Vcpu) -> Result<Caller> {
    with_state(|state| caller(vcpu, state))
}

fn read_string(vcpu: &Vcpu, addr: u64, out: &mut [u8]) {
    // Byte by byte up to a page boundary at a time would be faster; paths
    // are short and read once per call.
    let max = out.len() - 1;
    for (i, slot) in out.iter_mut().take(max).enumerate() {
        match vcpu.read_memory(addr + i as u64, 1) {
            Ok(byte) if byte[0] != 0 => *slot = byte[0],
            _ => break,
        }
    }
}

fn on_entry(vcpu: &mut Vcpu, event: &Event<SyscallEnter>, int80: bool, pc: u64) -> Result<()> {
    // The i386 ABI: int 0x80 anywhere, and syscall in a 32-bit process
    // (its code segment is Linux's __USER32_CS; AMD CPUs let it use
    // syscall), whatever the instruction.
    let compat = int80 || vcpu.read_register_u64("cs")? == USER32_CS;
    let regs = if compat { ARGS32 } else { ARGS64 };
    let nr = vcpu.read_register_u64("rax")?;
    let mut args = [0u64; 6];
    for (arg, reg) in args.iter_mut().zip(regs) {
        *arg = vcpu.read_register_u64(reg)?;
        if compat {
            *arg &= 0xffff_ffff;
        }
    }
    let caller = {
        let mut caller = current(vcpu)?;
        with_state(|state| {
            if let Some(Spawn::Exec { from, name }) = state.spawn {
                if from != caller.asid && caller.pid < 0 {
                    // The first syscall of the program execve started.
                    state.names.remove(&from);
                    state.names.insert(caller.asid, name);
                    state.spawn = None;
                    caller.comm = name;
                }
            }
        });
        caller
    };
    let mut data = SyscallEnter {
        caller,
        pc,
        compat: compat.into(),
        nr,
        args,
        path: [0; 256],
        argv0: [0; 64],
    };
    if !compat && first_arg_is_path(nr) {
        read_string(vcpu, args[0], &mut data.path);
    } else if !compat && second_arg_is_path(nr) {
        read_string(vcpu, args[1], &mut data.path);
    }
    if !compat && nr == nr::EXECVE {
        if let Ok(argv) = vcpu.read_memory(args[1], 8) {
            let argv0 = u64::from_le_bytes(argv.try_into().expect("8 bytes"));
            read_string(vcpu, argv0, &mut data.argv0);
        }
    }

    event.fire(vcpu, &mut data);

    for ((old, new), reg) in args.iter().zip(data.args).zip(regs) {
        if *old != new {
            vcpu.write_register_u64(reg, new)?;
        }
    }
    let asid = data.caller.asid;
    let comm = data.caller.comm;
    let key = thread_key(&data.caller);
    with_state(|state| {
        if !compat {
            match nr {
                nr::EXECVE | nr::EXECVEAT => {
                    // argv[0]: busybox runs its applets as /proc/self/exe.
                    let program = data.argv0().or(data.path()).unwrap_or("?");
                    let base = program.rsplit('/').next().unwrap_or(program);
                    state.spawn = Some(Spawn::Exec {
                        from: asid,
                        name: Comm::new(base),
                    });
                }
                nr::CLONE | nr::FORK | nr::VFORK | nr::CLONE3 => {
                    state.spawn = Some(Spawn::Fork {
                        from: asid,
                        name: comm,
                    });
                }
                nr::EXIT_GROUP => {
                    state.names.remove(&asid);
                }
                _ => {}
            }
        }
        let calls = state.pending.entry(key).or_default();
        // The kernel restarts an interrupted call by running its syscall
        // instruction again: the same call, not a nested one.
        if let Some(top) = calls.last() {
            if top.return_pc == pc + 2 && top.nr == nr && top.args == data.args {
                calls.pop();
            }
        }
        if calls.len() >= MAX_NESTED {
            calls.remove(0);
        }
        calls.push(Pending {
            return_pc: pc + 2,
            compat,
            nr,
            args: data.args,
        });
    });
    Ok(())
}

fn on_return(vcpu: &mut Vcpu, event: &Event<SyscallReturn>, pc: u64) -> Result<()> {
    let mut caller = current(vcpu)?;
    let pending = with_state(|state| {
        let key = thread_key(&caller);
        let calls = state.pending.get_mut(&key);
        // The innermost call returning here; the ones entered after it never
        // returned (rt_sigreturn, a failed handler's calls).
        match calls.and_then(|c| Some((c.iter().rposition(|p| p.return_pc == pc)?, c))) {
            Some((at, calls)) => {
                let call = calls.drain(at..).next();
                if calls.is_empty() {
                    state.pending.remove(&key);
                }
                call
            }
            None => {
                if let Some(Spawn::Fork { from, name }) = state.spawn {
                    if from != caller.asid && caller.pid < 0 {
                        // A fork's child, returning from the parent's call.
                        state.names.insert(caller.asid, name);
                        state.spawn = None;
                        caller.comm = name;
                    }
                }
                None
            }
        }
    });
    // Reached without a syscall of this thread (a jump, a fork's child).
    let Some(pending) = pending else {
        return Ok(());
    };
    let raw = vcpu.read_register_u64("rax")?;
    let ret = if pending.compat {
        raw as u32 as i32 as i64
    } else {
        raw as i64
    };
    let mut data = SyscallReturn {
        caller,
        compat: pending.compat.into(),
        nr: pending.nr,
        args: pending.args,
        ret,
        pc: pending.return_pc - 2,
    };
    event.fire(vcpu, &mut data);
    if data.ret != ret {
        vcpu.write_register_u64("rax", data.ret as u64)?;
    }
    Ok(())
}

fn install(plugin: &mut Install, _args: &mut Args) -> Result<()> {
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
    match plugin.import::<osi_api::CurrentFn>(osi_api::PLUGIN, osi_api::CURRENT) {
        Ok(current) => {
            let _ = OSI.set(current);
            USES.store(true, Ordering::Relaxed);
            tracing::info!("pids and names from osi");
        }
        Err(e) if e.kind() == ErrorKind::NoPlugin => {}
        Err(e) => return Err(e),
    }
    plugin.export(USES_OSI, syscalls_uses_osi as syscalls_api::UsesOsiFn)?;
    let enter = plugin.create_event::<SyscallEnter>(ENTER_EVENT)?;
    let exit = plugin.create_event::<SyscallReturn>(RETURN_EVENT)?;

    plugin.on_translate(move |tb| {
        let start = tb.vaddr();
        if with_state(|state| state.return_sites.contains(&start)) {
            if let Some(first) = tb.insns().next() {
                first.on_exec_fn(RegAccess::ReadWrite, move |vcpu| {
                    on_return(vcpu, &exit, start)
                });
            }
        }
        for insn in tb.insns() {
            if insn.size() != 2 {
                continue;
            }
            let bytes = insn.bytes();
            let int80 = match bytes.as_slice() {
                b if b == SYSCALL => false,
                b if b == INT80 => true,
                _ => continue,
            };
            let pc = insn.vaddr();
            with_state(|state| {
                // Bounded: cleared when full (see MAX_RETURN_SITES).
                if state.return_sites.len() >= MAX_RETURN_SITES {
                    state.return_sites.clear();
                }
                state.return_sites.insert(pc.wrapping_add(2))
            });
            insn.on_exec_fn(RegAccess::ReadWrite, move |vcpu| {
                on_entry(vcpu, &enter, int80, pc)
            });
        }
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
