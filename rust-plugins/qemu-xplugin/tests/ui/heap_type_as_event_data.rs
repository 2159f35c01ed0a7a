// Event data crosses into another plugin, which has its own allocator: a
// type owning heap memory (Vec, String, Box) must not be event data.
use qemu_xplugin::Install;

fn subscribe_with_a_vec(plugin: &mut Install) {
    let _ = plugin.subscribe("provider", "event", |_: &mut Vec<u8>| {});
}

fn main() {
    let _ = subscribe_with_a_vec;
}
