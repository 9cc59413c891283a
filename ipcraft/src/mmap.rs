//! Memory mappings: files and anonymous memory mapped into the address
//! space, private (copy-on-write) or shared (visible to every process that
//! maps the same object, and across `fork`).
//!
//! # Soundness: truncation and other writers
//!
//! A mapping is memory that the kernel can take away or that another
//! process can change at any moment: if the file or shared memory object is
//! truncated, touching a page past its new end raises `SIGBUS`, and a
//! shared mapping can be written by other processes while Rust code holds a
//! `&[u8]` to it. So [`Mmap`] does not hand out slices. Its safe methods go
//! through the kernel, which reports a vanished page as an error instead of
//! a signal:
//!
//! - [`Mmap::read_at`] / [`Mmap::write_at`] and the typed [`Mmap::read`] /
//!   [`Mmap::write`] copy with `process_vm_readv`/`process_vm_writev` on
//!   this process;
//! - [`Mmap::write_to`] passes the mapping straight to `write(2)` (no copy
//!   in user space), which is what `ipcraft mmap cat` does.
//!
//! Either fails with [`Cause::Truncated`] if the object shrank. Direct
//! access is [`Mmap::as_slice`] / [`Mmap::as_mut_slice`], which are
//! `unsafe`: the caller promises that nothing truncates the object and that
//! no other process writes the range while the slice lives (for shared
//! memory that cannot shrink, see sealed memfds).
//!
//! # References
//!
//! - [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html)

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;

use rustix::mm::{MapFlags, MsyncFlags, ProtFlags};

use crate::error::{Cause, Context, Error, Result};
use crate::sys;

/// How to map: offset, length, pre-faulting. Terminal methods say what kind
/// of mapping to make.
///
/// ```
/// use std::io::Write;
/// use ipcraft::mmap::MmapOptions;
///
/// let mut file = std::fs::File::from(rustix::fs::memfd_create("doc", rustix::fs::MemfdFlags::CLOEXEC).unwrap());
/// file.write_all(b"hello, mapping").unwrap();
/// let map = MmapOptions::new().offset(7).map(&file).unwrap();
/// let mut buf = vec![0; map.len()];
/// map.read_at(0, &mut buf).unwrap();
/// assert_eq!(buf, b"mapping");
/// ```
#[derive(Clone, Debug, Default)]
pub struct MmapOptions {
    offset: u64,
    len: Option<usize>,
    populate: bool,
}

/// What a mapping may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    ReadOnly,
    /// Writable; `shared` says whether writes reach the object.
    Write {
        shared: bool,
    },
}

impl MmapOptions {
    /// The whole object, from offset 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start the mapping at byte `offset` of the file (any offset: the
    /// page alignment `mmap` needs is handled here).
    pub fn offset(&mut self, offset: u64) -> &mut Self {
        self.offset = offset;
        self
    }

    /// Map `len` bytes instead of everything from the offset to the end.
    pub fn len(&mut self, len: usize) -> &mut Self {
        self.len = Some(len);
        self
    }

    /// Pre-fault the pages (`MAP_POPULATE`).
    pub fn populate(&mut self, populate: bool) -> &mut Self {
        self.populate = populate;
        self
    }

    /// Maps `file` read-only (`PROT_READ`, `MAP_SHARED`: changes made by
    /// others are seen).
    pub fn map(&self, file: impl AsFd) -> Result<Mmap> {
        self.map_file(file.as_fd(), Access::ReadOnly)
    }

    /// Maps `file` private and writable (`MAP_PRIVATE`): writes are
    /// copy-on-write and never reach the file.
    pub fn map_private(&self, file: impl AsFd) -> Result<Mmap> {
        self.map_file(file.as_fd(), Access::Write { shared: false })
    }

    /// Maps `file` shared and writable (`MAP_SHARED`): writes reach the
    /// file and every other mapping of it. The file must be open for
    /// reading and writing.
    pub fn map_shared(&self, file: impl AsFd) -> Result<Mmap> {
        self.map_file(file.as_fd(), Access::Write { shared: true })
    }

    /// A private anonymous mapping of `len` zeroed bytes: after `fork` the
    /// child has its own copy.
    pub fn map_anon(&self, len: usize) -> Result<Mmap> {
        self.map_anonymous(len, false)
    }

