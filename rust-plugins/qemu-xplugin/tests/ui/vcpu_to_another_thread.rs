// A Vcpu is valid on its own vCPU thread, during its callback: it cannot
// be lent to another thread.
use qemu_xplugin::Vcpu;

fn callback(vcpu: &mut Vcpu) {
    std::thread::scope(|s| {
        s.spawn(|| vcpu.index());
    });
}

fn main() {
    let _ = callback;
}
