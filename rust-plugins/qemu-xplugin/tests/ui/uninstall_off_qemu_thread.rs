// From a thread QEMU does not know, uninstall would take QEMU's
// synchronous path while vCPUs run.
fn main() {
    std::thread::spawn(|| qemu_xplugin::uninstall());
}
