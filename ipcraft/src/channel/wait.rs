//! Adaptive waiting: spin with a bounded budget, then sleep on a futex in
//! shared memory with a timeout.
//!
//! Spinning keeps round trips in the ~100 ns range when the peer answers
//! quickly; sleeping keeps an idle side from burning a core. The spin phase
//! yields the CPU now and then, so two spinning processes and a test harness
//! on two cores still make progress. Every sleep has a 50 ms timeout: the
//! moment to check whether the peer died, and a bound on any wake-up that
//! could still be lost. (Shorter timeouts are not free: on the VMs this was
//! tuned on, arming a 1 ms timer per sleep added ~12 µs to each wake-up.)

use std::sync::atomic::{compiler_fence, fence, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::thread::futex;

use super::bell;
use super::layout::Side;

/// Longest single sleep.
const NAP: Duration = Duration::from_millis(50);

/// The test mode without the sleep timeout: with `IPCRAFT_CHANNEL_NO_NAP=1`
/// in the environment, a sleeping side waits for its wake-up alone, so a
/// lost wake-up hangs (and fails a bounded test) instead of costing 50 ms.
/// Peer death is then noticed only by the waits' deadlines.
fn nap() -> Option<Duration> {
    static NO_NAP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let off = *NO_NAP.get_or_init(|| std::env::var_os("IPCRAFT_CHANNEL_NO_NAP").is_some_and(|v| v == "1"));
    (!off).then_some(NAP)
}

/// The waiter count that wakes every waiter on a futex word: `INT_MAX`, as
/// [FUTEX_WAKE(2const)](https://man7.org/linux/man-pages/man2/futex_wake.2const.html)
/// says. The kernel reads the count as a signed `int`, so `u32::MAX` would
/// be -1 and wake only one waiter.
pub(crate) const WAKE_ALL: u32 = i32::MAX as u32;

/// A waiter's "sleeping" mark in shared memory, raised before it
/// re-checks and sleeps, lowered when it wakes: a whole word (a channel
/// side's flag, a topic publisher's) or one bit of a word several waiters
/// share (topic subscribers, so the publisher looks at one word per
/// message however many subscribers there are).
pub(crate) trait Flag {
    fn raise(&self);
    fn lower(&self);
}

impl Flag for AtomicU32 {
    fn raise(&self) {
        self.store(1, Ordering::Relaxed);
    }

    fn lower(&self) {
        self.store(0, Ordering::Relaxed);
    }
}

/// One bit of a shared 64-bit word.
pub(crate) struct Bit<'a>(pub &'a std::sync::atomic::AtomicU64, pub u64);

impl Flag for Bit<'_> {
    fn raise(&self) {
        self.0.fetch_or(self.1, Ordering::SeqCst);
    }

    fn lower(&self) {
        self.0.fetch_and(!self.1, Ordering::SeqCst);
    }
}

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
    /// The clock is read when `spins & check_mask == 0`.
    check_mask: u32,
    started: Option<Instant>,
    sleeping: bool,
}

/// Spinning waits yield the CPU every this many clock reads.
const YIELD_EVERY_CHECKS: u32 = 16;

impl Waiter {
    /// A wait whose caller does little between calls to
    /// [`pause`](Self::pause): the clock (costly in some VMs) is read every
    /// 64 calls.
    pub(crate) fn new(spin: Duration, deadline: Option<Instant>) -> Self {
        Self {
            spin,
            deadline,
            spins: 0,
            check_mask: 63,
            started: None,
            sleeping: spin.is_zero(),
        }
    }

    /// A wait whose caller polls its condition a few hundred times before
    /// each [`pause`](Self::pause) (a topic subscriber's tight poll,
    /// several microseconds): the clock is read at every call, so the spin
    /// ends when `spin` says and not many times later (measured: 64 such
    /// rounds took 440 µs against a 50 µs spin; two subscribers sharing a
    /// CPU then waited a scheduler tick for each other). The channel's
    /// receiver keeps [`new`](Self::new): with this its 64-byte stream
    /// fell to half in `compare.sh` runs (0.25 against 0.55 of the C ring).
    pub(crate) fn polling(spin: Duration, deadline: Option<Instant>) -> Self {
        Self {
            check_mask: 0,
            ..Self::new(spin, deadline)
        }
    }

