//! An strace-like logger on the `syscalls` provider.
//!
//! `-plugin libsyscalls.so -plugin libstrace.so[,proc=NAME]`
//!
//! Logs every syscall of the guest's processes (or only of those named
//! `NAME`) as `[comm pid] name(arg, ...) = ret`, with the path of calls
//! that take one, and the error name of a failed call (`= -2 ENOENT`).
//! The pid is the kernel's when `osi` is loaded (before `syscalls`); else
//! the address space (CR3) stands in for it, as `[comm 0x...]`. Calls that
//! do not return (`execve` that succeeds, `exit_group`) are logged on
//! entry.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use qemu_xplugin::{Args, Install, Result};
use syscalls_api::{
    errno_name, name, nr, Caller, SyscallEnter, SyscallReturn, ENTER_EVENT, PLUGIN, RETURN_EVENT,
};

fn prefix(caller: &Caller) -> String {
    if caller.pid >= 0 {
        format!("[{} {}]", caller.comm.as_str(), caller.pid)
    } else {
        format!("[{} {:#x}]", caller.comm.as_str(), caller.asid)
    }
}

/// A thread's pending call: address space, TLS base, thread id, and the
/// syscall instruction (a signal handler's calls may come between a call's
/// entry and its return, at other instructions).
type CallKey = (u64, u64, i32, u64);

/// The key of a thread's pending call.
fn thread(caller: &Caller, pc: u64) -> CallKey {
    (caller.asid, caller.thread, caller.tid, pc)
}

fn call(nr: u64, compat: bool, args: &[u64; 6], path: Option<&str>) -> String {
    let name = match (compat, name(nr)) {
        (false, Some(name)) => name.to_owned(),
        (true, _) => format!("int80_{nr}"),
        (false, None) => format!("syscall_{nr}"),
    };
    match path {
        Some(path) if syscalls_api::second_arg_is_path(nr) => {
            let dirfd = args[0] as i32;
            let dirfd = if dirfd == -100 {
                "AT_FDCWD".to_owned()
            } else {
                dirfd.to_string()
            };
            format!("{name}({dirfd}, \"{path}\", {:#x})", args[2])
        }
        Some(path) => format!("{name}(\"{path}\", {:#x}, {:#x})", args[1], args[2]),
        None => format!("{name}({:#x}, {:#x}, {:#x})", args[0], args[1], args[2]),
    }
}

/// `= ret`, with the error name of a failed call.
fn result(ret: i64) -> String {
    match ret {
        -4095..=-1 => match errno_name(-ret) {
            Some(name) => format!("{ret} {name}"),
            None => format!("{ret} E{}", -ret),
        },
        _ => ret.to_string(),
    }
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let only: Option<String> = args.take("proc")?;
    let wanted = move |caller: &Caller| only.as_deref().map_or(true, |p| p == caller.comm.as_str());
    let wanted_too = wanted.clone();
    // The decoded call of each thread's pending syscall, for its return
    // line.
    let pending: &'static Mutex<HashMap<CallKey, String>> =
        Box::leak(Box::new(Mutex::new(HashMap::new())));

    plugin.subscribe(PLUGIN, ENTER_EVENT, move |e: &mut SyscallEnter| {
        if !wanted(&e.caller) {
            return;
        }
        let text = match (e.path(), e.argv0()) {
            (Some(path), Some(argv0)) => {
                format!("execve(\"{path}\", [\"{argv0}\", ...], {:#x})", e.args[2])
            }
            (path, _) => call(e.nr, e.compat.get(), &e.args, path),
        };
        if matches!(e.nr, nr::EXECVE | nr::EXECVEAT | nr::EXIT_GROUP) && !e.compat.get() {
            qemu_xplugin::outs(&format!("{} {text} ...\n", prefix(&e.caller)));
        }
        // exit and exit_group do not return.
        if !matches!(e.nr, 60 | nr::EXIT_GROUP) || e.compat.get() {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            // Calls that never return (rt_sigreturn, execve) of threads
            // that are gone stay: bound them.
            if pending.len() >= 1 << 16 {
                pending.clear();
            }
            pending.insert(thread(&e.caller, e.pc), text);
        }
    })?;
    plugin.subscribe(PLUGIN, RETURN_EVENT, move |r: &mut SyscallReturn| {
        let entered = pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&thread(&r.caller, r.pc));
        if wanted_too(&r.caller) {
            let text = entered.unwrap_or_else(|| call(r.nr, r.compat.get(), &r.args, None));
            qemu_xplugin::outs(&format!(
                "{} {text} = {}\n",
                prefix(&r.caller),
                result(r.ret)
            ));
        }
    })?;
    Ok(())
}

qemu_xplugin::plugin!(name = "strace", requires = ["syscalls"], install = install);
