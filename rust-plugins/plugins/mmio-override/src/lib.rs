//! Overrides the guest's device accesses (memory-mapped I/O) by physical
//! address, before they happen: serves loads from a device that does not
//! exist, changes a value the guest stores, drops stores. What PANDA's
//! `unassigned_io_read`/`unassigned_io_write`, `mmio_after_read` (with a
//! new value) and `mmio_before_write` offer to rehosting and fault
//! injection, on the SDK's [`Install::on_mmio`].
//!
//! `-plugin libmmio_override.so,RULE[,RULE...][,trace=on]` (system
//! emulation), each `RULE` one of:
//!
//! - `load=ADDR[+LEN]=VALUE`: every load that touches `[ADDR, ADDR+LEN)`
//!   returns `VALUE` (its low bytes in memory order, little-endian, cut
//!   to the load's size),
//!   and the device, if any, is not read; stores go on;
//! - `store=ADDR[+LEN]=FROM:TO`: a store of `FROM` (exactly, at the
//!   store's size) that touches the range stores `TO` instead; other
//!   stores go on unchanged;
//! - `drop=ADDR[+LEN]`: stores that touch the range are dropped.
//!
//! `LEN` defaults to 1 (the accesses that touch `ADDR`). Numbers are
//! decimal or `0x` hexadecimal. Rules on loads (`load=`) may not overlap
//! each other, nor rules on stores (`store=`, `drop=`) each other: one
//! `load=` and one `drop=` on a register make a device of it. RAM is
//! never overridden: QEMU accesses it directly.
//!
//! At exit, one line per rule in QEMU's log (`-d plugin`):
//!
//! ```text
//! mmio-override: load=0xfe000000=0x600dcafe: 4001 loads served
//! mmio-override: store=0xfee00080=0x10:0x20: 1 stores changed, 2 seen
//! mmio-override: drop=0xfee00080: 2 stores dropped
//! ```
//!
//! `trace=on` also logs each access a rule sees: vCPU, load or store,
//! physical address, size, whether a device takes the access (`device`)
//! or not (`unassigned`: none mapped there, or one that refuses the
//! access's size or alignment), the value and what the rule did:
//!
//! ```text
//! mmio-override: vcpu 0 load 0xfe000000 4 bytes unassigned: served 0x600dcafe (load=0xfe000000=0x600dcafe)
//! mmio-override: vcpu 0 store 0xfee00080 4 bytes device: 0x10 changed to 0x20 (store=0xfee00080=0x10:0x20)
//! ```
//!
//! (`log=` is the SDK's log level, as for every plugin: hence `trace=`.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use qemu_xplugin::{Args, Install, MmioAccess, MmioAction, Result};

mod rules;

use rules::{check_overlaps, Action, DropArg, LoadArg, Rule, StoreArg};

/// What a rule did, for the summary at exit.
#[derive(Default)]
struct Counts {
    /// Loads served, stores changed or dropped.
    acted: AtomicU64,
    /// Accesses of the rule's kind it saw (a store rule's unchanged
    /// stores included).
    seen: AtomicU64,
}

fn install(plugin: &mut Install, args: &mut Args) -> Result<()> {
    let mut rules: Vec<Rule> = Vec::new();
    rules.extend(args.take_all::<LoadArg>("load")?.into_iter().map(|a| a.0));
    rules.extend(args.take_all::<StoreArg>("store")?.into_iter().map(|a| a.0));
    rules.extend(args.take_all::<DropArg>("drop")?.into_iter().map(|a| a.0));
    let trace: bool = args.take_or("trace", false)?;
    if rules.is_empty() {
        return Err(
            "nothing to override: give load=ADDR[+LEN]=VALUE, store=ADDR[+LEN]=FROM:TO or drop=ADDR[+LEN]"
                .into(),
        );
    }
    check_overlaps(&rules)?;

    let mut summary = Vec::new();
    for rule in rules {
        let counts = Arc::new(Counts::default());
        let counted = counts.clone();
        let text = rule.text.clone();
        let action = rule.action;
        plugin.on_mmio(rule.first..=rule.last(), move |vcpu, access| {
            let (result, what) = apply(action, access);
            if what.of_kind {
                counted.seen.fetch_add(1, Ordering::Relaxed);
            }
            if result == MmioAction::Done || what.changed {
                counted.acted.fetch_add(1, Ordering::Relaxed);
            }
            if trace {
                qemu_xplugin::outs(&format!(
                    "mmio-override: vcpu {} {} {:#x} {} bytes {}: {} ({text})\n",
                    vcpu.index(),
                    if access.is_store() { "store" } else { "load" },
                    access.paddr(),
                    access.size(),
                    if access.is_unassigned() {
                        "unassigned"
                    } else {
                        "device"
                    },
                    what.text,
                ));
            }
            result
        })?;
        summary.push((rule, counts));
    }

    plugin.on_exit(move |_| {
        let mut out = String::new();
        for (rule, counts) in &summary {
            let acted = counts.acted.load(Ordering::Relaxed);
            let seen = counts.seen.load(Ordering::Relaxed);
            out.push_str(&match rule.action {
                Action::Load(_) => {
                    format!("mmio-override: {}: {acted} loads served\n", rule.text)
                }
                Action::Store { .. } => format!(
                    "mmio-override: {}: {acted} stores changed, {seen} seen\n",
                    rule.text
                ),
                Action::Drop => {
                    format!("mmio-override: {}: {acted} stores dropped\n", rule.text)
                }
            });
        }
        qemu_xplugin::outs(&out);
    });
    Ok(())
}

/// What a rule did to one access, for the counts and the trace.
struct Outcome {
    /// An access of the rule's kind (a load for `load=`, else a store).
    of_kind: bool,
    /// A store's value changed.
    changed: bool,
    text: String,
}

/// Applies `action` to `access`: the answer for QEMU, and what was done.
fn apply(action: Action, access: &mut MmioAccess) -> (MmioAction, Outcome) {
    match (action, access.is_store()) {
        (Action::Load(value), false) => {
            access.set_value(value);
            let text = format!("served {:#x}", access.value());
            (
                MmioAction::Done,
                Outcome {
                    of_kind: true,
                    changed: false,
                    text,
                },
            )
        }
        (Action::Store { from, to }, true) => {
            let stored = access.value();
            let changed = stored == from;
            if changed {
                access.set_value(to);
            }
            let text = if changed {
                format!("{stored:#x} changed to {:#x}", access.value())
            } else {
                format!("{stored:#x} passed")
            };
            (
                MmioAction::Pass,
                Outcome {
                    of_kind: true,
                    changed,
                    text,
                },
            )
        }
        (Action::Drop, true) => {
            let text = format!("{:#x} dropped", access.value());
            (
                MmioAction::Done,
                Outcome {
                    of_kind: true,
                    changed: false,
                    text,
                },
            )
        }
        // A store to a load rule's range, a load from a store rule's: on
        // to the next range or the device, which gives a load its value
        // after this callback.
        _ => (
            MmioAction::Pass,
            Outcome {
                of_kind: false,
                changed: false,
                text: if access.is_store() {
                    format!("{:#x} passed", access.value())
                } else {
                    "passed".to_owned()
                },
            },
        ),
    }
}

qemu_xplugin::plugin!(name = "mmio-override", install = install);
