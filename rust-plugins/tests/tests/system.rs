//! The plugins change the bare-metal guest under `qemu-system-x86_64`,
//! several on machines with 4 vCPUs (MTTCG).

use xplugin_tests::guests::system::{
    COMPUTE, IS_LICENSED, MESSAGE, PATH as KERNEL, SHOW, SYSCALL_DISPATCH,
};
use xplugin_tests::Qemu;

/// isa-debug-exit status of a guest whose main() returned 0.
const PASSED: i32 = 1;

#[test]
fn guest_without_plugins() {
    Qemu::system(KERNEL, 1)
        .run()
        .assert_code(PASSED)
        .assert_stdout_line("is_licensed() = 0, its body ran 1 times")
        .assert_stdout_line("call 3: compute(5) = 10")
        .assert_stdout_line("message: hello")
        .assert_stdout_line("syscall 7(5) = 1005");
}

#[test]
fn hook_skips_a_function_on_four_vcpus() {
    Qemu::system(KERNEL, 4)
        .plugin(&format!("hook,addr={IS_LICENSED:#x},ret=1"))
        .run()
        .assert_code(PASSED)
        .assert_stdout_line("is_licensed() = 1, its body ran 0 times")
        .assert_stdout_line("message: hello")
        .assert_log_contains("skipped the function at");
}

#[test]
fn injector_writes_registers_and_virtual_memory() {
    Qemu::system(KERNEL, 1)
        .plugin(&format!(
            "injector,pc={COMPUTE:#x},nth=3,reg=rdi:21,log=warn"
        ))
        .plugin_copy_of_injector(&format!("pc={SHOW:#x},mem={MESSAGE:#x}:4841434b454400"))
        .run()
        .assert_code(PASSED)
        .assert_stdout_line("call 2: compute(5) = 10")
        .assert_stdout_line("call 3: compute(5) = 42")
        .assert_stdout_line("message: HACKED");
}

#[test]
fn injector_writes_physical_memory() {
    // The guest maps its memory 1:1, so the physical address is the
    // virtual one.
    Qemu::system(KERNEL, 1)
        .plugin(&format!(
            "injector,pc={SHOW:#x},pmem={MESSAGE:#x}:574f524c4400"
        ))
        .run()
        .assert_code(PASSED)
        .assert_stdout_line("message: WORLD")
        .assert_log_contains(&format!("wrote 6 bytes at physical {MESSAGE:#x}"));
}

#[test]
fn injector_changes_the_guests_own_syscall() {
    // syscall_dispatch(nr, arg) returns arg + 1000: change arg to 37.
    Qemu::system(KERNEL, 1)
        .plugin(&format!("injector,pc={SYSCALL_DISPATCH:#x},reg=rsi:37"))
        .run()
        .assert_code(PASSED)
        .assert_stdout_line("syscall 7(5) = 1037");
}

#[test]
fn events_reach_every_subscriber_from_four_vcpus() {
    let run = Qemu::system(KERNEL, 4)
        .plugin("block-stats")
        .plugin("blocks")
        .plugin("counter")
        .run();
    run.assert_code(PASSED).assert_stdout_line("message: hello");
    let received = run.log_numbers("block-stats: received ");
    assert!(received[0] > 1000, "{run:?}");
    assert_eq!(received[0], received[1], "every fired event is received");
    // The provider fires once per executed block, as counted inline.
    let counted = run.log_numbers("counter: ");
    assert_eq!(counted[1], received[1], "{run:?}");
    // vCPUs 1 to 3 only ever wait.
    assert!(counted[2] >= 3, "idle callbacks ran: {run:?}");
}
