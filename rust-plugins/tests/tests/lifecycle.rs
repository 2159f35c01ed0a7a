//! Plugins that reset or uninstall themselves while the guest runs, with
//! others subscribed to them.

use xplugin_tests::guests::system::PATH as KERNEL;
use xplugin_tests::guests::user::PATH as TARGETS;
use xplugin_tests::{run_user, Qemu, Run};

/// isa-debug-exit status of a guest whose main() returned 0.
const PASSED: i32 = 1;

fn assert_no_log_line(run: &Run, prefix: &str) {
    assert!(
        !run.log.lines().any(|l| l.starts_with(prefix)),
        "unexpected {prefix:?} line:\n{}",
        run.log
    );
}

#[test]
fn provider_uninstalls_itself_while_subscribed_on_four_vcpus() {
    let run = Qemu::system(KERNEL, 4)
        .plugin("block-stats")
        .plugin("blocks,limit=100000")
        .run();
    run.assert_code(PASSED)
        .assert_stdout_line("vCPUs that ran the workload: 4 of 4")
        .assert_log_contains("blocks: INFO event limit reached: uninstalling")
        // The subscriber got every event, and still calls the provider's
        // exported function after the provider is gone.
        .assert_log_contains("block-stats: received 100000 of 100000 events");
    // An uninstalled plugin's exit callback does not run.
    assert_no_log_line(&run, "blocks: fired");
}

/// Checks the `lifecycle` fixture's report of `do=reset,after=N`.
fn assert_reset_took_effect(run: &Run, after: u64) {
    let numbers = run.log_numbers("lifecycle: phase 1: ");
    // "B blocks, R when reset; phase 2: I instructions"
    let (blocks, at_reset, insns) = (numbers[0], numbers[1], numbers[3]);
    assert!(at_reset >= after, "{run:?}");
    assert_eq!(blocks, at_reset, "phase 1 ran after the reset: {run:?}");
    assert!(insns > 0, "phase 2 counted nothing: {run:?}");
    // Per-block closures of phase 1 are freed once QEMU dropped the
    // blocks they were attached to.
    let closures = run.log_numbers("lifecycle: closures of phase 1: ");
    assert!(closures[0] > 0, "{run:?}");
    assert_eq!(closures[0], closures[1], "closures leaked: {run:?}");
    // The exit callback registered before the reset is gone.
    assert_no_log_line(run, "lifecycle: phase 1 ran to the end");
}

#[test]
fn plugin_resets_itself_and_registers_new_callbacks() {
    let run = run_user(&["lifecycle,do=reset,after=1000"], TARGETS);
    run.assert_code(0).assert_stdout_line("message: hello");
    assert_reset_took_effect(&run, 1000);
}

#[test]
fn plugin_resets_itself_on_four_vcpus() {
    let run = Qemu::system(KERNEL, 4)
        .plugin("lifecycle,do=reset,after=100000")
        .run();
    run.assert_code(PASSED)
        .assert_stdout_line("vCPUs that ran the workload: 4 of 4");
    assert_reset_took_effect(&run, 100000);
}

#[test]
fn uninstall_and_reset_where_qemu_cannot() {
    let run = run_user(&["lifecycle,do=uninstall-in-install"], TARGETS);
    run.assert_code(1).assert_stderr_contains(
        "lifecycle: cannot uninstall lifecycle while it installs: \
         return an error from install instead",
    );

    run_user(&["lifecycle,do=uninstall-at-exit"], TARGETS)
        .assert_code(0)
        .assert_log_contains(
            "lifecycle: error: cannot uninstall lifecycle from its exit callback: \
             the guest has finished",
        );

    run_user(&["lifecycle,do=reset-twice,after=10"], TARGETS)
        .assert_code(0)
        .assert_log_contains(
            "lifecycle: error: cannot reset lifecycle: a reset is already under way",
        );
}

/// vCPU 1 sleeps in its syscall callback while vCPU 0 uninstalls the
/// plugin: QEMU's uninstall waits only for vCPUs in guest code, then
/// closes the library. Before the SDK pinned the library, vCPU 1 returned
/// into unmapped code: SIGSEGV (status 139 from a shell, no code here).
#[test]
fn uninstall_while_another_vcpu_runs_a_syscall_callback() {
    let run = run_user(&["teardown"], xplugin_tests::guests::threads::PATH);
    run.assert_code(0)
        .assert_stdout_line("guest: done")
        .assert_log_contains("teardown: vCPU 0 uninstalls the plugin")
        .assert_log_contains("teardown: vCPU 1 back in plugin code after the sleep")
        .assert_log_contains("teardown: again: cannot uninstall teardown: it is uninstalled");
}

/// A reset asked for from the reinstall closure of a reset (QEMU's own
/// reset is still under way): QEMU would drop it silently, and every later
/// reset was refused as "already under way". Now the nested one is an
/// error and a later one works.
#[test]
fn reset_from_reinstall_is_refused_and_a_later_reset_works() {
    let run = run_user(&["lifecycle,do=reset-in-reinstall,after=1000"], TARGETS);
    run.assert_code(0)
        .assert_stdout_line("message: hello")
        .assert_log_contains(
            "lifecycle: error: cannot reset lifecycle: a reset is already under way",
        )
        .assert_log_contains("lifecycle: second reset done");
}

/// A reset frees the plugin's hypercall numbers (log is no longer
/// handled), and its reinstall can register one of them again (ping).
#[test]
fn reset_frees_hypercall_numbers_and_reinstall_takes_them_back() {
    let run = run_user(&["lifecycle,do=hypercall-reset"], TARGETS);
    run.assert_code(0)
        .assert_stdout_line("hypercall ping(40, 2) = 43")
        .assert_log_contains("lifecycle: reinstalled\n");
    assert_no_log_line(&run, "lifecycle: guest logged");
}
