//! Provider: fires event `block_exec` for every executed block and exports
//! `blocks_fired()`; see the `blocks-api` crate for the types.
//!
//! Counts, and prints at exit, how many blocks subscribers flagged.
//!
//! `-plugin libblocks.so[,limit=N]`: with `limit`, it uninstalls itself
//! once it has fired N events; its subscribers stay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use blocks_api::{BlockExec, FiredFn, BLOCK_EVENT, FIRED};
use qemu_xplugin::{Args, Counter, Install, RegAccess, Result};

static FIRED_COUNT: OnceLock<Counter> = OnceLock::new();

/// How many `block_exec` events this plugin has fired.
#[no_mangle]
pub extern "C" fn blocks_fired() -> u64 {
    FIRED_COUNT.get().map_or(0, Counter::sum)
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let limit: Option<u64> = args.take("limit")?;
    // Events claimed so far, when limited: claiming first makes the limit
    // exact however many vCPUs fire at once.
    let claimed = Arc::new(AtomicU64::new(0));
    let fired = *FIRED_COUNT.get_or_init(Counter::new);
    let flagged = plugin.counter();
    let event = plugin.create_event::<BlockExec>(BLOCK_EVENT)?;
    plugin.export::<FiredFn>(FIRED, blocks_fired)?;

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
                flag: false,
            };
            fired.add(vcpu.index(), 1);
            event.fire(&mut data);
            if data.flag {
                flagged.add(vcpu.index(), 1);
            }
            if last {
                tracing::info!("event limit reached: uninstalling");
                qemu_xplugin::uninstall()?;
            }
            Ok(())
        });
    });
    plugin.on_exit(move || {
        qemu_xplugin::outs(&format!(
            "blocks: fired {} events, {} flagged by subscribers\n",
            fired.sum(),
            flagged.sum()
        ));
    });
    Ok(())
}

qemu_xplugin::plugin!(install);
