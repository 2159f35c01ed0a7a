// The scoreboard may be reallocated when a vCPU starts: read it only from
// a thread QEMU knows.
use qemu_xplugin::Counter;

fn read_elsewhere(counter: Counter) {
    std::thread::spawn(move || counter.sum());
}

fn main() {
    let _ = read_elsewhere;
}
