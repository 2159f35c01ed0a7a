//! Fakes a syscall in user mode: skips it and returns a chosen value.
//!
//! `-plugin libsyscall_fake.so,nr=N,ret=VALUE[,trace=on]`
//!
//! Syscall `N` is not executed; the guest sees `VALUE` as its result. With
//! `trace=on`, every syscall's number, first arguments and result are
//! logged.

use qemu_xplugin::{Args, Install, Result};

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let nr: i64 = args.require("nr")?;
    let ret: i64 = args.require("ret")?;
    let trace: bool = args.take_or("trace", false)?;
    if plugin.info().system_emulation {
        return Err("syscall filters need user-mode emulation (qemu-x86_64)".into());
    }

    plugin.on_syscall_filter(move |_vcpu, call| {
        (call.num == nr).then(|| {
            tracing::info!(
                "syscall {}({:#x}, {:#x}) skipped, returning {ret}",
                call.num,
                call.args[0],
                call.args[1]
            );
            ret
        })
    });
    if trace {
        plugin.on_syscall(|vcpu, call| {
            tracing::info!("vCPU {}: syscall {} entered", vcpu.index(), call.num);
            Ok(())
        });
        plugin.on_syscall_return(|vcpu, num, ret| {
            tracing::info!("vCPU {}: syscall {num} returned {ret}", vcpu.index());
            Ok(())
        });
    }
    Ok(())
}

qemu_xplugin::plugin!(install);
