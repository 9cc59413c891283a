//! The async service ends (feature `tokio`): an async server and async
//! clients, each in its own process with its own current-thread runtime,
//! against async and blocking peers — content, the server's death,
//! waiting for room to answer, cancellation, idle cost.

mod common;

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Stdio};
use std::task::Poll;
use std::time::Duration;

use common::ends::{cpu_micros, fail, kill_leftover, runtime};
use common::{pattern, role, roles, wait_with_stderr, ShmName, TIMEOUT};
use ipcraft::error::Cause;
use ipcraft::service::{client_gone, Client, Server, ServiceOptions};
use ipcraft::tokio::{AsyncClient, AsyncServer};

roles!(role_async_server, role_async_client, role_silent_server);

/// What the servers answer: the request reversed, then its length (u32
/// LE); with `pad`, then `pad` bytes more (a pattern of the length).
fn answer(request: &[u8], pad: usize) -> Vec<u8> {
    let mut out: Vec<u8> = request.iter().rev().copied().collect();
    out.extend_from_slice(&(request.len() as u32).to_le_bytes());
    out.extend_from_slice(&pattern(pad, request.len() as u64));
    out
}

/// Request `i` of a client seeded `seed`: 1 to 3000 bytes.
fn request(i: u64, seed: u64) -> Vec<u8> {
    pattern(1 + (i as usize * 7919) % 3000, seed.wrapping_add(i))
}

// ---- roles ----

/// `NAME MODE`: an async server of a service it creates (4 KiB lanes),
/// answering until a request is `quit`. MODE `echo`; `hold`: before
/// answering the first request it says `got` and waits for a line on
/// stdin; `big`: every response carries 3000 bytes more, and it says
/// `full` when a response does not fit at once; `idle`: it prints the CPU
/// time (µs) it used waiting 2 s for a request that never comes.
fn role_async_server(args: Vec<String>) {
    let (name, mode) = (&args[0], args[1].as_str());
    runtime().block_on(async {
        let server = ServiceOptions::new().clients(4).capacity(4096).create_server(name);
        let mut server = AsyncServer::new(server.unwrap_or_else(|e| fail(e))).unwrap_or_else(|e| fail(e));
        let mut buf = Vec::new();
        if mode == "idle" {
            let before = cpu_micros();
            let waited = tokio::time::timeout(Duration::from_secs(2), server.recv(&mut buf)).await;
            let used = cpu_micros() - before;
            assert!(waited.is_err(), "a request arrived: {waited:?}");
            println!("{used}");
            return;
        }
        let pad = if mode == "big" { 3000 } else { 0 };
        let mut held = mode == "hold";
        loop {
            let req = match server.recv(&mut buf).await {
                Ok(req) => req,
                // A client that died mid-request: serve the others.
                Err(e) if client_gone(&e) => continue,
                Err(e) => fail(e),
            };
            if held {
                held = false;
                println!("got");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).unwrap();
            }
            let response = answer(&buf, pad);
            let mut reply = std::pin::pin!(server.reply(&req, &response));
            // One poll: does the response fit at once?
            let first = std::future::poll_fn(|cx| Poll::Ready(reply.as_mut().poll(cx))).await;
            let done = match first {
                Poll::Ready(done) => done,
                Poll::Pending => {
                    println!("full");
                    tokio::time::timeout(TIMEOUT, reply).await.unwrap()
                }
            };
            match done {
                Err(e) if !client_gone(&e) => fail(e),
                _ => {}
            }
            if buf == b"quit" {
                return;
            }
        }
    });
}

/// `NAME COUNT SEED`: an async client making COUNT calls, each answer
/// checked; prints `ok COUNT`.
fn role_async_client(args: Vec<String>) {
    let (count, seed): (u64, u64) = (args[1].parse().unwrap(), args[2].parse().unwrap());
    runtime().block_on(async {
        let mut options = ServiceOptions::new();
        options.timeout(TIMEOUT);
        let mut client = AsyncClient::connect_with(&options, &args[0])
            .await
            .unwrap_or_else(|e| fail(e));
        let mut response = Vec::new();
        for i in 0..count {
            let q = request(i, seed);
            let call = tokio::time::timeout(TIMEOUT, client.call(&q, &mut response)).await;
            call.unwrap().unwrap_or_else(|e| fail(e));
            if response != answer(&q, 0) {
                fail(format!("call {i}: the response differs"));
            }
            if i == 0 {
                println!("started");
            }
        }
        println!("ok {count}");
    });
}

