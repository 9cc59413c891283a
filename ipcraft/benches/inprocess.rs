//! In-process costs (stable Rust, criterion): name validation, and the
//! channel's send/receive paths in one process with no peer to wait for.
//! The cross-process figures come from `ipcraft bench`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ipcraft::channel;
use ipcraft::Name;

fn names(c: &mut Criterion) {
    c.bench_function("Name::new valid", |b| {
        b.iter(|| Name::new(black_box("/market-data-feed")).unwrap())
    });
    c.bench_function("Name::new invalid", |b| {
        b.iter(|| Name::new(black_box("/a/b")).is_err())
    });
}

fn channel_paths(c: &mut Criterion) {
    let (mut tx, mut rx) = channel::pair(1 << 20).unwrap();
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    c.bench_function("channel send+recv 64 B (copying)", |b| {
        b.iter(|| {
            tx.try_send(black_box(&msg)).unwrap();
            rx.try_recv(&mut buf).unwrap()
        })
    });
    c.bench_function("channel reserve/commit + recv_view 64 B (zero-copy)", |b| {
        b.iter(|| {
            let mut slot = tx.try_reserve(64).unwrap();
            slot.write_at(0, black_box(&msg)).unwrap();
            slot.commit();
            let view = rx.try_recv_view().unwrap().unwrap();
            black_box(view.len())
        })
    });
    let big = vec![1u8; 64 * 1024];
    let mut big_buf = vec![0u8; 64 * 1024];
    c.bench_function("channel send+recv 64 KiB (copying)", |b| {
        b.iter(|| {
            tx.try_send(black_box(&big)).unwrap();
            rx.try_recv(&mut big_buf).unwrap()
        })
    });
}

criterion_group!(benches, names, channel_paths);
criterion_main!(benches);
