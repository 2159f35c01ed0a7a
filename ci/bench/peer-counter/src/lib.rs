//! A per-instruction counter on the `qemu-plugin` crate, for comparison.

use std::sync::atomic::{AtomicU64, Ordering};

use qemu_plugin::plugin::{HasCallbacks, Register};
use qemu_plugin::{PluginId, TranslationBlock, VCPUIndex};

static COUNT: AtomicU64 = AtomicU64::new(0);

struct PeerCounter;

impl Register for PeerCounter {}

impl HasCallbacks for PeerCounter {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> qemu_plugin::Result<()> {
        for insn in tb.instructions() {
            insn.register_execute_callback(|_| {
                COUNT.fetch_add(1, Ordering::Relaxed);
            });
        }
        Ok(())
    }

    fn on_vcpu_exit(&mut self, _id: PluginId, _vcpu: VCPUIndex) -> qemu_plugin::Result<()> {
        eprintln!("peer-counter: {} instructions", COUNT.load(Ordering::Relaxed));
        Ok(())
    }
}

qemu_plugin::register!(PeerCounter);
