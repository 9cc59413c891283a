//! Async ends of a service ([`crate::service`]).
//!
//! An [`AsyncClient`] is a blocking [`Client`] whose request lane and
//! response lane each have a doorbell, as an [`AsyncSender`] and an
//! [`AsyncReceiver`] do; the server's death reaches it through a pidfd of
//! the server. An [`AsyncServer`] sleeps on the doorbell its
//! [`MultiReceiver`](crate::channel::MultiReceiver) already has (every
//! request lane rings it) while it waits for a request; a response lane
//! gets a doorbell of its own (and a pidfd watch on its client, as an
//! [`AsyncSender`] has) the first time the server waits there for room.
//!
//! [`AsyncSender`]: super::AsyncSender
//! [`AsyncReceiver`]: super::AsyncReceiver

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use super::channel::{empty, full, until, Doorbell};
use super::AsyncBell;
use crate::channel::copy::Dest;
use crate::channel::object::Wait;
use crate::channel::MultiReceiver;
use crate::error::{Cause, Error, Result};
use crate::service::{send_response, take_response, Client, Request, Server, ServiceOptions, Taken};

/// The serving end of a service, for tokio.
///
/// Made from a [`Server`] in a tokio runtime with IO enabled (and time,
/// for clients that cannot be watched through a pidfd). Clients can be
/// blocking or async, in any process. While it waits it costs no CPU: no
/// timer runs.
///
/// Cancel-safe: [`recv`](Self::recv) takes a request only in the poll that
/// completes it; [`reply`](Self::reply) writes the whole response in the
/// poll that completes it, or nothing.
///
/// ```no_run
/// # async fn demo() -> ipcraft::Result<()> {
/// use ipcraft::tokio::AsyncServer;
///
/// let mut server = AsyncServer::create("/my-service")?;
/// let mut request = Vec::new();
/// loop {
///     let req = server.recv(&mut request).await?;
///     request.reverse();
///     server.reply(&req, &request).await?;
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncServer {
    server: Server,
    /// The request lanes' doorbell (a second handle on it).
    bell: AsyncBell,
    /// Each response lane's doorbell, once the server has had to wait there.
    reply_bells: Vec<Option<Doorbell>>,
}

impl AsyncServer {
    /// Makes `server` async: registers its doorbell with the runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO enabled (as [`AsyncFd::new`](::tokio::io::unix::AsyncFd::new)).
    pub fn new(server: Server) -> Result<Self> {
        const OP: &str = "make service doorbell";
        let label = server.requests.label();
        let bell = server
            .requests
            .bell()
            .try_clone()
            .map_err(|e| Error::new(OP, label, e))?;
        let bell = AsyncBell::new(bell).map_err(|e| Error::new(OP, label, e))?;
        let reply_bells = server.responses.iter().map(|_| None).collect();
        Ok(Self {
            server,
            bell,
            reply_bells,
        })
    }

    /// Creates the named service with the default options and serves it
    /// ([`Server::create`]).
    pub fn create(name: impl AsRef<OsStr>) -> Result<Self> {
        Self::new(Server::create(name)?)
    }

    /// Serves an existing service ([`Server::open`]).
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        Self::new(Server::open(name)?)
    }

    /// Leaves a service this server created in `/dev/shm` when it drops.
    pub fn keep(&mut self) {
        self.server.keep();
    }

    /// The largest request or response payload.
    pub fn max_message_len(&self) -> usize {
        self.server.max_message_len()
    }

    /// Waits for the next request (one per client in turn) and puts its
    /// payload in `buf`. Errors as [`Server::recv`].
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<Request> {
        Ok(self.recv_to(buf).await?.0)
    }

    /// [`recv`](Self::recv) into a slice ([`Server::recv_into`]).
    pub async fn recv_into(&mut self, buf: &mut [u8]) -> Result<(Request, usize)> {
        self.recv_to(buf).await
    }

    async fn recv_to<D: Dest + ?Sized>(&mut self, buf: &mut D) -> Result<(Request, usize)> {
        loop {
            match self.server.recv_to(buf, Wait::No) {
                Err(e) if matches!(e.cause(), Cause::Empty) => {}
                done => return done,
            }
            // Raise every request lane's flag, look once more, then sleep
            // until a sender that saw a flag rings.
            let requests = &mut self.server.requests;
            if requests.arm_lanes() {
                requests.disarm_lanes();
                continue;
            }
            // (Held by `&mut`, so the future stays `Send`.)
            let disarm = Lanes(requests);
            let woke = super::wait_and_drain(&self.bell).await;
            drop(disarm);
            woke.map_err(|e| Error::new("wait on service doorbell", self.server.requests.label(), e))?;
        }
    }

    /// Sends `response` to the client that made `request`, waiting while
    /// that client's response lane is full. Errors as [`Server::reply`].
    pub async fn reply(&mut self, request: &Request, response: &[u8]) -> Result<()> {
        let k = request.client;
        let tx = &mut self.server.responses[k];
        match send_response(tx, request, response, Wait::No) {
            Err(e) if matches!(e.cause(), Cause::Full) => {}
            done => return done,
        }
        let bell = match &mut self.reply_bells[k] {
            Some(bell) => bell,
            empty => empty.insert(Doorbell::bind(tx)?),
        };
        until(tx, bell, full, |tx| send_response(tx, request, response, Wait::No)).await
    }
}

