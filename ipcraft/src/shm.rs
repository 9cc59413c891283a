//! POSIX shared memory: named objects in `/dev/shm` that unrelated
//! processes open by name and map.
//!
//! [`Shm::create`] makes a new object (exclusive, mode 0600 exactly, sized
//! with space reserved so a full `/dev/shm` is an error now rather than a
//! `SIGBUS` later) that is unlinked when the [`Shm`] drops unless you
//! [`keep`](Shm::keep) it. [`Shm::open`] opens an existing object;
//! [`ShmOptions`] covers the rest. [`Shm::map`] maps it; the
//! [`Mmap`] it returns reads and writes plain-old-data values without ever
//! trusting the memory another process can change or truncate.
//!
//! # References
//!
//! - [`shm_overview(7)`](https://man7.org/linux/man-pages/man7/shm_overview.7.html)

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Cause, Context, Error, Result};
use crate::mmap::{Mmap, MmapOptions};
use crate::name::Name;
use crate::object;
use crate::sys;

/// Where Linux keeps POSIX shared memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// What `ls`/`stat` report about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmInfo {
    /// The object's name.
    pub name: Name,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl fmt::Display for ShmInfo {
    /// `/name size=N mode=0600 uid=U gid=G`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} size={} mode={:04o} uid={} gid={}",
            self.name, self.size, self.mode, self.uid, self.gid
        )
    }
}

/// How to open or create an object. Starts as "open an existing object for
/// reading and writing".
#[derive(Clone, Debug)]
pub struct ShmOptions {
    create: bool,
    create_new: bool,
    read_only: bool,
    mode: u32,
    size: Option<u64>,
    allow_foreign: bool,
}

impl Default for ShmOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ShmOptions {
    /// Open an existing object for reading and writing.
    pub fn new() -> Self {
        Self {
            create: false,
            create_new: false,
            read_only: false,
            mode: 0o600,
            size: None,
            allow_foreign: false,
        }
    }

    /// Create the object if missing; an existing one is opened only if this
    /// user owns it (another user's object is never adopted).
    pub fn create(&mut self, create: bool) -> &mut Self {
        self.create = create;
        self
    }

    /// Create the object, failing with `EEXIST` if it exists (`O_EXCL`).
    pub fn create_new(&mut self, create_new: bool) -> &mut Self {
        self.create_new = create_new;
        self
    }

    /// Open for reading only (the mapping will be read-only).
    pub fn read_only(&mut self, read_only: bool) -> &mut Self {
        self.read_only = read_only;
        self
    }

    /// Permission bits for a new object (default 0600), applied exactly:
    /// the umask does not narrow them.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Resize the object to `size` bytes once open (see [`Shm::resize`]).
    pub fn size(&mut self, size: u64) -> &mut Self {
        self.size = Some(size);
        self
    }

    /// Accept an existing object that another user owns (refused by
    /// default with [`Cause::ForeignOwner`]: `/dev/shm` is writable by
    /// everyone, so anyone could have planted it).
    pub fn allow_foreign(&mut self, allow: bool) -> &mut Self {
        self.allow_foreign = allow;
        self
    }