/// `NAME`: a blocking server that takes one request, says `got`, and never
/// answers.
fn role_silent_server(args: Vec<String>) {
    let mut server = Server::create(&args[0]).unwrap_or_else(|e| fail(e));
    let mut buf = Vec::new();
    server.recv(&mut buf).unwrap_or_else(|e| fail(e));
    println!("got");
    loop {
        std::thread::park();
    }
}

// ---- helpers ----

/// A child whose stdout lines the test reads as they come; killed if the
/// test fails before it is waited for.
struct Proc {
    child: Option<Child>,
    lines: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role_name: &str, args: &[&str]) -> Self {
        let mut child = role(role_name, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        Self {
            child: Some(child),
            lines,
        }
    }

    /// The next line it prints (without the newline).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits (bounded) for it to exit 0; what it printed stays readable.
    fn succeeds(&mut self) {
        let child = self.child.take().unwrap();
        let (status, stderr) = wait_with_stderr(child);
        assert!(status.success(), "{status}: {stderr}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        kill_leftover(&mut self.child);
    }
}

fn blocking_client(name: &str) -> Client {
    ServiceOptions::new().timeout(TIMEOUT).connect(name).unwrap()
}

// ---- tests ----

#[test]
fn an_async_server_answers_blocking_and_async_clients() {
    let name = ShmName::new("asvc-mixed");
    let mut server = Proc::spawn("role_async_server", &[name.0.as_str(), "echo"]);
    let mut a = Proc::spawn("role_async_client", &[name.0.as_str(), "300", "1"]);
    let mut b = Proc::spawn("role_async_client", &[name.0.as_str(), "300", "2"]);
    // This process calls too, at the same time, blocking.
    let mut client = blocking_client(&name.0);
    let mut response = Vec::new();
    for i in 0..300 {
        let q = request(i, 3);
        client.call_timeout(&q, &mut response, TIMEOUT).unwrap();
        assert!(response == answer(&q, 0), "call {i}: the response differs");
    }
    a.succeeds();
    b.succeeds();
    assert_eq!((a.line(), a.line()), ("started".into(), "ok 300".into()));
    assert_eq!((b.line(), b.line()), ("started".into(), "ok 300".into()));
    client.call_timeout(b"quit", &mut response, TIMEOUT).unwrap();
    assert_eq!(response, answer(b"quit", 0));
    server.succeeds();
}

#[test]
fn an_async_server_waits_for_room_to_answer() {
    let name = ShmName::new("asvc-room");
    let mut server = Proc::spawn("role_async_server", &[name.0.as_str(), "big"]);
    let mut client = blocking_client(&name.0);
    let mut response = Vec::new();
    // The first response fills most of the 4 KiB lane and is left there:
    // the second cannot fit until this client takes the first.
    client.send_request(b"first").unwrap();
    client.send_request(b"second").unwrap();
    assert_eq!(server.line(), "full");
    client.recv_response_timeout(&mut response, TIMEOUT).unwrap();
    assert!(response == answer(b"second", 3000), "the response differs");
    client.call_timeout(b"quit", &mut response, TIMEOUT).unwrap();
    assert!(response == answer(b"quit", 3000));
    server.succeeds();
}

#[test]
fn an_async_client_learns_of_its_servers_death() {
    let name = ShmName::new("asvc-death");
    let mut server = Proc::spawn("role_silent_server", &[name.0.as_str()]);
    let server_pid = server.pid();
    runtime().block_on(async {
        let mut options = ServiceOptions::new();
        options.timeout(TIMEOUT);
        let mut client = AsyncClient::connect_with(&options, &name.0).await.unwrap();
        client.send_request(b"hello").await.unwrap();
        assert_eq!(server.line(), "got");
        // Asleep on its doorbell when the server dies.
        let mut response = Vec::new();
        let waiting = client.recv_response(&mut response);
        let kill = async {
            tokio::task::yield_now().await;
            let mut child = server.child.take().unwrap();
            child.kill().unwrap();
            child.wait().unwrap();
        };
        let (got, ()) = tokio::time::timeout(TIMEOUT, async { tokio::join!(waiting, kill) })
            .await
            .expect("the client was never told");
        let err = got.unwrap_err();
        assert!(
            matches!(err.cause(), Cause::PeerDied { side: "server", pid } if *pid == server_pid),
            "{err}"
        );
    });
}

#[test]
fn a_cancelled_wait_for_a_response_loses_nothing() {
    let name = ShmName::new("asvc-cancel");
    let mut server = Proc::spawn("role_async_server", &[name.0.as_str(), "hold"]);
    runtime().block_on(async {
        let mut options = ServiceOptions::new();
        options.timeout(TIMEOUT);
        let mut client = AsyncClient::connect_with(&options, &name.0).await.unwrap();
        let q = pattern(777, 9);
        client.send_request(&q).await.unwrap();
        assert_eq!(server.line(), "got");
        let mut response = Vec::new();
        // Cancelled while the server holds the response back.
        let cancelled = tokio::time::timeout(Duration::from_millis(100), client.recv_response(&mut response)).await;
        assert!(cancelled.is_err(), "answered while held: {cancelled:?}");
        let stdin = server.child.as_mut().unwrap().stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        tokio::time::timeout(TIMEOUT, client.recv_response(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert!(response == answer(&q, 0), "the response differs");
        let mut slice = [0u8; 16];
        client.send_request(b"quit").await.unwrap();
        let n = tokio::time::timeout(TIMEOUT, client.recv_response_into(&mut slice))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&slice[..n], &answer(b"quit", 0)[..]);
    });
    server.succeeds();
}

#[test]
fn an_idle_async_server_costs_no_cpu() {
    let name = ShmName::new("asvc-idle");
    let mut server = Proc::spawn("role_async_server", &[name.0.as_str(), "idle"]);
    let micros: i64 = server.line().parse().unwrap();
    server.succeeds();
    eprintln!("an idle async server used {micros} µs of CPU in 2 s");
    assert!(micros < 20_000, "an idle async server used {micros} µs of CPU in 2 s");
}

#[test]
fn an_async_server_outlives_a_client_killed_mid_call() {
    let name = ShmName::new("asvc-kill");
    let mut server = Proc::spawn("role_async_server", &[name.0.as_str(), "echo"]);
    for round in 0..3u64 {
        // Killed somewhere in its calls: before, during or after a request.
        let mut victim = Proc::spawn("role_async_client", &[name.0.as_str(), "100000", "5"]);
        assert_eq!(victim.line(), "started");
        let mut child = victim.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        // A new client (likely in the dead one's slot) is served exactly.
        let mut client = blocking_client(&name.0);
        let mut response = Vec::new();
        for i in 0..50 {
            let q = request(i, 100 + round);
            client.call_timeout(&q, &mut response, TIMEOUT).unwrap();
            assert!(
                response == answer(&q, 0),
                "round {round}, call {i}: the response differs"
            );
        }
    }
    let mut client = blocking_client(&name.0);
    let mut response = Vec::new();
    client.call_timeout(b"quit", &mut response, TIMEOUT).unwrap();
    server.succeeds();
}

/// Compiles only if the async ends and their futures can move between
/// threads (`tokio::spawn` on a multi-thread runtime needs that).
#[allow(dead_code)]
fn the_async_ends_and_their_futures_are_send(mut server: AsyncServer, mut client: AsyncClient) {
    fn send<T: Send>(_: T) {}
    let (mut buf, mut slice) = (Vec::new(), [0u8; 8]);
    let req = server.recv(&mut buf);
    send(req);
    send(server.recv_into(&mut slice));
    send(client.call(b"x", &mut buf));
    send(client.recv_response_into(&mut slice));
    send(client);
    send(server);
}
