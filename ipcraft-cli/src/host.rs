//! Every IPC object on this host and who holds it: `/dev/shm`,
//! `/dev/mqueue`, FIFOs and Unix sockets held open, memfds, read from
//! `/proc` with the procfs crate. What `ipcraft ls` prints and `ipcraft gc`
//! decides on.
//!
//! A process or file that vanishes mid-scan is skipped, never an error;
//! processes this user may not inspect are simply not seen as holders.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ipcraft::channel::{ChannelOptions, ChannelStat, SideState};
use ipcraft::mq::MqOptions;
use ipcraft::service::{ServiceOptions, ServiceStat};
use ipcraft::topic::{TopicOptions, TopicStat};
use procfs::process::{FDTarget, MMapPath};
use rustix::fs::{makedev, FileType};

/// A file's identity: device and inode.
type FileId = (u64, u64);

/// One IPC object.
#[derive(Debug)]
pub struct Entry {
    /// `channel`, `topic`, `service`, `shm`, `semaphore`, `mqueue`,
    /// `fifo`, `socket`, `memfd`.
    pub kind: &'static str,
    /// `/name` for POSIX objects, a path for FIFOs and sockets, `@name`
    /// for abstract sockets, `memfd:NAME` for memfds.
    pub name: String,
    /// Owner, when known.
    pub uid: Option<u32>,
    /// Permission bits, when there is a file.
    pub mode: Option<u32>,
    /// Bytes.
    pub size: Option<u64>,
    /// Seconds since the object last changed.
    pub age_secs: Option<u64>,
    /// Processes that have it open or mapped (this process left out).
    pub holders: BTreeSet<u32>,
    /// An ipcraft channel's, topic's or service's state.
    pub object: Option<Object>,
    /// Messages waiting in a queue (when it could be opened to ask).
    pub messages: Option<usize>,
    /// A memfd's seals, as `fcntl(F_GET_SEALS)` names them.
    pub seals: Option<String>,
}

impl Entry {
    /// `alive` (a side or holder is alive), `dead` (an ipcraft object
    /// whose attached process died, with no live side or holder), or
    /// `idle`.
    pub fn state(&self) -> &'static str {
        match &self.object {
            Some(o) if o.is_stale() && self.holders.is_empty() => "dead",
            Some(o) if o.sides().iter().any(|(_, s)| matches!(s, SideState::Alive(_))) => "alive",
            _ if !self.holders.is_empty() => "alive",
            _ => "idle",
        }
    }
}

/// The first 8 bytes of the shared memory object `name` (an ipcraft
/// object's magic), read with `read(2)` (never a mapping another process
/// could shrink) through a descriptor that followed no link.
fn magic(name: &str) -> Option<[u8; 8]> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(format!("{}{name}", ipcraft::shm::SHM_DIR))
        .ok()?;
    if !file.metadata().ok()?.file_type().is_file() {
        return None;
    }
    let mut magic = [0u8; 8];
    file.read_exact_at(&mut magic, 0).ok()?;
    Some(magic)
}

/// What an ipcraft object in /dev/shm says about itself.
#[derive(Debug)]
pub enum Object {
    Channel(ChannelStat),
    /// A channel made for several senders: each sender's lane.
    Lanes(Vec<ChannelStat>),
    Topic(TopicStat),
    Service(ServiceStat),
}

impl Object {
    /// Reads the named object's state, if it is an ipcraft object, by its
    /// magic: one read of its first bytes, then the one stat that fits
    /// (read only; another user's object too).
    fn read(name: &str) -> Option<Self> {
        match &magic(name)? {
            b"IPCKCHAN" => ChannelOptions::new()
                .allow_foreign(true)
                .stat(name)
                .ok()
                .map(Object::Channel),
            // A group of lanes: a many-sender channel or a service.
            b"IPCKMANY" => match ChannelOptions::new().allow_foreign(true).stat_lanes(name) {
                Ok(lanes) => Some(Object::Lanes(lanes)),
                Err(_) => ServiceOptions::new()
                    .allow_foreign(true)
                    .stat(name)
                    .ok()
                    .map(Object::Service),
            },
            b"IPCKTOPC" => TopicOptions::new()
                .allow_foreign(true)
                .stat(name)
                .ok()
                .map(Object::Topic),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Object::Channel(_) | Object::Lanes(_) => "channel",
            Object::Topic(_) => "topic",
            Object::Service(_) => "service",
        }
    }

    /// Each side that ever attached: its role (`sender`, `sender1`,
    /// `subscriber3`, `client0`, ...) and state.
    pub fn sides(&self) -> Vec<(String, SideState)> {
        let mut sides = Vec::new();
        match self {
            Object::Channel(stat) => {
                sides.push(("sender".to_owned(), stat.sender));
                sides.push(("receiver".to_owned(), stat.receiver));
            }
            Object::Lanes(lanes) => {
                // The receiver attaches to every lane; its state is the one
                // any lane shows.
                let receiver = lanes.iter().map(|l| l.receiver).find(|s| *s != SideState::Absent);
                sides.push(("receiver".to_owned(), receiver.unwrap_or(SideState::Absent)));
                for (i, lane) in lanes.iter().enumerate() {
                    sides.push((format!("sender{i}"), lane.sender));
                }
            }
            Object::Topic(stat) => {
                sides.push(("publisher".to_owned(), stat.publisher));
                for (slot, state, _) in &stat.subscribers {
                    sides.push((format!("subscriber{slot}"), *state));
                }
            }
            Object::Service(stat) => {
                sides.push(("server".to_owned(), stat.server));
                for (slot, state) in &stat.slots {
                    sides.push((format!("client{slot}"), *state));
                }
            }
        }
        sides.retain(|(_, s)| *s != SideState::Absent);
        sides
    }

