//! Request–response over shared memory: one [`Server`], many [`Client`]s.
//!
//! A service is one object holding two channels per client slot: a request
//! lane (the client sends, the server receives) and a response lane (the
//! server sends, the client receives), laid out as the many-sender
//! channel's lanes are:
//!
//! ```text
//! +--------------+-------------------+--------------------+-------------------+-----
//! | group header | lane 0: client 0  | lane 1: client 0   | lane 2: client 1  | ...
//! | kind=service | requests -> server| responses <- server| requests -> server|
//! +--------------+-------------------+--------------------+-------------------+-----
//! ```
//!
//! - A client takes the first slot whose request lane has no live client
//!   (an OFD lock, as for every channel side). Each request carries an id
//!   in its frame's header (a counter that starts past every id an
//!   earlier holder of the slot used), which the server's response
//!   echoes, so a client never takes a response meant for an earlier
//!   holder of its slot or for one of its own calls that timed out.
//! - The server takes one request per client in turn (no client starves
//!   another) and answers it on that client's response lane.
//! - A client that dies mid-request harms nobody: its half-written request
//!   is never delivered, a response to it is dropped with its lane. A
//!   server that dies gives every waiting client [`Cause::PeerDied`]
//!   within the liveness interval (50 ms).
//!
//! ```
//! use ipcraft::service::{Client, Server};
//!
//! let name = format!("/ipcraft-doc-service-{}", std::process::id());
//! let mut server = Server::create(&name).unwrap(); // removed when it drops
//! let mut client = Client::connect(&name).unwrap(); // normally another process
//! client.send_request(b"ping").unwrap();
//! let mut buf = Vec::new();
//! let request = server.recv(&mut buf).unwrap();
//! assert_eq!(buf, b"ping");
//! server.reply(&request, b"pong").unwrap();
//! let mut response = Vec::new();
//! client.recv_response(&mut response).unwrap();
//! assert_eq!(response, b"pong");
//! ```
//!
//! [`Cause::PeerDied`]: crate::Cause::PeerDied

use std::ffi::OsStr;
use std::fmt;
use std::time::{Duration, Instant};

use crate::channel::copy::Dest;
use crate::channel::lanes::{Group, Kind, MAX_LANES};
use crate::channel::object::Wait;
use crate::channel::{ChannelOptions, MultiReceiver, Receiver, Sender, SideState, DEFAULT_OPEN_TIMEOUT, DEFAULT_SPIN};
use crate::error::{Cause, Error, Result};
use crate::name::Name;

/// Client slots when none is given.
pub const DEFAULT_CLIENTS: u32 = 16;
/// The most client slots a service has.
pub const MAX_CLIENTS: u32 = MAX_LANES / 2;
/// Each lane's ring when none is given: 64 KiB.
pub const DEFAULT_CAPACITY: u64 = 64 * 1024;

