//! The classic pipe exercise: the parent sends a string to a child over one
//! pipe, the child sends it back over a second pipe, and the parent prints
//! what came back.
//!
//! ```text
//! cargo run --example pipe_echo -- "hello world"
//! ```
//!
//! The child is this same program started again with `--child`: its stdin
//! and stdout are bound (by `dup2` in the child) to the pipe ends the parent
//! created. The parent writes from one thread while it reads, so a string
//! bigger than the pipe buffers cannot deadlock. `ipcraft::command::echo` does
//! the same with `fork` in one call.

use std::io::{self, Read, Write};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        // Child: copy stdin to stdout until the parent closes its write end.
        io::copy(&mut io::stdin().lock(), &mut io::stdout().lock())?;
        return Ok(());
    }
    let [_, text] = &args[..] else {
        eprintln!("usage: pipe_echo STRING");
        std::process::exit(2);
    };

    let (to_child_r, mut to_child_w) = ipcraft::pipe::pipe()?;
    let (mut from_child_r, from_child_w) = ipcraft::pipe::pipe()?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--child")
        .stdin(to_child_r) // the child's ends move into the child...
        .stdout(from_child_w)
        .spawn()?; // ...and the parent's copies close when `Command` is dropped.

    let mut back = Vec::new();
    std::thread::scope(|s| -> io::Result<()> {
        s.spawn(move || {
            // Dropping the write end after the text is the child's EOF.
            to_child_w.write_all(text.as_bytes())
        });
        from_child_r.read_to_end(&mut back)?;
        Ok(())
    })?;
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("child failed: {status}").into());
    }
    back.push(b'\n');
    io::stdout().write_all(&back)?;
    Ok(())
}
