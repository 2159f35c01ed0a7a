//! A channel from the guest to the host: the guest calls the plugin with
//! hypercalls (on x86: `CPUID` with the number in `EAX`, the arguments in
//! `RBX`, `RCX`, `RDX`, `RSI`, the result in `RAX`).
//!
//! `-plugin libhypercall.so[,base=0x4c580000]`
//!
//! | number     | arguments        | does                                         | returns                  |
//! | ---------- | ---------------- | -------------------------------------------- | ------------------------ |
//! | `base`     | `a`, `b`         | answers, so the guest knows it is there      | `a + b`                  |
//! | `base + 1` | `vaddr`, `len`   | logs the guest's string (at most 4096 bytes) | bytes logged             |
//! | `base + 2` |                  | starts tracing: counts executed instructions | 0                        |
//! | `base + 3` |                  | stops tracing, logs the count                | instructions traced      |
//!
//! Without the plugin the guest gets `CPUID`'s results for these leaves.
//! At exit the plugin logs how many pings it answered (from every vCPU)
//! and how many instructions it traced in all (the stopped count when the
//! guest stopped tracing).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use qemu_xplugin::{Args, Install, RegAccess, Result};

/// The longest string the guest may log.
const MAX_LOG: u64 = 4096;

#[derive(Default)]
struct Trace {
    on: AtomicBool,
    insns: AtomicU64,
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let base: u64 = args.take_or("base", 0x4c58_0000)?;
    // The four numbers must be 32-bit hypercall numbers (x86's EAX).
    if base > 0xffff_fffc {
        return Err(format!("base {base:#x}: base + 3 must not exceed 0xffffffff").into());
    }
    let trace = Arc::new(Trace::default());
    let pings = Arc::new(AtomicU64::new(0));

    let answered = pings.clone();
    plugin.on_hypercall(base, move |_vcpu, call| {
        answered.fetch_add(1, Ordering::Relaxed);
        Some(call.args[0].wrapping_add(call.args[1]))
    })?;
    plugin.on_hypercall(base + 1, |vcpu, call| {
        let [vaddr, len, ..] = call.args;
        let bytes = match vcpu.read_memory(vaddr, len.min(MAX_LOG) as usize) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::warn!(
                    "vCPU {}: cannot read the string to log: {err}",
                    vcpu.index()
                );
                return Some(0);
            }
        };
        tracing::info!("guest: {}", String::from_utf8_lossy(&bytes));
        Some(bytes.len() as u64)
    })?;
    let start = trace.clone();
    plugin.on_hypercall(base + 2, move |_vcpu, _call| {
        start.insns.store(0, Ordering::Relaxed);
        start.on.store(true, Ordering::Release);
        tracing::info!("trace: started");
        Some(0)
    })?;
    let stop = trace.clone();
    plugin.on_hypercall(base + 3, move |_vcpu, _call| {
        stop.on.store(false, Ordering::Release);
        let insns = stop.insns.load(Ordering::Relaxed);
        tracing::info!("trace: stopped, {insns} instructions");
        Some(insns)
    })?;

    let total = trace.clone();
    plugin.on_exit(move |_| {
        tracing::info!("pings answered: {}", pings.load(Ordering::Relaxed));
        tracing::info!(
            "trace: {} instructions traced in all",
            total.insns.load(Ordering::Relaxed)
        );
    });
    plugin.on_translate(move |tb| {
        let trace = trace.clone();
        let len = tb.len() as u64;
        tb.on_exec_fn(RegAccess::None, move |_vcpu| {
            if trace.on.load(Ordering::Acquire) {
                trace.insns.fetch_add(len, Ordering::Relaxed);
            }
            Ok(())
        });
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
