//! The `osi` provider (Linux introspection from the kernel's BTF) with
//! `syscalls`, `strace` and `ps` on the Linux test guest, at `-smp 1` and
//! `-smp 4`; and its start-up errors.
//!
//! The guest's workload (`rust-plugins/guests/linux/init`) runs busybox
//! applets by path (fork + execve of the file) and by name (busybox's shell
//! forks and runs them without execve, renaming the child with prctl),
//! `kids` (forks three children that rename themselves with
//! prctl(PR_SET_NAME), then runs busybox's own `ps`, whose output it
//! prints, while a renamed thread of its own is alive).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use xplugin_tests::{Qemu, Run};

/// One Linux boot at a time.
static BOOT: Mutex<()> = Mutex::new(());

fn kernel_arg() -> String {
    format!("kernel={}", Qemu::linux_kernel().display())
}

/// A boot with every plugin: the process tree at the exec of `ps` (with
/// the mappings of `ps` and `kids`) and at exit, and every syscall.
fn boot_with_osi(vcpus: u32) -> Run {
    boot_with_osi_on(Qemu::linux(vcpus))
}

fn boot_with_osi_on(qemu: Qemu) -> Run {
    let _one_at_a_time = BOOT.lock().unwrap_or_else(|e| e.into_inner());
    qemu.plugin(&format!("osi,{}", kernel_arg()))
        .plugin("ps,at=both,proc=ps,maps=ps,maps=kids,events=on")
        .plugin("syscalls")
        .plugin("strace")
        .run()
}

/// A strace line: `[name pid] call = result`.
struct Line<'a> {
    name: &'a str,
    pid: i64,
    rest: &'a str,
}

fn strace_lines(run: &Run) -> Vec<Line<'_>> {
    run.log
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            let (head, rest) = l[1..]
                .split_once("] ")
                .unwrap_or_else(|| panic!("not a strace line: {l}"));
            let (name, pid) = head
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("no pid: {l}"));
            let pid = pid
                .parse()
                .unwrap_or_else(|_| panic!("the pid is not a number: {l}"));
            Line { name, pid, rest }
        })
        .collect()
}

/// The one line of a process named `name` whose call starts with `call`.
fn the_call<'a>(lines: &'a [Line<'a>], name: &str, call: &str) -> &'a Line<'a> {
    let found: Vec<&Line> = lines
        .iter()
        .filter(|l| l.name == name && l.rest.starts_with(call))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {call:?} line, found: {:?}",
        found.iter().map(|l| l.rest).collect::<Vec<_>>()
    );
    found[0]
}

/// `pid` was created by a fork some process saw return (`clone(...) = pid`).
fn forked(lines: &[Line], pid: i64) -> bool {
    lines
        .iter()
        .any(|l| l.rest.starts_with("clone(") && l.rest.ends_with(&format!(" = {pid}")))
}

fn execs_of(lines: &[Line], pid: i64) -> usize {
    lines
        .iter()
        .filter(|l| l.pid == pid && l.rest.starts_with("execve("))
        .count()
}

/// The guest's own `ps -o pid,ppid,comm`: pid -> (ppid, comm).
fn guest_ps(run: &Run) -> BTreeMap<i64, (i64, String)> {
    run.stdout
        .lines()
        .skip_while(|l| *l != "ps: begin")
        .skip(2) // ps: begin, PID PPID COMMAND
        .take_while(|l| *l != "ps: end")
        .map(|l| {
            let mut words = l.split_whitespace();
            let pid = words.next().unwrap().parse().unwrap();
            let ppid = words.next().unwrap().parse().unwrap();
            let comm: Vec<&str> = words.collect();
            (pid, (ppid, comm.join(" ")))
        })
        .collect()
}

