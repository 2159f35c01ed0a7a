//! The syscalls provider and its consumers on a real Linux guest (Debian's
//! kernel, a busybox initramfs), under `qemu-system-x86_64`.

use std::sync::Mutex;

use xplugin_tests::{run_user, Qemu, Run};

/// One Linux boot at a time: in parallel on 2 cores they slow each other
/// down to no purpose.
static BOOT: Mutex<()> = Mutex::new(());

fn boot(qemu: Qemu) -> Run {
    let _one_at_a_time = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    qemu.run()
}

fn assert_workload_ran(run: &Run) {
    run.assert_code(0)
        .assert_stdout_line("workload: start")
        .assert_stdout_line("workload: done");
    assert!(
        run.stdout.lines().any(|l| l.starts_with("uname: 6.")),
        "no uname line:\n{run:#?}"
    );
}

#[test]
fn linux_boots_and_runs_the_workload() {
    let run = boot(Qemu::linux(1));
    assert_workload_ran(&run);
    run.assert_stdout_line("exit status of sh: 3");
    assert!(
        !run.stdout.contains("pid of sh: 4242"),
        "the pid is the kernel's:\n{run:#?}"
    );
}

#[test]
fn subscribers_rewrite_a_return_value_and_an_argument() {
    let run = boot(
        Qemu::linux(1)
            .plugin("syscall-override,proc=sh,getpid=4242,exit_code=42")
            .plugin("syscalls"),
    );
    assert_workload_ran(&run);
    run.assert_stdout_line("pid of sh: 4242")
        .assert_stdout_line("exit status of sh: 42")
        .assert_log_contains("syscall-override: INFO sh: getpid() = ")
        .assert_log_contains("syscall-override: INFO sh: exit_group(3) -> exit_group(42)");
}

#[test]
fn strace_logs_every_process_with_names() {
    let run = boot(Qemu::linux(1).plugin("strace").plugin("syscalls"));
    assert_workload_ran(&run);
    // The workload's commands, as the shell runs them.
    run.assert_log_contains("execve(\"/bin/uname\"")
        .assert_log_contains("execve(\"/bin/sh\"");
    // uname(2) as the uname program makes it, and its result.
    assert!(
        run.log
            .lines()
            .any(|l| l.starts_with("[uname ") && l.contains("] uname(") && l.ends_with(" = 0")),
        "no uname() call by uname:\n{}",
        run.log
    );
    assert!(
        run.log
            .lines()
            .any(|l| l.starts_with("[sh ") && l.contains("] getpid(")),
        "no getpid() by sh:\n{}",
        run.log
    );
}

#[test]
fn strace_filters_by_process_name() {
    let run = boot(
        Qemu::linux(1)
            .plugin("strace,proc=uname")
            .plugin("syscalls"),
    );
    assert_workload_ran(&run);
    let lines: Vec<&str> = run.log.lines().collect();
    assert!(lines.len() > 3, "{run:#?}");
    assert!(
        lines.iter().all(|l| l.starts_with("[uname ")),
        "{}",
        run.log
    );
}

#[test]
fn the_provider_needs_system_emulation() {
    let run = run_user(&["syscalls"], xplugin_tests::guests::user::PATH);
    run.assert_code(1)
        .assert_stderr_contains("syscalls: needs qemu-system-x86_64, not x86_64 user");
}

/// Linux switches page tables at every switch to another process:
/// asid-timeline sees switches, each one with the vCPU in kernel mode and
/// the new address space what QEMU says the vCPU is in, and CR3, read
/// through the register API at the vCPU's next block, holds the new value
/// every time.
#[test]
fn asid_timeline_follows_the_processes() {
    let run = boot(Qemu::linux(1).plugin("asid-timeline,check=on"));
    assert_workload_ran(&run);
    let check = run.log_numbers("asid-timeline: check: ");
    let (switches, checked, errors) = (check[0], check[1], check[2]);
    assert!(switches > 0, "no switch:\n{run:#?}");
    assert_eq!(checked, switches, "switches not checked:\n{run:#?}");
    assert_eq!(errors, 0, "{run:#?}");
    // Its time (the default clock: nanoseconds out of idle), switches and
    // address spaces: the workload's processes each have their own.
    let vcpu = run.log_numbers("asid-timeline: vcpu 0: ");
    assert!(vcpu[2] > 5, "few address spaces:\n{run:#?}");
    run.assert_log_contains(&format!("asid-timeline: vcpu 0: {} ns, ", vcpu[0]));
    // The rows of the address spaces (and of the others, summed) share
    // out all of the vCPU's time, in one slice per switch and one for the
    // address space it ran in at the end.
    let (ran, slices) = run.asid_timeline_rows("asid-timeline: vcpu 0: ");
    assert_eq!(ran, vcpu[0], "{run:#?}");
    assert_eq!(slices, switches + 1, "{run:#?}");
}
