// On hot-unplug QEMU runs vCPU exit callbacks on its main thread with no
// current vCPU: register reads abort there, and reset or uninstall would
// run at once, freeing closures blocks still use. The exit callback gets
// the vCPU's index only.
use qemu_xplugin::{Args, Install, Result};

fn install(plugin: &mut Install, _args: &mut Args) -> Result<()> {
    plugin.on_vcpu_exit(|vcpu| {
        vcpu.read_register("rip")?;
        qemu_xplugin::uninstall(vcpu)?;
        qemu_xplugin::reset(vcpu, |_| Ok(()))?;
        Ok(())
    });
    Ok(())
}

fn main() {
    let _ = install;
}
