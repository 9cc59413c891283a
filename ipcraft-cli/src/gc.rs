//! `ipcraft gc`: removes what crashed ipcraft users left behind.

use crate::host::{self, Object, Scope};
use crate::{write_stdout, CmdResult};

/// Removes your ipcraft channels, topics and services whose attached
/// processes all died (a side attached and its process ended without
/// closing, and no side is alive) and that no process still has open or
/// mapped, and prints each one it removed. Never removes a live one, one
/// nobody has used yet or whose users all left cleanly, another user's
/// object, or an object that is not ipcraft's.
#[derive(clap::Args)]
pub struct Args {
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args) -> CmdResult {
    let (entries, _) = host::scan(&Scope { all_users: false });
    let mut out = String::new();
    let mut failed = None;
    for e in entries.iter().filter(|e| e.state() == "dead") {
        let Some(object) = &e.object else { continue };
        let why = object
            .sides()
            .iter()
            .map(|(role, s)| format!("{role}={s}"))
            .collect::<Vec<_>>()
            .join(" ");
        if args.dry_run {
            out.push_str(&format!("would remove {} ({why})\n", e.name));
            continue;
        }
        // Checked again under every liveness lock: a process may have
        // attached since the scan.
        let removed = match object {
            Object::Channel(_) | Object::Lanes(_) => ipcraft::channel::remove_if_stale(&e.name),
            Object::Topic(_) => ipcraft::topic::remove_if_stale(&e.name),
            Object::Service(_) => ipcraft::service::remove_if_stale(&e.name),
        };
        match removed {
            Ok(true) => out.push_str(&format!("removed {} ({why})\n", e.name)),
            Ok(false) => {}
            Err(err) => {
                crate::report(&err);
                failed = Some(err);
            }
        }
    }
    write_stdout(out.as_bytes())?;
    match failed {
        Some(_) => Err(crate::Failure::Reported),
        None => Ok(()),
    }
}