    /// Whether it is what a crash leaves behind (see
    /// [`ChannelStat::is_stale`]).
    pub fn is_stale(&self) -> bool {
        match self {
            Object::Channel(stat) => stat.is_stale(),
            Object::Lanes(lanes) => {
                let sides = self.sides();
                !sides.iter().any(|(_, s)| matches!(s, SideState::Alive(_))) && lanes.iter().any(|l| l.is_stale())
            }
            Object::Topic(stat) => stat.is_stale(),
            Object::Service(stat) => stat.is_stale(),
        }
    }

    /// Ring bytes (per lane for a many-sender channel or a service).
    pub fn capacity(&self) -> u64 {
        match self {
            Object::Channel(stat) => stat.capacity,
            Object::Lanes(lanes) => lanes.first().map_or(0, |l| l.capacity),
            Object::Topic(stat) => stat.capacity,
            Object::Service(stat) => stat.capacity,
        }
    }

    /// Bytes sent and not yet received (a topic: not yet read by its
    /// slowest subscriber).
    pub fn in_flight(&self) -> u64 {
        match self {
            Object::Channel(stat) => stat.in_flight,
            Object::Lanes(lanes) => lanes.iter().map(|l| l.in_flight).sum(),
            Object::Topic(stat) => stat.subscribers.iter().map(|(_, _, unread)| *unread).max().unwrap_or(0),
            Object::Service(_) => 0,
        }
    }

    /// How many of what it is made for: `senders=N`, `subscribers=N`,
    /// `clients=N` (nothing for a one-to-one channel).
    pub fn size_note(&self) -> Option<String> {
        match self {
            Object::Channel(_) => None,
            Object::Lanes(lanes) => Some(format!("senders={}", lanes.len())),
            Object::Topic(stat) => Some(format!("subscribers={}", stat.slots)),
            Object::Service(stat) => Some(format!("clients={}", stat.clients)),
        }
    }
}

/// Who holds what, from every process's descriptors and mappings.
#[derive(Default)]
struct Holders {
    /// Files held open or mapped, by identity.
    files: BTreeMap<FileId, BTreeSet<u32>>,
    /// Socket inodes held open.
    sockets: BTreeMap<u64, BTreeSet<u32>>,
    /// FIFOs held open (named ones, not anonymous pipes): identity → path.
    fifos: BTreeMap<FileId, PathBuf>,
    /// memfds held open: identity → (name, one `/proc/PID/fd/N` to reach it).
    memfds: BTreeMap<FileId, (String, PathBuf)>,
    /// Each process's real uid, for objects with no file of their own.
    uids: BTreeMap<u32, u32>,
}

fn scan_holders() -> Holders {
    let me = std::process::id();
    let mut h = Holders::default();
    let Ok(processes) = procfs::process::all_processes() else {
        return h;
    };
    for process in processes.flatten() {
        let pid = process.pid() as u32;
        if pid == me {
            continue;
        }
        if let Ok(uid) = process.uid() {
            h.uids.insert(pid, uid);
        }
        if let Ok(fds) = process.fd() {
            for info in fds.flatten() {
                let link = PathBuf::from(format!("/proc/{pid}/fd/{}", info.fd));
                match info.target {
                    FDTarget::Socket(inode) => {
                        h.sockets.entry(inode).or_default().insert(pid);
                    }
                    FDTarget::Path(path) => {
                        let Ok(meta) = std::fs::metadata(&link) else { continue };
                        let id = (meta.dev(), meta.ino());
                        h.files.entry(id).or_default().insert(pid);
                        if meta.file_type().is_fifo() && path.is_absolute() {
                            h.fifos.entry(id).or_insert(path);
                        }
                    }
                    FDTarget::MemFD(name) => {
                        let Ok(meta) = std::fs::metadata(&link) else { continue };
                        let id = (meta.dev(), meta.ino());
                        h.files.entry(id).or_default().insert(pid);
                        h.memfds.entry(id).or_insert((name, link));
                    }
                    _ => {}
                }
            }
        }
        if let Ok(maps) = process.maps() {
            for map in maps {
                if map.inode == 0 || !matches!(map.pathname, MMapPath::Path(_)) {
                    continue;
                }
                let dev = makedev(map.dev.0 as u32, map.dev.1 as u32);
                h.files.entry((dev, map.inode)).or_default().insert(pid);
            }
        }
    }
    h
}

/// What to list.
pub struct Scope {
    /// Every user's objects, not only this user's.
    pub all_users: bool,
}

