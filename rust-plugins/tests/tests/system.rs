//! The plugins change the bare-metal guest under `qemu-system-x86_64`,
//! several on machines with 4 vCPUs (MTTCG), where the guest's workload
//! runs on every vCPU at once.

use xplugin_tests::guests::system::{
    COMPUTE, IS_LICENSED, MESSAGE, PATH as KERNEL, SHOW, SYSCALL_DISPATCH,
};
use xplugin_tests::Qemu;

/// isa-debug-exit status of a guest whose main() returned 0.
const PASSED: i32 = 1;

/// Calls of compute(5) by each vCPU in the guest's multi-vCPU workload.
const ROUNDS: u64 = 100_000;

/// Checks each of `vcpus` vCPUs ran the workload, with every compute(5)
/// returning `result`.
fn assert_every_vcpu_computed(run: &xplugin_tests::Run, vcpus: u64, result: u64) {
    for cpu in 0..vcpus {
        run.assert_stdout_line(&format!(
            "cpu {cpu}: {ROUNDS} calls of compute(5) summed to {}",
            ROUNDS * result
        ));
    }
    run.assert_stdout_line(&format!("vCPUs that ran the workload: {vcpus} of {vcpus}"));
}

#[test]
fn guest_without_plugins() {
    let run = Qemu::system(KERNEL, 1).run();
    run.assert_code(PASSED)
        .assert_stdout_line("is_licensed() = 0, its body ran 1 times")
        .assert_stdout_line("call 3: compute(5) = 10")
        .assert_stdout_line("message: hello")
        .assert_stdout_line("syscall 7(5) = 1005");
    assert_every_vcpu_computed(&run, 1, 10);
    let ping = run
        .stdout
        .lines()
        .find(|l| l.starts_with("hypercall ping(40, 2) = "))
        .unwrap_or_else(|| panic!("no ping line:\n{run:#?}"));
    assert_ne!(ping, "hypercall ping(40, 2) = 42", "{run:#?}");
}

#[test]
fn hypercall_plugin_answers_logs_and_traces() {
    let run = Qemu::system(KERNEL, 1).plugin("hypercall").run();
    run.assert_code(PASSED)
        .assert_stdout_line("hypercall ping(40, 2) = 42")
        .assert_stdout_line("call 3: compute(5) = 10")
        .assert_stdout_line("message: hello")
        .assert_log_contains("hypercall: INFO guest: hello from the guest")
        .assert_log_contains("hypercall: INFO trace: started");
    let traced = run.log_numbers("hypercall: INFO trace: stopped, ")[0];
    // Only what runs between start and stop (three compute and print
    // rounds), not the whole run.
    assert!((200..=5_000).contains(&traced), "{traced}: {run:#?}");
    // Stop stopped: nothing was counted after it.
    run.assert_log_contains(&format!(
        "hypercall: INFO trace: {traced} instructions traced in all\n"
    ));
}

/// Pings of each vCPU during the guest's workload (guest.c).
const PINGS: u64 = 1000;

#[test]
fn hypercalls_from_four_vcpus_at_once() {
    let run = Qemu::system(KERNEL, 4).plugin("hypercall").run();
    run.assert_code(PASSED)
        .assert_stdout_line("hypercall ping(40, 2) = 42");
    assert_every_vcpu_computed(&run, 4, 10);
    // The main ping and every vCPU's, each answered once.
    run.assert_log_contains(&format!(
        "hypercall: INFO pings answered: {}",
        1 + 4 * PINGS
    ));
}

