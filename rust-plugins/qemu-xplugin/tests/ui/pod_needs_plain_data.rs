// A scoreboard value must be valid for every bit pattern (QEMU zero-fills
// it, generated code writes 8 bytes into it) and have no padding.

// Padding: 4 bytes after `a`.
#[derive(qemu_xplugin::Pod, Clone, Copy)]
#[repr(C)]
struct Padded {
    a: u32,
    b: u64,
}

// bool: only 0 and 1 are values.
#[derive(qemu_xplugin::Pod, Clone, Copy)]
#[repr(C)]
struct HasBool {
    a: u64,
    b: bool,
}

// Not repr(C): the layout is the compiler's choice.
#[derive(qemu_xplugin::Pod, Clone, Copy)]
struct NotReprC {
    a: u64,
}

// A scoreboard of a type that is not Pod at all.
fn scoreboard_of_bool(plugin: &mut qemu_xplugin::Install) {
    let _ = plugin.scoreboard::<bool>();
}

fn main() {}
