// The reviewer's probe (mode=counter): a syscall callback runs outside
// guest code, where another guest thread may be starting vCPU 16, 32, ...:
// QEMU then reallocates every scoreboard, and a read from here read freed
// memory (0x5a under MALLOC_PERTURB_=165). Its `Vcpu` gives no `ExecThread`.
use qemu_xplugin::{Args, Install, Result};

fn install(plugin: &mut Install, _args: &mut Args) -> Result<()> {
    let counter = plugin.counter();
    plugin.on_syscall(move |vcpu, _call| {
        let _ = counter.get(vcpu, 0);
        counter.add(vcpu, 1);
        Ok(())
    });
    plugin.on_vcpu_init(move |vcpu| {
        let _ = counter.sum(vcpu);
        Ok(())
    });
    Ok(())
}

fn main() {
    let _ = install;
}
