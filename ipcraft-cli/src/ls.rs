//! `ipcraft ls`: every IPC object on the host, with its holders and
//! whether they are alive.

use ipcraft::channel::SideState;
use serde_json::{json, Value};

use crate::host::{self, Entry, Object, Scope};
use crate::{human_age, human_bytes, write_stdout, CmdResult};

/// Lists every IPC object you can see: shared memory objects and ipcraft
/// channels, topics and services in /dev/shm (with each side's pid and
/// whether it is alive),
/// POSIX message queues (with messages waiting), FIFOs and Unix sockets
/// that processes hold open, and memfds (with their seals).
///
/// STATE is `alive` (a side or a holder is alive), `dead` (an ipcraft
/// object whose attached process died, with no side alive and nobody
/// holding it: `ipcraft gc` removes these) or `idle`. Holders are the processes that have the object
/// open or mapped, as far as /proc lets this user see.
#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array, one object per entry.
    #[arg(long)]
    json: bool,
    /// Show every user's objects, not only yours.
    #[arg(long)]
    all_users: bool,
}

pub fn run(args: Args) -> CmdResult {
    let (entries, notes) = host::scan(&Scope {
        all_users: args.all_users,
    });
    for note in &notes {
        eprintln!("ipcraft: note: {note}");
    }
    let text = if args.json {
        let list: Vec<Value> = entries.iter().map(to_json).collect();
        format!("{}\n", serde_json::to_string_pretty(&list).unwrap_or_default())
    } else {
        table(&entries)
    };
    write_stdout(text.as_bytes())
}

fn side_json(role: &str, state: SideState) -> Option<Value> {
    // The role's kind (`sender`, `subscriber`) and its slot, if numbered.
    let kind = role.trim_end_matches(|c: char| c.is_ascii_digit());
    let slot: Option<u32> = role[kind.len()..].parse().ok();
    let (pid, alive, state_name) = match state {
        SideState::Absent => return None,
        SideState::Closed => (None, false, "closed"),
        SideState::Alive(pid) => (Some(pid), true, "alive"),
        SideState::Dead(pid) => (Some(pid), false, "dead"),
    };
    let mut v = json!({ "role": kind, "pid": pid, "alive": alive, "state": state_name });
    if let Some(slot) = slot {
        v["slot"] = json!(slot);
    }
    Some(v)
}

fn to_json(e: &Entry) -> Value {
    let mut v = json!({
        "kind": e.kind,
        "name": e.name,
        "uid": e.uid,
        "mode": e.mode.map(|m| format!("{m:04o}")),
        "size": e.size,
        "age_secs": e.age_secs,
        "holders": e.holders,
        "state": e.state(),
    });
    if let Some(o) = &e.object {
        let sides: Vec<Value> = o.sides().iter().filter_map(|(role, s)| side_json(role, *s)).collect();
        v["sides"] = json!(sides);
        v["capacity"] = json!(o.capacity());
        v["in_flight"] = json!(o.in_flight());
    }
    if let Some(n) = e.messages {
        v["messages"] = json!(n);
    }
    if let Some(seals) = &e.seals {
        v["seals"] = json!(seals);
    }
    v
}

/// What the last column says: an ipcraft object's sides, a queue's
/// messages, a memfd's seals, and the holders.
fn detail(e: &Entry) -> String {
    let mut parts = Vec::new();
    if let Some(o) = &e.object {
        parts.extend(o.size_note());
        let sides = o.sides();
        if let Object::Channel(stat) = o {
            // Both sides, even one never attached.
            parts.push(format!("sender={} receiver={}", stat.sender, stat.receiver));
        } else {
            parts.extend(sides.iter().map(|(role, s)| format!("{role}={s}")));
        }
        if o.in_flight() > 0 {
            parts.push(format!("in_flight={}", human_bytes(o.in_flight())));
        }
    }
    if let Some(n) = e.messages {
        parts.push(format!("messages={n}"));
    }
    if let Some(seals) = &e.seals {
        parts.push(format!("seals={seals}"));
    }
    if !e.holders.is_empty() {
        let pids: Vec<String> = e.holders.iter().map(u32::to_string).collect();
        parts.push(format!("held by {}", pids.join(",")));
    }
    parts.join(" ")
}

fn table(entries: &[Entry]) -> String {
    let mut out = format!(
        "{:<9} {:<40} {:>6} {:>5} {:>9} {:>5} {:<6} {}\n",
        "KIND", "NAME", "UID", "MODE", "SIZE", "AGE", "STATE", "DETAIL"
    );
    for e in entries {
        let dash = || "-".to_owned();
        out.push_str(&format!(
            "{:<9} {:<40} {:>6} {:>5} {:>9} {:>5} {:<6} {}\n",
            e.kind,
            e.name,
            e.uid.map_or_else(dash, |u| u.to_string()),
            e.mode.map_or_else(dash, |m| format!("{m:04o}")),
            e.size.map_or_else(dash, human_bytes),
            e.age_secs.map_or_else(dash, human_age),
            e.state(),
            detail(e),
        ));
    }
    out
}