#[test]
fn guest_runs_its_workload_on_four_vcpus() {
    let run = Qemu::system(KERNEL, 4).run();
    run.assert_code(PASSED);
    assert_every_vcpu_computed(&run, 4, 10);
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

/// The stress test: on 4 vCPUs running the guest's workload at once, one
/// plugin rewrites a register on every call of compute() on every vCPU,
/// one fires an event per executed block, one subscribes to it, and one
/// counts the blocks inline. Nothing may be lost.
#[test]
fn registers_written_and_events_fired_on_every_vcpu_at_once() {
    let run = Qemu::system(KERNEL, 4)
        .plugin(&format!("injector,pc={COMPUTE:#x},reg=rdi:21,log=warn"))
        .plugin("block-stats")
        .plugin("blocks")
        .plugin("counter")
        .run();
    run.assert_code(PASSED);
    // Every one of the 400,000 calls on the 4 vCPUs saw its rdi rewritten.
    assert_every_vcpu_computed(&run, 4, 42);
    let received = run.log_numbers("block-stats: received ");
    assert!(received[0] > 4 * ROUNDS, "{run:?}");
    assert_eq!(received[0], received[1], "every fired event is received");
    let fired = run.log_numbers("blocks: fired ");
    assert_eq!(fired[0], received[0], "{run:?}");
    let counted = run.log_numbers("counter: ");
    assert_eq!(counted[1], fired[0], "blocks counted inline: {run:?}");
}

/// mmio-trace sees the guest's writes to the local APIC that start the
/// other vCPUs (MMIO, reported as I/O since the series' tlb_plugin_lookup
/// fix), with the device's name: the startup IPI whose vector (8) is the
/// guest's trampoline page 0x8000 (the firmware's is 0x10), after the
/// destination register.
#[test]
fn mmio_trace_logs_the_guests_writes_to_the_local_apic() {
    let run = Qemu::system(KERNEL, 4)
        .plugin("mmio-trace,device=apic-msi")
        .run();
    run.assert_code(PASSED);
    assert_every_vcpu_computed(&run, 4, 10);
    run.assert_log_contains("write apic-msi 0xfee00310 4 bytes 0x0\n")
        .assert_log_contains("write apic-msi 0xfee00300 4 bytes 0xc4608\n");
    // The summary counts them: INIT and startup IPI, each after the
    // destination, by the guest and by the firmware.
    let numbers = run.log_numbers("mmio-trace: apic-msi: ");
    assert!(numbers[1] >= 8, "writes to the local APIC: {run:?}");
    assert!(
        run.log
            .lines()
            .filter(|l| l.starts_with("mmio-trace: vcpu "))
            .all(|l| l.contains(" apic-msi 0xfee")),
        "device=apic-msi keeps only that device's accesses: {run:?}"
    );
}

/// Each vCPU of the guest loads CR3 once, as it enables paging (from 0
/// to the guest's page tables): asid-timeline sees that switch on each of
/// the 4 vCPUs, where QEMU says the vCPU is in kernel mode and its
/// address space is the new one, and finds the new value in CR3 through
/// the register API at the vCPU's next block. With `clock=insns` its
/// timeline counts each vCPU's instructions.
#[test]
fn asid_timeline_sees_every_vcpu_load_its_page_tables() {
    let run = Qemu::system(KERNEL, 4)
        .plugin("asid-timeline,check=on,clock=insns")
        .run();
    run.assert_code(PASSED).assert_log_contains(
        "asid-timeline: check: 4 switches, 4 checked at the next block, 0 errors",
    );
    for cpu in 0..4 {
        // Its instructions, switches and address spaces (0 and the page
        // tables).
        let prefix = format!("asid-timeline: vcpu {cpu}: ");
        let numbers = run.log_numbers(&prefix);
        assert_eq!(numbers[1..], [1, 2], "vcpu {cpu}:\n{run:#?}");
        assert!(
            numbers[0] > ROUNDS,
            "vcpu {cpu} ran the workload:\n{run:#?}"
        );
        run.assert_log_contains(&format!("{prefix}{} instructions, ", numbers[0]));
        assert_eq!(
            run.asid_timeline_rows(&prefix),
            (numbers[0], 2),
            "vcpu {cpu}: the rows share out its instructions:\n{run:#?}"
        );
    }
}

/// By default asid-timeline's clock is host time out of idle, in
/// nanoseconds, with no instrumentation of generated code: the same
/// switches, and rows that share out each vCPU's time.
#[test]
fn asid_timeline_measures_time_by_default() {
    let run = Qemu::system(KERNEL, 4)
        .plugin("asid-timeline,switches=on")
        .run();
    run.assert_code(PASSED);
    for cpu in 0..4 {
        let prefix = format!("asid-timeline: vcpu {cpu}: ");
        let numbers = run.log_numbers(&prefix);
        assert_eq!(numbers[1..], [1, 2], "vcpu {cpu}:\n{run:#?}");
        assert!(numbers[0] > 0, "vcpu {cpu} ran:\n{run:#?}");
        run.assert_log_contains(&format!("{prefix}{} ns, ", numbers[0]));
        assert_eq!(
            run.asid_timeline_rows(&prefix),
            (numbers[0], 2),
            "vcpu {cpu}: the rows share out its time:\n{run:#?}"
        );
        // switches=on: the switch as it happens, from 0.
        assert!(
            run.log
                .lines()
                .any(|l| l.contains(&format!("vcpu {cpu}: 0x0 -> 0x")) && l.ends_with(" ns")),
            "vcpu {cpu}'s switch logged:\n{run:#?}"
        );
    }
}
