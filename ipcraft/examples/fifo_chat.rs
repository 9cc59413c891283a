//! Two unrelated processes talking through a FIFO.
//!
//! ```text
//! cargo run --example fifo_chat -- listen /tmp/chat      # terminal 1
//! cargo run --example fifo_chat -- say /tmp/chat hi there # terminal 2 (and 3, ...)
//! ```
//!
//! `listen` creates the FIFO (mode 0600, removed again when it exits) and
//! prints every line until the last speaker has closed it. `say` opens it
//! for writing and sends each argument as one line with `write_atomic`, so
//! lines from several speakers at once are never interleaved.

use std::io::{self, BufRead, BufReader, Write};
use std::time::Duration;

use ipcraft::fifo::{self, FifoOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, path] if cmd == "listen" => {
            let _fifo = fifo::create(path, 0o600)?; // removed when `_fifo` drops
            eprintln!("listening on {path}");
            let reader = BufReader::new(fifo::open_read(path)?);
            let mut out = io::stdout().lock();
            for line in reader.lines() {
                writeln!(out, "> {}", line?)?;
            }
            eprintln!("every speaker has left");
            Ok(())
        }
        [cmd, path, words @ ..] if cmd == "say" && !words.is_empty() => {
            let writer = FifoOptions::new().timeout(Duration::from_secs(10)).open_write(path)?;
            for word in words {
                writer.write_atomic(format!("{word}\n").as_bytes())?;
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: fifo_chat listen PATH | fifo_chat say PATH MESSAGE...");
            std::process::exit(2);
        }
    }
}
