//! Receiving from tokio: a named channel or a message queue, in a
//! current-thread runtime.
//!
//! ```text
//! cargo build --release -p ipcraft --features tokio --example tokio_recv
//! tokio_recv chan NAME [--timeout SECS]
//!                               copies every message to stdout until the end of the stream
//!                               (--timeout: give up when a message takes longer than SECS)
//! tokio_recv mq NAME COUNT      receives COUNT messages, printing PRIORITY<TAB>MESSAGE each
//! ```
//!
//! Exits 0 at the end, 1 with a one-line error otherwise (a sender that
//! died or aborted mid-stream is an error, after everything it sent).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use ipcraft::mq::MqOptions;
use ipcraft::tokio::{AsyncMessageQueue, AsyncReceiver};

const USAGE: &str = "usage: tokio_recv chan NAME [--timeout SECS] | tokio_recv mq NAME COUNT";

async fn chan(name: &str, timeout: Option<Duration>) -> Result<(), Box<dyn std::error::Error>> {
    let mut rx = AsyncReceiver::open(name)?;
    let out = std::io::stdout().lock();
    loop {
        // Receiving is cancel-safe: a timed-out wait loses nothing.
        let next = match timeout {
            Some(t) => match tokio::time::timeout(t, rx.recv_view()).await {
                Ok(next) => next?,
                Err(_) => return Err(format!("{name}: no message within {} s", t.as_secs_f64()).into()),
            },
            None => rx.recv_view().await?,
        };
        let Some(view) = next else { break };
        view.write_to(&out)?;
    }
    Ok(())
}

async fn mq(name: &str, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let q = AsyncMessageQueue::new(MqOptions::new().read(true).write(false).open(name)?)?;
    let mut buf = q.get_ref().buffer();
    let mut out = std::io::stdout().lock();
    for _ in 0..count {
        let (n, priority) = q.recv(&mut buf).await?;
        out.write_all(format!("{priority}\t").as_bytes())?;
        out.write_all(&buf[..n])?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_recv: start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["chan", name] => rt.block_on(chan(name, None)),
        ["chan", name, "--timeout", secs] => match secs
            .parse::<f64>()
            .ok()
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
        {
            Some(t) => rt.block_on(chan(name, Some(t))),
            None => {
                eprintln!("tokio_recv: --timeout must be a number of seconds, not {secs:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        ["mq", name, count] => match count.parse() {
            Ok(count) => rt.block_on(mq(name, count)),
            Err(_) => {
                eprintln!("tokio_recv: COUNT must be a whole number, not {count:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_recv: {e}");
            ExitCode::FAILURE
        }
    }
}
