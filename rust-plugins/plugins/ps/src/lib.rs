//! Prints the guest's process tree, from the `osi` provider.
//!
//! `-plugin libosi.so,kernel=... -plugin libps.so[,at=exit|exec|both][,proc=NAME][,maps=NAME][,events=on]`
//!
//! - `at`: when to print: at QEMU's exit (the default: the process list
//!   of `osi`'s last refresh), at every exec, or both;
//! - `proc=NAME`: at exec, only when the new program's name is `NAME`;
//! - `maps=NAME` (repeatable): with each tree, the memory mappings of the
//!   processes named `NAME`;
//! - `events=on`: also one line per exec event (`ps: exec vcpu V pid P
//!   NAME (ARGV)`), exit event (`ps: exit vcpu V pid P NAME code C
//!   group|thread`) and task-switch event (`ps: switch vcpu V pid P NAME
//!   -> pid P NAME`) of `osi`.
//!
//! One line per task, indented under its parent: `ps: PID PPID NAME`,
//! kernel threads in brackets as `ps(1)` shows them, the other threads of
//! a process as `{NAME} tid N`.

use std::collections::BTreeMap;

use osi_api::{
    Comm, CountFn, MappingCountFn, MappingFn, ProcessExit, ProcessFn, ProcessStart, Task,
    TaskSwitch, WantMappingsFn, EXEC_EVENT, EXIT_EVENT, MAPPING, MAPPING_COUNT, PLUGIN, PROCESS,
    PROCESS_COUNT, SWITCH_EVENT, WANT_MAPPINGS,
};
use qemu_xplugin::{Args, Install, Result};

#[derive(Clone, Copy)]
struct Osi {
    count: CountFn,
    process: ProcessFn,
    map_count: MappingCountFn,
    mapping: MappingFn,
}

fn tree(osi: Osi, title: &str, maps_of: &[String]) -> String {
    // A refresh between the count and the items shortens the list: an
    // index past its end gives an unknown task, left out.
    let tasks: Vec<Task> = (0..(osi.count)())
        .map(|i| (osi.process)(i))
        .filter(Task::is_known)
        .collect();
    let mut out = format!("ps: {title}: {} tasks\nps:   PID  PPID NAME\n", tasks.len());
    // Children of each process, in list order; threads of each process.
    let mut children: BTreeMap<i32, Vec<&Task>> = BTreeMap::new();
    let mut threads: BTreeMap<i32, Vec<&Task>> = BTreeMap::new();
    let leaders: Vec<&Task> = tasks.iter().filter(|t| t.pid == t.tgid).collect();
    for t in &tasks {
        if t.pid != t.tgid {
            threads.entry(t.tgid).or_default().push(t);
        }
    }
    for t in &leaders {
        if t.pid != 0 {
            children.entry(t.ppid).or_default().push(t);
        }
    }
    let roots: Vec<&Task> = leaders
        .iter()
        .copied()
        .filter(|t| t.pid == 0 || !leaders.iter().any(|p| p.pid == t.ppid))
        .collect();
    let mut stack: Vec<(&Task, usize)> = roots.into_iter().rev().map(|t| (t, 0)).collect();
    let mut printed = 0;
    while let Some((t, depth)) = stack.pop() {
        printed += 1;
        if printed > tasks.len() {
            break; // a parent cycle in a list read while it changed
        }
        let name = if t.is_kernel_thread() {
            format!("[{}]", t.name())
        } else {
            t.name()
        };
        let indent = "  ".repeat(depth);
        out += &format!("ps: {:>5} {:>5} {indent}{name}\n", t.pid, t.ppid);
        for th in threads.get(&t.pid).into_iter().flatten() {
            out += &format!(
                "ps: {:>5} {:>5} {indent}  {{{}}} tid {}\n",
                t.pid,
                t.ppid,
                th.name(),
                th.pid
            );
        }
        if maps_of.contains(&t.name()) {
            for i in 0..(osi.map_count)(t.tgid) {
                let m = (osi.mapping)(t.tgid, i);
                out += &format!(
                    "ps: maps {} {:#x}-{:#x} {}{}{} {}\n",
                    t.pid,
                    m.start,
                    m.end,
                    if m.vm_flags & 1 != 0 { 'r' } else { '-' },
                    if m.vm_flags & 2 != 0 { 'w' } else { '-' },
                    if m.vm_flags & 4 != 0 { 'x' } else { '-' },
                    m.path().as_deref().unwrap_or("")
                );
            }
        }
        for child in children.get(&t.pid).into_iter().flatten().rev() {
            if child.pid != t.pid {
                stack.push((child, depth + 1));
            }
        }
    }
    out
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let at: String = args.take_or("at", "exit".to_owned())?;
    let (on_exec, on_exit) = match at.as_str() {
        "exit" => (false, true),
        "exec" => (true, false),
        "both" => (true, true),
        other => return Err(format!("at={other}: expected exit, exec or both").into()),
    };
    let only: Option<String> = args.take("proc")?;
    let maps: Vec<String> = args.take_all("maps")?;
    let events: bool = args.take_or("events", false)?;
    let osi = Osi {
        count: plugin.import(PLUGIN, PROCESS_COUNT)?,
        process: plugin.import(PLUGIN, PROCESS)?,
        map_count: plugin.import(PLUGIN, MAPPING_COUNT)?,
        mapping: plugin.import(PLUGIN, MAPPING)?,
    };
    // osi reads the mappings of these processes only.
    let want: WantMappingsFn = plugin.import(PLUGIN, WANT_MAPPINGS)?;
    for name in &maps {
        want(Comm::new(name));
    }
    if on_exec || events {
        let maps = maps.clone();
        plugin.subscribe(PLUGIN, EXEC_EVENT, move |start: &mut ProcessStart| {
            let name = start.task.name();
            if events {
                qemu_xplugin::outs(&format!(
                    "ps: exec vcpu {} pid {} {name} ({})\n",
                    start.vcpu_index,
                    start.task.pid,
                    start.argv().as_deref().unwrap_or("?")
                ));
            }
            if on_exec && only.as_deref().map_or(true, |o| o == name) {
                let title = format!(
                    "exec of {name} pid {} ({})",
                    start.task.pid,
                    start.argv().as_deref().unwrap_or("?")
                );
                qemu_xplugin::outs(&tree(osi, &title, &maps));
            }
        })?;
    }
    if events {
        plugin.subscribe(PLUGIN, EXIT_EVENT, move |e: &mut ProcessExit| {
            qemu_xplugin::outs(&format!(
                "ps: exit vcpu {} pid {} {} code {} {}\n",
                e.vcpu_index,
                e.task.pid,
                e.task.name(),
                e.code,
                if e.group != 0 { "group" } else { "thread" }
            ));
        })?;
        plugin.subscribe(PLUGIN, SWITCH_EVENT, move |s: &mut TaskSwitch| {
            qemu_xplugin::outs(&format!(
                "ps: switch vcpu {} pid {} {} -> pid {} {}\n",
                s.vcpu_index,
                s.from.pid,
                s.from.name(),
                s.to.pid,
                s.to.name()
            ));
        })?;
    }
    if on_exit {
        plugin.on_exit(move |_| {
            qemu_xplugin::outs(&tree(osi, "at exit", &maps));
        });
    }
    Ok(())
}

qemu_xplugin::plugin!(name = "ps", requires = ["osi"], install = install);