/// How to create or open a service.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    clients: u32,
    capacity: u64,
    mode: u32,
    spin: Duration,
    timeout: Duration,
    allow_foreign: bool,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceOptions {
    /// 16 client slots, 64 KiB per lane, mode 0600, ~50 µs of spinning,
    /// 5 s for a client to find a server.
    pub fn new() -> Self {
        Self {
            clients: DEFAULT_CLIENTS,
            capacity: DEFAULT_CAPACITY,
            mode: 0o600,
            spin: DEFAULT_SPIN,
            timeout: DEFAULT_OPEN_TIMEOUT,
            allow_foreign: false,
        }
    }

    /// Let [`stat`](Self::stat) read a service another user owns (refused
    /// by default with [`Cause::ForeignOwner`]: anyone can create objects
    /// in `/dev/shm`). Stat only: it never writes.
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign = allow;
        self
    }

    /// How many clients may be connected at once (1 to [`MAX_CLIENTS`]).
    pub fn clients(&mut self, n: u32) -> &mut Self {
        self.clients = n;
        self
    }

    /// Ring size of each request and response lane (the largest request
    /// or response is a little less).
    pub fn capacity(&mut self, bytes: u64) -> &mut Self {
        self.capacity = bytes;
        self
    }

    /// Permission bits of a created service (default 0600).
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode;
        self
    }

    /// How long a waiting side spins before it sleeps.
    pub fn spin(&mut self, spin: Duration) -> &mut Self {
        self.spin = spin;
        self
    }

    /// How long [`connect`](Self::connect) waits for the service to exist
    /// and a server to serve it.
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// How long [`connect`](Self::connect) waits.
    #[cfg(feature = "tokio")]
    pub(crate) fn wait_limit(&self) -> Duration {
        self.timeout
    }

    /// Creates the named service (exclusive) and serves it; removed when
    /// the server drops unless [`Server::keep`] is called.
    pub fn create_server(&self, name: impl AsRef<OsStr>) -> Result<Server> {
        let name = Name::new(name)?;
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return Err(Error::new(
                "create service",
                &name,
                Cause::OverLimit {
                    requested: u64::from(self.clients),
                    limit: u64::from(MAX_CLIENTS),
                    limit_name: "the most clients a service has (at least 1)",
                },
            ));
        }
        let cap = ChannelOptions::new().capacity(self.capacity).ring_capacity(&name)?;
        Server::attach(
            Group::create(&name, Kind::Service, self.clients * 2, cap, self.mode)?,
            self.spin,
        )
    }

    /// Serves an existing service ([`Cause::InUse`] while another server is alive).
    pub fn open_server(&self, name: impl AsRef<OsStr>) -> Result<Server> {
        let name = Name::new(name)?;
        Server::attach(open(&name, Duration::ZERO)?, self.spin)
    }

    /// Connects to the named service as a client, waiting up to the
    /// [timeout](Self::timeout) for it to exist and be served.
    ///
    /// # Errors
    ///
    /// [`Cause::TimedOut`] naming what was missing; [`Cause::LimitReached`]
    /// when every client slot is taken.
    pub fn connect(&self, name: impl AsRef<OsStr>) -> Result<Client> {
        let name = Name::new(name)?;
        let deadline = Instant::now() + self.timeout;
        // The server may not have made it yet.
        let group = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let found = match Group::open(&name, false, false, left) {
                Ok(Some(group)) if group.kind == Kind::Service => break group,
                Ok(Some(_)) => {
                    return Err(Error::new(
                        "open service",
                        &name,
                        Cause::Invalid("not an ipcraft service"),
                    ))
                }
                Ok(None) => Err(Error::new(
                    "open service",
                    &name,
                    Cause::Invalid("not an ipcraft service"),
                )),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(e),
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return found.map_err(|e| e.relabel("connect to service", &name));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let (lane, tx) = group.attach_sender(0, 2, self.spin)?;
        // The previous holder of the slot may be letting go of its response
        // lane this very moment.
        let rx = loop {
            match group.receiver(lane + 1, self.spin) {
                Err(e) if matches!(e.cause(), Cause::InUse { .. }) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => break other?,
            }
        };
        // Ids count on from the request lane's position in lines: every
        // request an earlier holder of the slot sent took a line or more of
        // the lane, so each id it used is at most that count, and this
        // client's are past them (modulo 2^32: a response still in the
        // lane is far fewer requests old than that).
        let next = (tx.position() / crate::channel::ring::FRAME_ALIGN) as u32;
        let client = Client {
            group,
            slot: lane / 2,
            tx,
            rx,
            next,
        };
        // Wait for a server (the response lane's sender) — unless the last
        // one died: then say so at once.
        loop {
            let server = client.rx.sender_view()?;
            if server.alive {
                break;
            }
            if server.state == crate::channel::layout::ATTACHED {
                return Err(client.err(
                    "call service",
                    Cause::PeerDied {
                        side: "server",
                        pid: server.pid,
                    },
                ));
            }
            if Instant::now() >= deadline {
                return Err(client.err("find a server for service", Cause::TimedOut));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(client)
    }
}

fn open(name: &Name, timeout: Duration) -> Result<Group> {
    match Group::open(name, false, false, timeout)? {
        Some(group) if group.kind == Kind::Service => Ok(group),
        _ => Err(Error::new(
            "open service",
            name,
            Cause::Invalid("not an ipcraft service"),
        )),
    }
}

/// Removes the named service, after checking it is one.
pub fn remove(name: impl AsRef<OsStr>) -> Result<()> {
    let name = Name::new(name)?;
    match Group::open(&name, true, false, Duration::ZERO)? {
        Some(group) if group.kind == Kind::Service => {}
        _ => {
            return Err(Error::new(
                "remove service",
                &name,
                Cause::Invalid("not an ipcraft service"),
            ))
        }
    }
    crate::shm::remove(&name).map_err(|e| e.relabel("remove service", &name))
}

/// Removes the named service if it is what a crash leaves behind (see
/// [`ServiceStat::is_stale`]), and says whether it did; every side's
/// liveness lock is taken first, so a server or client attaching meanwhile
/// makes this leave it alone.
///
/// # Errors
///
/// [`Cause::Invalid`] if the object is not an ipcraft service (it is left
/// alone), and the errors of opening it.
pub fn remove_if_stale(name: impl AsRef<OsStr>) -> Result<bool> {
    const OP: &str = "remove stale service";
    let name = Name::new(name)?;
    match Group::open(&name, false, false, Duration::ZERO)? {
        Some(group) if group.kind == Kind::Service => group.remove_if_stale(&name, OP),
        _ => Err(Error::new(OP, &name, Cause::Invalid("not an ipcraft service"))),
    }
}

/// What [`stat`] reports about a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStat {
    /// Client slots.
    pub clients: u32,
    /// Bytes of each lane's ring.
    pub capacity: u64,
    /// The server (it holds every response lane's sending side).
    pub server: SideState,
    /// Each slot that is or was in use: its index and its client's state.
    pub slots: Vec<(u32, SideState)>,
}

impl ServiceStat {
    /// Whether this service is what a crash leaves behind: a server or
    /// client died without leaving, and nobody is alive (as
    /// [`ChannelStat::is_stale`](crate::channel::ChannelStat::is_stale)).
    pub fn is_stale(&self) -> bool {
        let sides = || std::iter::once(&self.server).chain(self.slots.iter().map(|(_, s)| s));
        sides().any(|s| matches!(s, SideState::Dead(_))) && !sides().any(|s| matches!(s, SideState::Alive(_)))
    }
}

impl fmt::Display for ServiceStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clients={} capacity={} server={}",
            self.clients, self.capacity, self.server
        )?;
        for (slot, state) in &self.slots {
            write!(f, "\nclient {slot}: {state}")?;
        }
        Ok(())
    }
}

