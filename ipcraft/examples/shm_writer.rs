//! The classic shared-memory writer exercise: store one byte in a named object.
//!
//! ```text
//! cargo run --example shm_writer -- /demo 100
//! cargo run --example shm_reader -- /demo      # prints 100
//! ```
//!
//! The object is created 0600 if missing (another user's object is never
//! adopted), sized to one `u8` as the classic C writer does, and left in
//! `/dev/shm` for the reader.

use ipcraft::shm::ShmOptions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, value] = &args[..] else {
        eprintln!("usage: shm_writer /name VALUE");
        std::process::exit(2);
    };
    let value: u8 = value.parse()?;
    let mut shm = ShmOptions::new().create(true).size(1).open(name)?;
    shm.map()?.write(0, &value)?;
    shm.keep(); // leave it for the reader
    Ok(())
}