/// The `ps` plugin's tree at the exec of the guest's `ps`.
struct Tree {
    /// Its first line.
    title: String,
    /// Processes: pid -> (ppid, name as printed: kernel threads in
    /// brackets).
    tasks: BTreeMap<i64, (i64, String)>,
    /// Other threads: `pid {name} tid N` lines, as `(pid, "{name} tid N")`.
    threads: Vec<(i64, String)>,
    /// The mappings: `pid start-end perms path` lines.
    maps: Vec<String>,
}

fn plugin_ps(run: &Run) -> Tree {
    let mut lines = run
        .log
        .lines()
        .skip_while(|l| !l.starts_with("ps: exec of ps "));
    let title = lines.next().expect("a tree at the exec of ps").to_owned();
    let mut tasks = BTreeMap::new();
    let mut threads = Vec::new();
    let mut maps = Vec::new();
    for l in lines.take_while(|l| {
        l.starts_with("ps: ")
            && !l.starts_with("ps: exec of")
            && !l.starts_with("ps: at exit")
            && !l.starts_with("ps: exec vcpu ")
            && !l.starts_with("ps: exit vcpu ")
            && !l.starts_with("ps: switch vcpu ")
    }) {
        let body = &l["ps: ".len()..];
        if let Some(map) = body.strip_prefix("maps ") {
            maps.push(map.to_owned());
            continue;
        }
        let mut words = body.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(ppid))) = (
            words.next().map(str::parse::<i64>),
            words.next().map(str::parse::<i64>),
        ) else {
            continue; // the header
        };
        let name: Vec<&str> = words.collect();
        let name = name.join(" ");
        if name.starts_with('{') {
            threads.push((pid, name));
            continue;
        }
        tasks.insert(pid, (ppid, name));
    }
    Tree {
        title,
        tasks,
        threads,
        maps,
    }
}

