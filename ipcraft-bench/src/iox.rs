//! iceoryx2 publish-subscribe as a bench transport (cargo feature
//! `iceoryx2`), so ipcraft's channel can be compared with it in one run.
//!
//! Each direction is an iceoryx2 `[u8]` publish-subscribe service with
//! back-pressure (`RetryUntilDelivered`, no safe overflow), so nothing is
//! dropped and the content checks hold. The receiving side busy-polls, as
//! iceoryx2's own benchmark does. Ports are created after `fork`, in the
//! process that uses them.

use std::io;
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

fn err(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("iceoryx2: {e:?}"))
}

/// One side: publishes on `out`, subscribes to `inp`.
pub struct IoxLink {
    publisher: Pub,
    subscriber: Sub,
    // Dropped last: the ports belong to it.
    _node: Node<ipc::Service>,
}

impl IoxLink {
    pub fn open(out: &str, inp: &str, size: usize) -> io::Result<Self> {
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new().create::<ipc::Service>().map_err(err)?;
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
        let in_service = service(inp)?;
        let publisher = out_service
            .publisher_builder()
            .initial_max_slice_len(size)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(err)?;
        let subscriber = in_service.subscriber_builder().create().map_err(err)?;
        // Without history a sample sent before the peer subscribes is lost:
        // wait (bounded) until the peer's subscriber is there.
        let start = Instant::now();
        while out_service.dynamic_config().number_of_subscribers() == 0 {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "iceoryx2 peer did not subscribe",
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(Self {
            publisher,
            subscriber,
            _node: node,
        })
    }

    pub fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let sample = self.publisher.loan_slice_uninit(buf.len()).map_err(err)?;
        sample.write_from_slice(buf).send().map_err(err)?;
        Ok(())
    }

    pub fn recv(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            if let Some(sample) = self.subscriber.receive().map_err(err)? {
                let payload = sample.payload();
                if payload.len() != buf.len() {
                    return Err(io::Error::other(format!(
                        "sample of {} bytes, expected {}",
                        payload.len(),
                        buf.len()
                    )));
                }
                buf.copy_from_slice(payload);
                return Ok(());
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
