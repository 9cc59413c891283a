//! Adaptive waiting: spin with a bounded budget, then sleep on a futex in
//! shared memory with a timeout.
//!
//! Spinning keeps round trips in the ~100 ns range when the peer answers
//! quickly; sleeping keeps an idle side from burning a core. The spin phase
//! yields the CPU now and then, so two spinning processes and a test harness
//! on two cores still make progress. Every sleep has a timeout (growing
//! from 1 ms to 50 ms): a lost wake-up costs at most that, and each timeout
//! is the moment to check whether the peer died.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

/// Longest single sleep.
const MAX_NAP: Duration = Duration::from_millis(50);

/// Why a wait ended without the condition.
pub(crate) enum Stop<E> {
    /// The deadline passed.
    TimedOut,
    /// The liveness check (or something it found) failed.
    Failed(E),
}

/// One wait: call [`pause`](Self::pause) each time the condition is false.
pub(crate) struct Waiter {
    spin: Duration,
    deadline: Option<Instant>,
    spins: u32,
    started: Option<Instant>,
    sleeping: bool,
    nap: Duration,
}

impl Waiter {
    pub(crate) fn new(spin: Duration, deadline: Option<Instant>) -> Self {
        Self {
            spin,
            deadline,
            spins: 0,
            started: None,
            sleeping: spin.is_zero(),
            nap: Duration::from_millis(1),
        }
    }

    /// Waits a little for `word` to stop holding `value`.
    ///
    /// `flag` is this side's "sleeping" word, set while asleep so the peer
    /// knows to issue a wake-up. `ready` re-checks the full condition after
    /// the flag is set (closing the race with a peer that published just
    /// before). `liveness` runs after each sleep that timed out.
    pub(crate) fn pause<E>(
        &mut self,
        flag: &AtomicU32,
        word: &AtomicU32,
        value: u32,
        ready: impl FnOnce() -> bool,
        liveness: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), Stop<E>> {
        if !self.sleeping {
            self.spins = self.spins.wrapping_add(1);
            if self.spins % 64 != 0 {
                std::hint::spin_loop();
                return Ok(());
            }
            let now = Instant::now();
            let started = *self.started.get_or_insert(now);
            if self.deadline.is_some_and(|d| now >= d) {
                return Err(Stop::TimedOut);
            }
            if now.duration_since(started) < self.spin {
                if self.spins % 1024 == 0 {
                    std::thread::yield_now();
                }
                return Ok(());
            }
            self.sleeping = true;
        }
        let now = Instant::now();
        let mut nap = self.nap;
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(now);
            if left.is_zero() {
                return Err(Stop::TimedOut);
            }
            nap = nap.min(left);
        }
        flag.swap(1, Ordering::SeqCst);
        if ready() {
            flag.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let ts = futex::Timespec {
            tv_sec: nap.as_secs() as i64,
            tv_nsec: i64::from(nap.subsec_nanos()),
        };
        // Shared (not private) futex: the waker is another process.
        let slept = futex::wait(word, futex::Flags::empty(), value, Some(&ts));
        flag.store(0, Ordering::Relaxed);
        if let Err(rustix::io::Errno::TIMEDOUT) = slept {
            self.nap = (self.nap * 2).min(MAX_NAP);
            liveness().map_err(Stop::Failed)?;
        }
        Ok(())
    }
}

/// Wakes one process sleeping on `word` (a shared futex).
pub(crate) fn wake(word: &AtomicU32) {
    // A failed wake leaves the sleeper to its timeout; nothing else to do.
    let _ = futex::wake(word, futex::Flags::empty(), 1);
}