/// Reports on the named service without attaching (read-only).
///
/// # Errors
///
/// [`Cause::Invalid`] if the object is not an ipcraft service;
/// [`Cause::Corrupted`] if its header does not hold together.
pub fn stat(name: impl AsRef<OsStr>) -> Result<ServiceStat> {
    ServiceOptions::new().stat(name)
}

impl ServiceOptions {
    /// [`stat`](fn@stat) of the named service, opened read-only (with
    /// [`allow_foreign`](Self::allow_foreign), another user's too).
    pub fn stat(&self, name: impl AsRef<OsStr>) -> Result<ServiceStat> {
        let name = Name::new(name)?;
        let group = match Group::open(&name, true, self.allow_foreign, Duration::ZERO)? {
            Some(group) if group.kind == Kind::Service => group,
            _ => {
                return Err(Error::new(
                    "open service",
                    &name,
                    Cause::Invalid("not an ipcraft service"),
                ))
            }
        };
        // Lanes pair up: a client's requests (it sends), then its responses
        // (the server sends).
        let lanes = group.stats()?;
        let server = lanes
            .iter()
            .skip(1)
            .step_by(2)
            .map(|l| l.sender)
            .find(|s| *s != SideState::Absent)
            .unwrap_or(SideState::Absent);
        let slots = lanes
            .iter()
            .step_by(2)
            .enumerate()
            .filter(|(_, l)| l.sender != SideState::Absent)
            .map(|(i, l)| (i as u32, l.sender))
            .collect();
        Ok(ServiceStat {
            clients: (lanes.len() / 2) as u32,
            capacity: lanes.first().map_or(0, |l| l.capacity),
            server,
            slots,
        })
    }
}

