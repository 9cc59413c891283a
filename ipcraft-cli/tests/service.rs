//! Request–response across real processes: `ipcraft service serve` and
//! concurrent `ipcraft service call`s, each answered with its own response;
//! a client killed mid-request; a server killed while clients wait.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{assert_fails, ipcraft, run, wait, wait_with_stderr, ShmName, TIMEOUT};

/// A `service serve` process, killed when dropped (also when a test
/// fails: a server runs until killed).
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(name: &str, extra: &[&str]) -> Serving {
    Serving(
        ipcraft()
            .args(["service", "serve", name])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn call(name: &str, message: &str) -> Child {
    ipcraft()
        .args(["service", "call", name, message])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The response a finished `call` printed.
fn response(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn stop(server: Serving) {
    drop(server);
}

#[test]
fn concurrent_clients_each_get_their_own_response() {
    let name = ShmName::new("svc");
    let server = serve(&name.0, &["--clients", "4"]);
    // More callers than slots at once: each waits its turn or finds a slot
    // freed by a caller that finished; every one gets its own answer.
    let messages: Vec<String> = (0..12)
        .map(|i| format!("request {i} {}", "z".repeat(i * 500)))
        .collect();
    let mut done = 0;
    for batch in messages.chunks(4) {
        let calls: Vec<_> = batch.iter().map(|m| (m, call(&name.0, m))).collect();
        for (message, child) in calls {
            assert_eq!(response(child), format!("{message}\n"));
            done += 1;
        }
    }
    assert_eq!(done, 12);
    // stdin as the request.
    let out = run(ipcraft().args(["service", "call", &name.0]), b"from stdin");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "from stdin\n");
    stop(server);
}

#[test]
fn exec_answers_with_the_commands_output() {
    let name = ShmName::new("svc-exec");
    let server = serve(&name.0, &["--exec", "tr a-z A-Z; echo -n ' done'"]);
    let calls: Vec<_> = ["abc", "hello there", "x"]
        .iter()
        .map(|m| (m, call(&name.0, m)))
        .collect();
    for (message, child) in calls {
        assert_eq!(response(child), format!("{} done\n", message.to_uppercase()));
    }
    stop(server);
}

#[test]
fn a_client_killed_mid_request_harms_no_other() {
    let name = ShmName::new("svc-kill");
    // A slow answer, so the first client is surely waiting when killed.
    let server = serve(&name.0, &["--exec", "sleep 0.3; cat"]);
    let mut victim = call(&name.0, "victim");
    std::thread::sleep(Duration::from_millis(100));
    victim.kill().unwrap();
    wait(&mut victim);
    // The next clients (one may take the victim's slot) get their own answers.
    let calls: Vec<_> = (0..3).map(|i| (i, call(&name.0, &format!("after {i}")))).collect();
    for (i, child) in calls {
        assert_eq!(response(child), format!("after {i}\n"));
    }
    stop(server);
}

#[test]
fn a_dead_server_is_an_error_within_a_second() {
    let name = ShmName::new("svc-death");
    let mut server = serve(&name.0, &["--exec", "sleep 30"]);
    // Wait until the server serves (a call with a quick answer would not
    // do: this server never answers quickly).
    let deadline = Instant::now() + TIMEOUT;
    while !std::path::Path::new(&format!("/dev/shm{}", name.0)).exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let client = call(&name.0, "anyone?");
    std::thread::sleep(Duration::from_millis(200));
    server.0.kill().unwrap();
    let killed = Instant::now();
    wait(&mut server.0);
    let (status, stderr) = wait_with_stderr(client);
    assert!(killed.elapsed() < Duration::from_secs(1), "took {:?}", killed.elapsed());
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server") && stderr.contains("died"), "{stderr}");
    // A call made after the server died fails at once, saying so (it does
    // not wait for its timeout).
    let started = Instant::now();
    let out = run(
        ipcraft().args(["service", "call", &name.0, "x", "--timeout", "30"]),
        b"",
    );
    assert_fails(&out, 1, &format!("the server (pid {}) died", server.0.id()));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let name = ShmName::new("svc-bad");
    assert_fails(
        &run(
            ipcraft().args(["service", "call", &name.0, "x", "--timeout", "0.1"]),
            b"",
        ),
        1,
        "No such file",
    );
    common::assert_ok(&run(ipcraft().args(["chan", "create", &name.0]), b""));
    assert_fails(
        &run(
            ipcraft().args(["service", "call", &name.0, "x", "--timeout", "0.1"]),
            b"",
        ),
        1,
        "not an ipcraft service",
    );
    assert_fails(
        &run(ipcraft().args(["service", "serve", &name.0]), b""),
        1,
        "not an ipcraft service",
    );
    assert_fails(&run(ipcraft().args(["service", "call", "/a/b", "x"]), b""), 2, "");
}
