//! Counts executed instructions and blocks.
//!
//! `-plugin libcounter.so[,mode=inline|callback]`: `inline` (the default)
//! adds each block's instruction count from generated code, `callback`
//! calls back into the plugin on every instruction. Both are exact; the
//! totals, and how often vCPUs went idle, are printed at exit.

use qemu_xplugin::{Args, Install, RegAccess, Result};

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let mode: String = args.take_or("mode", "inline".to_owned())?;
    let insns = plugin.counter();
    let blocks = plugin.counter();
    let idle = plugin.counter();
    plugin.on_vcpu_idle(move |vcpu| {
        idle.add(vcpu.index(), 1);
        Ok(())
    });
    match mode.as_str() {
        "inline" => plugin.on_translate(move |tb| {
            tb.inline_add(&blocks, 1);
            tb.inline_add(&insns, tb.len() as u64);
        }),
        "callback" => {
            let insn_hook = plugin.exec_hook(RegAccess::None, move |vcpu| {
                insns.add(vcpu.index(), 1);
                Ok(())
            });
            let block_hook = plugin.exec_hook(RegAccess::None, move |vcpu| {
                blocks.add(vcpu.index(), 1);
                Ok(())
            });
            plugin.on_translate(move |tb| {
                tb.on_exec(&block_hook);
                for insn in tb.insns() {
                    insn.on_exec(&insn_hook);
                }
            });
        }
        other => {
            return Err(format!("argument mode='{other}': expected inline or callback").into());
        }
    }
    plugin.on_exit(move || {
        qemu_xplugin::outs(&format!(
            "counter: {} instructions, {} blocks ({mode}); vCPUs idled {} times\n",
            insns.sum(),
            blocks.sum(),
            idle.sum()
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
