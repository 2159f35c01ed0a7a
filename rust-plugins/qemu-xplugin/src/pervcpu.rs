//! State kept per vCPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::thread::Context;
use crate::Vcpu;

/// Enough chunks for every `u32` index: chunk `c` holds `16 << c` slots.
const CHUNKS: usize = 29;

/// One vCPU's value, made on its first use.
struct Slot<T> {
    /// Set while `with` runs for this vCPU: a second `with` is a re-entry.
    busy: AtomicBool,
    value: OnceLock<Mutex<T>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            busy: AtomicBool::new(false),
            value: OnceLock::new(),
        }
    }
}

thread_local! {
    /// The `PerVcpu`s (by address) whose `with` or `for_each` this thread
    /// is inside: nesting them on one `PerVcpu` would wait for a lock this
    /// thread holds, or, across two vCPUs, for each other's.
    static LENT: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks `addr` lent by this thread until dropped; panics, naming `what`,
/// when it already is.
struct Lent(usize);

impl Lent {
    fn enter(addr: usize, what: &str) -> Self {
        LENT.with(|lent| {
            let mut lent = lent.borrow_mut();
            if lent.contains(&addr) {
                drop(lent);
                panic!(
                    "{what} called from inside `with` or `for_each` of the same PerVcpu \
                     (it would wait for a value this thread holds)"
                );
            }
            lent.push(addr);
        });
        Self(addr)
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        LENT.with(|lent| lent.borrow_mut().retain(|&a| a != self.0));
    }
}

/// Clears a slot's `busy` flag when `with` ends, even by a panic.
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A `T` for each vCPU, created with `T::default()` the first time the vCPU
/// uses it. Each vCPU locks only its own value, and no lock over the whole
/// table is held while user code runs: callbacks running on different
/// vCPUs never wait for each other, whatever locks their closures take
/// ([`PerVcpu::for_each`] aside, which waits for each value; it refuses
/// to run in an MMIO callback).
/// (Slots live in chunks of 16, 32, 64, ... that are allocated once and
/// never move.)
pub struct PerVcpu<T> {
    chunks: [OnceLock<Box<[Slot<T>]>>; CHUNKS],
}

impl<T> std::fmt::Debug for PerVcpu<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerVcpu").finish_non_exhaustive()
    }
}

impl<T: Default> Default for PerVcpu<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The chunk and the place in it of vCPU `index`: chunk `c` holds indices
/// from `16 * (2^c - 1)`, `16 << c` of them.
fn locate(index: u32) -> (usize, usize) {
    let n = u64::from(index) / 16 + 1;
    let chunk = 63 - n.leading_zeros() as usize;
    let start = 16 * ((1u64 << chunk) - 1);
    (chunk, (u64::from(index) - start) as usize)
}

impl<T: Default> PerVcpu<T> {
    /// No value yet for any vCPU.
    pub fn new() -> Self {
        Self {
            chunks: [const { OnceLock::new() }; CHUNKS],
        }
    }

    /// The slot of vCPU `index`, allocating its chunk on first use (no
    /// user code runs meanwhile).
    fn slot(&self, index: u32) -> &Slot<T> {
        let (chunk, at) = locate(index);
        let slots = self.chunks[chunk]
            .get_or_init(|| (0..16usize << chunk).map(|_| Slot::default()).collect());
        &slots[at]
    }

