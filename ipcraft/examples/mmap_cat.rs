//! The classic memory-mapping exercise: print a file by mapping it.
//!
//! ```text
//! cargo run --example mmap_cat -- FILE
//! ```
//!
//! The whole file is mapped read-only and the mapping is handed to
//! `write(2)` on stdout. If another process truncates the file meanwhile,
//! the write fails with an error instead of the process dying of `SIGBUS`.
//! A file that cannot be mapped but reads in order (`/proc/cpuinfo`, a
//! pipe) is read with `read(2)`; anything else is refused with an error.

use std::io;

use std::os::unix::fs::OpenOptionsExt;

use ipcraft::mmap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = &args[..] else {
        eprintln!("usage: mmap_cat FILE");
        std::process::exit(2);
    };
    // Non-blocking open: a FIFO is refused at once instead of waiting for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    mmap::copy_file(&file, io::stdout())?; // an empty file writes nothing
    Ok(())
}