/// Lowers every request lane's flag when a wait ends or is cancelled.
struct Lanes<'a>(&'a mut MultiReceiver);

impl Drop for Lanes<'_> {
    fn drop(&mut self) {
        self.0.disarm_lanes();
    }
}

/// A client of a service, for tokio.
///
/// Made from a [`Client`] (or with [`connect`](Self::connect)) in a tokio
/// runtime with IO enabled (and time, for a server that cannot be watched
/// through a pidfd). The server can be blocking or async. While it waits
/// for a response it costs no CPU; the server's death reaches it at once.
///
/// Cancel-safe: [`send_request`](Self::send_request) sends the whole
/// request in the poll that completes it, or nothing (the next call sends
/// under the same id); [`recv_response`](Self::recv_response) takes the
/// response only in the poll that completes it, so a cancelled wait can be
/// resumed by calling it again. [`call`](Self::call) is both in turn: when
/// it is cancelled after sending, its response is the next one
/// `recv_response` returns.
///
/// ```no_run
/// # async fn demo() -> ipcraft::Result<()> {
/// use ipcraft::tokio::AsyncClient;
///
/// let mut client = AsyncClient::connect("/my-service").await?;
/// let mut response = Vec::new();
/// client.call(b"ping", &mut response).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncClient {
    client: Client,
    send_bell: Doorbell,
    recv_bell: Doorbell,
}

impl AsyncClient {
    /// Makes `client` async: binds a doorbell for each of its lanes.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO enabled (as [`AsyncFd::new`](::tokio::io::unix::AsyncFd::new)).
    pub fn new(mut client: Client) -> Result<Self> {
        let send_bell = Doorbell::bind(&mut client.tx)?;
        let recv_bell = Doorbell::bind(&mut client.rx)?;
        Ok(Self {
            client,
            send_bell,
            recv_bell,
        })
    }

    /// Connects to the named service with the default options, waiting up
    /// to 5 s (without blocking the runtime) for it to exist and be served.
    pub async fn connect(name: impl AsRef<OsStr>) -> Result<Self> {
        Self::connect_with(&ServiceOptions::new(), name).await
    }

    /// [`ServiceOptions::connect`] without blocking the runtime: tries
    /// at once, then again every 5 ms until the options' timeout.
    pub async fn connect_with(options: &ServiceOptions, name: impl AsRef<OsStr>) -> Result<Self> {
        let deadline = Instant::now() + options.wait_limit();
        let mut once = options.clone();
        once.timeout(Duration::ZERO);
        loop {
            match once.connect(name.as_ref()) {
                Ok(client) => return Self::new(client),
                Err(e) if retry_connect(&e) && Instant::now() < deadline => {
                    ::tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The largest request payload.
    pub fn max_message_len(&self) -> usize {
        self.client.max_message_len()
    }

    /// Sends a request (without waiting for its response), waiting while
    /// the request lane is full. Errors as [`Client::send_request`].
    pub async fn send_request(&mut self, request: &[u8]) -> Result<()> {
        let id = self.client.peek_request(request)?;
        until(&mut self.client.tx, &mut self.send_bell, full, |tx| {
            tx.send_tagged(id, request, Wait::No)
        })
        .await?;
        self.client.commit_request();
        Ok(())
    }

    /// Waits for the response to the last request ([`Client::recv_response`]).
    pub async fn recv_response(&mut self, response: &mut Vec<u8>) -> Result<()> {
        self.recv_to(response).await.map(drop)
    }

    /// [`recv_response`](Self::recv_response) into a slice: the response's
    /// length ([`Client::recv_response_into`]).
    pub async fn recv_response_into(&mut self, response: &mut [u8]) -> Result<usize> {
        self.recv_to(response).await
    }

    /// Sends `request` and waits for its response.
    pub async fn call(&mut self, request: &[u8], response: &mut Vec<u8>) -> Result<()> {
        self.send_request(request).await?;
        self.recv_response(response).await
    }

    async fn recv_to<D: Dest + ?Sized>(&mut self, response: &mut D) -> Result<usize> {
        let want = self.client.id();
        loop {
            let got = until(&mut self.client.rx, &mut self.recv_bell, empty, |rx| loop {
                match take_response(rx, want, response, Wait::No)? {
                    Taken::Mine(len) => return Ok(Some(len)),
                    Taken::Other => {}
                    Taken::End => return Ok(None),
                }
            })
            .await;
            match got {
                Ok(Some(len)) => return Ok(len),
                Ok(None) => self.client.after_end()?,
                Err(e) => return Err(self.client.server_error(e)),
            }
        }
    }
}

/// Whether a connect that failed at once may succeed a little later: the
/// service is not there yet or still being set up (which looks like no
/// service, or a corrupted one, until its creator finishes — an object
/// that really is either still is at the deadline, and that error is
/// returned, as the blocking connect does), no server yet, or the slot's
/// last client still letting go.
fn retry_connect(e: &Error) -> bool {
    matches!(
        e.cause(),
        Cause::TimedOut | Cause::InUse { .. } | Cause::Corrupted(_) | Cause::Invalid(_)
    ) || e.raw_os_error() == Some(libc::ENOENT)
}