    /// Whether this wait has moved from spinning to sleeping.
    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping
    }

    /// Waits a little for `word` to stop holding `value`.
    ///
    /// `flag` is this side's "sleeping" word, set while asleep so the peer
    /// knows to issue a wake-up; `peer_light` says whether the peer's fast
    /// path relies on this side's membarrier. `ready` re-checks the full condition after
    /// the flag is set (closing the race with a peer that published just
    /// before). `liveness` runs after each sleep that timed out.
    pub(crate) fn pause<E>(
        &mut self,
        flag: &impl Flag,
        peer_light: bool,
        word: &AtomicU32,
        value: u32,
        ready: impl FnOnce() -> bool,
        liveness: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), Stop<E>> {
        if !self.sleeping {
            self.spins = self.spins.wrapping_add(1);
            if self.spins & self.check_mask != 0 {
                std::hint::spin_loop();
                return Ok(());
            }
            let now = Instant::now();
            let started = *self.started.get_or_insert(now);
            if self.deadline.is_some_and(|d| now >= d) {
                return Err(Stop::TimedOut);
            }
            if now.duration_since(started) < self.spin {
                if self.spins % ((self.check_mask + 1) * YIELD_EVERY_CHECKS) == 0 {
                    std::thread::yield_now();
                }
                return Ok(());
            }
            self.sleeping = true;
        }
        let now = Instant::now();
        let mut nap = nap();
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(now);
            if left.is_zero() {
                return Err(Stop::TimedOut);
            }
            nap = Some(nap.map_or(left, |n| n.min(left)));
        }
        flag.raise();
        heavy_fence(peer_light);
        if ready() {
            flag.lower();
            return Ok(());
        }
        let ts = nap.map(|nap| futex::Timespec {
            tv_sec: nap.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(nap.subsec_nanos()),
        });
        // Shared (not private) futex: the waker is another process.
        let slept = futex::wait(word, futex::Flags::empty(), value, ts.as_ref());
        flag.lower();
        if let Err(rustix::io::Errno::TIMEDOUT) = slept {
            liveness().map_err(Stop::Failed)?;
        }
        Ok(())
    }
}

// ---- The sleeping-flag handshake (an asymmetric Dekker pattern) ----
//
// A side about to sleep sets its flag and then re-checks the condition; a
// side that just made the condition true checks the flag and wakes the
// sleeper. Each needs a full barrier between its store and its load, or
// both loads can see old values and the wake-up is lost. The fast side
// does this on every message, so instead of a locked instruction there it
// uses only a compiler fence, and the sleeping side issues
// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which makes every CPU
// running a registered process execute a full barrier. A process that
// could not register uses real fences on its fast path.

/// The pid that registered for expedited global membarriers, if any.
static REGISTERED_PID: AtomicU32 = AtomicU32::new(0);

/// Registers this process to receive expedited global membarriers (once
/// per process, also after `fork`). Returns whether its fast path may use a
/// compiler fence only. A side that does not spin sleeps on nearly every
/// message, and its peer would pay an interrupt each time, so it uses real
/// fences instead.
pub(crate) fn register_fast_path(spin: Duration) -> bool {
    if spin.is_zero() {
        return false;
    }
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    if REGISTERED_PID.load(Ordering::Acquire) == pid {
        return true;
    }
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};
    if !membarrier_query().contains_command(MembarrierCommand::GlobalExpedited) {
        return false;
    }
    match membarrier(MembarrierCommand::RegisterGlobalExpedited) {
        Ok(()) => {
            REGISTERED_PID.store(pid, Ordering::Release);
            true
        }
        Err(_) => false,
    }
}

