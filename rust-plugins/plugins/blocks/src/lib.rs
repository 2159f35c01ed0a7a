//! Provider: fires event `block_exec` for every executed block and exports
//! `blocks_fired()`; see the `blocks-api` crate for the types.
//!
//! Counts, and prints at exit, how many blocks subscribers flagged.
//!
//! `-plugin libblocks.so[,limit=N]`: with `limit`, it uninstalls itself
//! once it has fired N events; its subscribers stay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use blocks_api::{BlockExec, FiredFn, BLOCK_EVENT, FIRED};
use qemu_xplugin::{Args, Install, RegAccess, Result};

/// Events fired so far, for [`blocks_fired`], which other plugins call
/// from their own callbacks.
static FIRED_COUNT: AtomicU64 = AtomicU64::new(0);

/// How many `block_exec` events this plugin has fired; exported as
/// [`FIRED`].
extern "C" fn blocks_fired() -> u64 {
    FIRED_COUNT.load(Ordering::Relaxed)
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let limit: Option<u64> = args.take("limit")?;
    // Events claimed so far, when limited: claiming first makes the limit
    // exact however many vCPUs fire at once.
    let claimed = Arc::new(AtomicU64::new(0));
    let flagged = plugin.counter();
    let event = plugin.create_event::<BlockExec>(BLOCK_EVENT)?;
    plugin.export(FIRED, blocks_fired as FiredFn)?;

    plugin.on_translate(move |tb| {
        let insns = tb.len() as u32;
        let pc = tb.vaddr();
        let claimed = claimed.clone();
        tb.on_exec_fn(RegAccess::None, move |vcpu| {
            let last = match limit {
                Some(limit) => match claimed.fetch_add(1, Ordering::Relaxed) + 1 {
                    n if n > limit => return Ok(()),
                    n => n == limit,
                },
                None => false,
            };
            let mut data = BlockExec {
                vcpu_index: vcpu.index(),
                insns,
                pc,
                flag: qemu_xplugin::Flag::new(false),
            };
            FIRED_COUNT.fetch_add(1, Ordering::Relaxed);
            event.fire(vcpu, &mut data);
            if data.flag.get() {
                flagged.add(vcpu, 1);
            }
            if last {
                tracing::info!("event limit reached: uninstalling");
                qemu_xplugin::uninstall(vcpu)?;
            }
            Ok(())
        });
    });
    plugin.on_exit(move |thread| {
        qemu_xplugin::outs(&format!(
            "blocks: fired {} events, {} flagged by subscribers\n",
            blocks_fired(),
            flagged.sum(thread)
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
