//! State kept per vCPU.

use std::sync::{Mutex, PoisonError, RwLock};

use crate::Vcpu;

/// A `T` for each vCPU, created with `T::default()` the first time the vCPU
/// uses it. Each vCPU locks only its own value, so callbacks running on
/// different vCPUs do not wait for each other.
#[derive(Debug, Default)]
pub struct PerVcpu<T> {
    slots: RwLock<Vec<Option<Box<Mutex<T>>>>>,
}

impl<T: Default> PerVcpu<T> {
    /// No value yet for any vCPU.
    pub fn new() -> Self {
        Self {
            slots: RwLock::new(Vec::new()),
        }
    }

    /// Runs `f` with the value of `vcpu`. `f` must not call `with` for the
    /// same vCPU on the same `PerVcpu` (it would wait for itself).
    pub fn with<R>(&self, vcpu: &Vcpu, f: impl FnOnce(&mut T) -> R) -> R {
        let index = vcpu.index() as usize;
        loop {
            {
                let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
                if let Some(Some(slot)) = slots.get(index) {
                    let mut value = slot.lock().unwrap_or_else(PoisonError::into_inner);
                    return f(&mut value);
                }
            }
            // First use by this vCPU: make its slot under the write lock,
            // then run `f` as above, under the read lock only, so that
            // other vCPUs are not held up by `f`.
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            if slots.len() <= index {
                slots.resize_with(index + 1, || None);
            }
            slots[index].get_or_insert_with(Default::default);
        }
    }

    /// Runs `f` on the value of every vCPU that has one, by index.
    pub fn for_each(&self, mut f: impl FnMut(u32, &mut T)) {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        for (index, slot) in slots.iter().enumerate() {
            if let Some(slot) = slot {
                let mut value = slot.lock().unwrap_or_else(PoisonError::into_inner);
                f(index as u32, &mut value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RegAccess;

    #[test]
    fn each_vcpu_has_its_own_value() {
        let counts = PerVcpu::<u64>::new();
        for index in [3, 0, 3, 3] {
            counts.with(&Vcpu::new(index, RegAccess::None), |n| *n += 1);
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
                    let vcpu = Vcpu::new(index, RegAccess::None);
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
        values.with(&Vcpu::new(1, RegAccess::None), |n| *n = 1);
        let (locked, wait_locked) = mpsc::channel();
        let (in_first_use, wait_first_use) = mpsc::channel();
        let (done, finished) = mpsc::channel();

        let (v, s, d) = (values.clone(), shared.clone(), done.clone());
        std::thread::spawn(move || {
            wait_locked.recv().unwrap();
            // vCPU 0, first use: its closure waits for the lock vCPU 1 holds.
            v.with(&Vcpu::new(0, RegAccess::None), |n| {
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
            values.with(&Vcpu::new(1, RegAccess::None), |n| *n += 1);
            drop(held);
            done.send(1).unwrap();
        });
        // Both finish; a minute means they waited for each other.
        let a = finished.recv_timeout(Duration::from_secs(60));
        let b = finished.recv_timeout(Duration::from_secs(60));
        assert!(a.is_ok() && b.is_ok(), "vCPUs 0 and 1 deadlocked");
    }
}
