//! Every transport the bench measures, each through ipcraft's own API (std
//! for TCP, the reference): set up before `fork`, then turned into one
//! side's [`Link`] in each process.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcraft::channel::{ChannelOptions, MultiReceiver, Receiver, Sender, SideState};
use ipcraft::fifo::Fifo;
use ipcraft::mmap::Mmap;
use ipcraft::mq::{MessageQueue, MqOptions as MqOpen};
use ipcraft::pipe::{PipeReader, PipeWriter};
use ipcraft::service::{Client, Request, Server, ServiceOptions};
use ipcraft::shm::ShmOptions;
use ipcraft::tokio::{AsyncReceiver, AsyncSender};
use ipcraft::topic::{Publisher, Subscriber, TopicOptions};

use super::measure::Link;

/// Every transport, in table order; the comparators (`iceoryx2`,
/// `ipc-channel`) only with their cargo features.
pub fn all() -> Vec<&'static str> {
    const EVERY: [&str; 18] = [
        "pipe",
        "fifo",
        "uds",
        "mq",
        "shm-futex",
        "chan",
        "chan-zc",
        "chan-memfd",
        "chan-sleep",
        "chan-async",
        "topic",
        "topic-2sub",
        "chan-2send",
        "service",
        "tcp",
        "iceoryx2",
        "iceoryx2-2sub",
        "ipc-channel",
    ];
    EVERY
        .into_iter()
        .filter(|t| {
            (cfg!(feature = "iceoryx2") || !t.starts_with("iceoryx2"))
                && (cfg!(feature = "ipc-channel") || *t != "ipc-channel")
        })
        .collect()
}

/// Whether `transport` can stream (one side sending without being asked):
/// a service only answers requests, so it has round trips only.
pub fn streams(transport: &str) -> bool {
    transport != "service"
}

/// Whether `transport` has round trips: a many-to-one channel has no way
/// back to its senders, so it only streams.
pub fn pingpongs(transport: &str) -> bool {
    transport != "chan-2send"
}

/// How many child processes the parent measures against: 2 for the
/// patterns with two subscribers or two senders (each in its own
/// process), 1 for everything else.
pub fn children(transport: &str) -> usize {
    match transport {
        "topic-2sub" | "iceoryx2-2sub" | "chan-2send" => 2,
        _ => 1,
    }
}

/// Whether a stream over `transport` goes from the parent to its
/// children (one publisher, several subscribers) rather than from the
/// children to the parent.
pub fn fans_out(transport: &str) -> bool {
    children(transport) > 1 && transport != "chan-2send"
}

/// Which process a [`Link`] is for: the parent (which measures) or child
/// number `i` of [`children`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Parent,
    Child(usize),
}

/// A transport set up for one message size, before `fork`.
// One value per measurement, never in a collection: size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Prepared {
    Pipes {
        a: (PipeWriter, PipeReader),
        b: (PipeWriter, PipeReader),
    },
    Fifos {
        ab: Fifo,
        ba: Fifo,
    },
    Sockets(UnixStream, UnixStream),
    Tcp(TcpStream, TcpStream),
    Queues(MessageQueue, MessageQueue),
    ShmFutex(Mmap, usize),
    Chans {
        a: (Sender, Receiver),
        b: (Sender, Receiver),
        /// Each side in its own current-thread tokio runtime.
        asynchronous: bool,
    },
    /// Named channels; `zero_copy`: messages written and read in place.
    NamedChans(ChanNames, bool),
    /// Topics: the parent publishes on the first, which each child
    /// subscribes to; child `i` publishes on topic `1 + i`, which the
    /// parent subscribes to.
    Topics(TopicNames),
    /// A many-sender channel: each child sends on its own lane, the
    /// parent receives from all.
    Lanes(ChanNames),
    /// A service: the parent calls, the child serves.
    Service(ServiceName),
    #[cfg(feature = "ipc-channel")]
    IpcChannel {
        a: (ipc_channel::ipc::IpcBytesSender, ipc_channel::ipc::IpcBytesReceiver),
        b: (ipc_channel::ipc::IpcBytesSender, ipc_channel::ipc::IpcBytesReceiver),
    },
    /// As [`Topics`](Self::Topics): the parent publishes on the first
    /// service, child `i` on service `1 + i`.
    #[cfg(feature = "iceoryx2")]
    Iceoryx2 {
        names: Vec<String>,
        size: usize,
        config: iceoryx2::prelude::Config,
    },
}

