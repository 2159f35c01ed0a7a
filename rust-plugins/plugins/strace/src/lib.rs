//! An strace-like logger on the `syscalls` provider.
//!
//! `-plugin libsyscalls.so -plugin libstrace.so[,proc=NAME]`
//!
//! Logs every syscall of the guest's processes (or only of those named
//! `NAME`) as `[comm asid] name(arg, ...) = ret`, with the path of calls
//! that take one. Calls that do not return (`execve` that succeeds,
//! `exit_group`) are logged on entry.

use qemu_xplugin::{Args, Install, Result};
use syscalls_api::{
    name, nr, Caller, SyscallEnter, SyscallReturn, ENTER_EVENT, PLUGIN, RETURN_EVENT,
};

fn prefix(caller: &Caller) -> String {
    format!("[{} {:#x}]", caller.comm.as_str(), caller.asid)
}

fn call(nr: u64, compat: bool, args: &[u64; 6], path: Option<&str>) -> String {
    let name = match (compat, name(nr)) {
        (false, Some(name)) => name.to_owned(),
        (true, _) => format!("int80_{nr}"),
        (false, None) => format!("syscall_{nr}"),
    };
    match path {
        Some(path) => format!("{name}(\"{path}\", {:#x}, {:#x})", args[1], args[2]),
        None => format!("{name}({:#x}, {:#x}, {:#x})", args[0], args[1], args[2]),
    }
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let only: Option<String> = args.take("proc")?;
    let wanted = move |caller: &Caller| only.as_deref().map_or(true, |p| p == caller.comm.as_str());
    let wanted_too = wanted.clone();

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
    })?;
    plugin.subscribe(PLUGIN, RETURN_EVENT, move |r: &mut SyscallReturn| {
        if wanted_too(&r.caller) {
            qemu_xplugin::outs(&format!(
                "{} {} = {}\n",
                prefix(&r.caller),
                call(r.nr, r.compat.get(), &r.args, None),
                r.ret
            ));
        }
    })?;
    Ok(())
}

qemu_xplugin::plugin!(name = "strace", requires = ["syscalls"], install = install);
