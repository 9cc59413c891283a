//! The service library API with the server in another process: every
//! request and response size arrives byte-exact (both copies of each
//! message: its id and its payload), the limits are enforced, and a call
//! after the server stopped is an error.

mod common;

use std::time::Duration;

use common::{pattern, role, roles, wait, ShmName, TIMEOUT};
use ipcraft::error::Cause;
use ipcraft::service::{Client, Server, ServiceOptions};

roles!(role_server, role_holding_server);

/// What the server answers: the request reversed, then its length (u32 LE),
/// so a response of the wrong request or a torn copy cannot pass.
fn answer(request: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = request.iter().rev().copied().collect();
    out.extend_from_slice(&(request.len() as u32).to_le_bytes());
    out
}

/// Serves `name` (created here, 64 KiB lanes) until a request is `quit`;
/// with `slice`, receives into a 256-byte slice first, and a request too
/// large for it (which must stay) into a vector.
fn role_server(args: Vec<String>) {
    let mut server = ServiceOptions::new().clients(2).create_server(&args[0]).unwrap();
    let slice = args.get(1).is_some_and(|a| a == "slice");
    let (mut request, mut small) = (Vec::new(), [0u8; 256]);
    loop {
        let req = if slice {
            match server.recv_into(&mut small) {
                Ok((req, len)) => {
                    request = small[..len].to_vec();
                    req
                }
                Err(e) if matches!(e.cause(), Cause::BufferTooSmall { len: 256, .. }) => {
                    server.recv(&mut request).unwrap()
                }
                Err(e) => panic!("{e}"),
            }
        } else {
            server.recv(&mut request).unwrap()
        };
        let quit = request == b"quit";
        server.reply(&req, &answer(&request)).unwrap();
        if quit {
            return;
        }
    }
}

/// Serves `name` (created here, one client slot) holding back the answer
/// to each request that starts with `hold` until the next request that
/// does not: then answers the held ones, in order, before it. Until `quit`.
fn role_holding_server(args: Vec<String>) {
    let mut server = ServiceOptions::new().clients(1).create_server(&args[0]).unwrap();
    let (mut request, mut held) = (Vec::new(), Vec::new());
    loop {
        let req = server.recv(&mut request).unwrap();
        if request.starts_with(b"hold") {
            held.push((req, request.clone()));
            continue;
        }
        // Each held answer must go into the lane (a client holds it): a
        // failure here fails the test through this process's status.
        for (old, payload) in held.drain(..) {
            server.reply(&old, &answer(&payload)).unwrap();
        }
        server.reply(&req, &answer(&request)).unwrap();
        if request == b"quit" {
            return;
        }
    }
}

fn connect(name: &str) -> Client {
    ServiceOptions::new().timeout(TIMEOUT).connect(name).unwrap()
}

#[test]
fn every_size_round_trips_byte_exact() {
    let name = ShmName::new("svc-sizes");
    let mut server = role("role_server", &[name.0.as_str()]).spawn().unwrap();
    let mut client = connect(&name.0);
    let max = client.max_message_len();
    // Around the id, the word size, the cache line, the copy's switch to
    // `rep movsb` (512), and the largest response (4 bytes more than the
    // request it answers).
    let sizes = [
        0,
        1,
        7,
        8,
        9,
        15,
        16,
        17,
        63,
        64,
        65,
        511,
        512,
        513,
        4096,
        40_000,
        max - 4,
    ];
    let mut response = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        // Twice each, so a stale response of the previous call shows.
        for round in 0..2u64 {
            let request = pattern(len, i as u64 * 2 + round);
            client
                .call_timeout(&request, &mut response, TIMEOUT)
                .unwrap_or_else(|e| panic!("call of {len} bytes: {e}"));
            assert!(response == answer(&request), "response to {len} bytes differs");
        }
    }
    // Too large for a lane: refused before anything is sent.
    let err = client.call(&vec![1u8; max + 1], &mut response).unwrap_err();
    assert!(matches!(err.cause(), Cause::TooLarge { .. }), "{err}");
    client.call_timeout(b"quit", &mut response, TIMEOUT).unwrap();
    assert_eq!(response, answer(b"quit"));
    assert!(wait(&mut server).success());
    // The server removed its service when it returned.
    assert!(!std::path::Path::new(&format!("/dev/shm{}", name.0)).exists());
    drop(client);
    let err = ServiceOptions::new()
        .timeout(Duration::from_millis(100))
        .connect(&name.0)
        .unwrap_err();
    assert!(matches!(err.cause(), Cause::TimedOut | Cause::Os(_)), "{err}");
}