/// One side of a prepared transport.
#[allow(clippy::large_enum_variant)]
pub enum AnyLink {
    Fd(PipeWriter, PipeReader),
    Socket(UnixStream),
    Tcp(TcpStream),
    Queue {
        tx: MessageQueue,
        rx: MessageQueue,
        buf: Vec<u8>,
    },
    ShmFutex {
        map: Mmap,
        size: usize,
        out: usize,
        inp: usize,
        seq_out: u32,
        seq_in: u32,
    },
    /// A blocking channel pair (see [`ChanLink`]).
    Chan(ChanLink),
    #[cfg(feature = "ipc-channel")]
    IpcChannel(ipc_channel::ipc::IpcBytesSender, ipc_channel::ipc::IpcBytesReceiver),
    /// A topic publisher and subscribers (see [`TopicLink`]).
    Topic(TopicLink),
    /// The receiver of a many-sender channel, and the name to remove.
    Lanes {
        rx: MultiReceiver,
        _cleanup: ChanNames,
    },
    /// One sender of a many-sender channel.
    Lane(Sender),
    /// The calling side of a service (see [`ServiceClientLink`]).
    ServiceClient(ServiceClientLink),
    /// The serving side (see [`ServiceServerLink`]).
    ServiceServer(ServiceServerLink),
    /// Async ends driven by this side's current-thread runtime (see
    /// `drive`): a waiting side sleeps in the runtime's epoll, woken by
    /// the channel's doorbell.
    ChanAsync {
        rt: tokio::runtime::Runtime,
        tx: AsyncSender,
        rx: AsyncReceiver,
    },
    #[cfg(feature = "iceoryx2")]
    Iceoryx2(super::iox::IoxLink),
}

fn err(e: ipcraft::Error) -> io::Error {
    e.into()
}

