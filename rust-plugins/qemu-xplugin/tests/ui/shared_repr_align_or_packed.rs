// `#[repr(align(N))]` alone is not `#[repr(C)]`: the field order is the
// compiler's. `#[repr(packed)]` is refused even with C: its fields may be
// unaligned, and references to them undefined behaviour.
#[derive(qemu_xplugin::Shared, Clone, Copy)]
#[repr(align(8))]
struct AlignOnly {
    a: u8,
    b: u32,
}

#[derive(qemu_xplugin::Shared, Clone, Copy)]
#[repr(packed(2))]
struct PackedOnly {
    a: u8,
    b: u32,
}

#[derive(qemu_xplugin::Shared, Clone, Copy)]
#[repr(C, packed)]
struct PackedC {
    a: u8,
    b: u32,
}

fn main() {}
