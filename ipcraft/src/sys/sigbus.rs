//! Surviving a shared object truncated under a mapping: a `SIGBUS` handler
//! that maps zero pages over the vanished part of a registered range and
//! notes it, so the code touching it sees zeros (and, at its next check, an
//! error) instead of dying. Faults outside registered ranges go to the
//! handler that was there before (by default: the process dies, as usual).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// How many mappings can be protected at once; more are simply not.
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    hit: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    hit: AtomicBool::new(false),
};

static SLOTS_TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];

/// The handler that was installed before ours.
static PREVIOUS: OnceLock<Option<libc::sigaction>> = OnceLock::new();

/// A registered range; unregistered when dropped.
#[derive(Debug)]
pub(crate) struct Guard(usize);

impl Guard {
    /// Whether a page of the range vanished (and was replaced by zeros).
    pub(crate) fn hit(&self) -> bool {
        SLOTS_TABLE[self.0].hit.load(Ordering::Relaxed)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let slot = &SLOTS_TABLE[self.0];
        slot.len.store(0, Ordering::Release);
        slot.hit.store(false, Ordering::Relaxed);
        slot.start.store(0, Ordering::Release);
    }
}

/// Protects `start..start+len` (page aligned), installing the handler on
/// first use. `None` when every slot is taken or the handler could not be
/// installed: the range is then unprotected, as before.
pub(crate) fn protect(start: usize, len: usize) -> Option<Guard> {
    PREVIOUS.get_or_init(install).as_ref()?;
    for (i, slot) in SLOTS_TABLE.iter().enumerate() {
        if slot
            .start
            .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            slot.hit.store(false, Ordering::Relaxed);
            slot.len.store(len, Ordering::Release);
            return Some(Guard(i));
        }
    }
    None
}

fn install() -> Option<libc::sigaction> {
    // SAFETY: zeroed sigaction values are valid; sigaction only reads `new`
    // and writes `old`; the handler below is async-signal-safe.
    unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_sigbus as *const () as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut new.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &new, &mut old) != 0 {
            let _ = io::Error::last_os_error();
            return None;
        }
        Some(old)
    }
}

/// The handler: async-signal-safe (atomics and `mmap` only).
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &SLOTS_TABLE {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        if start != 0 && addr >= start && addr < start + len {
            let page = rustix::param::page_size();
            let at = addr & !(page - 1);
            // SAFETY: replaces one page of our own mapping (inside the
            // registered range) with a private zero page; MAP_FIXED over a
            // range this process mapped is exactly what it is for.
            let r = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if r != libc::MAP_FAILED {
                slot.hit.store(true, Ordering::Relaxed);
                // Returning re-runs the access, on the zero page now.
                return;
            }
        }
    }
    // Not ours: hand it to whoever was there before.
    if let Some(Some(old)) = PREVIOUS.get() {
        let handler = old.sa_sigaction;
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            // SAFETY: restores the previous disposition; returning re-runs
            // the faulting access, which now gets the default action.
            unsafe { libc::sigaction(libc::SIGBUS, old, std::ptr::null_mut()) };
        } else if old.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed for SIGBUS with
            // SA_SIGINFO and expects exactly these arguments.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(handler) };
            f(sig, info, ctx);
        } else {
            // SAFETY: as above, for a plain handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            f(sig);
        }
    }
}
