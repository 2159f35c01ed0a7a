// An MMIO callback gets a `Vcpu<QemuThread>`, no `ExecThread`: QEMU does
// not check that the access comes from inside guest code, where no
// scoreboard can be reallocated, so a counter cannot be read there.
use qemu_xplugin::{Args, Install, MmioAction, Result};

fn install(plugin: &mut Install, _args: &mut Args) -> Result<()> {
    let counter = plugin.counter();
    plugin.on_mmio(0xfe00_0000..0xfe00_0004, move |vcpu, _access| {
        let _ = counter.sum(vcpu);
        MmioAction::Pass
    })
}

fn main() {
    let _ = install;
}
