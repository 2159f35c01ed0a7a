//! Which address space ran when, per vCPU: PANDA's asidstory, as text.
//!
//! `-plugin libasid_timeline.so[,clock=time|insns][,width=N][,top=N][,switches=on][,check=on]`
//!
//! System mode. An address space is what the vCPU's page tables are
//! selected by (x86: CR3), so, under an operating system, a process. At
//! each address space change QEMU reports, the plugin closes a slice: the
//! address space that ran and from when to when on the vCPU's clock. At
//! exit it prints, per vCPU, its clock's total, switches and address
//! spaces, then one row per address space in order of first appearance:
//! its share of the clock, slices, and a timeline of `width` columns (64)
//! where `#` marks the columns it ran most of and `-` those it ran some
//! of. `top=N` (30) keeps the N address spaces that ran most, the others
//! summed in one row. `switches=on` logs every switch as it happens.
//!
//! The clock: `clock=time` (the default) is host time in nanoseconds
//! while the vCPU is not idle (from its start, less the time it waited
//! halted or stopped), read at each switch: no instrumentation of
//! generated code, so the guest runs at nearly its speed without the
//! plugin. It counts what QEMU spends running the vCPU (translation,
//! device emulation, the plugins' callbacks), so it varies from run to
//! run; with one thread for all vCPUs (`-accel tcg,thread=single`), or
//! more vCPU threads than host CPUs, a vCPU's clock also runs while it
//! waits for its turn. `clock=insns` counts the vCPU's instructions,
//! exactly, as PANDA's asidstory does, in generated code (an inline add
//! per block, no callback): runs compare instruction for instruction,
//! but every block carries the count and, as with any translation
//! callback, every guest memory access one more store (QEMU saves each
//! loaded or stored value for plugins): about 1.1x the time of a Linux
//! boot without plugin, against about 1.0x with `clock=time`
//! (docs/performance.md).
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
//! fails once after it). Its check at the next block instruments every
//! block, as `clock=insns` does.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qemu_xplugin::{
    Args, AsidChange, Cond, Counter, ExecThread, Install, PerVcpu, Reg, RegAccess, Result, Vcpu,
};

/// What a vCPU's timeline is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// Host nanoseconds while the vCPU is not idle.
    Time,
    /// The vCPU's instructions, counted in generated code.
    Insns,
}

impl Clock {
    /// The unit, as the report names it.
    fn unit(self) -> &'static str {
        match self {
            Clock::Time => "ns",
            Clock::Insns => "instructions",
        }
    }
}

/// A stretch of one vCPU's clock run in one address space.
#[derive(Clone, Copy, Debug)]
struct Slice {
    asid: u64,
    /// The vCPU's clock when it entered the address space.
    start: u64,
    /// ... and when it left.
    end: u64,
}

/// A vCPU's time out of idle (`clock=time`).
#[derive(Clone, Copy, Debug)]
struct Busy {
    /// When the vCPU started.
    start: Instant,
    /// How long it has been idle, not counting the current wait.
    idle: Duration,
    /// Since when it waits, when it does.
    idle_since: Option<Instant>,
}

impl Busy {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            idle: Duration::ZERO,
            idle_since: None,
        }
    }

    /// Nanoseconds out of idle from the vCPU's start to `at`.
    fn ns(&self, at: Instant) -> u64 {
        let waiting = self.idle_since.map_or(Duration::ZERO, |s| at - s);
        let busy = (at - self.start).saturating_sub(self.idle + waiting);
        u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX)
    }

    fn idle(&mut self) {
        self.idle_since.get_or_insert_with(Instant::now);
    }

    fn resume(&mut self) {
        if let Some(since) = self.idle_since.take() {
            self.idle += since.elapsed();
        }
    }
}

/// One vCPU's history.
#[derive(Default)]
struct Timeline {
    slices: Vec<Slice>,
    /// The address space it runs in and since when, once known.
    current: Option<(u64, u64)>,
    switches: u64,
    /// Its clock with `clock=time`, from its start.
    busy: Option<Busy>,
}

impl Timeline {
    /// The vCPU's clock: `insns` counts its instructions with
    /// `clock=insns`.
    fn now(&self, insns: Option<(&Counter, &ExecThread, u32)>) -> u64 {
        match (insns, &self.busy) {
            (Some((counter, on, index)), _) => counter.get(on, index).unwrap_or(0),
            (None, Some(busy)) => busy.ns(Instant::now()),
            (None, None) => 0,
        }
    }

