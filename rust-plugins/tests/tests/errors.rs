//! Bad input gets an error that names the problem; QEMU does not crash.

use xplugin_tests::guests::system::PATH as KERNEL;
use xplugin_tests::guests::user::PATH as TARGETS;
use xplugin_tests::{run_user, Qemu, Run};

fn refused(spec: &str, message: &str) -> Run {
    let run = run_user(&[spec], TARGETS);
    run.assert_code(1);
    assert!(
        run.stderr.contains(message),
        "stderr lacks {message:?}:\n{run:#?}"
    );
    run
}

#[test]
fn bad_plugin_arguments_are_named() {
    refused(
        "counter,mode=fast",
        "argument mode='fast': expected inline or callback",
    );
    refused(
        "counter,bogus=1",
        "unknown argument 'bogus=1' (known: log, mode)",
    );
    // QEMU turns a bare key into key=on.
    refused(
        "counter,verbose",
        "unknown argument 'verbose=on' (known: log, mode)",
    );
    refused(
        "counter,log=loud",
        "argument log='loud': expected error, warn, info, debug or trace",
    );
    refused(
        "injector,reg=rax:1",
        "missing argument 'pc' (write pc=VALUE)",
    );
    refused(
        "injector,pc=zz,reg=rax:1",
        "argument pc='zz': expected an integer",
    );
    refused("injector,pc=0x1000", "nothing to inject");
    refused("injector,pc=0x1000,nth=0,reg=rax:1", "argument nth='0'");
    refused(
        "injector,pc=0x1000,reg=rax",
        "argument reg='rax': expected NAME:VALUE",
    );
    refused(
        "injector,pc=0x1000,mem=0x10:abc",
        "argument mem='0x10:abc': expected an even number of hex digits",
    );
    refused("hook,addr=0x1000", "missing argument 'ret'");
    refused(
        "asid-timeline,clock=cycles",
        "argument clock='cycles': expected time or insns",
    );
}

#[test]
fn missing_required_plugin_is_named() {
    refused(
        "block-stats",
        "it requires plugin 'blocks', which is not loaded",
    );
}

fn misbehave(what: &str, with_blocks: bool) -> Run {
    let spec = format!("misbehave,do={what}");
    let plugins: Vec<&str> = if with_blocks {
        vec!["blocks", &spec]
    } else {
        vec![&spec]
    };
    run_user(&plugins, TARGETS)
}

#[test]
fn inter_plugin_mismatches_are_errors() {
    for (what, message) in [
        (
            "import-wrong-type",
            "plugin 'blocks' exports fn blocks_fired as extern \"C\" fn() -> u64, but 'misbehave' expects extern \"C\" fn(u32) -> u64",
        ),
        ("import-missing-function", "plugin 'blocks' does not export fn no_such"),
        ("subscribe-wrong-type", "plugin 'blocks' exports event block_exec as blocks-api::BlockExec@0.1.0 {size 24, align 8; vcpu_index: u32 @0; insns: u32 @4; pc: u64 @8; flag: flag @16}, but 'misbehave' expects u64"),
        ("subscribe-missing-event", "plugin 'blocks' does not export event no_such_event"),
    ] {
        misbehave(what, true)
            .assert_code(0)
            .assert_stdout_line("message: hello")
            .assert_log_contains(&format!("misbehave: error: {message}"));
    }
    misbehave("import-from-missing-plugin", false)
        .assert_code(0)
        .assert_log_contains("misbehave: error: ")
        .assert_log_contains("nobody");
}