    /// `shm_open(name, ...)`—Opens or creates the object. A created object
    /// is removed when the returned [`Shm`] drops unless kept.
    ///
    /// The object is opened as `/dev/shm/NAME` with `O_NOFOLLOW` (as glibc's
    /// `shm_open` does), and the descriptor actually opened is checked: it
    /// must be a regular file, owned by this user unless
    /// [`allow_foreign`](Self::allow_foreign).
    ///
    /// # Errors
    ///
    /// [`Cause::InvalidName`] before any system call; [`Cause::Symlink`]
    /// for a symbolic link, [`Cause::WrongType`] for anything else that is
    /// not a regular file; `EEXIST` with [`create_new`](Self::create_new);
    /// [`Cause::ForeignOwner`] for another user's object; `ENOENT`;
    /// `ENOSPC` when `/dev/shm` is full.
    ///
    /// # References
    ///
    /// - [`shm_open(3)`](https://man7.org/linux/man-pages/man3/shm_open.3.html)
    #[doc(alias = "shm_open")]
    pub fn open(&self, name: impl AsRef<OsStr>) -> Result<Shm> {
        let name = Name::new(name)?;
        let access = if self.read_only { OFlags::RDONLY } else { OFlags::RDWR };
        let path = path_of(&name);
        // O_NONBLOCK: a FIFO planted under the name cannot block the open.
        let open =
            |extra: OFlags, mode: Mode| sys::open_nofollow(path.as_ref(), access | OFlags::NONBLOCK | extra, mode);
        let refused = |op: &'static str, e: Errno| match e {
            Errno::LOOP => Error::new(op, &name, Cause::Symlink),
            e => Error::new(op, &name, e),
        };
        let (fd, created) = if self.create || self.create_new {
            match open(OFlags::CREATE | OFlags::EXCL, Mode::from_raw_mode(self.mode)) {
                Ok(fd) => (fd, true),
                Err(Errno::EXIST) if !self.create_new => (
                    open(OFlags::empty(), Mode::empty()).map_err(|e| refused(OPEN, e))?,
                    false,
                ),
                Err(e) => return Err(refused("create shared memory", e)),
            }
        } else {
            (
                open(OFlags::empty(), Mode::empty()).map_err(|e| refused(OPEN, e))?,
                false,
            )
        };
        // From here on a created object is removed again if anything fails.
        let removal = object::RemoveOnDrop::file(&path, &fd, created).context(OPEN, &name)?;
        let shm = Shm {
            fd,
            name,
            removal,
            writable: !self.read_only,
        };
        object::check_opened(
            &shm.fd,
            OPEN,
            &shm.name,
            Some((FileType::RegularFile, "shared memory object")),
            self.allow_foreign,
        )?;
        if created {
            // The umask narrowed the mode given to open; set it exactly.
            let mode = Mode::from_raw_mode(self.mode);
            sys::retry(|| rustix::fs::fchmod(&shm.fd, mode)).context("set mode of shared memory", &shm.name)?;
        }
        if let Some(size) = self.size {
            shm.resize(size)?;
        }
        Ok(shm)
    }
}

const OPEN: &str = "open shared memory";

/// `/dev/shm/NAME`.
fn path_of(name: &Name) -> String {
    format!("{SHM_DIR}/{}", name.file_name())
}

/// An open POSIX shared memory object. If this value created it, dropping
/// it removes the name unless [`keep`](Self::keep) was called.
pub struct Shm {
    fd: OwnedFd,
    name: Name,
    removal: object::RemoveOnDrop,
    writable: bool,
}

impl Shm {
    /// Creates a new object of `size` bytes (exclusive, mode 0600), unlinked
    /// when dropped unless kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipcraft::shm::Shm;
    ///
    /// let name = format!("/ipcraft-doc-{}", std::process::id());
    /// let shm = Shm::create(&name, 8).unwrap();
    /// let map = shm.map().unwrap();
    /// map.write(0, &42u64).unwrap();
    /// let other = Shm::open(&name).unwrap().map().unwrap();
    /// assert_eq!(other.read::<u64>(0).unwrap(), 42);
    /// ```
    pub fn create(name: impl AsRef<OsStr>, size: u64) -> Result<Self> {
        ShmOptions::new().create_new(true).size(size).open(name)
    }

    /// Opens an existing object for reading and writing.
    pub fn open(name: impl AsRef<OsStr>) -> Result<Self> {
        ShmOptions::new().open(name)
    }

    /// Opens an existing object for reading only.
    pub fn open_read_only(name: impl AsRef<OsStr>) -> Result<Self> {
        ShmOptions::new().read_only(true).open(name)
    }

    /// The object's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Leaves the object in `/dev/shm` when this value drops.
    pub fn keep(&mut self) {
        self.removal.keep();
    }

    /// Removes the object's name now (the mapping and descriptor stay
    /// usable), reporting what drop would ignore.
    pub fn remove(mut self) -> Result<()> {
        self.removal.remove_now().context("remove shared memory", &self.name)
    }

    /// Size, owner and mode, from `fstat`.
    pub fn info(&self) -> Result<ShmInfo> {
        let stat = sys::retry(|| rustix::fs::fstat(&self.fd)).context("stat shared memory", &self.name)?;
        Ok(info_from(self.name.clone(), &stat))
    }

    /// Size in bytes.
    pub fn size(&self) -> Result<u64> {
        Ok(self.info()?.size)
    }

