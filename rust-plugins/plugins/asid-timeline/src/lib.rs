//! Which address space ran when, per vCPU: PANDA's asidstory, as text.
//!
//! `-plugin libasid_timeline.so[,width=N][,top=N][,switches=on][,check=on]`
//!
//! System mode. An address space is what the vCPU's page tables are
//! selected by (x86: CR3), so, under an operating system, a process. The
//! plugin counts each vCPU's instructions in generated code (no callback)
//! and, at each address space change QEMU reports, closes a slice: the
//! address space that ran and from which instruction to which. At exit it
//! prints, per vCPU, its instructions, switches and address spaces, then
//! one row per address space in order of first appearance: its
//! instructions, share, slices, and a timeline of `width` columns (64)
//! where `#` marks the columns it ran most of and `-` those it ran some
//! of. `top=N` (30) keeps the N address spaces that ran most, the others
//! summed in one row. `switches=on` logs every switch as it happens.
//!
//! `check=on` (x86) also checks what QEMU reports: at each switch, that
//! the old ID is the one the previous switch entered, that
//! `Vcpu::asid()` answers the new one and the vCPU is in kernel mode; and,
//! at the vCPU's next block, that CR3 read through the register API holds
//! the new ID. It prints `check: S switches, C checked at the
//! next block, E errors`. These checks suit guests that switch with MOV
//! to CR3 at CPL 0 (Linux, the test guests): QEMU reports the
//! change in the middle of a task switch, RSM or SVM world switch with
//! the rest of the state possibly not switched yet (the kernel mode check
//! may fail there), and does not report a CR3 change made from outside
//! the guest (a machine reset, loading a snapshot: the old ID check
//! fails once after it).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use qemu_xplugin::{Args, AsidChange, Cond, Install, PerVcpu, Reg, RegAccess, Result, Vcpu};

/// A stretch of one vCPU's instructions run in one address space.
#[derive(Clone, Copy, Debug)]
struct Slice {
    asid: u64,
    /// The vCPU's instruction count when it entered the address space.
    start: u64,
    /// ... and when it left.
    end: u64,
}

/// One vCPU's history.
#[derive(Default)]
struct Timeline {
    slices: Vec<Slice>,
    /// The address space it runs in and since when, once known.
    current: Option<(u64, u64)>,
    switches: u64,
}

impl Timeline {
    /// The vCPU switched from `change.old` to `change.new` at instruction
    /// `now`.
    fn switch(&mut self, change: &AsidChange, now: u64) {
        let (asid, start) = self.current.unwrap_or((change.old, 0));
        self.slices.push(Slice {
            asid,
            start,
            end: now,
        });
        self.current = Some((change.new, now));
        self.switches += 1;
    }
}

/// What `check=on` counts.
#[derive(Default)]
struct Checks {
    switches: AtomicU64,
    checked: AtomicU64,
    errors: AtomicU64,
}

impl Checks {
    fn error(&self, vcpu: u32, what: std::fmt::Arguments<'_>) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < 10 {
            tracing::warn!("check: vcpu {vcpu}: {what}");
        }
    }
}

/// The per-vCPU state `check=on` keeps.
#[derive(Default)]
struct CheckState {
    /// The new ID of the last switch, to compare at the next block.
    expected: Option<u64>,
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let width: usize = args.take_or("width", 64)?;
    let top: usize = args.take_or("top", 30)?;
    let log_switches: bool = args.take_or("switches", false)?;
    let check: bool = args.take_or("check", false)?;
    if width == 0 || top == 0 {
        return Err("arguments width and top must be at least 1".into());
    }

    let insns = plugin.counter();
    let timelines = Arc::new(PerVcpu::<Timeline>::new());

    let at_init = timelines.clone();
    plugin.on_vcpu_init(move |vcpu| {
        if let Some(asid) = vcpu.asid() {
            at_init.with(vcpu, |t| t.current = Some((asid, 0)));
        }
        Ok(())
    });

    let checks = Arc::new(Checks::default());
    let check_states = Arc::new(PerVcpu::<CheckState>::new());
    // Set by the change callback, cleared by the check at the next block.
    let pending = plugin.counter();

    let on_switch = timelines.clone();
    let (switch_checks, switch_states) = (checks.clone(), check_states.clone());
    plugin.on_asid_change(move |vcpu, change| {
        let now = insns.get(vcpu, vcpu.index()).unwrap_or(0);
        let mut old_ok = true;
        on_switch.with(vcpu, |t| {
            old_ok = t.current.map_or(true, |(asid, _)| asid == change.old);
            t.switch(change, now);
        });
        if log_switches {
            tracing::info!(
                "vcpu {}: {:#x} -> {:#x} at instruction {now}",
                vcpu.index(),
                change.old,
                change.new
            );
        }
        if check {
            check_switch(vcpu, change, old_ok, &switch_checks);
            switch_states.with(vcpu, |s| s.expected = Some(change.new));
            pending.add(vcpu, 1);
        }
        Ok(())
    });

