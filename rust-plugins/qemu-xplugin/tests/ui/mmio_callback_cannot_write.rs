// An MMIO callback runs in the middle of a load or store, with the BQL
// held and the registers out of date: its `Vcpu` is lent immutably, so
// no register or memory write and no redirect compiles.
use qemu_xplugin::{Args, Install, MmioAction, Result};

fn install(plugin: &mut Install, _args: &mut Args) -> Result<()> {
    plugin.on_mmio(0xfe00_0000..0xfe00_0004, |vcpu, access| {
        let _ = vcpu.write_memory(0x1000, &[0]);
        let _ = vcpu.write_register_u64("rax", 1);
        let _ = vcpu.set_pc(0x1000);
        access.set_value(1);
        MmioAction::Done
    })
}

fn main() {
    let _ = install;
}
