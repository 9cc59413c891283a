//! iceoryx2 publish-subscribe as a bench transport (cargo feature
//! `iceoryx2`), so ipcraft's channel can be compared with it in one run.
//!
//! Each direction is an iceoryx2 `[u8]` publish-subscribe service with
//! back-pressure (`RetryUntilDelivered`, no safe overflow), so nothing is
//! dropped and the content checks hold. The receiving side busy-polls, as
//! iceoryx2's own benchmark does. Ports are created after `fork`, in the
//! process that uses them.
//!
//! Two things this comparator must do that iceoryx2 does not do for it:
//!
//! - **Handshake before streaming.** A publisher delivers into a
//!   subscriber's buffer before that subscriber has connected its side,
//!   and once that buffer is full it *drops* samples for it
//!   (`ZeroCopySendError::NoConnectedReceiverAndBufferIsFull`, by design:
//!   back-pressure applies to connected subscribers only). Streaming right
//!   after the peer subscribed therefore lost samples now and then
//!   ("message 16 arrived with wrong content": the first 16 filled the
//!   buffer, hundreds after them were dropped). Each side now sends one
//!   hello sample and waits for the peer's, which connects its subscriber,
//!   before any measured message.
//! - **Its own file namespace.** Every run uses a private root directory
//!   (inside the bench's temporary directory) and a private prefix for the
//!   shared memory it creates, which the bench removes at the end: nothing
//!   is left in `/tmp/iceoryx2` or `/dev/shm`.

use std::io;
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2_bb_system_types::file_name::FileName;
use iceoryx2_bb_system_types::path::Path as IoxPath;

use crate::measure::Link;

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

fn err(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("iceoryx2: {e:?}"))
}

/// One side: publishes on one service, subscribes to one or more (every
/// message is taken from each and must be the same).
pub struct IoxLink {
    publisher: Pub,
    subscribers: Vec<Sub>,
    scratch: Vec<u8>,
    // Dropped last: the ports belong to it.
    _node: Node<ipc::Service>,
}

/// The iceoryx2 configuration of one bench run: its own root directory
/// and shared-memory prefix.
pub fn config(root: &std::path::Path, prefix: &str) -> io::Result<Config> {
    let mut config = Config::default();
    let root = format!("{}/", root.display());
    config
        .global
        .set_root_path(&IoxPath::new(root.as_bytes()).map_err(err)?);
    config.global.prefix = FileName::new(prefix.as_bytes()).map_err(err)?;
    Ok(config)
}

/// Removes what a run with `prefix` left in `/dev/shm` (its root
/// directory goes with the bench's temporary directory).
pub fn clean(prefix: &str) {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            // Another process may have removed it already.
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl IoxLink {
    /// Publishes on `out`, which `readers` subscribers must join before
    /// anything is sent, and subscribes to each of `inputs`.
    pub fn open(out: &str, inputs: &[&str], readers: usize, size: usize, config: &Config) -> io::Result<Self> {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new()
            .config(config)
            .create::<ipc::Service>()
            .map_err(err)?;
        let service = |name: &str| {
            let name: ServiceName = name.try_into().map_err(err)?;
            node.service_builder(&name)
                .publish_subscribe::<[u8]>()
                .enable_safe_overflow(false)
                .history_size(0)
                .subscriber_max_buffer_size(16)
                .open_or_create()
                .map_err(err)
        };
        let out_service = service(out)?;
        let in_services = inputs.iter().map(|inp| service(inp)).collect::<io::Result<Vec<_>>>()?;
        let publisher = out_service
            .publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(err)?;
        let subscribers = in_services
            .iter()
            .map(|s| s.subscriber_builder().create().map_err(err))
            .collect::<io::Result<Vec<_>>>()?;
        // Without history a sample sent before the peers subscribe is lost:
        // wait (bounded) until their subscribers are there.
        let start = Instant::now();
        while out_service.dynamic_config().number_of_subscribers() < readers {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "iceoryx2 peer did not subscribe",
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut link = Self {
            publisher,
            subscribers,
            scratch: vec![0; size],
            _node: node,
        };
        // The hello each way: see the module docs.
        let hello = vec![0xA5u8; size];
        link.send(&hello)?;
        let mut got = vec![0u8; size];
        link.recv(&mut got)?;
        if got != hello {
            return Err(io::Error::other("iceoryx2: the peer's hello differs"));
        }
        Ok(link)
    }

    /// Takes the next sample of `subscriber` into `buf`, busy-polling.
    fn take(subscriber: &Sub, buf: &mut [u8]) -> io::Result<()> {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if let Some(sample) = subscriber.receive().map_err(err)? {
                return super::transports::copy_whole(sample.payload(), buf);
            }
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 {
                if start.elapsed() > Duration::from_secs(10) {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "iceoryx2 peer stopped sending"));
                }
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
    }
}

impl Link for IoxLink {
    #[inline]
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let sample = self.publisher.loan_slice_uninit(buf.len()).map_err(err)?;
        sample.write_from_slice(buf).send().map_err(err)?;
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let (first, rest) = self.subscribers.split_first().expect("at least one subscriber");
        Self::take(first, buf)?;
        for sub in rest {
            Self::take(sub, &mut self.scratch)?;
            if self.scratch[..] != buf[..] {
                return Err(io::Error::other("iceoryx2: subscribers got different samples"));
            }
        }
        Ok(())
    }
}