/// Every IPC object in scope, sorted by kind and name, and notes about
/// what could not be listed (such as an unmounted `/dev/mqueue`).
pub fn scan(scope: &Scope) -> (Vec<Entry>, Vec<String>) {
    let me = rustix::process::geteuid().as_raw();
    let mine = |uid: Option<u32>| scope.all_users || uid == Some(me);
    let holders = scan_holders();
    let held = |id: FileId| holders.files.get(&id).cloned().unwrap_or_default();
    let mut entries = Vec::new();
    let mut notes = Vec::new();

    for (path, meta) in dir_entries(Path::new(ipcraft::shm::SHM_DIR)) {
        if !meta.file_type().is_file() || !mine(Some(meta.uid())) {
            continue;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("/{file_name}");
        let object = if file_name.starts_with("sem.") {
            None
        } else {
            Object::read(&name)
        };
        let kind = match &object {
            Some(o) => o.kind(),
            None if file_name.starts_with("sem.") => "semaphore",
            None => "shm",
        };
        entries.push(Entry {
            kind,
            name,
            object,
            ..file_entry(&meta, held((meta.dev(), meta.ino())))
        });
    }

    match ipcraft::mq::list() {
        Ok(names) => {
            for name in names {
                let path = Path::new(ipcraft::mq::MQUEUE_DIR).join(name.file_name());
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if !mine(Some(meta.uid())) {
                    continue;
                }
                let messages = MqOptions::new()
                    .read(true)
                    .write(false)
                    .nonblocking(true)
                    .allow_foreign(true)
                    .open(&name)
                    .and_then(|q| q.attributes())
                    .ok()
                    .map(|a| a.cur_msgs);
                // The queue's "size" is the bytes its messages hold (QSIZE).
                let qsize = std::fs::read_to_string(&path).ok().and_then(|s| {
                    s.split_whitespace()
                        .find_map(|f| f.strip_prefix("QSIZE:"))
                        .and_then(|n| n.parse().ok())
                });
                entries.push(Entry {
                    kind: "mqueue",
                    name: name.to_string(),
                    messages,
                    size: qsize,
                    ..file_entry(&meta, held((meta.dev(), meta.ino())))
                });
            }
        }
        Err(e) => notes.push(format!("message queues: {}", e.cause())),
    }

    for (&id, path) in &holders.fifos {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        if (meta.dev(), meta.ino()) != id || !mine(Some(meta.uid())) {
            continue;
        }
        entries.push(Entry {
            kind: "fifo",
            name: path.display().to_string(),
            ..file_entry(&meta, held(id))
        });
    }

    if let Ok(sockets) = procfs::net::unix() {
        let mut by_path: BTreeMap<PathBuf, BTreeSet<u32>> = BTreeMap::new();
        for s in sockets {
            let Some(path) = s.path else { continue };
            let pids = holders.sockets.get(&s.inode).cloned().unwrap_or_default();
            by_path.entry(path).or_default().extend(pids);
        }
        for (path, pids) in by_path {
            let text = path.display().to_string();
            let entry = match std::fs::symlink_metadata(&path) {
                Ok(meta) if !text.starts_with('@') => file_entry(&meta, pids),
                _ => Entry {
                    uid: pids.iter().find_map(|p| holders.uids.get(p).copied()),
                    ..bare_entry(pids)
                },
            };
            if mine(entry.uid) {
                entries.push(Entry {
                    kind: "socket",
                    name: text,
                    ..entry
                });
            }
        }
    }

    for (&id, (name, link)) in &holders.memfds {
        let Ok(meta) = std::fs::metadata(link) else { continue };
        if !mine(Some(meta.uid())) {
            continue;
        }
        let seals = std::fs::File::open(link)
            .ok()
            .and_then(|f| rustix::fs::fcntl_get_seals(&f).ok())
            .map(|s| format!("{s:?}"));
        entries.push(Entry {
            kind: "memfd",
            name: format!("memfd:{}", name.trim_end_matches(" (deleted)")),
            seals,
            ..file_entry(&meta, held(id))
        });
    }

    entries.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    (entries, notes)
}

/// The entries of `dir` with their `lstat`, skipping any that vanish.
fn dir_entries(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.flatten()
        .filter_map(|e| {
            let path = e.path();
            std::fs::symlink_metadata(&path).ok().map(|m| (path, m))
        })
        .collect()
}

fn bare_entry(holders: BTreeSet<u32>) -> Entry {
    Entry {
        kind: "",
        name: String::new(),
        uid: None,
        mode: None,
        size: None,
        age_secs: None,
        holders,
        object: None,
        messages: None,
        seals: None,
    }
}

/// Owner, mode, size and age from `meta`.
fn file_entry(meta: &std::fs::Metadata, holders: BTreeSet<u32>) -> Entry {
    let age_secs = meta
        .modified()
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs());
    let is_socket = FileType::from_raw_mode(meta.mode()) == FileType::Socket;
    Entry {
        uid: Some(meta.uid()),
        mode: Some(meta.mode() & 0o7777),
        size: (!is_socket).then(|| meta.size()),
        age_secs,
        ..bare_entry(holders)
    }
}
