//! `make demo`: the plugins change the bundled guests and talk to each
//! other; each step shows the guest's output before and after.

use xplugin_tests::guests::{system, user};
use xplugin_tests::{Qemu, Run};

fn show_changes(title: &str, before: &Run, after: &Run) {
    println!("\n== {title}");
    // Kernel messages ("[    5.03] reboot: ...") differ in their times only.
    let guest_lines = |run: &Run| -> Vec<String> {
        run.stdout
            .lines()
            .filter(|l| !l.starts_with('['))
            .map(str::to_owned)
            .collect()
    };
    let old = guest_lines(before);
    for (i, line) in guest_lines(after).iter().enumerate() {
        match old.get(i) {
            Some(was) if was != line => println!("   {was:<42} ->  {line}"),
            _ => {}
        }
    }
    for line in after.log.lines() {
        println!("   [plugin] {line}");
    }
}

fn main() {
    let plain = Qemu::system(system::PATH, 1).run();
    println!("== The bare-metal guest (qemu-system-x86_64), no plugin");
    for line in plain.stdout.lines() {
        println!("   {line}");
    }

    let hooked = Qemu::system(system::PATH, 4)
        .plugin(&format!("hook,addr={:#x},ret=1", system::IS_LICENSED))
        .run();
    show_changes(
        "hook: is_licensed() returns 1 and its body never runs (set-PC, 4 vCPUs)",
        &plain,
        &hooked,
    );

    let injected = Qemu::system(system::PATH, 1)
        .plugin(&format!(
            "injector,pc={:#x},nth=2,reg=rdi:21",
            system::COMPUTE
        ))
        .plugin_copy_of_injector(&format!(
            "pc={:#x},mem={:#x}:4841434b454400",
            system::SHOW,
            system::MESSAGE
        ))
        .run();
    show_changes(
        "injector: rdi on the 2nd call of compute(), and the message buffer",
        &plain,
        &injected,
    );

    let syscall = Qemu::system(system::PATH, 1)
        .plugin(&format!(
            "injector,pc={:#x},reg=rsi:37",
            system::SYSCALL_DISPATCH
        ))
        .run();
    show_changes(
        "injector: the argument the guest's syscall handler sees",
        &plain,
        &syscall,
    );

    let talking = Qemu::system(system::PATH, 4)
        .plugin("block-stats,flag_from=0x100000")
        .plugin("blocks")
        .run();
    show_changes(
        "blocks fires an event per executed block; block-stats subscribes, answers, and calls blocks_fired()",
        &plain,
        &talking,
    );

    let user_plain = Qemu::user(user::PATH).run();
    let faked = Qemu::user(user::PATH)
        .plugin("syscall-fake,nr=1000,ret=4242")
        .run();
    show_changes(
        "user mode (qemu-x86_64): syscall-fake skips syscall 1000 and returns 4242",
        &user_plain,
        &faked,
    );

    let linux_plain = Qemu::linux(1).run();
    let linux_changed = Qemu::linux(1)
        .plugin("syscall-override,proc=sh,getpid=4242,exit_code=42")
        .plugin("syscalls")
        .run();
    show_changes(
        "Linux guest: the syscalls provider, and syscall-override changing getpid() and exit_group() of sh",
        &linux_plain,
        &linux_changed,
    );

    let failures = [&plain, &hooked, &injected, &syscall, &talking]
        .iter()
        .filter(|run| run.code != Some(1))
        .count()
        + [&user_plain, &faked, &linux_plain, &linux_changed]
            .iter()
            .filter(|run| run.code != Some(0))
            .count();
    if failures > 0 {
        eprintln!("demo: {failures} run(s) did not exit as expected");
        std::process::exit(1);
    }
}
