//! `ipcraft service`: request–response over shared memory.

use std::io::{Read, Write};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use ipcraft::service::{self, ServiceOptions};
use ipcraft::{Error, Name};

use crate::{parse_name, parse_secs, write_stdout, CmdResult};

/// A service answers requests: one server, many clients, each request
/// answered with its own response, over shared memory. A client that dies
/// mid-request harms no other; a server that dies is reported to every
/// waiting client within a second.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Serves NAME (creating it, mode 0600, if it does not exist): answers
    /// each request with itself (echo), or with CMD's standard output when
    /// CMD is run by `sh -c` with the request on its standard input. Runs
    /// until killed; logs each client that died mid-request on stderr.
    Serve {
        /// Service name, `/name` or `name`.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// Answer with this command's output instead of echoing.
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Client slots when creating it (1 to 256).
        #[arg(long, default_value_t = service::DEFAULT_CLIENTS, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=i64::from(service::MAX_CLIENTS)))]
        clients: u32,
    },
    /// Sends MESSAGE (stdin when absent) and prints the response and a
    /// newline. Waits up to --timeout (default 5 s) for a server to serve
    /// NAME (fails at once if the last one died); then for the response as
    /// long as the server lives (or up to --timeout when given).
    Call {
        /// Service name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// The request; standard input when absent.
        message: Option<String>,
        /// Give up after waiting this long for a server or the response.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        timeout: Option<Duration>,
    },
}

/// CMD's standard output for `request` on its standard input.
fn run_command(cmd: &str, request: &[u8], response: &mut Vec<u8>) -> Result<(), Error> {
    let mut child = Process::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new("run", cmd, e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = request.to_vec();
    // A command that does not read its input is its business.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut out = child.stdout.take().expect("piped");
    out.read_to_end(response)
        .map_err(|e| Error::new("read output of", cmd, e))?;
    let status = child.wait().map_err(|e| Error::new("wait for", cmd, e))?;
    let _ = feeder.join();
    if !status.success() {
        eprintln!("ipcraft: {cmd}: {status}");
    }
    Ok(())
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Serve { name, exec, clients } => {
            let mut server = match ServiceOptions::new().clients(clients).create_server(&name) {
                Ok(mut server) => {
                    server.keep();
                    server
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => ServiceOptions::new().open_server(&name)?,
                Err(e) => return Err(e.into()),
            };
            let max = server.max_message_len();
            let (mut request, mut response) = (Vec::new(), Vec::new());
            loop {
                let req = match server.recv(&mut request) {
                    Ok(req) => req,
                    Err(e) if service::client_gone(&e) => {
                        eprintln!("ipcraft: {e}");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                response.clear();
                match &exec {
                    None => response.extend_from_slice(&request),
                    Some(cmd) => {
                        if let Err(e) = run_command(cmd, &request, &mut response) {
                            eprintln!("ipcraft: {e}");
                        }
                    }
                }
                if response.len() > max {
                    eprintln!(
                        "ipcraft: {name}: a {}-byte response is larger than the service's largest ({max}); cut to fit",
                        response.len()
                    );
                    response.truncate(max);
                }
                match server.reply(&req, &response) {
                    Err(e) if service::client_gone(&e) => eprintln!("ipcraft: {e}"),
                    other => other?,
                }
            }
        }
        Command::Call { name, message, timeout } => {
            let request = match message {
                Some(m) => m.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .lock()
                        .read_to_end(&mut buf)
                        .map_err(|e| Error::new("read", "stdin", e))?;
                    buf
                }
            };
            let mut options = ServiceOptions::new();
            if let Some(t) = timeout {
                options.timeout(t);
            }
            let mut client = options.connect(&name)?;
            let mut response = Vec::new();
            match timeout {
                Some(t) => client.call_timeout(&request, &mut response, t)?,
                None => client.call(&request, &mut response)?,
            }
            response.push(b'\n');
            write_stdout(&response)
        }
    }
}
