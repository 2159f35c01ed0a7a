// Firing an event enters an RCU read section: only on a thread QEMU knows.
use qemu_xplugin::Event;

fn fire_elsewhere(event: Event<u64>) {
    std::thread::spawn(move || {
        event.fire(&mut 0);
    });
}

fn main() {
    let _ = fire_elsewhere;
}