    /// Resizes the object to `size` bytes. Growing reserves the space with
    /// `fallocate` so a full `/dev/shm` is `ENOSPC` here, not `SIGBUS` at
    /// first touch; shrinking uses `ftruncate`, and is refused for an
    /// ipcraft channel ([`Cause::Invalid`]): it would cut the ring from
    /// under the processes using it.
    ///
    /// # References
    ///
    /// - [`ftruncate(2)`](https://man7.org/linux/man-pages/man2/ftruncate.2.html)
    /// - [`fallocate(2)`](https://man7.org/linux/man-pages/man2/fallocate.2.html)
    #[doc(alias = "ftruncate")]
    pub fn resize(&self, size: u64) -> Result<()> {
        const OP: &str = "resize shared memory";
        let current = self.size()?;
        if size < current && self.is_channel()? {
            return Err(Error::new(
                OP,
                &self.name,
                Cause::Invalid(
                    "it is an ipcraft channel: shrinking it would cut the ring from under its users \
                     (remove it with `ipcraft chan rm`)",
                ),
            ));
        }
        if size > current {
            match sys::retry(|| rustix::fs::fallocate(&self.fd, rustix::fs::FallocateFlags::empty(), 0, size)) {
                Ok(()) => return Ok(()),
                Err(Errno::OPNOTSUPP) => {}
                Err(e) => return Err(Error::new(OP, &self.name, e)),
            }
        }
        sys::retry(|| rustix::fs::ftruncate(&self.fd, size)).context(OP, &self.name)
    }

    /// Whether the object starts with an ipcraft channel's identity.
    fn is_channel(&self) -> Result<bool> {
        let mut magic = [0u8; 8];
        let n = sys::retry(|| rustix::io::pread(&self.fd, &mut magic, 0)).context("read shared memory", &self.name)?;
        Ok(n == 8 && u64::from_le_bytes(magic) == crate::channel::MAGIC)
    }

    /// Maps the whole object, shared (writable unless opened read-only).
    pub fn map(&self) -> Result<Mmap> {
        let opts = MmapOptions::new();
        let map = if self.writable {
            opts.map_shared(&self.fd)
        } else {
            opts.map(&self.fd)
        };
        map.map(|m| m.with_label(self.name.to_string()))
            .map_err(|e| e.relabel("map shared memory", &self.name))
    }
}

/// The descriptor; the name follows the handle's rule (removed if this
/// handle created it and did not keep it).
impl From<Shm> for OwnedFd {
    fn from(shm: Shm) -> Self {
        shm.fd
    }
}

impl AsFd for Shm {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Shm {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Debug for Shm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shm")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("remove_on_drop", &self.removal.is_armed())
            .finish()
    }
}

fn info_from(name: Name, stat: &rustix::fs::Stat) -> ShmInfo {
    ShmInfo {
        name,
        size: stat.st_size as u64,
        mode: stat.st_mode & 0o7777,
        uid: stat.st_uid,
        gid: stat.st_gid,
    }
}

/// `shm_unlink(name)`—Removes the name; processes that have the object open
/// or mapped keep using it.
///
/// # Errors
///
/// [`Cause::WrongType`] or [`Cause::Symlink`] if the name is not a shared
/// memory object; [`Cause::ForeignOwner`] naming the owner if another user
/// owns it (never removed on someone else's behalf); `ENOENT`.
///
/// # References
///
/// - [`shm_unlink(3)`](https://man7.org/linux/man-pages/man3/shm_unlink.3.html)
#[doc(alias = "shm_unlink")]
pub fn remove(name: impl AsRef<OsStr>) -> Result<()> {
    const OP: &str = "remove shared memory";
    let info = stat(name).map_err(|e| {
        let object = e.object().unwrap_or_default().to_owned();
        e.relabel(OP, object)
    })?;
    // Never removed on someone else's behalf (root could unlink it).
    object::check_owner(info.uid, OP, &info.name, false)?;
    // Not rustix::shm::unlink: it refuses a 255-byte name that the kernel
    // (and shm_open) accept.
    sys::retry(|| rustix::fs::unlink(path_of(&info.name).as_str())).context(OP, &info.name)
}

/// Size, owner and mode of the object `name`, without opening it.
pub fn stat(name: impl AsRef<OsStr>) -> Result<ShmInfo> {
    let name = Name::new(name)?;
    let stat = sys::retry(|| rustix::fs::lstat(path_of(&name).as_str())).context("stat shared memory", &name)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Symlink => return Err(Error::new("stat shared memory", &name, Cause::Symlink)),
        other => {
            return Err(Error::new(
                "stat shared memory",
                &name,
                Cause::WrongType {
                    expected: "shared memory object",
                    found: object::type_name(other),
                },
            ))
        }
    }
    Ok(info_from(name, &stat))
}

/// Every shared memory object in `/dev/shm`, sorted by name (POSIX
/// semaphores, `sem.*`, are not shared memory objects and are left out).
pub fn list() -> Result<Vec<ShmInfo>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR).context("list shared memory in", SHM_DIR)? {
        let Ok(entry) = entry else { continue };
        let file_name = entry.file_name();
        if file_name.as_encoded_bytes().starts_with(b"sem.") {
            continue;
        }
        // Objects can vanish between readdir and stat; skip those.
        if let Ok(info) = stat(&file_name) {
            all.push(info);
        }
    }
    all.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    Ok(all)
}