/// Sets up `transport` for messages of `size` bytes. `Ok(None)` with a
/// reason if this transport cannot carry that size here.
pub fn prepare(transport: &str, size: usize, tmp: &std::path::Path, tag: &str) -> Result<Prepared, String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match transport {
        "pipe" => {
            let (r1, w1) = ipcraft::pipe::pipe().map_err(|e| fail(&e))?;
            let (r2, w2) = ipcraft::pipe::pipe().map_err(|e| fail(&e))?;
            Prepared::Pipes {
                a: (w1, r2),
                b: (w2, r1),
            }
        }
        "fifo" => {
            let ab = ipcraft::fifo::create(tmp.join(format!("{tag}-ab")), 0o600).map_err(|e| fail(&e))?;
            let ba = ipcraft::fifo::create(tmp.join(format!("{tag}-ba")), 0o600).map_err(|e| fail(&e))?;
            Prepared::Fifos { ab, ba }
        }
        "uds" => {
            let (a, b) = UnixStream::pair().map_err(|e| fail(&e))?;
            Prepared::Sockets(a, b)
        }
        "tcp" => {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| fail(&e))?;
            let a = TcpStream::connect(listener.local_addr().map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
            let (b, _) = listener.accept().map_err(|e| fail(&e))?;
            for s in [&a, &b] {
                s.set_nodelay(true).map_err(|e| fail(&e))?;
            }
            Prepared::Tcp(a, b)
        }
        "mq" => {
            let open = |suffix: &str| {
                let name = format!("/ipcraft-bench-{tag}-{suffix}");
                let q = MqOpen::new().create_new(true).max_msgs(10).msg_size(size).open(&name);
                // Both processes hold descriptors; the names are not needed.
                let _ = ipcraft::mq::remove(&name);
                q.map_err(|e| fail(&e))
            };
            let ab = open("ab")?;
            let ba = open("ba")?;
            Prepared::Queues(ab, ba)
        }
        "shm-futex" => {
            // Two areas (a->b, b->a): sequence word, acknowledgement word,
            // each on its own 128-byte line, then the payload.
            let name = format!("/ipcraft-bench-{tag}-shm");
            let shm = ShmOptions::new()
                .create_new(true)
                .size(2 * area(size) as u64)
                .open(&name)
                .map_err(|e| fail(&e))?;
            let map = shm.map().map_err(|e| fail(&e))?;
            drop(shm); // unlinks the name; the mapping stays
            Prepared::ShmFutex(map, size)
        }
        "chan" | "chan-zc" => {
            // Named channels in /dev/shm; each process opens its ends after fork.
            let capacity = ((size as u64 + 64) * 4).max(ipcraft::channel::DEFAULT_CAPACITY);
            let names = ChanNames(vec![
                format!("/ipcraft-bench-{tag}-ab"),
                format!("/ipcraft-bench-{tag}-ba"),
            ]);
            for name in &names.0 {
                ipcraft::channel::create(name, capacity).map_err(|e| fail(&e))?;
            }
            Prepared::NamedChans(names, transport == "chan-zc")
        }
        "topic" | "topic-2sub" => {
            let capacity = ((size as u64 + 72) * 4).max(ipcraft::topic::DEFAULT_CAPACITY);
            let names = TopicNames(fan_names(&format!("/ipcraft-bench-{tag}"), children(transport)));
            for name in &names.0 {
                TopicOptions::new()
                    .capacity(capacity)
                    .subscribers(2)
                    .create(name)
                    .map_err(|e| fail(&e))?;
            }
            Prepared::Topics(names)
        }
        "chan-2send" => {
            let name = format!("/ipcraft-bench-{tag}-many");
            ChannelOptions::new()
                .senders(children(transport) as u32)
                .capacity(((size as u64 + 64) * 4).max(ipcraft::channel::DEFAULT_CAPACITY))
                .create(&name)
                .map_err(|e| fail(&e))?;
            Prepared::Lanes(ChanNames(vec![name]))
        }
        "service" => {
            // The child creates and serves it; the parent connects (waiting
            // for it) and removes the name at the end.
            Prepared::Service(ServiceName(format!("/ipcraft-bench-{tag}-svc"), size))
        }
        #[cfg(feature = "ipc-channel")]
        "ipc-channel" => {
            let fail = |e: io::Error| format!("ipc-channel: {e}");
            let (tx_ab, rx_ab) = ipc_channel::ipc::bytes_channel().map_err(fail)?;
            let (tx_ba, rx_ba) = ipc_channel::ipc::bytes_channel().map_err(fail)?;
            Prepared::IpcChannel {
                a: (tx_ab, rx_ba),
                b: (tx_ba, rx_ab),
            }
        }
        "chan-memfd" | "chan-sleep" | "chan-async" => {
            let mut opts = ChannelOptions::new();
            opts.capacity(((size as u64 + 64) * 4).max(ipcraft::channel::DEFAULT_CAPACITY));
            if transport == "chan-sleep" {
                opts.spin(Duration::ZERO);
            }
            let (tx_ab, rx_ab) = opts.pair().map_err(|e| fail(&e))?;
            let (tx_ba, rx_ba) = opts.pair().map_err(|e| fail(&e))?;
            Prepared::Chans {
                a: (tx_ab, rx_ba),
                b: (tx_ba, rx_ab),
                asynchronous: transport == "chan-async",
            }
        }
        #[cfg(feature = "iceoryx2")]
        "iceoryx2" | "iceoryx2-2sub" => Prepared::Iceoryx2 {
            names: fan_names(&format!("ipcraft-bench-{tag}"), children(transport)),
            size,
            config: super::iox::config(&tmp.join("iceoryx2"), &iox_prefix()).map_err(|e| e.to_string())?,
        },
        other => return Err(format!("unknown transport {other:?}")),
    })
}

