//! Changes what syscalls do for one process, on the `syscalls` provider.
//!
//! `-plugin libsyscalls.so -plugin libsyscall_override.so,proc=NAME[,getpid=PID][,exit_code=N]`
//!
//! For processes named `NAME`: `getpid()` returns `PID` (a return value
//! rewritten), and `exit_group()` exits with status `N` (an argument
//! rewritten on entry). Each change is logged.

use qemu_xplugin::{Args, Install, Result};
use syscalls_api::{nr, SyscallEnter, SyscallReturn, ENTER_EVENT, PLUGIN, RETURN_EVENT};

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let process: String = args.require("proc")?;
    let getpid: Option<i64> = args.take("getpid")?;
    let exit_code: Option<u8> = args.take("exit_code")?;
    if getpid.is_none() && exit_code.is_none() {
        return Err("nothing to override: give getpid=PID or exit_code=N".into());
    }

    if let Some(pid) = getpid {
        let process = process.clone();
        plugin.subscribe(PLUGIN, RETURN_EVENT, move |r: &mut SyscallReturn| {
            if r.nr == nr::GETPID && !r.compat.get() && r.caller.comm.as_str() == process {
                tracing::info!("{process}: getpid() = {} -> {pid}", r.ret);
                r.ret = pid;
            }
        })?;
    }
    if let Some(code) = exit_code {
        plugin.subscribe(PLUGIN, ENTER_EVENT, move |e: &mut SyscallEnter| {
            if e.nr == nr::EXIT_GROUP && !e.compat.get() && e.caller.comm.as_str() == process {
                tracing::info!("{process}: exit_group({}) -> exit_group({code})", e.args[0]);
                e.args[0] = code.into();
            }
        })?;
    }
    Ok(())
}

qemu_xplugin::plugin!(
    name = "syscall-override",
    requires = ["syscalls"],
    install = install
);
