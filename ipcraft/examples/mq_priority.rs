//! Message queues deliver by priority: highest first, oldest first among
//! equals.
//!
//! ```text
//! cargo run --example mq_priority -- /demo-q
//! ```
//!
//! A child process (this program again, with `--send`) sends four messages
//! with mixed priorities into a new queue; the parent receives them and
//! prints PRIORITY<TAB>MESSAGE in the order the queue hands them out. The
//! queue is removed at the end.

use std::process::Command;
use std::time::Duration;

use ipcraft::mq::{MessageQueue, MqOptions};

const MESSAGES: [(&str, u32); 4] = [("low", 1), ("high", 9), ("mid", 5), ("tie-a", 5)];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match &args[1..] {
        [flag, name] if flag == "--send" => {
            let q = MqOptions::new().read(false).write(true).open(name)?;
            for (text, prio) in MESSAGES {
                q.send(text.as_bytes(), prio)?;
            }
            Ok(())
        }
        [name] => {
            let q = MessageQueue::create(name, 10, 256)?; // removed again when `q` drops
            let status = Command::new(std::env::current_exe()?).args(["--send", name]).status()?;
            if !status.success() {
                return Err(format!("sender failed: {status}").into());
            }
            let mut buf = q.buffer();
            for _ in MESSAGES {
                let (n, prio) = q.recv_timeout(&mut buf, Duration::from_secs(10))?;
                println!("{prio}\t{}", String::from_utf8_lossy(&buf[..n]));
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: mq_priority /name");
            std::process::exit(2);
        }
    }
}