impl Prepared {
    /// This process's side of the transport.
    pub fn into_link(self, side: Side) -> io::Result<AnyLink> {
        let first = side == Side::Parent;
        Ok(match self {
            Prepared::Pipes { a, b } => {
                let (w, r) = if first { a } else { b };
                AnyLink::Fd(w, r)
            }
            Prepared::Fifos { ab, ba } => {
                // Blocking opens in the same order on both sides: the parent
                // opens a->b for writing while the child opens it for
                // reading, then the same for b->a.
                if first {
                    let w = ipcraft::fifo::open_write(ab.path()).map_err(err)?;
                    let r = ipcraft::fifo::open_read(ba.path()).map_err(err)?;
                    AnyLink::Fd(w, r)
                } else {
                    let r = ipcraft::fifo::open_read(ab.path()).map_err(err)?;
                    let w = ipcraft::fifo::open_write(ba.path()).map_err(err)?;
                    AnyLink::Fd(w, r)
                }
            }
            Prepared::Sockets(a, b) => AnyLink::Socket(if first { a } else { b }),
            Prepared::Tcp(a, b) => AnyLink::Tcp(if first { a } else { b }),
            Prepared::Queues(ab, ba) => {
                let (tx, rx) = if first { (ab, ba) } else { (ba, ab) };
                let buf = rx.buffer();
                AnyLink::Queue { tx, rx, buf }
            }
            Prepared::ShmFutex(map, size) => {
                let (out, inp) = if first { (0, area(size)) } else { (area(size), 0) };
                AnyLink::ShmFutex {
                    map,
                    size,
                    out,
                    inp,
                    seq_out: 0,
                    seq_in: 0,
                }
            }
            Prepared::Chans { a, b, asynchronous } => {
                let (tx, rx) = if first { a } else { b };
                if asynchronous {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    let _in_runtime = rt.enter();
                    let tx = AsyncSender::new(tx).map_err(err)?;
                    let rx = AsyncReceiver::new(rx).map_err(err)?;
                    drop(_in_runtime);
                    AnyLink::ChanAsync { rt, tx, rx }
                } else {
                    AnyLink::Chan(ChanLink {
                        tx,
                        rx,
                        zero_copy: false,
                        _cleanup: None,
                    })
                }
            }
            Prepared::NamedChans(names, zero_copy) => {
                let (ab, ba) = (&names.0[0], &names.0[1]);
                let (out, inp) = if first { (ab, ba) } else { (ba, ab) };
                let tx = Sender::open(out).map_err(err)?;
                let rx = Receiver::open(inp).map_err(err)?;
                let names = parent_keeps(names, first);
                AnyLink::Chan(ChanLink {
                    tx,
                    rx,
                    zero_copy,
                    _cleanup: names,
                })
            }
            #[cfg(feature = "ipc-channel")]
            Prepared::IpcChannel { a, b } => {
                let (tx, rx) = if first { a } else { b };
                AnyLink::IpcChannel(tx, rx)
            }
            Prepared::Topics(names) => {
                let (out, inputs, readers) = fan_side(&names.0, side);
                let publisher = TopicOptions::new().open_publisher(out).map_err(err)?;
                let subscribers = inputs
                    .iter()
                    .map(|inp| TopicOptions::new().open_subscriber(inp).map_err(err))
                    .collect::<io::Result<Vec<_>>>()?;
                // A message published before the peers subscribed would be
                // missed: wait until they have.
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while publisher.subscribers().map_err(err)? < readers {
                    if std::time::Instant::now() >= deadline {
                        return Err(io::Error::other("the peers' subscribers never came"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                let names = parent_keeps(names, first);
                AnyLink::Topic(TopicLink {
                    publisher,
                    subscribers,
                    scratch: Vec::new(),
                    _cleanup: names,
                })
            }
            Prepared::Lanes(names) => {
                if first {
                    let rx = MultiReceiver::open(&names.0[0]).map_err(err)?;
                    AnyLink::Lanes { rx, _cleanup: names }
                } else {
                    let tx = Sender::open(&names.0[0]).map_err(err)?;
                    // The receiver ends once every sender that attached has
                    // closed, and a later sender may take a finished one's
                    // lane: no sender sends before all have attached (a lane
                    // attached once never shows absent again).
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    loop {
                        let lanes = ipcraft::channel::stat_lanes(&names.0[0]).map_err(err)?;
                        if lanes.iter().all(|l| l.sender != SideState::Absent) {
                            break;
                        }
                        if std::time::Instant::now() >= deadline {
                            return Err(io::Error::other("the other senders never came"));
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    std::mem::forget(names);
                    AnyLink::Lane(tx)
                }
            }
            Prepared::Service(name) => {
                let capacity = ((name.1 as u64 + 72) * 4).max(ipcraft::service::DEFAULT_CAPACITY);
                if first {
                    let client = ServiceOptions::new()
                        .timeout(Duration::from_secs(10))
                        .connect(&name.0)
                        .map_err(err)?;
                    AnyLink::ServiceClient(ServiceClientLink { client, _cleanup: name })
                } else {
                    let mut server = ServiceOptions::new()
                        .clients(1)
                        .capacity(capacity)
                        .create_server(&name.0)
                        .map_err(err)?;
                    server.keep();
                    std::mem::forget(name);
                    AnyLink::ServiceServer(ServiceServerLink { server, request: None })
                }
            }
            #[cfg(feature = "iceoryx2")]
            Prepared::Iceoryx2 { names, size, config } => {
                let (out, inputs, readers) = fan_side(&names, side);
                AnyLink::Iceoryx2(super::iox::IoxLink::open(out, &inputs, readers, size, &config)?)
            }
        })
    }
}

/// Removes what this process's comparators left outside the temporary
/// directory (iceoryx2's shared memory under this run's prefix); call it
/// once the measurements are done.
pub fn clean_up() {
    #[cfg(feature = "iceoryx2")]
    super::iox::clean(&iox_prefix());
}

/// The shared-memory prefix of this bench run's iceoryx2 objects.
#[cfg(feature = "iceoryx2")]
pub fn iox_prefix() -> String {
    format!("ipcraft_bench_{}_", std::process::id())
}

/// The names of a fan of `children` peers: the parent's outgoing one, then
/// one per child for its way back.
fn fan_names(prefix: &str, children: usize) -> Vec<String> {
    let mut names = vec![format!("{prefix}-out")];
    names.extend((0..children).map(|i| format!("{prefix}-back{i}")));
    names
}

/// For `side` of a fan (see [`fan_names`]): the name it publishes on, the
/// names it subscribes to, and how many subscribers its own must have.
fn fan_side(names: &[String], side: Side) -> (&str, Vec<&str>, usize) {
    match side {
        Side::Parent => (
            &names[0],
            names[1..].iter().map(String::as_str).collect(),
            names.len() - 1,
        ),
        Side::Child(i) => (&names[1 + i], vec![names[0].as_str()], 1),
    }
}

/// Channel names that are removed when dropped.
pub struct ChanNames(Vec<String>);

impl Drop for ChanNames {
    fn drop(&mut self) {
        for name in &self.0 {
            // Already gone is fine; nothing else to do in drop.
            let _ = ipcraft::channel::remove(name);
        }
    }
}

/// Topic names that are removed when dropped.
pub struct TopicNames(Vec<String>);

impl Drop for TopicNames {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = ipcraft::topic::remove(name);
        }
    }
}

/// A service name (and message size) removed when dropped.
pub struct ServiceName(String, usize);

impl Drop for ServiceName {
    fn drop(&mut self) {
        let _ = ipcraft::service::remove(&self.0);
    }
}

/// Offset of a direction's acknowledgement word (its own cache line pair).
const ACK: usize = 128;
/// Offset of the word the sender raises while it sleeps on the
/// acknowledgement (the line after it).
const ACK_WAITING: usize = 192;
/// Offset of a direction's payload.
const PAYLOAD: usize = 256;

/// Bytes of one direction's area for messages of `size` bytes.
fn area(size: usize) -> usize {
    PAYLOAD + size.div_ceil(128) * 128
}

/// Stores `value` (release) and wakes a waiter, as the C `futex` mode does.
fn publish(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
}

/// Stores the acknowledgement `value` and wakes the sender only if it
/// sleeps on it (`waiting`): the C reference has no acknowledgement (its
/// ping-pong never needs one), so a wake-up call per message here would
/// be a system call per hop it does not make. Sequentially consistent on
/// both sides: either the sender sees the value before it sleeps, or this
/// side sees it waiting.
fn acknowledge(word: &AtomicU32, waiting: &AtomicU32, value: u32) {
    word.store(value, Ordering::SeqCst);
    if waiting.load(Ordering::SeqCst) != 0 {
        let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), 1);
    }
}

/// [`wait_for`] the acknowledgement `want`, raising `waiting` while it
/// sleeps (see [`acknowledge`]).
fn wait_for_ack(word: &AtomicU32, waiting: &AtomicU32, want: u32) -> io::Result<()> {
    if word.load(Ordering::Acquire) == want {
        return Ok(());
    }
    waiting.store(1, Ordering::SeqCst);
    let waited = wait_for_with(word, want, || word.load(Ordering::SeqCst));
    waiting.store(0, Ordering::Relaxed);
    waited
}

/// Sleeps on `word` until it holds `want`; gives up after 10 s without it
/// (a peer that died).
fn wait_for(word: &AtomicU32, want: u32) -> io::Result<()> {
    wait_for_with(word, want, || word.load(Ordering::Acquire))
}

/// [`wait_for`], reading the word with `load`.
fn wait_for_with(word: &AtomicU32, want: u32, load: impl Fn() -> u32) -> io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        let v = load();
        if v == want {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "shm-futex peer stopped answering",
            ));
        }
        let t = rustix::thread::futex::Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let _ = rustix::thread::futex::wait(word, rustix::thread::futex::Flags::empty(), v, Some(&t));
    }
}

