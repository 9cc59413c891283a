//! Child processes connected by pipes: standard input and output bound to
//! pipe ends (`dup2`), shell-style pipelines `a | b | c`, `popen(3)`-style
//! reading from or writing to a command, and [`echo`], the classic
//! parent → child → parent exchange over two pipes.
//!
//! # References
//!
//! - [`pipe(7)`](https://man7.org/linux/man-pages/man7/pipe.7.html)
//! - [`popen(3)`](https://man7.org/linux/man-pages/man3/popen.3.html)

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use crate::error::{Cause, Context, Error, Result};
use crate::pipe::{pipe, PipeReader, PipeWriter};
use crate::sys::{self, Forked};

/// `dup2(fd, STDIN_FILENO)`—Makes this process's standard input read from
/// `fd`, as a shell does for the right side of `|`.
///
/// [`Command`] does this in the child for you when given a [`PipeReader`]
/// through [`Stdio`]; use this after a `fork` of your own.
///
/// # References
///
/// - [`dup2(2)`](https://man7.org/linux/man-pages/man2/dup2.2.html)
#[doc(alias = "dup2")]
pub fn redirect_stdin(fd: impl AsFd) -> Result<()> {
    sys::retry(|| rustix::stdio::dup2_stdin(&fd)).context("dup2 onto", "stdin")
}

/// `dup2(fd, STDOUT_FILENO)`—Makes this process's standard output write to
/// `fd`, as a shell does for the left side of `|`.
///
/// # References
///
/// - [`dup2(2)`](https://man7.org/linux/man-pages/man2/dup2.2.html)
#[doc(alias = "dup2")]
pub fn redirect_stdout(fd: impl AsFd) -> Result<()> {
    sys::retry(|| rustix::stdio::dup2_stdout(&fd)).context("dup2 onto", "stdout")
}

/// The classic exercise: sends `data` to a forked child over one pipe, the
/// child sends it back over a second pipe, and the parent returns what came
/// back.
///
/// The parent writes and reads at the same time (non-blocking write end,
/// `poll(2)` on both), so any amount of data goes through: a design that
/// writes everything before reading deadlocks once the data exceeds the two
/// pipe buffers. The child is a real process created by `fork(2)`; it closes
/// every descriptor but its two pipe ends, copies until end of file, and
/// exits.
///
/// # Errors
///
/// `fork`/`pipe` failures; [`Cause::ChildGone`] if the child closed its end
/// before everything went through; [`Cause::ChildFailed`] if it exited
/// unsuccessfully.
///
/// # Examples
///
/// ```
/// let back = ipcraft::command::echo(b"hello world").unwrap();
/// assert_eq!(back, b"hello world");
/// ```
///
/// # References
///
/// - [`pipe(2)`](https://man7.org/linux/man-pages/man2/pipe.2.html) (its example is the starting point)
/// - [`fork(2)`](https://man7.org/linux/man-pages/man2/fork.2.html)
pub fn echo(data: &[u8]) -> Result<Vec<u8>> {
    let (to_child_r, to_child_w) = pipe()?;
    let (from_child_r, from_child_w) = pipe()?;
    // SAFETY: the child runs only `echo_child`, which makes raw system calls
    // on its two descriptors and a stack buffer and ends with `_exit`.
    let pid = match unsafe { sys::fork() }.context("fork", "echo child")? {
        Forked::Child => echo_child(to_child_r.as_fd(), from_child_w.as_fd()),
        Forked::Parent(pid) => pid,
    };
    drop(to_child_r);
    drop(from_child_w);
    let exchanged = echo_parent(data, to_child_w, &from_child_r);
    let status = sys::retry(|| rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()))
        .context("wait for", "echo child")?
        .map(|(_, s)| ExitStatus::from_raw(s.as_raw()));
    let back = exchanged?;
    match status {
        Some(s) if !s.success() => Err(Error::new("echo through", "child", Cause::ChildFailed(s))),
        _ => Ok(back),
    }
}

/// The child side of [`echo`]: copy `input` to `output` until end of file.
fn echo_child(input: BorrowedFd<'_>, output: BorrowedFd<'_>) -> ! {
    sys::close_all_except(&[input.as_raw_fd(), output.as_raw_fd()]);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match rustix::io::read(input, &mut buf) {
            Ok(0) => sys::exit_now(0),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => sys::exit_now(1),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            match rustix::io::write(output, rest) {
                Ok(w) => rest = &rest[w..],
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => sys::exit_now(1),
            }
        }
    }
}