    /// The vCPU switched from `change.old` to `change.new` at `now` on its
    /// clock.
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
    let clock = match args.take_or("clock", "time".to_owned())?.as_str() {
        "time" => Clock::Time,
        "insns" => Clock::Insns,
        other => return Err(format!("argument clock='{other}': expected time or insns").into()),
    };
    let width: usize = args.take_or("width", 64)?;
    let top: usize = args.take_or("top", 30)?;
    let log_switches: bool = args.take_or("switches", false)?;
    let check: bool = args.take_or("check", false)?;
    if width == 0 || top == 0 {
        return Err("arguments width and top must be at least 1".into());
    }

    // With clock=insns, each vCPU's instructions.
    let insns = (clock == Clock::Insns).then(|| plugin.counter());
    let timelines = Arc::new(PerVcpu::<Timeline>::new());

    let at_init = timelines.clone();
    plugin.on_vcpu_init(move |vcpu| {
        let asid = vcpu.asid();
        at_init.with(vcpu, |t| {
            if clock == Clock::Time {
                t.busy = Some(Busy::new());
            }
            if let Some(asid) = asid {
                t.current = Some((asid, 0));
            }
        });
        Ok(())
    });
    if clock == Clock::Time {
        // The clock stops while the vCPU waits (halted, or stopped).
        let at_idle = timelines.clone();
        plugin.on_vcpu_idle(move |vcpu| {
            at_idle.with(vcpu, |t| t.busy.as_mut().map(Busy::idle));
            Ok(())
        });
        let at_resume = timelines.clone();
        plugin.on_vcpu_resume(move |vcpu| {
            at_resume.with(vcpu, |t| t.busy.as_mut().map(Busy::resume));
            Ok(())
        });
    }

    let checks = Arc::new(Checks::default());
    let check_states = Arc::new(PerVcpu::<CheckState>::new());
    // Set by the change callback, cleared by the check at the next block.
    let pending = plugin.counter();

    let on_switch = timelines.clone();
    let (switch_checks, switch_states) = (checks.clone(), check_states.clone());
    let unit = clock.unit();
    plugin.on_asid_change(move |vcpu, change| {
        let mut old_ok = true;
        let now = on_switch.with(vcpu, |t| {
            let now = t.now(insns.as_ref().map(|c| (c, &**vcpu, vcpu.index())));
            old_ok = t.current.map_or(true, |(asid, _)| asid == change.old);
            t.switch(change, now);
            now
        });
        if log_switches {
            tracing::info!(
                "vcpu {}: {:#x} -> {:#x} at {now} {unit}",
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

    // No translation callback unless needed: with one, QEMU stores every
    // guest memory access's value for plugins, instrumented or not.
    if insns.is_some() || check_hook.is_some() {
        plugin.on_translate(move |tb| {
            if let Some(insns) = &insns {
                tb.inline_add(insns, tb.len() as u64);
            }
            if let Some(hook) = &check_hook {
                tb.on_exec_if(hook, &pending, Cond::Ne, 0);
            }
        });
    }

    plugin.on_exit(move |thread| {
        let mut out = String::new();
        timelines.for_each(|index, t| {
            let total = t.now(insns.as_ref().map(|c| (c, thread, index)));
            report_vcpu(&mut out, index, t, total, clock, width, top);
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
    /// How long it ran, on the vCPU's clock.
    ran: u64,
    slices: u64,
    /// When it first ran, for the order of the rows.
    first: u64,
    /// How long it ran in each column of the timeline.
    columns: Vec<u64>,
}

/// Appends vCPU `index`'s report to `out`: `total` on its clock, of
/// which `t` tells which address space ran.
fn report_vcpu(
    out: &mut String,
    index: u32,
    t: &Timeline,
    total: u64,
    clock: Clock,
    width: usize,
    top: usize,
) {
    let unit = clock.unit();
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
            ran: 0,
            slices: 0,
            first: s.start,
            columns: vec![0; width],
        });
        row.ran += s.end - s.start;
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
        "asid-timeline: vcpu {index}: {total} {unit}, {} switches, {} address spaces",
        t.switches,
        rows.len()
    );
    if rows.is_empty() {
        return;
    }
    // The address spaces that ran most, then the others as one row.
    rows.sort_by(|a, b| b.ran.cmp(&a.ran).then(a.first.cmp(&b.first)));
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
         {column} {unit})",
        "asid", unit, "share", "slices"
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
            row.ran,
            share(row.ran),
            row.slices
        );
    }
    if !others.is_empty() {
        let ran: u64 = others.iter().map(|r| r.ran).sum();
        let slices: u64 = others.iter().map(|r| r.slices).sum();
        let _ = writeln!(
            out,
            "asid-timeline: vcpu {index}: {:>18} {ran:>14} {:>5.1}% {slices:>7}",
            format!("({} others)", others.len()),
            share(ran)
        );
    }
}

qemu_xplugin::plugin!(name = "asid-timeline", install = install);