fn check_workload_with_osi(run: &Run, vcpus: u32) {
    run.assert_code(0)
        .assert_stdout_line("workload: start")
        .assert_stdout_line("init pid: 1")
        .assert_stdout_line("machine by name: x86_64")
        .assert_stdout_line("workload: done");
    let lines = strace_lines(run);
    assert!(lines.len() > 300, "too few syscalls:\n{}", run.log);

    // Every syscall has a process: none is `?`, every pid is a real one.
    let unknown: Vec<&str> = run.log.lines().filter(|l| l.starts_with("[? ")).collect();
    assert!(unknown.is_empty(), "syscalls attributed to ?: {unknown:#?}");
    assert!(lines.iter().all(|l| l.pid > 0), "{}", run.log);

    // PID 1, whose exec nobody saw, by its name.
    assert!(
        lines
            .iter()
            .any(|l| l.pid == 1 && l.name == "init" && l.rest.starts_with("wait4(")),
        "no wait4() of init (pid 1):\n{}",
        run.log
    );

    // uname by path: the process that execs /bin/uname makes the uname
    // call, under the name the kernel gives it.
    let by_path: Vec<&Line> = lines
        .iter()
        .filter(|l| l.rest.starts_with("execve(\"/bin/uname\""))
        .collect();
    assert_eq!(by_path.len(), 1, "{}", run.log);
    let uname_path = by_path[0].pid;
    let unames: Vec<&Line> = lines
        .iter()
        .filter(|l| l.name == "uname" && l.rest.starts_with("uname("))
        .collect();
    assert_eq!(unames.len(), 2, "two uname processes:\n{}", run.log);
    assert!(unames.iter().any(|l| l.pid == uname_path), "{}", run.log);

    // Applets by name: their own pid (a child of the shell, no execve),
    // and the kernel's name, for every call after the rename.
    let uname_name = unames
        .iter()
        .find(|l| l.pid != uname_path)
        .expect("uname by name")
        .pid;
    let sync = the_call(&lines, "sync", "sync(");
    let mkdir = the_call(&lines, "mkdir", "mkdir(\"/tmp/nofork-dir\"");
    for (pid, name) in [
        (uname_name, "uname"),
        (sync.pid, "sync"),
        (mkdir.pid, "mkdir"),
    ] {
        assert!(pid > 1, "{name} ran in init");
        assert!(forked(&lines, pid), "no fork returned {name}'s pid {pid}");
        assert_eq!(execs_of(&lines, pid), 0, "{name} ran without execve");
        let theirs: Vec<&Line> = lines.iter().filter(|l| l.pid == pid).collect();
        // The first calls are the shell's child before busybox renames it
        // (prctl PR_SET_NAME); every one after is the applet's.
        let renamed = theirs
            .iter()
            .position(|l| l.rest.starts_with("prctl(0xf,"))
            .unwrap_or_else(|| panic!("{name} was not renamed"));
        assert!(
            theirs[renamed..].iter().all(|l| l.name == name),
            "calls of {name} (pid {pid}) under another name:\n{}",
            run.log
        );
    }

    // kids: three children that rename themselves; each says its pid.
    for kid in 1..=3 {
        let name = format!("kid-{kid}");
        let said = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: pid ")))
            .unwrap_or_else(|| panic!("{name} did not print:\n{}", run.stdout));
        let mut words = said.split_whitespace();
        let pid: i64 = words.next().unwrap().parse().unwrap();
        let ppid: i64 = words.nth(1).unwrap().parse().unwrap();
        let theirs: Vec<&Line> = lines.iter().filter(|l| l.pid == pid).collect();
        assert!(
            theirs.iter().any(|l| l.name == name
                && l.rest.starts_with("getppid(")
                && l.rest.ends_with(&format!(" = {ppid}"))),
            "no getppid() = {ppid} by {name} {pid}:\n{}",
            run.log
        );
        assert!(
            theirs.iter().all(|l| l.name == "kids" || l.name == name),
            "a call of {name} (pid {pid}) under another name:\n{}",
            run.log
        );
        assert!(theirs
            .iter()
            .any(|l| l.name == name && l.rest.starts_with("write(0x1,")));
    }

    let Tree {
        title,
        tasks,
        threads,
        maps,
    } = plugin_ps(run);

    // kids' thread, renamed: its calls carry the process's pid and the
    // thread's name, and the process list shows it under kids.
    let said = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("kids-thread: tid "))
        .unwrap_or_else(|| panic!("the thread did not print:\n{}", run.stdout));
    let words: Vec<i64> = said
        .split(" pid ")
        .map(|w| w.trim().parse().unwrap())
        .collect();
    let (tid, pid) = (words[0], words[1]);
    assert_ne!(tid, pid);
    assert!(
        lines.iter().any(|l| l.name == "kids-thread"
            && l.pid == pid
            && l.rest.starts_with("gettid(")
            && l.rest.ends_with(&format!(" = {tid}"))),
        "no gettid() = {tid} by kids-thread {pid}:\n{}",
        run.log
    );
    assert_eq!(
        threads,
        vec![(pid, format!("{{kids-thread}} tid {tid}"))],
        "{}",
        run.log
    );

    // The errno name on the return line of a failed call.
    assert!(
        lines.iter().any(|l| l.rest.ends_with(" = -2 ENOENT")),
        "no failed call with ENOENT:\n{}",
        run.log
    );

    // The process list at the exec of ps is what ps prints.
    let guest = guest_ps(run);
    let ps_pid = *guest
        .iter()
        .find(|(_, (_, comm))| comm == "ps")
        .expect("ps lists itself")
        .0;
    assert_eq!(
        title,
        format!(
            "ps: exec of ps pid {ps_pid} (/bin/ps -o pid,ppid,comm): {} tasks",
            tasks.len() + threads.len()
        ),
        "{}",
        run.log
    );
    let ours: BTreeSet<i64> = tasks.keys().copied().filter(|&p| p != 0).collect();
    let theirs: BTreeSet<i64> = guest.keys().copied().collect();
    // The kernel may start or end a kernel worker between osi's snapshot
    // (the first syscall of ps) and ps's reading of /proc: only those may
    // differ.
    let worker = |pid: &i64| {
        let in_ours = tasks
            .get(pid)
            .map(|(ppid, n)| (*ppid, n.trim_matches(['[', ']'])));
        let in_theirs = guest.get(pid).map(|(ppid, n)| (*ppid, n.as_str()));
        matches!(in_ours.or(in_theirs), Some((2, name)) if name.starts_with("kworker/"))
    };
    let differ: Vec<i64> = ours.symmetric_difference(&theirs).copied().collect();
    assert!(
        differ.iter().all(worker),
        "pids: osi {ours:?} vs the guest's ps {theirs:?}:\n{}\n{}",
        run.log,
        run.stdout
    );
    assert!(differ.len() <= 2, "{differ:?}");
    for (pid, (ppid, comm)) in guest.iter().filter(|(pid, _)| ours.contains(pid)) {
        let (our_ppid, our_name) = &tasks[pid];
        assert_eq!(our_ppid, ppid, "ppid of {pid}");
        let name = our_name.trim_start_matches('[').trim_end_matches(']');
        // ps prints a kernel worker with its current workqueue appended
        // (`kworker/0:1-events`), truncated to 15 bytes.
        let same = comm == name
            || (name.starts_with("kworker/") && comm.starts_with(&format!("{name}-")))
            || (name.starts_with("kworker/") && name.len() == 15 && comm.starts_with(name));
        assert!(same, "name of {pid}: ps says {comm:?}, osi {our_name:?}");
        let kernel_thread = our_name.starts_with('[');
        assert_eq!(kernel_thread, *pid == 2 || *ppid == 2, "{pid} {our_name}");
    }
    // Kernel threads: kthreadd and one ksoftirqd per CPU.
    assert_eq!(tasks[&2], (0, "[kthreadd]".to_owned()));
    for cpu in 0..vcpus {
        let name = format!("[ksoftirqd/{cpu}]");
        assert!(
            tasks.values().any(|(ppid, n)| *ppid == 2 && *n == name),
            "no {name}:\n{}",
            run.log
        );
    }
    // The mappings of ps include its binary (busybox, by path), those of
    // kids theirs, and the stack of its thread (rw- anonymous, below a
    // guard page): more VMAs than one maple tree leaf holds.
    let exec_of = |pid: i64, path: &str| {
        maps.iter()
            .any(|m| m.starts_with(&format!("{pid} ")) && m.ends_with(&format!(" r-x {path}")))
    };
    assert!(exec_of(ps_pid, "/bin/busybox"), "ps's mappings:\n{maps:#?}");
    assert!(exec_of(pid, "/bin/kids"), "kids' mappings:\n{maps:#?}");
    let kids_maps = maps
        .iter()
        .filter(|m| m.starts_with(&format!("{pid} ")))
        .count();
    assert!(kids_maps >= 10, "kids' mappings:\n{maps:#?}");

    // The tree at exit: osi's last refresh, at the exec of poweroff.
    let at_exit: Vec<&str> = run
        .log
        .lines()
        .skip_while(|l| !l.starts_with("ps: at exit: "))
        .collect();
    assert!(
        at_exit.iter().any(|l| l.ends_with(" poweroff")),
        "no poweroff in the tree at exit:\n{}",
        run.log
    );

    // The report at exit: events of each kind, and no failed read (the
    // guest's processes are few and quiet: nothing changes under a walk).
    let report = osi_report(run);
    assert!(
        report.exec > 0 && report.exit > 0 && report.switch > 0,
        "-smp {vcpus}: {report:?}"
    );
    assert_eq!(report.failed, [0; 7], "-smp {vcpus}: failed reads");

    // The exit and switch events, as ps (events=on) prints them: as many
    // as osi counted; `sh -c 'exit 3'` exits its group with 3; every
    // event names known tasks.
    let exits: Vec<&str> = run
        .log
        .lines()
        .filter(|l| l.starts_with("ps: exit vcpu "))
        .collect();
    let switches: Vec<&str> = run
        .log
        .lines()
        .filter(|l| l.starts_with("ps: switch vcpu "))
        .collect();
    assert_eq!(exits.len() as u64, report.exit, "{exits:#?}");
    assert_eq!(switches.len() as u64, report.switch, "{switches:#?}");
    assert!(
        exits.iter().any(|l| l.contains(" sh code 3 group")),
        "no exit_group(3) of sh: {exits:#?}"
    );
    assert!(
        exits
            .iter()
            .chain(&switches)
            .all(|l| !l.contains("pid -1 ")),
        "an event with an unknown task: {exits:#?} {switches:#?}"
    );
    // At -smp 4, syscalls ran on other vCPUs than 0: events (exit_group
    // on its syscall instruction, switches at syscall boundaries) say so.
    let vcpu = |l: &&str| -> u32 {
        l.split_whitespace()
            .nth(3)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no vcpu in {l}"))
    };
    let used: BTreeSet<u32> = exits.iter().chain(&switches).map(vcpu).collect();
    assert!(used.iter().all(|&v| v < vcpus), "{used:?}");
    if vcpus > 1 {
        assert!(
            used.iter().any(|&v| v != 0),
            "-smp {vcpus}: every event on vCPU 0: {exits:#?} {switches:#?}"
        );
    }
    eprintln!("-smp {vcpus}: events on vCPUs {used:?}");
}

