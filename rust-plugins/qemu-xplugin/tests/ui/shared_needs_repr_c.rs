// A shared type needs a layout both plugins compute the same way.
#[derive(qemu_xplugin::Shared, Clone, Copy)]
struct NotReprC {
    a: u32,
}

#[derive(qemu_xplugin::Shared, Clone, Copy)]
#[repr(C)]
struct OwnsHeap {
    name: &'static str,
}

fn main() {}