impl AnyLink {
    /// The futex word at byte `offset` of the shared area.
    fn word(map: &Mmap, offset: usize) -> &AtomicU32 {
        // SAFETY: offset is a 128-aligned word offset inside an area, inside the
        // mapping, which outlives the returned reference; the word is only
        // accessed atomically by both processes.
        unsafe { &*(map.as_ptr().add(offset) as *const AtomicU32) }
    }
}

/// The names a side removes when it is done: the parent's; the child must
/// leave them to it (forgotten, so its drop removes nothing).
fn parent_keeps<T>(names: T, first: bool) -> Option<T> {
    if first {
        Some(names)
    } else {
        std::mem::forget(names);
        None
    }
}

/// Copies a received message that must be exactly `buf.len()` bytes.
pub(crate) fn copy_whole(got: &[u8], buf: &mut [u8]) -> io::Result<()> {
    if got.len() != buf.len() {
        return Err(io::Error::other(format!(
            "message of {} bytes, expected {}",
            got.len(),
            buf.len()
        )));
    }
    buf.copy_from_slice(got);
    Ok(())
}

/// Runs one operation of an async end: polled once in the runtime's
/// context, and only if it must wait, handed to `block_on`, which parks in
/// the runtime's epoll until the doorbell rings. (A `block_on` per message
/// costs what no async program pays — entering and leaving the runtime,
/// about 0.2 µs each time here — and would be measured as the channel's.)
fn drive<F: std::future::Future>(rt: &tokio::runtime::Runtime, op: F) -> F::Output {
    let _in_runtime = rt.enter();
    let mut op = std::pin::pin!(op);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match op.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(done) => done,
        std::task::Poll::Pending => rt.block_on(op),
    }
}

