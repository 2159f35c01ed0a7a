//! The plugins change a user-mode guest, under `qemu-x86_64`.

use xplugin_tests::guests::user::{COMPUTE, IS_LICENSED, MESSAGE, PATH as TARGETS, SHOW};
use xplugin_tests::{run_user, Qemu};

#[test]
fn guest_without_plugins() {
    run_user(&[], TARGETS)
        .assert_code(0)
        .assert_stdout_line("is_licensed() = 0, its body ran 1 times")
        .assert_stdout_line("call 2: compute(5) = 10")
        .assert_stdout_line("message: hello")
        .assert_stdout_line("syscall(1000) returned -1");
}

/// The guest's hypercall ping line: CPUID's EAX without the plugin.
fn ping_line(run: &xplugin_tests::Run) -> &str {
    run.stdout
        .lines()
        .find(|l| l.starts_with("hypercall ping(40, 2) = "))
        .unwrap_or_else(|| panic!("no ping line:\n{run:#?}"))
}

#[test]
fn hypercalls_without_the_plugin_are_plain_cpuid() {
    let run = run_user(&[], TARGETS);
    run.assert_code(0);
    assert_ne!(ping_line(&run), "hypercall ping(40, 2) = 42", "{run:#?}");
}

#[test]
fn hypercall_plugin_answers_logs_and_traces() {
    let run = run_user(&["hypercall"], TARGETS);
    run.assert_code(0)
        .assert_stdout_line("hypercall ping(40, 2) = 42")
        .assert_stdout_line("call 3: compute(5) = 10")
        .assert_stdout_line("message: hello")
        .assert_log_contains("hypercall: INFO guest: hello from the guest")
        .assert_log_contains("hypercall: INFO trace: started")
        .assert_log_contains("hypercall: INFO pings answered: 1\n");
    let traced = run.log_numbers("hypercall: INFO trace: stopped, ")[0];
    // Only what runs between start and stop (three printf calls), not
    // the whole run.
    assert!((1_000..=20_000).contains(&traced), "{traced}: {run:#?}");
    // Stop stopped: nothing was counted after it.
    run.assert_log_contains(&format!(
        "hypercall: INFO trace: {traced} instructions traced in all\n"
    ));
}

#[test]
fn a_hypercall_number_belongs_to_one_plugin() {
    // Another base: both plugins answer their own numbers.
    Qemu::user(TARGETS)
        .plugin("hypercall,base=0x4c590000")
        .plugin_copy("hypercall", "")
        .run()
        .assert_code(0)
        .assert_stdout_line("hypercall ping(40, 2) = 42");
    // The same numbers: the second plugin's install fails.
    let run = Qemu::user(TARGETS)
        .plugin("hypercall")
        .plugin_copy("hypercall", "")
        .run();
    assert_ne!(run.code, Some(0), "{run:#?}");
    run.assert_stderr_contains("QEMU refused hypercall 0x4c580000 (already registered?)");
}

#[test]
fn hypercall_numbers_are_32_bit() {
    // base + 3 would exceed EAX: the plugin refuses to install.
    let run = Qemu::user(TARGETS)
        .plugin("hypercall,base=0xfffffffd")
        .run();
    assert_ne!(run.code, Some(0), "{run:#?}");
    run.assert_stderr_contains("base 0xfffffffd: base + 3 must not exceed 0xffffffff");
}

/// "counter: N instructions, M blocks (mode)" -> (N, M)
fn counts(log: &str) -> (u64, u64) {
    let line = log
        .lines()
        .find(|l| l.starts_with("counter: "))
        .unwrap_or_else(|| panic!("no counter line in {log:?}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn counter_inline_and_callback_agree() {
    let inline = run_user(&["counter"], TARGETS);
    inline.assert_code(0).assert_log_contains("(inline)");
    let callback = run_user(&["counter,mode=callback"], TARGETS);
    callback.assert_code(0).assert_log_contains("(callback)");
    let (insns, blocks) = counts(&inline.log);
    assert!(insns > 1000 && blocks > 100, "{inline:?}");
    assert!(insns > blocks);
    assert_eq!(counts(&inline.log), counts(&callback.log));
}

#[test]
fn injector_rewrites_an_argument_on_the_nth_call() {
    let spec = format!("injector,pc={COMPUTE:#x},nth=2,reg=rdi:21");
    run_user(&[&spec], TARGETS)
        .assert_code(0)
        .assert_stdout_line("call 1: compute(5) = 10")
        .assert_stdout_line("call 2: compute(5) = 42")
        .assert_stdout_line("call 3: compute(5) = 10")
        .assert_log_contains(&format!("execution 2 of {COMPUTE:#x}: rdi = 0x15"));
}

#[test]
fn injector_overwrites_memory() {
    // "HACKED\0"
    let spec = format!("injector,pc={SHOW:#x},mem={MESSAGE:#x}:4841434b454400");
    run_user(&[&spec], TARGETS)
        .assert_code(0)
        .assert_stdout_line("message: HACKED")
        .assert_log_contains(&format!("wrote 7 bytes at {MESSAGE:#x}"));
}

#[test]
fn hook_skips_a_function_and_sets_its_result() {
    let spec = format!("hook,addr={IS_LICENSED:#x},ret=1");
    run_user(&[&spec], TARGETS)
        .assert_code(0)
        .assert_stdout_line("is_licensed() = 1, its body ran 0 times")
        .assert_stdout_line("call 3: compute(5) = 10")
        .assert_log_contains(&format!(
            "hook: skipped the function at {IS_LICENSED:#x} 1 times, returning 1"
        ));
}

#[test]
fn plugins_talk_through_events_and_imports() {
    // The consumer comes first: QEMU installs "blocks" first as it requires.
    let run = run_user(&["block-stats,flag_from=0", "blocks"], TARGETS);
    run.assert_code(0).assert_stdout_line("message: hello");
    let received = run
        .log
        .lines()
        .find_map(|l| l.strip_prefix("block-stats: received "))
        .unwrap_or_else(|| panic!("no block-stats line: {run:?}"));
    let numbers: Vec<u64> = received
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(numbers[0] > 100, "{run:?}");
    assert_eq!(numbers[0], numbers[1], "every fired event is received");
    // Every block is at or above 0: the subscriber's answers reached the
    // provider.
    run.assert_log_contains(&format!(
        "blocks: fired {} events, {} flagged by subscribers",
        numbers[0], numbers[0]
    ));
}

#[test]
fn syscall_filter_fakes_a_syscall() {
    let run = run_user(&["syscall-fake,nr=1000,ret=4242,trace=on"], TARGETS);
    run.assert_code(0)
        .assert_stdout_line("syscall(1000) returned 4242")
        .assert_log_contains("syscall_fake: INFO syscall 1000(0x1, 0x2) skipped, returning 4242")
        .assert_log_contains("syscall 1000 returned 4242");
    // Other syscalls still run: the guest printed, and write(2) was traced.
    run.assert_log_contains("syscall 1 entered");
}
