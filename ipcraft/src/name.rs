//! Validated POSIX IPC names, as used by `shm_open(3)` and `mq_open(3)`.
//!
//! A name is written `/name`; `name` without the slash means the same object.
//! Validation happens before any system call, so a bad name never reaches the
//! kernel (where `/a/b` fails with a confusing `EINVAL` or `ENOENT`, and `..`
//! could name something outside `/dev/shm` on some libcs).

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use crate::error::{Cause, Error, Result};

/// The longest name, not counting the leading slash (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// A POSIX IPC name that has been checked: one path component, 1 to
/// [`NAME_MAX`] bytes of UTF-8, no NUL, no `/`, not `.` or `..`.
///
/// # Examples
///
/// ```
/// use ipcraft::Name;
///
/// let a = Name::new("/jobs").unwrap();
/// let b = Name::new("jobs").unwrap();
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "/jobs");
/// assert!(Name::new("/a/b").is_err());
/// assert!(Name::new("..").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name {
    /// Always begins with `/`.
    c: CString,
}

impl Name {
    /// Checks `name` and returns it in its `/name` form.
    ///
    /// # Errors
    ///
    /// [`Cause::InvalidName`] saying what is wrong: empty, only `/`, more than
    /// one component, `.` or `..`, longer than [`NAME_MAX`] bytes, a NUL
    /// byte, or not UTF-8.
    pub fn new(name: impl AsRef<OsStr>) -> Result<Self> {
        let raw = name.as_ref().as_bytes();
        let shown = String::from_utf8_lossy(raw);
        let invalid = |why: &'static str| Error::new("name", format!("{shown:?}"), Cause::InvalidName(why));
        let rest = raw.strip_prefix(b"/").unwrap_or(raw);
        if raw.is_empty() {
            return Err(invalid("empty"));
        }
        if rest.is_empty() {
            return Err(invalid("`/` alone names nothing"));
        }
        if rest.contains(&0) {
            return Err(invalid("contains a NUL byte"));
        }
        if rest.contains(&b'/') {
            return Err(invalid("must be one component: no `/` after the leading one"));
        }
        if rest == b"." || rest == b".." {
            return Err(invalid("`.` and `..` are not object names"));
        }
        if rest.len() > NAME_MAX {
            return Err(invalid("longer than 255 bytes"));
        }
        if std::str::from_utf8(rest).is_err() {
            return Err(invalid("not valid UTF-8"));
        }
        let mut bytes = Vec::with_capacity(rest.len() + 2);
        bytes.push(b'/');
        bytes.extend_from_slice(rest);
        // Cannot fail: NUL was rejected above.
        let c = CString::new(bytes).map_err(|_| invalid("contains a NUL byte"))?;
        Ok(Self { c })
    }

    /// The name with its leading slash, `/name`.
    pub fn as_str(&self) -> &str {
        // Checked to be UTF-8 in `new`; the fallback is unreachable.
        self.c.to_str().unwrap_or("/")
    }

    /// The name without its leading slash, as it appears in `/dev/shm`.
    pub fn file_name(&self) -> &str {
        &self.as_str()[1..]
    }

    /// The name as a C string for system calls.
    pub fn as_c_str(&self) -> &CStr {
        &self.c
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({:?})", self.as_str())
    }
}

impl std::str::FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<OsStr> for Name {
    fn as_ref(&self) -> &OsStr {
        OsStr::new(self.as_str())
    }
}

impl AsRef<CStr> for Name {
    fn as_ref(&self) -> &CStr {
        self.as_c_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(name: impl AsRef<OsStr>) -> String {
        Name::new(name).unwrap_err().to_string()
    }

    #[test]
    fn slash_is_optional() {
        assert_eq!(Name::new("x").unwrap().as_str(), "/x");
        assert_eq!(Name::new("/x").unwrap().as_str(), "/x");
        assert_eq!(Name::new("/x").unwrap().file_name(), "x");
    }

    #[test]
    fn rejects_every_bad_form() {
        assert!(why("").contains("empty"));
        assert!(why("/").contains("names nothing"));
        assert!(why("/a/b").contains("one component"));
        assert!(why("a/").contains("one component"));
        assert!(why("//a").contains("one component"));
        assert!(why(".").contains("`.` and `..`"));
        assert!(why("/..").contains("`.` and `..`"));
        assert!(why("a\0b").contains("NUL"));
        assert!(why(OsStr::from_bytes(b"/\xff\xfe")).contains("UTF-8"));
        assert!(why("x".repeat(256)).contains("255"));
        assert!(why(format!("/{}", "x".repeat(256))).contains("255"));
    }

    #[test]
    fn accepts_the_longest() {
        let n = Name::new("y".repeat(255)).unwrap();
        assert_eq!(n.as_str().len(), 256);
        assert!(Name::new("...").is_ok());
        assert!(Name::new("ipcraft-é").is_ok());
    }

    #[test]
    fn error_shows_the_name() {
        assert_eq!(
            why("/a/b"),
            "name \"/a/b\": invalid name: must be one component: no `/` after the leading one"
        );
    }
}