/// The parent side of [`echo`]: feed `data` and collect the reply together.
fn echo_parent(data: &[u8], writer: PipeWriter, reader: &PipeReader) -> Result<Vec<u8>> {
    writer.set_nonblocking(true)?;
    let mut back = Vec::with_capacity(data.len());
    let mut pending = data;
    let mut writer = (!pending.is_empty()).then_some(writer);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let (readable, writable) = {
            let mut fds = [
                PollFd::new(reader, PollFlags::IN),
                PollFd::new(reader, PollFlags::empty()),
            ];
            let count = match &writer {
                Some(w) => {
                    fds[1] = PollFd::new(w, PollFlags::OUT);
                    2
                }
                None => 1,
            };
            sys::retry(|| rustix::event::poll(&mut fds[..count], None)).context("poll", "echo pipes")?;
            (!fds[0].revents().is_empty(), count == 2 && !fds[1].revents().is_empty())
        };
        if writable {
            if let Some(w) = &writer {
                match sys::write_nosigpipe(w.as_fd(), pending) {
                    Ok(n) => pending = &pending[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        return Err(Error::new("echo through", "child", Cause::ChildGone))
                    }
                    Err(e) => return Err(Error::new("write to", "echo pipe", e)),
                }
                if pending.is_empty() {
                    // Closing the write end is the child's end-of-file signal.
                    writer = None;
                }
            }
        }
        if readable {
            match (&*reader).read(&mut chunk).context("read from", "echo pipe")? {
                0 if pending.is_empty() => return Ok(back),
                0 => return Err(Error::new("echo through", "child", Cause::ChildGone)),
                n => back.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A shell-style pipeline, `a | b | c`: each command's standard output is
/// connected to the next one's standard input by a pipe.
///
/// The first command's stdin and the last one's stdout are whatever you set
/// on those [`Command`]s (inherited by default), so a pipeline can read a
/// file and write to a [`PipeWriter`] as easily as to the terminal.
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use ipcraft::command::Pipeline;
///
/// let mut printf = Command::new("printf");
/// printf.arg("apple\nbanana\ncherry\n");
/// let mut grep = Command::new("grep");
/// grep.arg("an");
/// let out = Pipeline::new(printf).pipe(grep).pipe(Command::new("wc")).output().unwrap();
/// assert!(out.success());
/// let counts: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().split_whitespace().collect();
/// assert_eq!(counts, ["1", "1", "7"]);
/// ```
#[derive(Debug)]
pub struct Pipeline {
    commands: Vec<Command>,
}

/// A running [`Pipeline`].
#[derive(Debug)]
pub struct RunningPipeline {
    children: Vec<Child>,
    programs: Vec<String>,
}

/// What a [`Pipeline`] wrote and how each of its commands ended.
#[derive(Debug)]
pub struct PipelineOutput {
    /// Everything the last command wrote to its standard output.
    pub stdout: Vec<u8>,
    /// Exit status of each command, in pipeline order.
    pub statuses: Vec<ExitStatus>,
}

impl PipelineOutput {
    /// Whether every command succeeded (like `set -o pipefail`).
    pub fn success(&self) -> bool {
        self.statuses.iter().all(ExitStatus::success)
    }
}

impl Pipeline {
    /// A pipeline that starts with `first`.
    pub fn new(first: Command) -> Self {
        Self { commands: vec![first] }
    }

    /// Appends `| next`.
    pub fn pipe(mut self, next: Command) -> Self {
        self.commands.push(next);
        self
    }

    /// Starts every command, connected by close-on-exec pipes.
    ///
    /// The parent's copies of the connecting pipe ends are closed as soon as
    /// each child has its own, so end of file propagates down the pipeline
    /// when a command exits.
    ///
    /// # Errors
    ///
    /// The error from spawning a command (named in the error); commands
    /// already started are killed and reaped first.
    pub fn spawn(self) -> Result<RunningPipeline> {
        let count = self.commands.len();
        let mut running = RunningPipeline {
            children: Vec::with_capacity(count),
            programs: Vec::with_capacity(count),
        };
        let mut next_stdin: Option<PipeReader> = None;
        for (i, mut cmd) in self.commands.into_iter().enumerate() {
            let program = cmd.get_program().to_string_lossy().into_owned();
            if let Some(r) = next_stdin.take() {
                cmd.stdin(r);
            }
            if i + 1 < count {
                let (r, w) = pipe()?;
                cmd.stdout(w);
                next_stdin = Some(r);
            }
            match cmd.spawn() {
                Ok(child) => {
                    running.children.push(child);
                    running.programs.push(program);
                }
                Err(e) => {
                    running.kill_and_reap();
                    return Err(Error::new("spawn", program, e));
                }
            }
            // `cmd` drops here, closing the parent's copies of its pipe ends.
        }
        Ok(running)
    }

    /// Runs the pipeline, collecting the last command's standard output.
    pub fn output(mut self) -> Result<PipelineOutput> {
        let (mut reader, writer) = pipe()?;
        if let Some(last) = self.commands.last_mut() {
            last.stdout(writer);
        }
        let running = self.spawn()?;
        let mut stdout = Vec::new();
        let read = reader.read_to_end(&mut stdout).context("read from", "pipeline");
        let statuses = running.wait()?;
        read?;
        Ok(PipelineOutput { stdout, statuses })
    }
}

impl RunningPipeline {
    /// The children, in pipeline order (for their pids, or their own
    /// stdin/stdout handles if you set [`Stdio::piped`] on an end).
    pub fn children(&mut self) -> &mut [Child] {
        &mut self.children
    }

    /// Waits for every command and returns their exit statuses in order.
    pub fn wait(mut self) -> Result<Vec<ExitStatus>> {
        let mut statuses = Vec::with_capacity(self.children.len());
        for (child, program) in self.children.iter_mut().zip(&self.programs) {
            statuses.push(child.wait().context("wait for", program)?);
        }
        Ok(statuses)
    }

    /// Waits at most `timeout` in all; on time-out kills every command that
    /// is still running, reaps it, and fails with [`Cause::TimedOut`].
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<Vec<ExitStatus>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut statuses = Vec::with_capacity(self.children.len());
        for i in 0..self.children.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match crate::process::wait_timeout(&mut self.children[i], left)? {
                Some(s) => statuses.push(s),
                None => {
                    let program = self.programs[i].clone();
                    self.kill_and_reap();
                    return Err(Error::new("wait for", program, Cause::TimedOut));
                }
            }
        }
        Ok(statuses)
    }

    fn kill_and_reap(&mut self) {
        for child in &mut self.children {
            // Already-exited children make kill fail harmlessly.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `popen(command, "r")`—Starts `command` with its standard output on a
/// pipe and returns a reader for it.
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::process::Command;
///
/// let mut cmd = Command::new("echo");
/// cmd.arg("from the child");
/// let mut child = ipcraft::command::popen_read(&mut cmd).unwrap();
/// let mut text = String::new();
/// child.read_to_string(&mut text).unwrap();
/// assert_eq!(text, "from the child\n");
/// assert!(child.wait().unwrap().success());
/// ```
///
/// # References
///
/// - [`popen(3)`](https://man7.org/linux/man-pages/man3/popen.3.html)
#[doc(alias = "popen")]
pub fn popen_read(command: &mut Command) -> Result<CommandReader> {
    let program = command.get_program().to_string_lossy().into_owned();
    let (reader, writer) = pipe()?;
    command.stdout(writer);
    let spawned = command.spawn();
    // Drop the parent's copy of the write end (held by `command`) so the
    // reader sees EOF when the child exits.
    command.stdout(Stdio::inherit());
    let child = spawned.context("spawn", &program)?;
    Ok(CommandReader { child, reader, program })
}

/// `popen(command, "w")`—Starts `command` with its standard input on a pipe
/// and returns a writer for it.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// use std::process::{Command, Stdio};
///
/// let mut cmd = Command::new("grep");
/// cmd.args(["-q", "needle"]).stdout(Stdio::null());
/// let mut child = ipcraft::command::popen_write(&mut cmd).unwrap();
/// child.write_all(b"hay\nneedle\nhay\n").unwrap();
/// assert!(child.wait().unwrap().success());
/// ```
///
/// # References
///
/// - [`popen(3)`](https://man7.org/linux/man-pages/man3/popen.3.html)
#[doc(alias = "popen")]
pub fn popen_write(command: &mut Command) -> Result<CommandWriter> {
    let program = command.get_program().to_string_lossy().into_owned();
    let (reader, writer) = pipe()?;
    command.stdin(reader);
    let spawned = command.spawn();
    command.stdin(Stdio::inherit());
    let child = spawned.context("spawn", &program)?;
    Ok(CommandWriter {
        child,
        writer: Some(writer),
        program,
    })
}

/// A command's standard output, from [`popen_read`].
#[derive(Debug)]
pub struct CommandReader {
    child: Child,
    reader: PipeReader,
    program: String,
}

impl CommandReader {
    /// The child process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `pclose`: closes the pipe and waits for the command's exit status.
    #[doc(alias = "pclose")]
    pub fn wait(mut self) -> Result<ExitStatus> {
        drop(self.reader);
        self.child.wait().context("wait for", &self.program)
    }
}

impl Read for CommandReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// A command's standard input, from [`popen_write`].
#[derive(Debug)]
pub struct CommandWriter {
    child: Child,
    writer: Option<PipeWriter>,
    program: String,
}

impl CommandWriter {
    /// The child process.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `pclose`: closes the pipe (the command sees end of file) and waits for
    /// its exit status.
    #[doc(alias = "pclose")]
    pub fn wait(mut self) -> Result<ExitStatus> {
        self.writer = None;
        self.child.wait().context("wait for", &self.program)
    }
}

impl Write for CommandWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