#[test]
fn bad_register_and_memory_accesses_are_errors() {
    // Each error has a kind callers can match on (Error::kind), logged by
    // the fixture after the message.
    for (what, message, kind) in [
        ("unknown-register", "unknown register 'no_such_register'", "UnknownRegister"),
        ("unknown-register-handle", "unknown register 'no_such_register'", "UnknownRegister"),
        (
            "register-without-access",
            "cannot read register 'rax': this callback was registered with None access, Read is needed",
            "NotAllowed",
        ),
        (
            "register-handle-without-access",
            "cannot write register 'rax': this callback was registered with Read access, ReadWrite is needed",
            "NotAllowed",
        ),
        (
            "wrong-register-size",
            "register 'rax' is 8 bytes, cannot write 4 bytes to it",
            "RegisterSize",
        ),
        (
            "register-handle-wrong-size",
            "register 'rax' is 8 bytes, not 4 as its handle's type says",
            "RegisterSize",
        ),
        (
            "write-pc-register",
            "cannot write register 'rip': it is read-only (to redirect the vCPU, use Vcpu::set_pc)",
            "NotAllowed",
        ),
        // A bad selector would make QEMU raise a guest exception inside the
        // write and longjmp over the plugin's frames.
        (
            "write-segment-user",
            "cannot write register 'ds' in user mode: QEMU would raise a guest exception inside the write",
            "NotAllowed",
        ),
        ("unmapped-read", "cannot read 8 bytes at virtual address 0x10: not mapped", "Memory"),
        ("unmapped-read-u64", "cannot read 8 bytes at virtual address 0x10: not mapped", "Memory"),
        ("unmapped-write", "cannot write 4 bytes at virtual address 0x10: not mapped", "Memory"),
        (
            "physical-in-user-mode",
            "cannot read 8 bytes at physical address 0x1000: not available (user-mode emulation has no physical addresses) (kind Unsupported)",
            "Unsupported",
        ),
        (
            "set-pc-without-access",
            "cannot set the PC to 0x1000: this callback was registered with ReadWrite access, ReadWritePc is needed",
            "NotAllowed",
        ),
    ] {
        let run = misbehave(what, false);
        run.assert_code(0)
            .assert_stdout_line("message: hello")
            .assert_log_contains(&format!("misbehave: error: {message}"));
        let line = run
            .log
            .lines()
            .find(|l| l.contains("misbehave: error: "))
            .unwrap_or_default();
        assert!(
            line.ends_with(&format!("(kind {kind})")),
            "{what}: expected kind {kind}: {line}"
        );
    }
}

#[test]
fn an_invalid_physical_address_is_an_error() {
    Qemu::system(KERNEL, 1)
        .plugin("misbehave,do=invalid-physical")
        .run()
        .assert_code(1)
        .assert_stdout_line("message: hello")
        .assert_log_contains(
            "misbehave: error: cannot read 8 bytes at physical address 0xfff000000000: invalid address",
        );
}

#[test]
fn a_panic_stops_qemu_with_a_message() {
    for (what, message) in [
        ("panic-in-callback", "deliberate panic in a callback"),
        ("panic-in-install", "deliberate panic in install"),
    ] {
        let run = misbehave(what, false);
        run.assert_code(1)
            .assert_stderr_contains(&format!("misbehave: panic: {message} at "))
            .assert_stderr_contains("misbehave/src/lib.rs:")
            .assert_stderr_contains("; stopping QEMU")
            .assert_log_contains(&format!("misbehave: panic: {message} at "));
    }
}

/// The panic hook must end QEMU without running exit handlers: an exit
/// callback that takes a lock the panicking callback held would deadlock.
#[test]
fn a_panic_holding_a_lock_stops_qemu() {
    let run = misbehave("panic-holding-lock", false);
    run.assert_code(1)
        .assert_stderr_contains("misbehave: panic: deliberate panic holding a lock at ")
        .assert_log_contains("misbehave: panic: deliberate panic holding a lock at ");
    assert!(
        !run.log.contains("exit callback ran"),
        "exit callbacks ran after a panic:\n{run:#?}"
    );
}

/// Every syscall filter is kept, asked in registration order; the first
/// answer wins.
#[test]
fn two_syscall_filters_are_both_kept() {
    let run = misbehave("two-filters", false);
    run.assert_code(0)
        .assert_stdout_line("syscall(1000) returned 7");
    assert!(
        !run.log.contains("second filter asked"),
        "the second filter was asked though the first answered:\n{run:#?}"
    );
}

/// One library loaded twice (here through a hard link, so under two file
/// names) is one set of statics: the SDK refuses the second install.
#[test]
fn the_same_library_twice_is_refused() {
    let dir = std::env::temp_dir().join(format!("xplugin-test-{}-twice", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let link = dir.join("libcounter_again.so");
    let _ = std::fs::remove_file(&link);
    std::fs::hard_link(xplugin_tests::plugin("counter"), &link).expect("hard link");
    let run = Qemu::user(TARGETS)
        .plugin("counter")
        .plugin_path(&link, "")
        .run();
    let _ = std::fs::remove_dir_all(&dir);
    run.assert_code(1).assert_stderr_contains(
        "counter_again: this library is already installed as plugin 'counter'",
    );
}

/// An exported function is called through the SDK's table: the function
/// imported is the one exported, with the type checked.
#[test]
fn an_export_is_the_function_called() {
    misbehave("export-import", false)
        .assert_code(0)
        .assert_log_contains("misbehave: answer() = 42");
}
