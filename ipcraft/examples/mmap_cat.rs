//! The classic memory-mapping exercise: print a file by mapping it.
//!
//! ```text
//! cargo run --example mmap_cat -- FILE
//! ```
//!
//! The whole file is mapped read-only and the mapping is handed to
//! `write(2)` on stdout. If another process truncates the file meanwhile,
//! the write fails with an error instead of the process dying of `SIGBUS`.

use std::io;

use ipcraft::mmap::MmapOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = &args[..] else {
        eprintln!("usage: mmap_cat FILE");
        std::process::exit(2);
    };
    let file = std::fs::File::open(path)?;
    let map = MmapOptions::new().map(&file)?; // an empty file gives an empty mapping
    map.write_to(io::stdout(), 0, map.len())?;
    Ok(())
}
