// A bool is not Shared: another plugin (a C subscriber of the event) may
// store any byte in it. Shared data says yes or no with qemu_xplugin::Flag.

#[derive(qemu_xplugin::Shared, Clone, Copy)]
#[repr(C)]
struct WithBool {
    a: u64,
    b: bool,
}

#[derive(qemu_xplugin::Shared, Clone, Copy)]
#[repr(C)]
struct WithFlag {
    a: u64,
    b: qemu_xplugin::Flag,
}

fn main() {}
