//! `ipcraft shm`: POSIX shared memory objects.

use clap::ValueEnum;
use ipcraft::shm::{self, ShmOptions};
use ipcraft::{Cause, Error, Name};

use crate::{parse_name, write_stdout, CmdResult, Failure};

/// A shared memory object is a named piece of memory in /dev/shm that any
/// process may open and map; what one process stores, the others read.
/// Values are stored in this machine's native byte order, so C programs
/// that map the object read them directly.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

/// How a value is stored.
#[derive(Clone, Copy, ValueEnum)]
enum ValueType {
    U8,
    I32,
    U32,
    I64,
    U64,
    F64,
    /// The string's bytes, no terminator.
    Str,
}

impl ValueType {
    fn label(self) -> &'static str {
        match self {
            ValueType::U8 => "a u8",
            ValueType::I32 => "an i32",
            ValueType::U32 => "a u32",
            ValueType::I64 => "an i64",
            ValueType::U64 => "a u64",
            ValueType::F64 => "an f64",
            ValueType::Str => "a string",
        }
    }

    fn encode(self, text: &str) -> Option<Vec<u8>> {
        Some(match self {
            ValueType::U8 => text.parse::<u8>().ok()?.to_ne_bytes().to_vec(),
            ValueType::I32 => text.parse::<i32>().ok()?.to_ne_bytes().to_vec(),
            ValueType::U32 => text.parse::<u32>().ok()?.to_ne_bytes().to_vec(),
            ValueType::I64 => text.parse::<i64>().ok()?.to_ne_bytes().to_vec(),
            ValueType::U64 => text.parse::<u64>().ok()?.to_ne_bytes().to_vec(),
            ValueType::F64 => text.parse::<f64>().ok()?.to_ne_bytes().to_vec(),
            ValueType::Str => text.as_bytes().to_vec(),
        })
    }

    /// Bytes a numeric value occupies; `None` for strings.
    fn width(self) -> Option<usize> {
        match self {
            ValueType::U8 => Some(1),
            ValueType::I32 | ValueType::U32 => Some(4),
            ValueType::I64 | ValueType::U64 | ValueType::F64 => Some(8),
            ValueType::Str => None,
        }
    }

    fn decode(self, b: &[u8]) -> Vec<u8> {
        let text = match self {
            ValueType::U8 => b[0].to_string(),
            ValueType::I32 => i32::from_ne_bytes(b[..4].try_into().unwrap_or_default()).to_string(),
            ValueType::U32 => u32::from_ne_bytes(b[..4].try_into().unwrap_or_default()).to_string(),
            ValueType::I64 => i64::from_ne_bytes(b[..8].try_into().unwrap_or_default()).to_string(),
            ValueType::U64 => u64::from_ne_bytes(b[..8].try_into().unwrap_or_default()).to_string(),
            ValueType::F64 => f64::from_ne_bytes(b[..8].try_into().unwrap_or_default()).to_string(),
            // A C writer may leave a terminator and padding: stop at the first NUL.
            ValueType::Str => return b.split(|&c| c == 0).next().unwrap_or_default().to_vec(),
        };
        text.into_bytes()
    }
}

#[derive(clap::Subcommand)]
enum Command {
    /// Stores VALUE in the object NAME, creating it (mode 0600) if missing and
    /// sizing it to the value, as the classic writer exercise does.
    Write {
        /// Object name, `/name` or `name`.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// The value, parsed as TYPE.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// How to store the value.
        #[arg(long = "type", short = 't', value_enum, default_value = "u8")]
        ty: ValueType,
    },
    /// Prints the value the object holds (decimal for numbers). A number's
    /// TYPE must match the object's size exactly, as `write` sizes it.
    Read {
        /// Object name.
        #[arg(value_parser = parse_name)]
        name: Name,
        /// How the value is stored.
        #[arg(long = "type", short = 't', value_enum, default_value = "u8")]
        ty: ValueType,
        /// Read an object another user owns (refused by default: anyone can
        /// create objects in /dev/shm).
        #[arg(long)]
        allow_foreign: bool,
    },
    /// Lists the objects in /dev/shm: NAME size=N mode=M uid=U gid=G.
    Ls,
    /// Shows one object's size, mode and owner.
    Stat {
        /// Object name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
    /// Removes an object (processes that have it mapped keep their mapping).
    Rm {
        /// Object name.
        #[arg(value_parser = parse_name)]
        name: Name,
    },
}

pub fn run(args: Args) -> CmdResult {
    match args.command {
        Command::Write { name, value, ty } => {
            let bytes = ty
                .encode(&value)
                .ok_or_else(|| Failure::Usage(format!("{value:?} is not {}", ty.label())))?;
            // A new object is removed again if sizing or writing fails.
            let mut obj = ShmOptions::new().create(true).open(&name)?;
            obj.resize(bytes.len() as u64)?;
            if !bytes.is_empty() {
                obj.map()?
                    .write_at(0, &bytes)
                    .map_err(|e| e.relabel("write to shared memory", obj.name()))?;
            }
            obj.keep();
            Ok(())
        }
        Command::Read {
            name,
            ty,
            allow_foreign,
        } => {
            let obj = ShmOptions::new()
                .read_only(true)
                .allow_foreign(allow_foreign)
                .open(&name)?;
            let size = obj.size()?;
            let need = ty.width().unwrap_or(0) as u64;
            if need > 0 && size != need {
                let cause = Cause::WrongSize {
                    size,
                    need,
                    what: ty.label(),
                };
                return Err(Error::new("read shared memory", obj.name(), cause).into());
            }
            let len = if need > 0 { need } else { size } as usize;
            let mut bytes = vec![0u8; len];
            if len > 0 {
                obj.map()?
                    .read_at(0, &mut bytes)
                    .map_err(|e| e.relabel("read shared memory", obj.name()))?;
            }
            let mut line = ty.decode(&bytes);
            line.push(b'\n');
            write_stdout(&line)
        }
        Command::Ls => {
            let listing: String = shm::list()?.iter().map(|i| format!("{i}\n")).collect();
            write_stdout(listing.as_bytes())
        }
        Command::Stat { name } => write_stdout(format!("{}\n", shm::stat(&name)?).as_bytes()),
        Command::Rm { name } => Ok(shm::remove(&name)?),
    }
}
