// Counter::add writes the slot of the vCPU it is given, with a plain +=:
// only the running vCPU's own slot may be written.
use qemu_xplugin::{Counter, Vcpu};

fn add_to_neighbour(counter: &Counter, vcpu: &mut Vcpu) {
    counter.add(vcpu.index() + 1, 1);
}

fn main() {
    let _ = add_to_neighbour;
}