#[test]
fn every_syscall_has_its_process_smp1() {
    check_workload_with_osi(&boot_with_osi(1), 1);
}

#[test]
fn every_syscall_has_its_process_smp4() {
    check_workload_with_osi(&boot_with_osi(4), 4);
}

/// The numbers of osi's report at exit.
#[derive(Debug)]
struct Report {
    exec: u64,
    exit: u64,
    switch: u64,
    /// Reads through the kernel's page table (KPTI).
    walked: u64,
    /// Failed reads: current task, task_struct, task lists, mappings,
    /// file names, argv, modules.
    failed: [u64; 7],
}

fn osi_report(run: &Run) -> Report {
    let line = run
        .log
        .lines()
        .find(|l| l.starts_with("osi: ") && l.contains(" exec, "))
        .unwrap_or_else(|| panic!("no osi report:\n{}", run.log));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(n.len(), 11, "{line}");
    let report = Report {
        exec: n[0],
        exit: n[1],
        switch: n[2],
        walked: n[3],
        failed: n[4..].try_into().expect("7"),
    };
    eprintln!("{line}");
    report
}

/// A newc cpio archive of `files` (name, mode, contents).
fn cpio(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut entry = |name: &str, mode: u32, data: &[u8]| {
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    for (name, mode, data) in files {
        entry(name, *mode, data);
    }
    entry("TRAILER!!!", 0, &[]);
    out
}

/// A static 32-bit (i386) program that enters the kernel with `syscall`
/// (an AMD CPU allows it in compatibility mode, as the 32-bit vDSO does)
/// for umask(0x12), i386 number 60, which is `exit` in the 64-bit table;
/// then `exit(5)` through `int 0x80`.
fn elf32_umask_then_exit_5() -> Vec<u8> {
    let base = 0x0804_8000u32;
    // After a `syscall` from compatibility mode the kernel returns to the
    // vDSO's landing pad, which pops ebp, edx, ecx and returns: push them
    // as __kernel_vsyscall does, over the address to continue at.
    let resume = base + 84 + 20;
    let mut code: Vec<u8> = vec![0x68]; // push resume
    code.extend_from_slice(&resume.to_le_bytes());
    code.extend_from_slice(&[
        0x51, 0x52, 0x55, // push ecx; push edx; push ebp
        0xb8, 60, 0, 0, 0, // mov eax, 60 (umask)
        0xbb, 0x12, 0, 0, 0, // mov ebx, 0x12
        0x0f, 0x05, // syscall
        // resume:
        0xb8, 1, 0, 0, 0, // mov eax, 1 (exit)
        0xbb, 5, 0, 0, 0, // mov ebx, 5
        0xcd, 0x80, // int 0x80
    ]);
    let size = 52 + 32 + code.len() as u32;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (v, n) in [
        (2u32, 2), // ET_EXEC
        (3, 2),    // EM_386
        (1, 4),
        (base + 84, 4), // entry
        (52, 4),        // phoff
        (0, 4),
        (0, 4),
        (52, 2),
        (32, 2),
        (1, 2),
        (0, 2),
        (0, 2),
        (0, 2),
        // PT_LOAD of the whole file, r-x.
        (1, 4),
        (0, 4),
        (base, 4),
        (base, 4),
        (size, 4),
        (size, 4),
        (5, 4),
        (0x1000, 4),
    ] {
        elf.extend_from_slice(&v.to_le_bytes()[..n]);
    }
    elf.extend_from_slice(&code);
    elf
}

/// A static x86_64 program whose second thread calls execve (busybox's
/// echo, printing `thread-exec`) while the first waits in pause(): the
/// kernel's de_thread() gives the exec'ing thread the leader's pid.
fn elf64_exec_from_a_thread() -> Vec<u8> {
    let base = 0x40_0000u32;
    let code_at = 64 + 56;
    // Data after the code: the path, argv's strings, argv (8-aligned).
    let code_len = 69;
    let path = base + code_at + code_len;
    let arg0 = path + 13; // "/bin/busybox\0"
    let arg1 = arg0 + 5; // "echo\0"
    let argv = (arg1 + 12).next_multiple_of(8); // "thread-exec\0"
    let stack_top = base + 0x2000;
    let le = |v: u32| v.to_le_bytes();
    let mut code: Vec<u8> = Vec::new();
    // clone(CLONE_VM | FS | FILES | SIGHAND | THREAD, stack_top, 0, 0, 0)
    code.extend([0xb8, 56, 0, 0, 0]);
    code.push(0xbf);
    code.extend(le(0x10f00));
    code.push(0xbe);
    code.extend(le(stack_top));
    code.extend([0x31, 0xd2, 0x45, 0x31, 0xd2, 0x45, 0x31, 0xc0, 0x0f, 0x05]);
    // test eax, eax; jz child (+9)
    code.extend([0x85, 0xc0, 0x74, 9]);
    // parent: pause(); jmp parent
    code.extend([0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7]);
    // child: execve(path, argv, NULL)
    code.extend([0xb8, 59, 0, 0, 0, 0xbf]);
    code.extend(le(path));
    code.push(0xbe);
    code.extend(le(argv));
    code.extend([0x31, 0xd2, 0x0f, 0x05]);
    // exit(1) if it failed
    code.extend([0xb8, 60, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x0f, 0x05]);
    assert_eq!(code.len() as u32, code_len);
    code.extend(b"/bin/busybox\0echo\0thread-exec\0");
    code.resize((argv - base - code_at) as usize, 0);
    for p in [arg0, arg1, 0] {
        code.extend(u64::from(p).to_le_bytes());
    }
    let file_size = u64::from(code_at) + code.len() as u64;
    let mut elf = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(62u16.to_le_bytes()); // EM_X86_64
    elf.extend(1u32.to_le_bytes());
    elf.extend(u64::from(base + code_at).to_le_bytes()); // entry
    elf.extend(64u64.to_le_bytes()); // phoff
    elf.extend(0u64.to_le_bytes()); // shoff
    elf.extend(0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 64, 0, 0] {
        elf.extend(v.to_le_bytes());
    }
    // PT_LOAD rwx of the file, 8 KiB in memory (the thread's stack).
    elf.extend(1u32.to_le_bytes());
    elf.extend(7u32.to_le_bytes());
    for v in [
        0u64,
        u64::from(base),
        u64::from(base),
        file_size,
        0x2000,
        0x1000,
    ] {
        elf.extend(v.to_le_bytes());
    }
    elf.extend(code);
    elf
}

/// The guest's initramfs plus `/dummy.ko` (Debian's `dummy` network
/// driver, from the kernel's package) and `/init-mod`, which loads it and
/// execs `/init`: boot it with `rdinit=/init-mod`. None if the module
/// cannot be taken from the package (no `dpkg-deb`).
fn initrd_with_a_module() -> Option<std::path::PathBuf> {
    let dir = Qemu::linux_kernel().with_file_name("debs");
    let deb = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains("linux-image-"))?;
    let ko = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -xO --wildcards './lib/modules/*/kernel/drivers/net/dummy.ko'",
            deb.display()
        ))
        .output()
        .ok()
        .filter(|o| o.status.success() && o.stdout.starts_with(b"\x7fELF"))?
        .stdout;
    let mut initrd = std::fs::read(Qemu::linux_kernel().with_file_name("initramfs.gz")).ok()?;
    // The next archive starts 4-byte aligned (zeros are skipped).
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    let script = b"#!/bin/busybox sh\n/m32\n/xt\n/bin/busybox insmod /dummy.ko\nexec /init\n";
    initrd.extend(cpio(&[
        ("dummy.ko", 0o100_644, &ko),
        ("m32", 0o100_755, &elf32_umask_then_exit_5()),
        ("xt", 0o100_755, &elf64_exec_from_a_thread()),
        ("init-mod", 0o100_755, script),
    ]));
    let path = std::env::temp_dir().join(format!("xplugin-test-{}-initrd-mod", std::process::id()));
    std::fs::write(&path, initrd).ok()?;
    Some(path)
}