    /// Runs `f` with the value of `vcpu`. Only [`PerVcpu::for_each`]
    /// (whose closure runs briefly on each value) ever waits for it.
    ///
    /// # Panics
    /// When `f` calls `with` again for the same vCPU on the same `PerVcpu`
    /// (the value is already lent out), with a message saying so.
    pub fn with<C: Context, R>(&self, vcpu: &Vcpu<C>, f: impl FnOnce(&mut T) -> R) -> R {
        let index = vcpu.index();
        let slot = self.slot(index);
        if slot.busy.swap(true, Ordering::Acquire) {
            panic!(
                "PerVcpu::with called again for vCPU {index} from inside its own `with` \
                 (the value is already lent out)"
            );
        }
        let _busy = Busy(&slot.busy);
        let _lent = Lent::enter(self as *const Self as usize, "PerVcpu::with");
        let value = match slot.value.get() {
            Some(value) => value,
            None => {
                // Only this vCPU's callbacks make its value (and the busy
                // flag shuts out a re-entry from T::default()).
                let _ = slot.value.set(Mutex::new(T::default()));
                slot.value.get().expect("just set")
            }
        };
        let mut value = value.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut value)
    }

    /// Runs `f` on the value of every vCPU that has one, by index. Holds
    /// the value's lock while `f` runs (that vCPU's `with` waits).
    ///
    /// # Panics
    /// When called from inside `with` or `for_each` of the same `PerVcpu`,
    /// or when `f` calls them, with a message saying so (rather than wait
    /// for a lock this thread holds). And when called from an MMIO
    /// callback ([`crate::Install::on_mmio`]): QEMU holds its global lock
    /// (the BQL) there, which a vCPU inside `with` may be waiting for
    /// (a [`crate::Vcpu::read_physical`] of a device), so waiting for that
    /// vCPU's value could hang QEMU.
    pub fn for_each(&self, mut f: impl FnMut(u32, &mut T)) {
        if crate::mmio::in_mmio_callback() {
            panic!(
                "PerVcpu::for_each in an MMIO callback: QEMU holds the BQL there, which \
                 a vCPU inside PerVcpu::with may be waiting for (a read_physical of a \
                 device), so this could hang; use PerVcpu::with on the calling vCPU, or \
                 atomics"
            );
        }
        let _lent = Lent::enter(self as *const Self as usize, "PerVcpu::for_each");
        for (chunk, slots) in self.chunks.iter().enumerate() {
            let Some(slots) = slots.get() else { continue };
            let start = 16 * ((1u64 << chunk) - 1);
            for (at, slot) in slots.iter().enumerate() {
                if let Some(value) = slot.value.get() {
                    let mut value = value.lock().unwrap_or_else(PoisonError::into_inner);
                    f((start + at as u64) as u32, &mut value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RegAccess;

    #[test]
    fn for_each_inside_with_panics_instead_of_deadlocking() {
        let counts = PerVcpu::<u64>::new();
        let vcpu = Vcpu::<crate::ExecThread>::new(0, RegAccess::None);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            counts.with(&vcpu, |_| counts.for_each(|_, _| ()));
        }))
        .expect_err("for_each inside with must panic");
        let msg = err.downcast_ref::<String>().expect("a message");
        assert!(
            msg.contains("PerVcpu::for_each called from inside"),
            "{msg}"
        );
        // the value was given back: with and for_each work again
        counts.with(&vcpu, |n| *n += 1);
        let mut seen = Vec::new();
        counts.for_each(|i, n| seen.push((i, *n)));
        assert_eq!(seen, [(0, 1)]);
    }

    #[test]
    fn each_vcpu_has_its_own_value() {
        let counts = PerVcpu::<u64>::new();
        for index in [3, 0, 3, 3] {
            counts.with(
                &Vcpu::<crate::ExecThread>::new(index, RegAccess::None),
                |n| *n += 1,
            );
        }
        let mut seen = Vec::new();
        counts.for_each(|index, n| seen.push((index, *n)));
        assert_eq!(seen, [(0, 1), (3, 3)]);
    }

    #[test]
    fn vcpus_update_concurrently() {
        let counts = std::sync::Arc::new(PerVcpu::<u64>::new());
        let threads: Vec<_> = (0..4)
            .map(|index| {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    let vcpu = Vcpu::<crate::ExecThread>::new(index, RegAccess::None);
                    for _ in 0..10_000 {
                        counts.with(&vcpu, |n| *n += 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut total = 0;
        counts.for_each(|_, n| total += *n);
        assert_eq!(total, 40_000);
    }

    /// A vCPU's first use must not block the others: its closure may wait
    /// for a lock that another vCPU holds while that vCPU uses its value.
    #[test]
    fn a_first_use_does_not_block_other_vcpus() {
        use std::sync::mpsc;
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        let values = Arc::new(PerVcpu::<u64>::new());
        let shared = Arc::new(Mutex::new(()));
        // vCPU 1 has a value already.
        values.with(&Vcpu::<crate::ExecThread>::new(1, RegAccess::None), |n| {
            *n = 1
        });
        let (locked, wait_locked) = mpsc::channel();
        let (in_first_use, wait_first_use) = mpsc::channel();
        let (done, finished) = mpsc::channel();

        let (v, s, d) = (values.clone(), shared.clone(), done.clone());
        std::thread::spawn(move || {
            wait_locked.recv().unwrap();
            // vCPU 0, first use: its closure waits for the lock vCPU 1 holds.
            v.with(&Vcpu::<crate::ExecThread>::new(0, RegAccess::None), |n| {
                in_first_use.send(()).unwrap();
                let _lock = s.lock().unwrap();
                *n = 1;
            });
            d.send(0).unwrap();
        });
        std::thread::spawn(move || {
            let held = shared.lock().unwrap();
            locked.send(()).unwrap();
            wait_first_use.recv().unwrap();
            // vCPU 1 uses its value while holding the lock.
            values.with(&Vcpu::<crate::ExecThread>::new(1, RegAccess::None), |n| {
                *n += 1
            });
            drop(held);
            done.send(1).unwrap();
        });
        // Both finish; a minute means they waited for each other.
        let a = finished.recv_timeout(Duration::from_secs(60));
        let b = finished.recv_timeout(Duration::from_secs(60));
        assert!(a.is_ok() && b.is_ok(), "vCPUs 0 and 1 deadlocked");
    }

    #[test]
    fn slots_cover_every_index() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(15), (0, 15));
        assert_eq!(locate(16), (1, 0));
        assert_eq!(locate(47), (1, 31));
        assert_eq!(locate(48), (2, 0));
        let (chunk, at) = locate(u32::MAX);
        assert!(chunk < CHUNKS && at < 16 << chunk);
        let values = PerVcpu::<u32>::new();
        for index in [0, 15, 16, 47, 48, 1000] {
            values.with(&vcpu(index), |n| *n = index);
        }
        let mut seen = Vec::new();
        values.for_each(|index, n| seen.push((index, *n)));
        assert_eq!(
            seen,
            [(0, 0), (15, 15), (16, 16), (47, 47), (48, 48), (1000, 1000)]
        );
    }

    fn vcpu(index: u32) -> Vcpu {
        Vcpu::<crate::ExecThread>::new(index, RegAccess::None)
    }

    /// The reviewer's three-vCPU deadlock: vCPU 0's closure waits for a
    /// plugin lock that vCPU 2 holds while vCPU 2 waits to use its own
    /// value, and vCPU 1 makes its first value meanwhile. With a
    /// table-wide read-write lock held while closures run (the old
    /// design), vCPU 1's writer waits for vCPU 0's reader and blocks vCPU
    /// 2's reader: all three wait forever. A watchdog fails the test after
    /// 10 s instead of hanging.
    #[test]
    fn three_vcpus_do_not_deadlock() {
        use std::sync::mpsc;
        use std::sync::{Arc, Barrier};
        use std::time::Duration;

        let values = Arc::new(PerVcpu::<u64>::new());
        let plugin_lock = Arc::new(Mutex::new(()));
        values.with(&vcpu(0), |n| *n = 1);
        values.with(&vcpu(2), |n| *n = 1);
        let (done, finished) = mpsc::channel();
        let vcpu0_inside = Arc::new(Barrier::new(2));
        let vcpu2_locked = Arc::new(Barrier::new(2));

        // vCPU 0: in its `with`, takes the plugin lock (held by vCPU 2).
        let (v, l, d, inside, locked) = (
            values.clone(),
            plugin_lock.clone(),
            done.clone(),
            vcpu0_inside.clone(),
            vcpu2_locked.clone(),
        );
        std::thread::spawn(move || {
            locked.wait();
            v.with(&vcpu(0), |n| {
                inside.wait();
                let _lock = l.lock().unwrap();
                *n += 1;
            });
            d.send(0).unwrap();
        });
        // vCPU 2: holds the plugin lock, then uses its own value.
        let (v, l, d, inside) = (values.clone(), plugin_lock, done.clone(), vcpu0_inside);
        let vcpu1_started = Arc::new(Barrier::new(2));
        let started = vcpu1_started.clone();
        std::thread::spawn(move || {
            let held = l.lock().unwrap();
            vcpu2_locked.wait();
            inside.wait();
            started.wait();
            // vCPU 1's first use is now (very likely) waiting for the
            // table, as in the reviewer's probe.
            std::thread::sleep(Duration::from_millis(200));
            v.with(&vcpu(2), |n| *n += 1);
            drop(held);
            d.send(2).unwrap();
        });
        // vCPU 1: its first use, while vCPU 0 is inside its `with`.
        std::thread::spawn(move || {
            vcpu1_started.wait();
            values.with(&vcpu(1), |n| *n += 1);
            done.send(1).unwrap();
        });
        let mut ended = Vec::new();
        for _ in 0..3 {
            match finished.recv_timeout(Duration::from_secs(10)) {
                Ok(index) => ended.push(index),
                Err(_) => panic!("vCPUs deadlocked: only {ended:?} finished within 10 s"),
            }
        }
    }

    #[test]
    #[should_panic(expected = "PerVcpu::with called again for vCPU 3 from inside its own `with`")]
    fn reentry_panics_instead_of_deadlocking() {
        let values = PerVcpu::<u64>::new();
        values.with(&vcpu(3), |_| values.with(&vcpu(3), |n| *n += 1));
    }
}
