//! `ipcraft doctor`: the host limits and settings that decide what works.

use serde_json::json;

use crate::{human_bytes, write_stdout, CmdResult, Failure};

/// Shows the limits and settings that decide what works on this host: each
/// with its value, what it means, and how to raise it. Exits 0; with
/// --strict, exits 1 when something would keep a facility from working.
#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array, one object per check.
    #[arg(long)]
    json: bool,
    /// Exit 1 when a check says a facility cannot work here.
    #[arg(long)]
    strict: bool,
}

/// One finding.
struct Check {
    name: &'static str,
    value: String,
    /// Whether the value is fine for ipcraft.
    ok: bool,
    /// Whether a bad value keeps a facility from working (not just slower).
    blocking: bool,
    meaning: String,
    raise: &'static str,
}

fn read_u64(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn sysctl(name: &'static str, path: &str, meaning: &str, raise: &'static str, blocking: bool) -> Check {
    let value = read_u64(path);
    Check {
        name,
        value: value.map_or_else(|| "unreadable".to_owned(), |v| v.to_string()),
        ok: value.is_some_and(|v| v > 0),
        blocking,
        meaning: meaning.to_owned(),
        raise,
    }
}

fn limit_text(l: Option<u64>) -> String {
    l.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

fn checks() -> Vec<Check> {
    use rustix::process::{getrlimit, Resource};
    let mq = |f: &str| format!("/proc/sys/fs/mqueue/{f}");
    let mut all = vec![
        sysctl(
            "fs.mqueue.msg_max",
            &mq("msg_max"),
            "most messages one queue may hold (mq create --max-msgs), unless the process has CAP_SYS_RESOURCE",
            "sysctl -w fs.mqueue.msg_max=N",
            true,
        ),
        sysctl(
            "fs.mqueue.msgsize_max",
            &mq("msgsize_max"),
            "largest message a queue may take, in bytes (mq create --msg-size)",
            "sysctl -w fs.mqueue.msgsize_max=BYTES",
            true,
        ),
        sysctl(
            "fs.mqueue.msg_default",
            &mq("msg_default"),
            "messages a new queue holds when --max-msgs is not given",
            "sysctl -w fs.mqueue.msg_default=N",
            false,
        ),
        sysctl(
            "fs.mqueue.msgsize_default",
            &mq("msgsize_default"),
            "message size of a new queue when --msg-size is not given",
            "sysctl -w fs.mqueue.msgsize_default=BYTES",
            false,
        ),
    ];
    let queues_max = read_u64(&mq("queues_max"));
    let queues_now = ipcraft::mq::list().map(|l| l.len() as u64).ok();
    all.push(Check {
        name: "fs.mqueue.queues_max",
        value: match (queues_max, queues_now) {
            (Some(max), Some(now)) => format!("{max} ({now} in use)"),
            (Some(max), None) => max.to_string(),
            _ => "unreadable".to_owned(),
        },
        ok: match (queues_max, queues_now) {
            (Some(max), Some(now)) => now < max,
            (Some(max), None) => max > 0,
            _ => false,
        },
        blocking: true,
        meaning: "most queues the whole system may have at once".to_owned(),
        raise: "sysctl -w fs.mqueue.queues_max=N",
    });
    // What one queue of the default size is charged against RLIMIT_MSGQUEUE
    // (its messages plus the kernel's bookkeeping, roughly).
    let default_queue = read_u64(&mq("msg_default"))
        .zip(read_u64(&mq("msgsize_default")))
        .map(|(n, s)| n * (s + 64));
    let rl = getrlimit(Resource::Msgqueue);
    all.push(Check {
        name: "RLIMIT_MSGQUEUE",
        value: format!("{} (hard {})", limit_text(rl.current), limit_text(rl.maximum)),
        ok: match (rl.current, default_queue) {
            (None, _) => true,
            (Some(cur), Some(need)) => cur >= need,
            (Some(cur), None) => cur > 0,
        },
        blocking: true,
        meaning: format!(
            "bytes all of this user's queues may use together (ulimit -q); one default queue needs about {}",
            default_queue.map_or_else(|| "?".to_owned(), |n| n.to_string())
        ),
        raise: "ulimit -q BYTES (up to the hard limit), or 'msgqueue' in /etc/security/limits.conf",
    });
    let mounted = ipcraft::mq::list().is_ok();
    all.push(Check {
        name: "/dev/mqueue",
        value: if mounted { "mounted" } else { "not mounted" }.to_owned(),
        ok: mounted,
        blocking: false,
        meaning: "where queues are listed (mq ls, ls); queues themselves work without it".to_owned(),
        raise: "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue",
    });
    let shm = rustix::fs::statvfs(ipcraft::shm::SHM_DIR).ok();
    all.push(Check {
        name: "/dev/shm",
        value: shm.as_ref().map_or_else(
            || "missing".to_owned(),
            |s| {
                format!(
                    "{} free of {}",
                    human_bytes(s.f_bavail * s.f_frsize),
                    human_bytes(s.f_blocks * s.f_frsize)
                )
            },
        ),
        ok: shm.as_ref().is_some_and(|s| s.f_bavail > 0),
        blocking: true,
        meaning: "the memory shared memory objects and named channels live in; a channel needs its capacity plus 4 KiB"
            .to_owned(),
        raise: "mount -o remount,size=2G /dev/shm (in Docker: --shm-size=2g)",
    });
    all.push(sysctl(
        "fs.pipe-max-size",
        "/proc/sys/fs/pipe-max-size",
        "largest buffer an unprivileged process may give a pipe or FIFO (capacity)",
        "sysctl -w fs.pipe-max-size=BYTES",
        false,
    ));
    let protected = read_u64("/proc/sys/fs/protected_fifos");
    all.push(Check {
        name: "fs.protected_fifos",
        value: protected.map_or_else(|| "unreadable".to_owned(), |v| v.to_string()),
        ok: true,
        blocking: false,
        meaning: "1 or 2: opening with O_CREAT a FIFO another user owns in a sticky directory (/tmp) is refused; \
                  ipcraft refuses other users' FIFOs anyway unless allowed"
            .to_owned(),
        raise: "sysctl -w fs.protected_fifos=2 (stricter)",
    });
    let membarrier = rustix::thread::membarrier_query();
    let expedited = membarrier.contains(rustix::thread::MembarrierQuery::REGISTER_GLOBAL_EXPEDITED);
    all.push(Check {
        name: "membarrier",
        value: if expedited { "global expedited" } else { "unavailable" }.to_owned(),
        ok: expedited,
        blocking: false,
        meaning: "lets the channel's fast path run with no memory fence per message; without it, it uses real fences \
                  (slower, still correct)"
            .to_owned(),
        raise: "a kernel built with CONFIG_MEMBARRIER (Linux 4.16 or later); some sandboxes filter the call",
    });
    let cpus = rustix::thread::sched_getaffinity(None).map(|s| s.count()).unwrap_or(0);
    all.push(Check {
        name: "CPUs for this process",
        value: cpus.to_string(),
        ok: cpus >= 2,
        blocking: false,
        meaning: "a channel's sides spin only when each has a CPU; with one, waits fall back to sleeping (slower)"
            .to_owned(),
        raise: "taskset/cgroups: give the processes two or more CPUs",
    });
    let nofile = getrlimit(Resource::Nofile);
    all.push(Check {
        name: "RLIMIT_NOFILE",
        value: format!("{} (hard {})", limit_text(nofile.current), limit_text(nofile.maximum)),
        ok: nofile.current.is_none_or(|n| n >= 64),
        blocking: false,
        meaning: "descriptors one process may hold: every pipe end, queue, socket and mapping's file counts".to_owned(),
        raise: "ulimit -n N (up to the hard limit)",
    });
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    let version: Vec<u32> = release
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    let modern = version.as_slice() >= [5, 9].as_slice();
    all.push(Check {
        name: "kernel",
        value: release,
        ok: modern,
        blocking: false,
        meaning: "5.9 or later has everything ipcraft uses (pidfd, close_range); older kernels take slower fallbacks"
            .to_owned(),
        raise: "a newer kernel",
    });
    all
}

pub fn run(args: Args) -> CmdResult {
    let checks = checks();
    let text = if args.json {
        let list: Vec<_> = checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "value": c.value,
                    "ok": c.ok,
                    "blocking": c.blocking,
                    "meaning": c.meaning,
                    "raise": c.raise,
                })
            })
            .collect();
        format!("{}\n", serde_json::to_string_pretty(&list).unwrap_or_default())
    } else {
        let mut out = String::new();
        for c in &checks {
            let mark = match (c.ok, c.blocking) {
                (true, _) => "ok  ",
                (false, true) => "FAIL",
                (false, false) => "warn",
            };
            out.push_str(&format!("{mark} {}: {}\n     {}\n", c.name, c.value, c.meaning));
            if !c.ok {
                out.push_str(&format!("     to change it: {}\n", c.raise));
            }
        }
        out
    };
    write_stdout(text.as_bytes())?;
    let failing: Vec<&str> = checks.iter().filter(|c| c.blocking && !c.ok).map(|c| c.name).collect();
    if args.strict && !failing.is_empty() {
        crate::report(&ipcraft::Error::new(
            "doctor",
            "this host",
            std::io::Error::other(format!("would keep a facility from working: {}", failing.join(", "))),
        ));
        return Err(Failure::Reported);
    }
    Ok(())
}