/// Page table isolation and 5-level paging, in one boot: `-cpu max` has
/// LA57 (the kernel's half of the address space starts at `0xff00...`),
/// and `pti=on` forces KPTI even on this AMD-vendor model, so at every
/// user-mode observation CR3 is the user page table, which maps neither
/// the per-CPU areas nor the `task_struct`s: osi reads them through the
/// kernel's page table. (An Intel model, `-cpu Haswell-noTSX`, turns KPTI
/// on by itself; the code path is the same.)
///
/// The same boot loads a kernel module before init runs (when `dpkg-deb`
/// can take it from the kernel's package): osi finds `modules` and
/// `init_task` in the kernel's kallsyms, the KASLR slide from init_task's
/// run-time address, and lists the module.
#[test]
fn every_syscall_has_its_process_with_kpti_and_5_level_paging() {
    let initrd = initrd_with_a_module();
    let cmdline = if initrd.is_some() {
        "pti=on rdinit=/init-mod"
    } else {
        eprintln!("no dummy.ko from the kernel's package: the module part is skipped");
        "pti=on"
    };
    let run = boot_with_osi_on(Qemu::linux_with(1, Some("max"), cmdline, initrd.as_deref()));
    if let Some(path) = &initrd {
        let _ = std::fs::remove_file(path);
        let modules = run
            .log
            .lines()
            .find(|l| l.starts_with("osi: ") && l.contains("kernel modules"))
            .unwrap_or_else(|| panic!("no module line:\n{}", run.log));
        let base = modules
            .strip_prefix("osi: 1 kernel modules at the last refresh: dummy 0x")
            .and_then(|rest| rest.split('+').next())
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or_else(|| panic!("{modules}"));
        // The module area (MODULES_VADDR, above the kernel image).
        assert!(base >= 0xffff_ffff_c000_0000, "{modules}");
        run.assert_log_contains("osi: INFO KASLR slide ");
        // The 32-bit program: its umask through `syscall` is no exit (the
        // i386 ABI, by its code segment); its exit(5) is.
        let m32: Vec<&str> = run
            .log
            .lines()
            .filter(|l| l.starts_with("ps: exit vcpu ") && l.contains(" m32 "))
            .collect();
        assert_eq!(m32.len(), 1, "{m32:#?}\n{}", run.log);
        assert!(m32[0].ends_with(" m32 code 5 thread"), "{m32:#?}");
        // xt's second thread execs busybox echo: an exec event under
        // xt's pid (the kernel names it after the file).
        let xt = run
            .log
            .lines()
            .find_map(|l| l.strip_prefix("[xt ")?.split_once("] clone(0x10f00,"))
            .unwrap_or_else(|| panic!("no clone of xt:\n{}", run.log))
            .0;
        let exec = format!(" pid {xt} busybox (echo thread-exec)");
        assert!(
            run.log
                .lines()
                .any(|l| l.starts_with("ps: exec vcpu ") && l.ends_with(&exec)),
            "no exec event{exec}:\n{}",
            run.log
        );
        run.assert_stdout_line("thread-exec");
        // syscalls decodes it with the i386 ABI too: umask's argument from
        // ebx, the old mask (022) returned.
        assert!(
            run.log.lines().any(|l| l.starts_with("[m32 ")
                && l.contains("] int80_60(0x12,")
                && l.ends_with(" = 18")),
            "no 32-bit umask:\n{}",
            run.log
        );
        eprintln!("{modules}");
    }
    check_workload_with_osi(&run, 1);
    run.assert_log_contains("osi: INFO 5-level paging (CR4.LA57)")
        .assert_log_contains(
            "(KPTI's user page table): reading it through the kernel's page table at ",
        );
    let report = osi_report(&run);
    assert!(report.walked > 0, "no read through the kernel's page table");
}