/// A channel receive that must fill `want` bytes exactly (inlined into the
/// measurement loops; what is wrong is explained out of line).
#[inline]
fn whole(got: ipcraft::Result<Option<usize>>, want: usize) -> io::Result<()> {
    match got {
        Ok(Some(n)) if n == want => Ok(()),
        other => not_whole(other, want),
    }
}

#[cold]
#[inline(never)]
fn not_whole(got: ipcraft::Result<Option<usize>>, want: usize) -> io::Result<()> {
    match got.map_err(err)? {
        Some(n) if n == want => Ok(()),
        Some(n) => Err(io::Error::other(format!("message of {n} bytes, expected {want}"))),
        None => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// A blocking channel pair: a sender, a receiver, and (in the parent) the
/// names to remove after. Its own type, so that the measurement loops are
/// compiled for it (`with_link!`) and call the channel
/// directly, as an application would, instead of through [`AnyLink`]'s
/// dispatch on every message.
pub struct ChanLink {
    tx: Sender,
    rx: Receiver,
    /// Messages written into the ring in place (`reserve`) and read there
    /// (`recv_view`): chan-zc.
    zero_copy: bool,
    _cleanup: Option<ChanNames>,
}

impl Link for ChanLink {
    #[inline]
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.tx.send(buf).map_err(err)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        whole(self.rx.recv(buf), buf.len())
    }

    fn in_place(&self) -> bool {
        self.zero_copy
    }

    fn send_in_place(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        let mut slot = self.tx.reserve(len).map_err(err)?;
        // SAFETY: the slot is ours until committed; the receiver reads that
        // frame only after the commit publishes it.
        fill(unsafe { slot.as_mut_slice() });
        slot.commit();
        Ok(())
    }

    fn recv_in_place(&mut self, len: usize, read: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let view = self.rx.recv_view().map_err(err)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        if view.len() != len {
            return Err(io::Error::other(format!(
                "message of {} bytes, expected {len}",
                view.len()
            )));
        }
        // SAFETY: the sender is the bench's own other process, which never
        // writes into a frame it has committed until this view releases it.
        read(unsafe { view.as_slice() });
        Ok(())
    }
}

/// A publisher, the subscribers of the topics coming back (each message
/// is taken by every one and must be the same), and (in the parent) the
/// names to remove after.
pub struct TopicLink {
    publisher: Publisher,
    subscribers: Vec<Subscriber>,
    scratch: Vec<u8>,
    _cleanup: Option<TopicNames>,
}

impl Link for TopicLink {
    #[inline]
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.publisher.send(buf).map_err(err)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let (first, rest) = self.subscribers.split_first_mut().expect("at least one subscriber");
        whole(first.recv(buf), buf.len())?;
        // Every other subscriber gets the same message.
        self.scratch.resize(buf.len(), 0);
        for sub in rest {
            whole(sub.recv(&mut self.scratch), buf.len())?;
            if self.scratch[..] != buf[..] {
                return Err(io::Error::other("subscribers got different messages"));
            }
        }
        Ok(())
    }
}