    /// A shared anonymous mapping of `len` zeroed bytes: after `fork`
    /// parent and child see each other's writes.
    pub fn map_anon_shared(&self, len: usize) -> Result<Mmap> {
        self.map_anonymous(len, true)
    }

    fn flags(&self, shared: bool) -> MapFlags {
        let mut flags = if shared { MapFlags::SHARED } else { MapFlags::PRIVATE };
        if self.populate {
            flags |= MapFlags::POPULATE;
        }
        flags
    }

    fn map_anonymous(&self, len: usize, shared: bool) -> Result<Mmap> {
        const WHAT: &str = "anonymous memory";
        if len == 0 {
            return Ok(Mmap::empty(Access::Write { shared }, WHAT.to_owned()));
        }
        // SAFETY: a new anonymous mapping at an address the kernel picks
        // cannot alias any existing Rust object.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                self.flags(shared),
            )
        }
        .context("map", WHAT)?;
        Ok(Mmap {
            ptr: non_null(ptr, WHAT)?,
            len,
            page_offset: 0,
            access: Access::Write { shared },
            label: WHAT.to_owned(),
        })
    }

    fn map_file(&self, fd: BorrowedFd<'_>, access: Access) -> Result<Mmap> {
        let label = file_label(fd);
        let what = label.as_str();
        let stat = sys::retry(|| rustix::fs::fstat(fd)).context("map", what)?;
        let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
        if kind == rustix::fs::FileType::Directory {
            return Err(Error::new("map", what, io::Error::from_raw_os_error(libc::EISDIR)));
        }
        let size = stat.st_size as u64;
        let len = match self.len {
            Some(len) => len,
            None if self.offset > size => {
                return Err(Error::new(
                    "map",
                    what,
                    Cause::OverLimit {
                        requested: self.offset,
                        limit: size,
                        limit_name: "the file's size",
                    },
                ))
            }
            None => usize::try_from(size - self.offset).map_err(|_| {
                Error::new(
                    "map",
                    what,
                    Cause::TooLarge {
                        len: usize::MAX,
                        limit: usize::MAX,
                        limit_name: "the address space",
                    },
                )
            })?,
        };
        if len == 0 {
            // mmap(2) refuses length 0; an empty file maps to an empty view.
            return Ok(Mmap::empty(access, label));
        }
        let page = rustix::param::page_size() as u64;
        let aligned = self.offset - self.offset % page;
        let page_offset = (self.offset - aligned) as usize;
        let (prot, shared) = match access {
            Access::ReadOnly => (ProtFlags::READ, true),
            Access::Write { shared } => (ProtFlags::READ | ProtFlags::WRITE, shared),
        };
        // SAFETY: a new mapping at an address the kernel picks cannot alias
        // an existing Rust object; access to it goes through `Mmap`, whose
        // safe methods never create references into it.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len + page_offset,
                prot,
                self.flags(shared),
                fd,
                aligned,
            )
        }
        .context("map", what)?;
        Ok(Mmap {
            ptr: non_null(ptr, what)?,
            len: len + page_offset,
            page_offset,
            access,
            label,
        })
    }
}

/// The path behind `fd` as `/proc/self/fd` shows it (`/tmp/x`,
/// `/dev/shm/name`, `/memfd:name (deleted)`), or `descriptor N`.
fn file_label(fd: BorrowedFd<'_>) -> String {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    std::fs::read_link(format!("/proc/self/fd/{raw}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("descriptor {raw}"))
}

/// The address `mmap` returned; it never returns null on success (no
/// `MAP_FIXED`), but that is checked rather than assumed.
fn non_null(ptr: *mut std::ffi::c_void, what: &str) -> Result<NonNull<u8>> {
    NonNull::new(ptr.cast()).ok_or_else(|| Error::new("map", what, io::Error::other("mmap returned a null address")))
}

/// A memory mapping, unmapped on drop. See the [module docs](self) for why
/// its safe accessors copy through the kernel.
pub struct Mmap {
    /// Start of the whole mapping (page aligned); dangling when `len == 0`.
    ptr: NonNull<u8>,
    /// Length of the whole mapping, including `page_offset`.
    len: usize,
    /// Bytes between the mapping's start and the caller's offset.
    page_offset: usize,
    access: Access,
    /// What is mapped (a path, `memfd:NAME`, `anonymous memory`), for errors.
    label: String,
}

// SAFETY: the mapping is plain memory owned by this value; every safe
// access goes through the kernel, so sharing or sending it between threads
// cannot create a data race in Rust code.
unsafe impl Send for Mmap {}
// SAFETY: as above.
unsafe impl Sync for Mmap {}