/// A request taken by [`Server::recv`], to answer with [`Server::reply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The client slot it came through.
    pub client: usize,
    id: u32,
}

/// The serving end of a service.
pub struct Server {
    pub(crate) requests: MultiReceiver,
    pub(crate) responses: Vec<Sender>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("clients", &self.responses.len())
            .finish()
    }
}

impl Server {
    /// Creates the named service with the default options and serves it.
    pub fn create(name: impl AsRef<OsStr>) -> Result<Self> {
        ServiceOptions::new().create_server(name)
    }

    /// Serves an existing service.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ServiceOptions::new().open_server(name)
    }

    fn attach(group: Group, spin: Duration) -> Result<Self> {
        // The response lanes first: their sender locks say "a server is
        // here" to clients, and a second server fails on the first one.
        let mut responses = Vec::with_capacity((group.lanes / 2) as usize);
        for k in (1..group.lanes).step_by(2) {
            let tx = group.sender(k, spin).map_err(|e| match e.cause() {
                Cause::InUse { pid, .. } => Error::new(
                    "serve",
                    &group.label,
                    Cause::InUse {
                        side: "server",
                        pid: *pid,
                    },
                ),
                _ => e,
            })?;
            responses.push(tx);
        }
        Ok(Self {
            requests: MultiReceiver::attach_lanes(group, 2, true, spin)?,
            responses,
        })
    }

    /// Leaves a service this server created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.requests.keep();
    }

    /// The largest request or response payload.
    pub fn max_message_len(&self) -> usize {
        self.responses[0].max_message_len()
    }

    /// Waits for the next request (one per client in turn) and puts its
    /// payload in `buf` (replacing its contents).
    ///
    /// # Errors
    ///
    /// [`Cause::PeerDied`] for a client that died mid-request (serving
    /// goes on at the next call), [`Cause::Corrupted`].
    pub fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Request> {
        self.recv_to(buf, Wait::Forever).map(|(request, _)| request)
    }

    /// [`recv`](Self::recv) into a slice: the request and its payload's
    /// length.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv); [`Cause::BufferTooSmall`] when the payload
    /// does not fit (the request stays and comes first at the next call).
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<(Request, usize)> {
        self.recv_to(buf, Wait::Forever)
    }

    /// The next request as `wait` allows ([`Cause::Empty`] with
    /// `Wait::No`): the request and its payload's length.
    pub(crate) fn recv_to<D: Dest + ?Sized>(&mut self, buf: &mut D, wait: Wait) -> Result<(Request, usize)> {
        let mut id = 0;
        loop {
            if let Some((client, len)) = self.requests.recv_tagged_from(&mut id, buf, wait)? {
                return Ok((Request { client, id }, len));
            }
            // (The end of a client's stream: the next client of its slot
            // continues the lane.)
        }
    }

    /// Sends `response` to the client that made `request`.
    ///
    /// # Errors
    ///
    /// [`Cause::TooLarge`]; [`Cause::PeerDied`] or [`Cause::Closed`] when
    /// that client has gone (the response is dropped).
    pub fn reply(&mut self, request: &Request, response: &[u8]) -> Result<()> {
        send_response(&mut self.responses[request.client], request, response, Wait::Forever)
    }

    /// Serves forever: `handler` gets each request and fills the response.
    /// A client that dies or leaves is skipped; other errors end the loop.
    pub fn serve(&mut self, mut handler: impl FnMut(&[u8], &mut Vec<u8>)) -> Result<()> {
        let (mut request, mut response) = (Vec::new(), Vec::new());
        loop {
            let req = match self.recv(&mut request) {
                Ok(req) => req,
                Err(e) if client_gone(&e) => continue,
                Err(e) => return Err(e),
            };
            response.clear();
            handler(&request, &mut response);
            match self.reply(&req, &response) {
                Err(e) if !client_gone(&e) => return Err(e),
                _ => {}
            }
        }
    }
}