/// The fast side's barrier between publishing and checking the peer's flag.
#[inline(always)]
pub(crate) fn light_fence(registered: bool) {
    if registered {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The sleeping side's barrier between setting its flag and re-checking.
/// A peer whose fast path has a real fence needs only ours; a peer with
/// the light fence needs the membarrier (an inter-processor interrupt, so
/// it is skipped when not needed).
pub(crate) fn heavy_fence(peer_light: bool) {
    use rustix::thread::{membarrier, MembarrierCommand};
    fence(Ordering::SeqCst);
    if peer_light {
        // Where the kernel lacks it no peer could register, so no peer is
        // light and this is not reached.
        let _ = membarrier(MembarrierCommand::GlobalExpedited);
    }
}

/// Wakes the end of `side` if it sleeps: an async end on its doorbell, a
/// blocking end on the futex `word`.
#[cold]
pub(crate) fn wake(side: &Side, word: &AtomicU32) {
    match side.sleeping.load(Ordering::Acquire) {
        bell::BELL | bell::RUNG => {
            ring_if_armed(side);
        }
        // A failed wake leaves the sleeper to its timeout; nothing else to do.
        _ => drop(futex::wake(word, futex::Flags::empty(), 1)),
    }
}

/// Raises `side`'s flag to `BELL` (its async end is about to sleep on its
/// doorbell) and issues the sleeping side's barrier (the membarrier too
/// when the peer's fast path is light); the caller then looks at its
/// condition again.
pub(crate) fn raise_bell(side: &Side, peer_light: bool) {
    side.sleeping.store(bell::BELL, Ordering::Relaxed);
    heavy_fence(peer_light);
}

/// Rings the doorbell of `side`'s async end if it is armed and nobody has
/// rung it since it was: one ring per sleep, so rings never pile up in
/// its socket.
pub(crate) fn ring_if_armed(side: &Side) {
    if side
        .sleeping
        .compare_exchange(bell::BELL, bell::RUNG, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        bell::ring(side.bell.load(Ordering::Acquire));
    }
}

/// The sleeping-flag handshake model-checked with loom: every interleaving
/// and every reordering the memory model allows, for a side going to sleep
/// and a side publishing at the same moment. A futex wait is modelled as
/// what the kernel does atomically: block only if the word still holds the
/// value the sleeper saw. Loom cannot model `membarrier`, so this checks the
/// real-fence variant of the protocol (what a process that could not
/// register uses); the light variant replaces the publisher's fence with
/// the sleeper's membarrier, which is a full barrier on the publisher's CPU
/// at that point. Run by `scripts/check-ring.sh` (`RUSTFLAGS="--cfg loom"`).
#[cfg(all(test, loom))]
mod loom_model {
    use loom::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
    use loom::sync::Arc;

    struct Shared {
        /// The word the sleeper waits on (a frame's stamp, or `head`).
        word: AtomicU32,
        /// The sleeper's "sleeping" flag.
        flag: AtomicU32,
        /// Set by the model when the sleeper blocks in the futex.
        blocked: AtomicBool,
        /// Set by the model when the publisher issues a wake-up.
        woken: AtomicBool,
    }

    /// One round: the sleeper saw `0` and decides whether to block; the
    /// publisher stores `1` and decides whether to wake. With `fences`, the
    /// protocol as `Waiter::pause` / `light_fence(false)` run it.
    fn round(fences: bool) {
        loom::model(move || {
            let s = Arc::new(Shared {
                word: AtomicU32::new(0),
                flag: AtomicU32::new(0),
                blocked: AtomicBool::new(false),
                woken: AtomicBool::new(false),
            });
            let p = s.clone();
            let publisher = loom::thread::spawn(move || {
                p.word.store(1, Ordering::Release);
                if fences {
                    fence(Ordering::SeqCst);
                }
                if p.flag.load(Ordering::Relaxed) != 0 {
                    p.woken.store(true, Ordering::SeqCst);
                }
            });
            // The sleeper: flag, barrier, re-check, then the futex.
            s.flag.store(1, Ordering::Relaxed);
            if fences {
                fence(Ordering::SeqCst);
            }
            let ready = s.word.load(Ordering::SeqCst) != 0;
            if !ready && s.word.load(Ordering::SeqCst) == 0 {
                // Asleep: the flag stays up until a wake-up ends the sleep.
                s.blocked.store(true, Ordering::SeqCst);
            } else {
                s.flag.store(0, Ordering::Relaxed);
            }
            publisher.join().unwrap();
            // A blocked sleeper whose publisher published must be woken.
            assert!(
                !s.blocked.load(Ordering::SeqCst) || s.woken.load(Ordering::SeqCst),
                "lost wake-up"
            );
        });
    }

    #[test]
    fn no_lost_wake_up_with_the_barriers() {
        round(true);
    }

    /// The model can fail: without the barriers, a wake-up is lost in some
    /// interleaving.
    #[test]
    #[should_panic(expected = "lost wake-up")]
    fn the_model_finds_the_lost_wake_up_without_barriers() {
        round(false);
    }
}
