//! Counts executed instructions and blocks.
//!
//! `-plugin libcounter.so[,mode=inline|callback]`: `inline` (the default)
//! adds each block's instruction count from generated code, `callback`
//! calls back into the plugin on every instruction (blocks are counted
//! inline in both). Both are exact; the
//! totals, and how often vCPUs went idle, are printed at exit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use qemu_xplugin::{Args, Install, RegAccess, Result};

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let mode: String = args.take_or("mode", "inline".to_owned())?;
    let insns = plugin.counter();
    let blocks = plugin.counter();
    // Idle callbacks run outside guest code, where a counter cannot be
    // written (a vCPU starting elsewhere may move it): an atomic instead.
    let idle = Arc::new(AtomicU64::new(0));
    let idled = idle.clone();
    // Instructions counted by callback (mode=callback).
    let mut by_callback = Arc::new(AtomicU64::new(0));
    plugin.on_vcpu_idle(move |_| {
        idled.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    match mode.as_str() {
        "inline" => plugin.on_translate(move |tb| {
            tb.inline_add(&blocks, 1);
            tb.inline_add(&insns, tb.len() as u64);
        }),
        "callback" => {
            // One shared atomic, as a C plugin would do: cheaper per call
            // than the scoreboard's per-vCPU slot, found through QEMU.
            let executed = Arc::new(AtomicU64::new(0));
            let counted = executed.clone();
            let insn_hook = plugin.exec_hook(RegAccess::None, move |_| {
                counted.fetch_add(1, Ordering::Relaxed);
                Ok(())
            });
            by_callback = executed.clone();
            plugin.on_translate(move |tb| {
                tb.inline_add(&blocks, 1);
                for insn in tb.insns() {
                    insn.on_exec(&insn_hook);
                }
            });
        }
        other => {
            return Err(format!("argument mode='{other}': expected inline or callback").into());
        }
    }
    plugin.on_exit(move |thread| {
        qemu_xplugin::outs(&format!(
            "counter: {} instructions, {} blocks ({mode}); vCPUs idled {} times\n",
            insns.sum(thread) + by_callback.load(Ordering::Relaxed),
            blocks.sum(thread),
            idle.load(Ordering::Relaxed)
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