/// Sends `response` to `request`'s client on its response lane `tx`, as
/// `wait` allows ([`Cause::Full`] with `Wait::No`).
pub(crate) fn send_response(tx: &mut Sender, request: &Request, response: &[u8], wait: Wait) -> Result<()> {
    tx.send_tagged(request.id, response, wait)
}

/// Whether an error only says that one client went away.
pub fn client_gone(e: &Error) -> bool {
    matches!(
        e.cause(),
        Cause::PeerDied { .. } | Cause::Closed { .. } | Cause::Aborted
    )
}

/// What [`take_response`] found.
pub(crate) enum Taken {
    /// The response wanted: its payload's length.
    Mine(usize),
    /// A response meant for an earlier client of this slot (skipped).
    Other,
    /// The end of a server's stream.
    End,
}

/// Takes the next response as `wait` allows, its payload copied once into
/// `response`.
pub(crate) fn take_response<D: Dest + ?Sized>(
    rx: &mut Receiver,
    want: u32,
    response: &mut D,
    wait: Wait,
) -> Result<Taken> {
    let mut id = 0;
    match rx.recv_tagged(&mut id, response, wait) {
        Ok(Some(len)) if id == want => Ok(Taken::Mine(len)),
        Ok(Some(_)) => Ok(Taken::Other),
        Ok(None) => Ok(Taken::End),
        // Too large for the caller's buffer, but another's: skip it.
        Err(e) if matches!(e.cause(), Cause::BufferTooSmall { .. }) && id != want => {
            rx.recv_tagged(&mut id, &mut Vec::new(), Wait::No)?;
            Ok(Taken::Other)
        }
        Err(e) => Err(e),
    }
}

/// A client of a service.
pub struct Client {
    group: Group,
    slot: u32,
    // The response lane is let go before the request lane (fields drop in
    // order): a client that takes this slot next takes the request lane
    // first, and must find the response lane free.
    pub(crate) rx: Receiver,
    pub(crate) tx: Sender,
    /// The id of the last request sent.
    next: u32,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.group.label)
            .field("slot", &self.slot)
            .finish()
    }
}

impl Client {
    /// Connects to the named service with the default options.
    pub fn connect(name: impl AsRef<OsStr>) -> Result<Self> {
        ServiceOptions::new().connect(name)
    }

    fn err(&self, op: &'static str, cause: Cause) -> Error {
        Error::new(op, &self.group.label, cause)
    }

    /// The largest request payload.
    pub fn max_message_len(&self) -> usize {
        self.tx.max_message_len()
    }

    /// The id of the last request.
    pub(crate) fn id(&self) -> u32 {
        self.next
    }

    /// Checks a request's size and gives the id it goes under; the id is
    /// used up by [`commit_request`](Self::commit_request) once it is sent
    /// (so a send that fails or is cancelled sends the next one under it).
    pub(crate) fn peek_request(&self, request: &[u8]) -> Result<u32> {
        if request.len() > self.max_message_len() {
            return Err(self.err(
                "call service",
                Cause::TooLarge {
                    len: request.len(),
                    limit: self.max_message_len(),
                    limit_name: "the service's largest request",
                },
            ));
        }
        Ok(self.next.wrapping_add(1))
    }

    /// The request under [`peek_request`](Self::peek_request)'s id was sent.
    pub(crate) fn commit_request(&mut self) {
        self.next = self.next.wrapping_add(1);
    }

