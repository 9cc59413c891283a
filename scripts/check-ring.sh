#!/usr/bin/env bash
# The channel's ring logic, checked beyond CI (needs the nightly toolchain
# with the miri component: `rustup component add miri --toolchain nightly`):
#  1. the ring's (and its copies') unit and property tests many more times than CI runs them;
#  2. the producer/consumer protocol and the sleep/wake handshake under
#     loom, which explores every interleaving and allowed reordering;
#  3. the unit and property tests under Miri, which checks every atomic and raw-pointer
#     access in the ring for undefined behaviour.
set -euo pipefail
cd "$(dirname "$0")/.."
PROPTEST_CASES=${PROPTEST_CASES:-5000} cargo test -p ipcraft --lib -- channel::ring channel::copy
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ipcraft --release --lib channel::ring::loom_model
# The sleeping-flag handshake between a side going to sleep and one publishing.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ipcraft --release --lib channel::wait::loom_model
# Weak-memory emulation is off: Miri's store buffers panic internally on the
# ring's mixed-size atomics (a payload byte later becomes part of a header
# word). Miri still checks every access for UB, bounds and data races.
# Isolation is off because proptest looks for its regression file.
MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-disable-weak-memory-emulation -Zmiri-disable-isolation}" \
    cargo +nightly miri test -p ipcraft --lib -- channel::ring channel::copy