/// The calling side of a service: requests out, responses straight into
/// the bench's buffer, as the channels receive.
pub struct ServiceClientLink {
    client: Client,
    _cleanup: ServiceName,
}

impl Link for ServiceClientLink {
    #[inline]
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        self.client.send_request(buf).map_err(err)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let want = buf.len();
        whole(self.client.recv_response_into(buf).map(Some), want)
    }
}

/// The serving side of a service: a received request is answered by the
/// next send.
pub struct ServiceServerLink {
    server: Server,
    request: Option<Request>,
}

impl Link for ServiceServerLink {
    #[inline]
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let req = self
            .request
            .take()
            .ok_or_else(|| io::Error::other("a service answers only requests"))?;
        self.server.reply(&req, buf).map_err(err)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let want = buf.len();
        let (req, n) = self.server.recv_into(buf).map_err(err)?;
        self.request = Some(req);
        whole(Ok(Some(n)), want)
    }
}

/// Evaluates `$body` with `$l` bound to the link as its own type where it
/// has one (the shared-memory transports that spin: [`ChanLink`],
/// [`TopicLink`], the service's two sides, iceoryx2's link), so that the
/// generic measurement in
/// `$body` is compiled for it and calls the transport directly on every
/// message, as an application would; else to the [`AnyLink`] itself, whose
/// dispatch costs nothing beside a system call. (Through the enum, the
/// 64-byte stream of a channel ran at 11.2–14.5 M/s against 18.4–19.1
/// direct, in interleaved runs; a round trip 10–20 ns slower.)
macro_rules! with_link {
    ($link:expr, |$l:ident| $body:expr) => {
        match $link {
            $crate::transports::AnyLink::Chan($l) => $body,
            $crate::transports::AnyLink::Topic($l) => $body,
            $crate::transports::AnyLink::ServiceClient($l) => $body,
            $crate::transports::AnyLink::ServiceServer($l) => $body,
            #[cfg(feature = "iceoryx2")]
            $crate::transports::AnyLink::Iceoryx2($l) => $body,
            $l => $body,
        }
    };
}
pub(crate) use with_link;