#[test]
fn a_server_answers_each_client_its_own_request() {
    let name = ShmName::new("svc-two");
    let mut server = role("role_server", &[name.0.as_str()]).spawn().unwrap();
    let mut a = connect(&name.0);
    let mut b = connect(&name.0);
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for i in 0..500u64 {
        // Both requests are in before either response is taken.
        let qa = pattern(1 + (i as usize * 37) % 3000, i);
        let qb = pattern(1 + (i as usize * 91) % 3000, i + 10_000);
        a.send_request(&qa).unwrap();
        b.send_request(&qb).unwrap();
        b.recv_response_timeout(&mut rb, TIMEOUT).unwrap();
        a.recv_response_timeout(&mut ra, TIMEOUT).unwrap();
        assert!(
            ra == answer(&qa) && rb == answer(&qb),
            "call {i}: a response went astray"
        );
    }
    a.call_timeout(b"quit", &mut ra, TIMEOUT).unwrap();
    assert!(wait(&mut server).success());
}

#[test]
fn the_doc_example_still_holds_in_one_process() {
    // The same calls as the module example, with payloads across the copy
    // paths, in one process (no scheduling involved).
    let name = ShmName::new("svc-local");
    let mut server = Server::create(&name.0).unwrap();
    let mut client = Client::connect(&name.0).unwrap();
    let (mut request, mut response) = (Vec::new(), Vec::new());
    for len in [0, 3, 8, 100, 600, 5000] {
        let q = pattern(len, len as u64);
        client.send_request(&q).unwrap();
        let req = server.recv(&mut request).unwrap();
        assert_eq!(request, q);
        server.reply(&req, &answer(&request)).unwrap();
        client.recv_response(&mut response).unwrap();
        assert_eq!(response, answer(&q));
    }
}

#[test]
fn slices_take_what_fits_and_leave_what_does_not() {
    let name = ShmName::new("svc-slice");
    let mut server = role("role_server", &[name.0.as_str(), "slice"]).spawn().unwrap();
    let mut client = connect(&name.0);
    let mut small = [0u8; 100];
    let mut response = Vec::new();
    for (i, len) in [0usize, 5, 96, 97, 252, 253, 3000].into_iter().enumerate() {
        let request = pattern(len, 500 + i as u64);
        let want = answer(&request);
        client.send_request(&request).unwrap();
        match client.recv_response_into(&mut small) {
            Ok(n) => assert_eq!(&small[..n], &want[..], "{len} bytes"),
            Err(e) => {
                assert!(want.len() > small.len(), "{len} bytes: {e}");
                assert!(
                    matches!(e.cause(), Cause::BufferTooSmall { len: 100, need, .. } if *need == want.len()),
                    "{e}"
                );
                // The response stayed for a larger buffer.
                client.recv_response_timeout(&mut response, TIMEOUT).unwrap();
                assert_eq!(response, want, "{len} bytes");
            }
        }
    }
    client.call_timeout(b"quit", &mut response, TIMEOUT).unwrap();
    assert!(wait(&mut server).success());
}

#[test]
fn a_response_meant_for_an_earlier_client_or_call_is_never_taken() {
    let name = ShmName::new("svc-stale");
    let mut server = role("role_holding_server", &[name.0.as_str()]).spawn().unwrap();
    let mut response = Vec::new();
    // A client leaves with its request unanswered; the next client gets
    // the same (only) slot, and the answer to the first request lands in
    // its response lane before its own.
    let mut first = connect(&name.0);
    first.send_request(b"hold: the first client's").unwrap();
    drop(first);
    let mut client = connect(&name.0);
    client
        .call_timeout(b"the second client's", &mut response, TIMEOUT)
        .unwrap();
    assert_eq!(response, answer(b"the second client's"));
    // A call that timed out: its answer comes before the next call's.
    client.send_request(b"hold: a call that times out").unwrap();
    let e = client
        .recv_response_timeout(&mut response, Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(e.cause(), Cause::TimedOut), "{e}");
    client.call_timeout(b"the next call", &mut response, TIMEOUT).unwrap();
    assert_eq!(response, answer(b"the next call"));
    client.call_timeout(b"quit", &mut response, TIMEOUT).unwrap();
    assert_eq!(response, answer(b"quit"));
    assert!(wait(&mut server).success(), "the server answered every request");
}