    let check_hook = check.then(|| {
        let cr3: Reg<u64> = plugin.register("cr3");
        let (checks, states) = (checks.clone(), check_states.clone());
        plugin.exec_hook(RegAccess::Read, move |vcpu| {
            let n = pending.get(vcpu, vcpu.index()).unwrap_or(0);
            pending.add(vcpu, n.wrapping_neg());
            let Some(expected) = states.with(vcpu, |s| s.expected.take()) else {
                return Ok(());
            };
            let value = vcpu.read(cr3)?;
            if value != expected {
                checks.error(
                    vcpu.index(),
                    format_args!("cr3 is {value:#x} at the next block, not {expected:#x}"),
                );
            }
            checks.checked.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    });

    plugin.on_translate(move |tb| {
        tb.inline_add(&insns, tb.len() as u64);
        if let Some(hook) = &check_hook {
            tb.on_exec_if(hook, &pending, Cond::Ne, 0);
        }
    });

    plugin.on_exit(move |thread| {
        let mut out = String::new();
        timelines.for_each(|index, t| {
            let total = insns.get(thread, index).unwrap_or(0);
            report_vcpu(&mut out, index, t, total, width, top);
        });
        if check {
            let _ = writeln!(
                out,
                "asid-timeline: check: {} switches, {} checked at the next block, \
                 {} errors",
                checks.switches.load(Ordering::Relaxed),
                checks.checked.load(Ordering::Relaxed),
                checks.errors.load(Ordering::Relaxed)
            );
        }
        qemu_xplugin::outs(&out);
    });
    Ok(())
}

/// `check=on`, at a switch: what QEMU says about it.
fn check_switch(vcpu: &Vcpu, change: &AsidChange, old_ok: bool, checks: &Checks) {
    checks.switches.fetch_add(1, Ordering::Relaxed);
    let index = vcpu.index();
    if change.old == change.new {
        checks.error(index, format_args!("switch to the same {:#x}", change.new));
    }
    if !old_ok {
        checks.error(
            index,
            format_args!("left {:#x}, not the address space it entered", change.old),
        );
    }
    if vcpu.asid() != Some(change.new) {
        checks.error(
            index,
            format_args!("asid() is {:x?}, not {:#x}", vcpu.asid(), change.new),
        );
    }
    if vcpu.is_kernel_mode() != Some(true) {
        checks.error(
            index,
            format_args!("is_kernel_mode() is {:?}", vcpu.is_kernel_mode()),
        );
    }
}

/// One address space's row.
struct Row {
    asid: u64,
    insns: u64,
    slices: u64,
    /// When it first ran (instruction count), for the order of the rows.
    first: u64,
    /// Its instructions in each column of the timeline.
    columns: Vec<u64>,
}

/// Appends vCPU `index`'s report to `out`: `total` instructions, of
/// which `t` tells which address space ran.
fn report_vcpu(out: &mut String, index: u32, t: &Timeline, total: u64, width: usize, top: usize) {
    let mut slices = t.slices.clone();
    if let Some((asid, start)) = t.current {
        slices.push(Slice {
            asid,
            start,
            end: total.max(start),
        });
    }
    let column = total.div_ceil(width as u64).max(1);
    let mut rows: HashMap<u64, Row> = HashMap::new();
    for s in &slices {
        let row = rows.entry(s.asid).or_insert_with(|| Row {
            asid: s.asid,
            insns: 0,
            slices: 0,
            first: s.start,
            columns: vec![0; width],
        });
        row.insns += s.end - s.start;
        row.slices += 1;
        // Spread the slice over the columns it covers.
        let mut at = s.start;
        while at < s.end {
            let col = ((at / column) as usize).min(width - 1);
            let col_end = ((col as u64 + 1) * column).max(at + 1);
            let upto = s.end.min(col_end);
            row.columns[col] += upto - at;
            at = upto;
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    let _ = writeln!(
        out,
        "asid-timeline: vcpu {index}: {total} instructions, {} switches, {} address spaces",
        t.switches,
        rows.len()
    );
    if rows.is_empty() {
        return;
    }
    // The address spaces that ran most, then the others as one row.
    rows.sort_by(|a, b| b.insns.cmp(&a.insns).then(a.first.cmp(&b.first)));
    let others: Vec<Row> = rows.split_off(top.min(rows.len()));
    // Which address space ran most of each column, among all of them.
    let mut most = vec![(0u64, None::<u64>); width];
    for row in rows.iter().chain(&others) {
        for (col, &n) in row.columns.iter().enumerate() {
            if n > most[col].0 {
                most[col] = (n, Some(row.asid));
            }
        }
    }
    rows.sort_by_key(|r| r.first);
    let _ = writeln!(
        out,
        "asid-timeline: vcpu {index}: {:>18} {:>14} {:>6} {:>7}  timeline ({width} columns of \
         {column} instructions)",
        "asid", "instructions", "share", "slices"
    );
    let share = |n: u64| 100.0 * n as f64 / total.max(1) as f64;
    for row in &rows {
        let line: String = row
            .columns
            .iter()
            .zip(&most)
            .map(|(&n, &(_, top))| match n {
                0 => ' ',
                _ if top == Some(row.asid) => '#',
                _ => '-',
            })
            .collect();
        let _ = writeln!(
            out,
            "asid-timeline: vcpu {index}: {:#18x} {:>14} {:>5.1}% {:>7}  |{line}|",
            row.asid,
            row.insns,
            share(row.insns),
            row.slices
        );
    }
    if !others.is_empty() {
        let insns: u64 = others.iter().map(|r| r.insns).sum();
        let slices: u64 = others.iter().map(|r| r.slices).sum();
        let _ = writeln!(
            out,
            "asid-timeline: vcpu {index}: {:>18} {insns:>14} {:>5.1}% {slices:>7}",
            format!("({} others)", others.len()),
            share(insns)
        );
    }
}

qemu_xplugin::plugin!(name = "asid-timeline", install = install);
