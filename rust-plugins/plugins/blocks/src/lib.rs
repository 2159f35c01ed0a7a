//! Provider: fires event `block_exec` for every executed block and exports
//! `blocks_fired()`; see the `blocks-api` crate for the types.
//!
//! Counts, and prints at exit, how many blocks subscribers flagged.

use std::sync::OnceLock;

use blocks_api::{BlockExec, FiredFn, BLOCK_EVENT, FIRED};
use qemu_xplugin::{Args, Counter, Install, RegAccess, Result};

static FIRED_COUNT: OnceLock<Counter> = OnceLock::new();

/// How many `block_exec` events this plugin has fired.
#[no_mangle]
pub extern "C" fn blocks_fired() -> u64 {
    FIRED_COUNT.get().map_or(0, Counter::sum)
}

fn install(plugin: &mut Install, _args: &mut Args) -> Result<()> {
    let fired = *FIRED_COUNT.get_or_init(Counter::new);
    let flagged = plugin.counter();
    let event = plugin.create_event::<BlockExec>(BLOCK_EVENT)?;
    plugin.export::<FiredFn>(FIRED, blocks_fired)?;

    plugin.on_translate(move |tb| {
        let insns = tb.len() as u32;
        let pc = tb.vaddr();
        tb.on_exec_fn(RegAccess::None, move |vcpu| {
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
