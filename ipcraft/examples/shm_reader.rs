//! The classic shared-memory reader exercise: print the byte a writer stored.
//!
//! ```text
//! cargo run --example shm_reader -- /demo
//! ```
//!
//! Opens the object read-only (unlike the classic C reader, it never resizes
//! someone else's object) and checks that it holds at least one byte.

use ipcraft::shm::Shm;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, name] = &args[..] else {
        eprintln!("usage: shm_reader /name");
        std::process::exit(2);
    };
    let shm = Shm::open_read_only(name)?;
    if shm.size()? < 1 {
        return Err(format!("{name} is empty").into());
    }
    let value: u8 = shm.map()?.read(0)?;
    println!("{value}");
    Ok(())
}