/// A start-up error: QEMU exits with status 1 before the guest runs, and
/// says `message`.
fn fails_to_start(plugins: &[String], message: &str) {
    let run = plugins
        .iter()
        .fold(Qemu::linux(1), |qemu, spec| qemu.plugin(spec))
        .run();
    run.assert_code(1).assert_stderr_contains(message);
    assert!(
        !run.stdout.contains("workload: start"),
        "the guest ran:\n{run:#?}"
    );
}

#[test]
fn a_member_missing_from_btf_is_named_at_start_up() {
    // `hide` makes the member lookup fail for that member before the real
    // BTF is searched (btf.rs, member_type): this covers the start-up
    // error path and its message end to end, not the search of the BTF
    // failing by itself; that is osi's unit test
    // a_hidden_or_renamed_member_is_named, which renames `comm` in the
    // BTF's string table.
    for member in [
        "task_struct.comm",
        "mm_struct.mm_mt",
        "maple_range_64.pivot",
    ] {
        fails_to_start(
            &[format!("osi,{},hide={member}", kernel_arg())],
            &format!("{member} is missing from the kernel's BTF"),
        );
    }
}

#[test]
fn the_kernel_must_be_given_readable_and_with_btf() {
    fails_to_start(&["osi".to_owned()], "kernel");
    fails_to_start(
        &["osi,kernel=/nonexistent/vmlinuz".to_owned()],
        "cannot read the kernel image /nonexistent/vmlinuz",
    );
    // A file that is no kernel: the initramfs.
    let initrd = Qemu::linux_kernel().with_file_name("initramfs.gz");
    fails_to_start(
        &[format!("osi,kernel={}", initrd.display())],
        "neither a bzImage, an ELF vmlinux nor a BTF blob",
    );
}

#[test]
fn osi_must_come_before_syscalls() {
    fails_to_start(
        &["syscalls".to_owned(), format!("osi,{}", kernel_arg())],
        "syscalls was installed before osi",
    );
}
