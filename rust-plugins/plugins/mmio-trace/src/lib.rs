//! Logs the guest's accesses to devices (memory-mapped I/O), with the
//! device's name: what PANDA's `mmio_after_read`/`mmio_after_write`
//! callbacks see. Like every memory callback it runs after the access;
//! it cannot change the value.
//!
//! `-plugin libmmio_trace.so[,device=NAME][,log=on|off]` (system
//! emulation): every load and store that QEMU sends to a device rather
//! than to RAM, one line each in QEMU's log (`-d plugin`):
//!
//! ```text
//! mmio-trace: vcpu 0 write apic-msi 0xfee00300 4 bytes 0xc4608
//! ```
//!
//! `device=NAME` keeps only that device's accesses; `log=off` keeps only
//! the summary printed at exit: reads and writes per device. Watching
//! every memory access costs a callback each, so the guest runs much
//! slower with this plugin.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use qemu_xplugin::{Args, Install, MemRw, RegAccess, Result};

/// Reads and writes of one device.
#[derive(Default)]
struct Counts {
    reads: u64,
    writes: u64,
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let only: Option<String> = args.take("device")?;
    let log: bool = args.take_or("log", true)?;
    let counts: Arc<Mutex<BTreeMap<String, Counts>>> = Arc::default();
    let counted = counts.clone();
    let hook = plugin.mem_hook(RegAccess::None, MemRw::ReadWrite, move |vcpu, access| {
        // None: user mode, or QEMU could not look the access up again (its
        // TLB entry was flushed by the access itself); not counted.
        let Some(hwaddr) = access.hwaddr() else {
            return Ok(());
        };
        if !hwaddr.is_io {
            return Ok(());
        }
        let device = hwaddr.device.unwrap_or_else(|| "?".to_owned());
        if only.as_ref().is_some_and(|only| *only != device) {
            return Ok(());
        }
        let store = access.is_store();
        if log {
            qemu_xplugin::outs(&format!(
                "mmio-trace: vcpu {} {} {device} {:#x} {} bytes {:#x}\n",
                vcpu.index(),
                if store { "write" } else { "read" },
                hwaddr.addr,
                access.size(),
                access.value()
            ));
        }
        let mut counts = counted.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counts.entry(device).or_default();
        if store {
            entry.writes += 1;
        } else {
            entry.reads += 1;
        }
        Ok(())
    });
    plugin.on_translate(move |tb| {
        for insn in tb.insns() {
            insn.on_mem(&hook);
        }
    });
    plugin.on_exit(move |_| {
        let counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        for (device, n) in counts.iter() {
            out.push_str(&format!(
                "mmio-trace: {device}: {} reads, {} writes\n",
                n.reads, n.writes
            ));
        }
        if counts.is_empty() {
            out.push_str("mmio-trace: no device access\n");
        }
        qemu_xplugin::outs(&out);
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