impl Mmap {
    fn empty(access: Access, label: String) -> Self {
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            page_offset: 0,
            access,
            label,
        }
    }

    /// What is mapped, as errors name it: the file's path (from
    /// `/proc/self/fd`), `memfd:NAME`, or `anonymous memory`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The same mapping, named `label` in its errors (a shared memory
    /// object's `/name`, say).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len - self.page_offset
    }

    /// Whether the mapping is empty (an empty file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the mapping can be written.
    pub fn is_writable(&self) -> bool {
        self.access != Access::ReadOnly
    }

    /// Address of the first byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.as_mut_ptr()
    }

    /// Address of the first byte, for writing (only valid if
    /// [`is_writable`](Self::is_writable)).
    pub fn as_mut_ptr(&self) -> *mut u8 {
        // SAFETY: page_offset <= len, so this stays within (or one past) the mapping.
        unsafe { self.ptr.as_ptr().add(self.page_offset) }
    }

    fn range(&self, op: &'static str, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => {
                // SAFETY: offset + len is within the mapping, checked above.
                Ok(unsafe { self.as_mut_ptr().add(offset) })
            }
            _ => Err(Error::new(
                op,
                &self.label,
                Cause::OverLimit {
                    requested: (offset as u64).saturating_add(len as u64),
                    limit: self.len() as u64,
                    limit_name: "the mapping's length",
                },
            )),
        }
    }

    fn copy_error(&self, op: &'static str, e: io::Error) -> Error {
        if e.raw_os_error() == Some(libc::EFAULT) {
            Error::new(op, &self.label, Cause::Truncated)
        } else {
            Error::new(op, &self.label, e)
        }
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// # Errors
    ///
    /// [`Cause::OverLimit`] if the range is outside the mapping;
    /// [`Cause::Truncated`] if the object shrank under it.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let src = self.range("read from", offset, buf.len())?;
        // SAFETY: `buf` is valid for writes of its length; `src` is in this
        // address space (checked range) and is read by the kernel.
        unsafe { sys::kernel_copy(buf.as_mut_ptr(), src, buf.len(), true) }.map_err(|e| self.copy_error("read from", e))
    }

    /// Copies `data` into the mapping at `offset`.
    ///
    /// # Errors
    ///
    /// As [`read_at`](Self::read_at), and `EACCES` for a read-only mapping.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        if !self.is_writable() {
            return Err(Error::new(
                "write to",
                &self.label,
                io::Error::from_raw_os_error(libc::EACCES),
            ));
        }
        let dst = self.range("write to", offset, data.len())?;
        // SAFETY: `data` is valid for reads of its length (the kernel only
        // reads it); `dst` is a checked range of a writable mapping.
        unsafe { sys::kernel_copy(data.as_ptr().cast_mut(), dst, data.len(), false) }
            .map_err(|e| self.copy_error("write to", e))
    }

    /// Reads a plain-old-data value stored at `offset` (any alignment).
    pub fn read<T: bytemuck::Pod>(&self, offset: usize) -> Result<T> {
        let mut value = T::zeroed();
        self.read_at(offset, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Stores a plain-old-data value at `offset` (any alignment).
    pub fn write<T: bytemuck::Pod>(&self, offset: usize, value: &T) -> Result<()> {
        self.write_at(offset, bytemuck::bytes_of(value))
    }

    /// Writes `len` bytes of the mapping starting at `offset` to `out` with
    /// `write(2)` straight from the mapping, retrying short writes.
    ///
    /// # Errors
    ///
    /// [`Cause::Truncated`] if the object shrank (the part before that was
    /// written); `EPIPE` if `out` is a pipe with no reader.
    pub fn write_to(&self, out: impl AsFd, offset: usize, len: usize) -> Result<()> {
        let at = self.range("write out", offset, len)?;
        // SAFETY: `at..at+len` is within the mapping; the kernel reads it.
        unsafe { sys::write_all_raw(out.as_fd(), at, len) }.map_err(|e| self.copy_error("write out", e))
    }

    /// `msync(MS_SYNC)`—Writes changes in a shared file mapping back to the
    /// file and waits for it.
    ///
    /// # References
    ///
    /// - [`msync(2)`](https://man7.org/linux/man-pages/man2/msync.2.html)
    #[doc(alias = "msync")]
    pub fn flush(&self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: the range is exactly this mapping.
        sys::retry(|| unsafe { rustix::mm::msync(self.ptr.as_ptr().cast(), self.len, MsyncFlags::SYNC) })
            .context("flush", &self.label)
    }

    /// The mapping as a slice.
    ///
    /// # Safety
    ///
    /// While the slice lives, the mapped object must not be truncated
    /// (`SIGBUS`) and no process may write the mapped range (data race).
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the range is mapped and readable; the caller rules out
        // truncation and concurrent writes.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The mapping as a mutable slice.
    ///
    /// # Safety
    ///
    /// As [`as_slice`](Self::as_slice), and the mapping must be writable.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the range is mapped; `&mut self` rules out other views in
        // this process; the caller rules out the rest.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len()) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: this value owns the mapping and no reference into it
            // can outlive `self` (the unsafe slices borrow `self`).
            let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

impl fmt::Debug for Mmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mmap")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len())
            .field("writable", &self.is_writable())
            .finish()
    }
}

