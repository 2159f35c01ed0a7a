//! Skips a guest function and makes it return a chosen value (x86_64).
//!
//! `-plugin libhook.so,addr=ADDR,ret=VALUE`
//!
//! When the guest calls the function at `addr`, its body does not run: the
//! plugin sets `rax` to `VALUE`, pops the return address and continues
//! there, as the function's `ret` would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use qemu_xplugin::{Args, Install, Reg, RegAccess, Result};

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let addr: u64 = args.require("addr")?;
    let ret: i64 = args.require("ret")?;
    if plugin.info().target != "x86_64" {
        return Err(format!("supports x86_64 guests, not {}", plugin.info().target).into());
    }

    // Register handles: resolved once, no lookup when the hook runs.
    let rax: Reg<u64> = plugin.register("rax");
    let rsp: Reg<u64> = plugin.register("rsp");
    let skipped = Arc::new(AtomicU64::new(0));
    let counted = skipped.clone();
    let hook = plugin.exec_hook(RegAccess::ReadWritePc, move |vcpu| {
        let sp = vcpu.read(rsp)?;
        let return_address = vcpu.read_memory_u64(sp)?;
        vcpu.write(rax, ret as u64)?;
        vcpu.write(rsp, sp + 8)?;
        vcpu.set_pc(return_address)?;
        counted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    plugin.on_translate(move |tb| {
        for insn in tb.insns().filter(|insn| insn.vaddr() == addr) {
            insn.on_exec(&hook);
        }
    });
    plugin.on_exit(move |_| {
        qemu_xplugin::outs(&format!(
            "hook: skipped the function at {addr:#x} {} times, returning {ret}\n",
            skipped.load(Ordering::Relaxed)
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