impl Link for AnyLink {
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            AnyLink::Fd(w, _) => w.write_all(buf),
            AnyLink::Socket(s) => s.write_all(buf),
            AnyLink::Tcp(s) => s.write_all(buf),
            AnyLink::Queue { tx, .. } => tx.send(buf, 0).map_err(err),
            AnyLink::ShmFutex { map, out, seq_out, .. } => {
                // One slot per direction: wait until the peer has taken the
                // previous message (its ack word) before overwriting it.
                wait_for_ack(
                    Self::word(map, *out + ACK),
                    Self::word(map, *out + ACK_WAITING),
                    *seq_out,
                )?;
                // SAFETY: the payload area after the words holds `size` bytes
                // (buf.len() == size) inside the mapping; the peer reads it
                // only after the release store below publishes it, and has
                // finished with the previous message (ack above).
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), map.as_mut_ptr().add(*out + PAYLOAD), buf.len()) };
                *seq_out = seq_out.wrapping_add(1);
                publish(Self::word(map, *out), *seq_out);
                Ok(())
            }
            AnyLink::Chan(link) => link.send(buf),
            AnyLink::ChanAsync { rt, tx, .. } => drive(rt, tx.send(buf)).map_err(err),
            AnyLink::Topic(link) => link.send(buf),
            AnyLink::Lane(tx) => tx.send(buf).map_err(err),
            AnyLink::Lanes { .. } => Err(io::Error::other("a many-sender channel's receiver cannot send")),
            AnyLink::ServiceClient(link) => link.send(buf),
            AnyLink::ServiceServer(link) => link.send(buf),
            #[cfg(feature = "ipc-channel")]
            AnyLink::IpcChannel(tx, _) => tx.send(buf),
            #[cfg(feature = "iceoryx2")]
            AnyLink::Iceoryx2(link) => link.send(buf),
        }
    }

    fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let AnyLink::Lanes { rx, .. } = self else {
            return self.recv(buf).map(|()| 0);
        };
        match rx.recv_from(buf).map_err(err)? {
            Some((lane, n)) if n == buf.len() => Ok(lane),
            Some((_, n)) => Err(io::Error::other(format!(
                "message of {n} bytes, expected {}",
                buf.len()
            ))),
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    fn in_place(&self) -> bool {
        matches!(self, AnyLink::Chan(ChanLink { zero_copy: true, .. }))
    }

    fn send_in_place(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> io::Result<()> {
        let AnyLink::Chan(link) = self else {
            let mut buf = vec![0u8; len];
            fill(&mut buf);
            return self.send(&buf);
        };
        link.send_in_place(len, fill)
    }

    fn recv_in_place(&mut self, len: usize, read: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        let AnyLink::Chan(link) = self else {
            let mut buf = vec![0u8; len];
            self.recv(&mut buf)?;
            read(&buf);
            return Ok(());
        };
        link.recv_in_place(len, read)
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            AnyLink::Fd(_, r) => r.read_exact(buf),
            AnyLink::Socket(s) => s.read_exact(buf),
            AnyLink::Tcp(s) => s.read_exact(buf),
            AnyLink::Queue { rx, buf: qbuf, .. } => {
                let (n, _) = rx.recv(qbuf).map_err(err)?;
                copy_whole(&qbuf[..n], buf)
            }
            AnyLink::ShmFutex {
                map, size, inp, seq_in, ..
            } => {
                let want = seq_in.wrapping_add(1);
                wait_for(Self::word(map, *inp), want)?;
                *seq_in = want;
                // SAFETY: the acquire load in wait_for saw the peer's release
                // of this payload; the area holds `size` bytes in the mapping.
                unsafe { std::ptr::copy_nonoverlapping(map.as_ptr().add(*inp + PAYLOAD), buf.as_mut_ptr(), *size) };
                acknowledge(Self::word(map, *inp + ACK), Self::word(map, *inp + ACK_WAITING), want);
                Ok(())
            }
            #[cfg(feature = "iceoryx2")]
            AnyLink::Iceoryx2(link) => link.recv(buf),
            AnyLink::Chan(link) => link.recv(buf),
            AnyLink::ChanAsync { rt, rx, .. } => whole(drive(rt, rx.recv(buf)), buf.len()),
            AnyLink::Topic(link) => link.recv(buf),
            AnyLink::Lanes { .. } => self.recv_from(buf).map(drop),
            AnyLink::Lane(_) => Err(io::Error::other("a sender of a many-sender channel cannot receive")),
            AnyLink::ServiceClient(link) => link.recv(buf),
            AnyLink::ServiceServer(link) => link.recv(buf),
            #[cfg(feature = "ipc-channel")]
            AnyLink::IpcChannel(_, rx) => {
                let got = rx.recv().map_err(|e| io::Error::other(format!("ipc-channel: {e:?}")))?;
                copy_whole(&got, buf)
            }
        }
    }
}
