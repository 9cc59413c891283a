//! `ipcraft uds`: Unix domain sockets.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use ipcraft::unix_socket::{self, Listener};
use ipcraft::Error;
use rustix::event::{PollFd, PollFlags};

use crate::{parse_mode, write_stdout, CmdResult};

/// A Unix domain socket connects processes on one machine through a path
/// in the file system (or an abstract name). Unlike a pipe it is
/// two-way, and the server learns each client's pid, uid and gid.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Echo server: answers every client with the bytes it sends and logs
    /// each client's pid/uid/gid to stderr, until interrupted (SIGINT,
    /// SIGTERM, SIGHUP); removes its socket file on exit. Refuses a path
    /// where a live server listens; replaces a stale socket file. The
    /// socket file is mode 0600 (only this user can connect) unless --mode.
    Serve {
        /// Socket path (at most 107 bytes).
        path: PathBuf,
        /// Permission bits of the socket file in octal; connecting needs
        /// write permission.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
    },
    /// Sends MESSAGE (stdin when no MESSAGE is given), prints the reply and
    /// a newline.
    Send {
        /// Socket path of a server.
        path: PathBuf,
        /// The message; without it, stdin is sent.
        message: Option<OsString>,
    },
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Serve { path, mode } => serve(path, mode),
        Command::Send { path, message } => {
            let shown = path.display();
            let mut stream = unix_socket::connect(&path)?;
            let io_err = |e: io::Error| Error::new("talk to", &shown, e);
            match message {
                Some(text) => stream.write_all(text.as_bytes()).map_err(io_err)?,
                None => {
                    io::copy(&mut io::stdin().lock(), &mut stream).map_err(io_err)?;
                }
            }
            stream.shutdown(Shutdown::Write).map_err(io_err)?;
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).map_err(io_err)?;
            reply.push(b'\n');
            write_stdout(&reply)
        }
    }
}

/// Waits until `fd` is readable or a termination signal arrives; false on a signal.
fn wait_readable(fd: &impl std::os::fd::AsFd, signals: &impl std::os::fd::AsFd) -> io::Result<bool> {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::IN), PollFd::new(signals, PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {
                if !fds[1].revents().is_empty() {
                    return Ok(false);
                }
                if !fds[0].revents().is_empty() {
                    return Ok(true);
                }
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn serve(path: PathBuf, mode: u32) -> CmdResult {
    let signals = ipcraft::process::termination_signals()?;
    // Dropped on every way out of this function: the socket file goes with it.
    let listener = Listener::bind_with_mode(&path, mode)?;
    let shown = path.display().to_string();
    let fail = |e: io::Error| Error::new("serve", &shown, e);
    eprintln!("ipcraft uds serve: listening on {shown}");
    while wait_readable(&listener, &signals).map_err(fail)? {
        let (client, cred) = match listener.accept() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("ipcraft: {e}");
                continue;
            }
        };
        eprintln!("ipcraft uds serve: client {cred}");
        match echo(client, &signals) {
            Ok(true) => {}
            Ok(false) => break,
            // One client's trouble does not stop the server.
            Err(e) => eprintln!(
                "ipcraft: echo to client pid {}: {}",
                cred.pid,
                Error::bare("echo", e).cause()
            ),
        }
    }
    eprintln!("ipcraft uds serve: stopping");
    Ok(())
}

/// Echoes one client until it closes; false if a termination signal came.
fn echo(mut client: UnixStream, signals: &impl std::os::fd::AsFd) -> io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !wait_readable(&client, signals)? {
            return Ok(false);
        }
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        client.write_all(&buf[..n])?;
    }
}
