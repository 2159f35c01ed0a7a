//! Consumer of the `blocks` plugin: subscribes to its `block_exec` event,
//! flags blocks at or above `flag_from=ADDR`, and at exit compares the
//! number of events it received with `blocks_fired()`, imported from
//! `blocks`.
//!
//! `-plugin libblocks.so -plugin libblock-stats.so[,flag_from=ADDR]`
//! (QEMU installs `blocks` first whatever the order).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use blocks_api::{BlockExec, FiredFn, BLOCK_EVENT, FIRED, PLUGIN};
use qemu_xplugin::{Args, Install, Result};

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let flag_from: u64 = args.take_or("flag_from", u64::MAX)?;
    let fired: FiredFn = plugin.import(PLUGIN, FIRED)?;
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    plugin.subscribe(PLUGIN, BLOCK_EVENT, move |block: &mut BlockExec| {
        counted.fetch_add(1, Ordering::Relaxed);
        block.flag.set(block.pc >= flag_from);
    })?;
    plugin.on_exit(move |_| {
        qemu_xplugin::outs(&format!(
            "block-stats: received {} of {} events\n",
            received.load(Ordering::Relaxed),
            fired()
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(
    name = "block-stats",
    requires = ["blocks"],
    install = install
);