/// How [`copy_file`] wrote a file out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copied {
    /// Through a read-only mapping handed to `write(2)`: this many bytes.
    Mapped(u64),
    /// With `read(2)`, for a file that cannot be mapped but reads in order
    /// (a procfs or sysfs file whose size reads 0, a pipe): this many bytes.
    Read(u64),
}

/// Writes the whole of `file` to `out` the way `cat(1)` would, mapping it
/// when it can be mapped: what `ipcraft mmap cat` does.
///
/// - A regular file is mapped read-only and the mapping is handed to
///   `write(2)`; if it shrinks meanwhile, the result is
///   [`Cause::Truncated`], never `SIGBUS`. An empty file writes nothing.
/// - A regular file whose size reads 0 (procfs, sysfs), one on a file
///   system that cannot map it (`ENODEV`), and an anonymous pipe (such as
///   `/dev/stdin` fed by `|`) are read with `read(2)` to their end.
/// - Anything else is refused with [`Cause::WrongType`]: a named FIFO
///   (use [`fifo`](crate::fifo)), a device, a socket, a directory. Open
///   `file` with `O_NONBLOCK` so that opening a FIFO cannot hang; this
///   function clears it before reading.
///
/// # Errors
///
/// As above, and the OS errors of `read`/`write`; `EPIPE` (as
/// [`io::ErrorKind::BrokenPipe`]) when `out` is a pipe with no reader.
///
/// # References
///
/// - [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html)
/// - [`read(2)`](https://man7.org/linux/man-pages/man2/read.2.html)
pub fn copy_file(file: impl AsFd, out: impl AsFd) -> Result<Copied> {
    use rustix::fs::FileType;
    let (file, out) = (file.as_fd(), out.as_fd());
    let label = file_label(file);
    let stat = sys::retry(|| rustix::fs::fstat(file)).context("print", &label)?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile if stat.st_size > 0 => match MmapOptions::new().map(file) {
            Ok(map) => {
                map.write_to(out, 0, map.len())?;
                return Ok(Copied::Mapped(map.len() as u64));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
            Err(e) => return Err(e),
        },
        FileType::RegularFile => {}
        FileType::Fifo if is_anonymous_pipe(file) => {}
        other => {
            let found = crate::object::type_name(other);
            let found = if other == FileType::Fifo { "a named FIFO" } else { found };
            return Err(Error::new(
                "print",
                &label,
                Cause::WrongType {
                    expected: "file that can be mapped or read in order",
                    found,
                },
            ));
        }
    }
    sys::set_nonblocking(file, false).context("print", &label)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = sys::retry(|| rustix::io::read(file, &mut buf)).context("read", &label)?;
        if n == 0 {
            return Ok(Copied::Read(total));
        }
        // SAFETY: the first `n` bytes of `buf` are initialised and valid for reads.
        unsafe { sys::write_all_raw(out, buf.as_ptr(), n) }.context("write out", &label)?;
        total += n as u64;
    }
}

/// Whether `fd` is an anonymous pipe (on pipefs) rather than a named FIFO.
fn is_anonymous_pipe(fd: BorrowedFd<'_>) -> bool {
    const PIPEFS_MAGIC: i64 = 0x5049_5045;
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    sys::retry(|| rustix::fs::fstatfs(fd)).is_ok_and(|s| s.f_type as i64 == PIPEFS_MAGIC)
}
