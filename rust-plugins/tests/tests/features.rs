//! The SDK's wrappers of the rest of QEMU's plugin API (fixture
//! `features`): conditional callbacks, inline stores and memory
//! operations, typed scoreboards, full memory values, physical addresses,
//! the guest binary and vCPU count, time control, the uninstall callback.

use xplugin_tests::guests::system::PATH as KERNEL;
use xplugin_tests::guests::user::{COMPUTE, PATH as TARGETS};
use xplugin_tests::{run_user, Qemu};

#[test]
fn a_conditional_callback_runs_only_when_its_counter_matches() {
    // Generated code counts compute()'s executions; the callback (which
    // doubles the argument: 21 -> 42) runs on the second only.
    run_user(&[&format!("features,do=cond,pc={COMPUTE:#x}")], TARGETS)
        .assert_code(0)
        .assert_stdout_line("call 1: compute(5) = 10")
        .assert_stdout_line("call 2: compute(5) = 42")
        .assert_stdout_line("call 3: compute(5) = 10");
    let run = run_user(&[&format!("features,do=cond,pc={COMPUTE:#x}")], TARGETS);
    assert_eq!(
        run.log.matches("conditional callback ran").count(),
        1,
        "{run:#?}"
    );
}

#[test]
fn a_typed_scoreboard_holds_inline_stores_adds_and_callback_updates() {
    let run = run_user(
        &[&format!("features,do=scoreboard,pc={COMPUTE:#x}")],
        TARGETS,
    );
    run.assert_code(0).assert_log_contains(&format!(
        "features: vCPU 0: last_pc {COMPUTE:#x}, execs 3, memory accesses "
    ));
    let n = run.log_numbers("features: vCPU 0: ");
    // [0, last_pc, 3, inline, callback]: every memory access counted once
    // by generated code and once by the callback.
    let (inline, callback) = (n[n.len() - 2], n[n.len() - 1]);
    assert!(inline > 1000, "{run:#?}");
    assert_eq!(inline, callback, "{run:#?}");
}

#[test]
fn a_memory_callback_gets_all_16_bytes_of_a_wide_store() {
    let run = run_user(&["features,do=mem-value"], TARGETS);
    run.assert_code(0);
    let n = run.log_numbers("features: 16-byte stores: ");
    let (stores, equal) = (n[0], n[1]);
    assert!(stores > 0, "the guest made no 16-byte store:\n{run:#?}");
    assert_eq!(stores, equal, "{run:#?}");
}

#[test]
fn a_memory_callback_gets_the_physical_address() {
    let run = Qemu::system(KERNEL, 1).plugin("features,do=hwaddr").run();
    run.assert_stdout_line("message: hello");
    let n = run.log_numbers("features: RAM accesses: ");
    assert!(n[0] > 100, "{run:#?}");
    assert_eq!(n[0], n[1], "{run:#?}");
}

#[test]
fn the_guest_binary_and_vcpu_count_are_known() {
    run_user(&["features,do=info"], TARGETS)
        .assert_code(0)
        .assert_log_contains(&format!("features: binary {TARGETS} entry 0x"))
        .assert_log_contains("features: vCPUs: 1 seen in callbacks, 1 at exit");
    Qemu::system(KERNEL, 4)
        .plugin("features,do=info")
        .run()
        .assert_log_contains("features: no binary (system emulation)")
        .assert_log_contains("features: vCPUs: 4 seen in callbacks, 4 at exit");
}

#[test]
fn only_one_plugin_controls_time() {
    let run = Qemu::system(KERNEL, 1)
        .plugin("features,do=time")
        .plugin("misbehave,do=time-control")
        .run();
    run.assert_stdout_line("message: hello")
        .assert_log_contains("features: time control granted")
        .assert_log_contains("features: virtual clock set to 1 s")
        .assert_log_contains(
            "misbehave: error: cannot control time: another plugin controls it \
             (QEMU grants it to the first plugin that asks) (kind Unsupported)",
        );
    run_user(&["misbehave,do=time-control"], TARGETS)
        .assert_code(0)
        .assert_log_contains(
            "misbehave: error: cannot control time: user-mode emulation has no virtual clock",
        );
}

#[test]
fn the_uninstall_callback_runs_and_the_exit_callback_does_not() {
    let run = run_user(&["features,do=uninstall"], TARGETS);
    run.assert_code(0)
        .assert_stdout_line("message: hello")
        .assert_log_contains("features: uninstall requested")
        .assert_log_contains("features: uninstall callback ran (1 vCPUs)");
    assert!(!run.log.contains("exit callback ran"), "{run:#?}");
}

/// A block callback writes CR3 twice (with PWT set, then back), and an
/// address space change callback reads the new page tables, by virtual
/// and by physical address: QEMU runs the change callback nested inside
/// each register write, where the SDK, which holds its scratch buffer
/// for the write, lends the reads another one.
#[test]
fn an_address_space_change_callback_reads_memory_inside_a_cr3_write() {
    Qemu::system(KERNEL, 1)
        .plugin("features,do=cr3-nested")
        .run()
        .assert_code(1)
        .assert_log_contains(
            "features: cr3 written twice: 2 nested changes, 2 read the page tables, \
             cr3 back: true",
        );
}