    /// Sends a request (without waiting for its response).
    pub fn send_request(&mut self, request: &[u8]) -> Result<()> {
        let id = self.peek_request(request)?;
        self.tx.send_tagged(id, request, Wait::Forever)?;
        self.commit_request();
        Ok(())
    }

    /// After the end of a server's stream in the response lane: a server
    /// serving now writes after it; with none, [`Cause::Closed`].
    pub(crate) fn after_end(&mut self) -> Result<()> {
        if self.rx.sender_view()?.alive {
            self.rx.next_stream();
            return Ok(());
        }
        Err(self.err("call service", Cause::Closed { side: "server" }))
    }

    /// A receive error as the caller of the service sees it: a dead peer
    /// is the server.
    pub(crate) fn server_error(&self, e: Error) -> Error {
        match e.cause() {
            Cause::PeerDied { pid, .. } => self.err(
                "call service",
                Cause::PeerDied {
                    side: "server",
                    pid: *pid,
                },
            ),
            _ => e,
        }
    }

    /// Waits for the response to the last request and puts it in
    /// `response`. Responses meant for an earlier client of this slot are
    /// skipped.
    ///
    /// # Errors
    ///
    /// [`Cause::PeerDied`] when the server died, [`Cause::Closed`] when it
    /// stopped serving, [`Cause::TimedOut`] (with
    /// [`recv_response_timeout`](Self::recv_response_timeout)).
    pub fn recv_response(&mut self, response: &mut Vec<u8>) -> Result<()> {
        self.recv_response_until(response, None).map(drop)
    }

    /// [`recv_response`](Self::recv_response) into a slice: the
    /// response's length.
    ///
    /// # Errors
    ///
    /// As [`recv_response`](Self::recv_response); [`Cause::BufferTooSmall`]
    /// when the response does not fit (it stays: call again with a larger
    /// buffer).
    pub fn recv_response_into(&mut self, response: &mut [u8]) -> Result<usize> {
        self.recv_response_until(response, None)
    }

    /// [`recv_response`](Self::recv_response), waiting at most `timeout`.
    pub fn recv_response_timeout(&mut self, response: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.recv_response_until(response, crate::sys::deadline(Some(timeout)))
            .map(drop)
    }

    fn recv_response_until<D: Dest + ?Sized>(&mut self, response: &mut D, deadline: Option<Instant>) -> Result<usize> {
        let want = self.id();
        let wait = deadline.map_or(Wait::Forever, Wait::Until);
        loop {
            match take_response(&mut self.rx, want, response, wait) {
                Ok(Taken::Mine(len)) => return Ok(len),
                Ok(Taken::Other) => {}
                Ok(Taken::End) => self.after_end()?,
                Err(e) => return Err(self.server_error(e)),
            }
        }
    }

    /// Sends `request` and waits for its response.
    pub fn call(&mut self, request: &[u8], response: &mut Vec<u8>) -> Result<()> {
        self.send_request(request)?;
        self.recv_response(response)
    }

    /// [`call`](Self::call), waiting at most `timeout` for the response.
    pub fn call_timeout(&mut self, request: &[u8], response: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.send_request(request)?;
        self.recv_response_timeout(response, timeout)
    }

    /// Sends a plain-old-data request and returns the plain-old-data response.
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call); [`Cause::Corrupted`] if the response is
    /// not exactly `size_of::<R>()` bytes.
    pub fn call_pod<Q: bytemuck::Pod, R: bytemuck::Pod>(&mut self, request: &Q) -> Result<R> {
        let mut response = Vec::new();
        self.call(bytemuck::bytes_of(request), &mut response)?;
        bytemuck::try_pod_read_unaligned(&response).map_err(|_| {
            self.err(
                "call service",
                Cause::Corrupted(format!(
                    "response is {} bytes; a {} is {}",
                    response.len(),
                    std::any::type_name::<R>(),
                    std::mem::size_of::<R>()
                )),
            )
        })
    }
}
