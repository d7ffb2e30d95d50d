//! Watching the managers directory and the grants directory: new, replaced
//! and removed components, and changed grants, take effect without a
//! restart.
//!
//! A dedicated thread waits on inotify (with a periodic rescan as the
//! fallback, e.g. when inotify is unavailable), debounces bursts of events,
//! and only loads a file once it is *stable*: the same metadata and the same
//! content hash on two consecutive scans at least [`WatchOptions::settle`]
//! apart. The file is read into memory once and compiled from that copy, so
//! a component rewritten in place while loaded never affects the running
//! code; a half-written file that happens to look stable is rejected by
//! validation and the previous version keeps running.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::MaybeUninit;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustix::fs::inotify;

use crate::error::HostError;
use crate::manifest::sidecar_path;
use crate::registry::{read_component, wasm_files, Change, Fingerprint};
use crate::Host;

/// How the watcher paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after the last event before scanning, and the interval
    /// between the two scans that must agree before a file is loaded.
    pub settle: Duration,
    /// Full rescan interval when nothing is signalled (the fallback for
    /// missed or unavailable inotify events).
    pub rescan: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            settle: Duration::from_millis(10),
            rescan: Duration::from_secs(1),
        }
    }
}

/// The running watcher; dropping it stops the thread.
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle")
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Host {
    /// Watch the managers directory and apply changes as they settle. The
    /// thread holds only a weak reference: it ends when the host is dropped
    /// or the handle is.
    pub fn watch(self: &Arc<Self>, options: WatchOptions) -> Result<WatchHandle, HostError> {
        let dir = self.managers_dir().to_path_buf();
        let wake = Arc::new(
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|e| HostError::Engine(format!("watcher wake-up eventfd: {e}")))?,
        );
        let grants_dir = self.loader.grant_sources.dir.clone();
        if let Some(g) = &grants_dir {
            if let Err(e) = std::fs::create_dir_all(g) {
                tracing::warn!(dir = %g.display(), "cannot create the grants directory: {e}");
            }
        }
        let notify = match inotify_on(&dir, grants_dir.as_deref()) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "inotify unavailable ({e}); polling every {:?}", options.rescan);
                None
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut watcher = Watcher {
            host: Arc::downgrade(self),
            dir: dir.clone(),
            notify,
            wake: wake.clone(),
            stop: stop.clone(),
            options,
            stamps: HashMap::new(),
            pending: HashMap::new(),
            grants_dir,
            grant_stamps: None,
        };
        let thread = std::thread::Builder::new()
            .name("managers-watch".into())
            .spawn(move || watcher.run())
            .map_err(|e| HostError::Io {
                path: dir.clone(),
                message: format!("starting the managers watcher: {e}"),
            })?;
        tracing::info!(dir = %dir.display(), "watching the managers directory");
        Ok(WatchHandle {
            stop,
            wake,
            thread: Some(thread),
        })
    }
}

fn inotify_on(dir: &Path, grants_dir: Option<&Path>) -> rustix::io::Result<OwnedFd> {
    use inotify::WatchFlags as W;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
    let flags = W::CREATE
        | W::MODIFY
        | W::CLOSE_WRITE
        | W::MOVED_TO
        | W::MOVED_FROM
        | W::DELETE
        | W::ATTRIB;
    inotify::add_watch(&fd, dir, flags)?;
    if let Some(g) = grants_dir {
        // Missing grants directory: the periodic rescan still notices it.
        if let Err(e) = inotify::add_watch(&fd, g, flags) {
            tracing::debug!(dir = %g.display(), "not watching the grants directory with inotify: {e}");
        }
    }
    Ok(fd)
}

/// Metadata that changes whenever a file is written, replaced or renamed
/// over: the cheap test that lets idle scans skip reading files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Option<Stamp>> {
        match std::fs::metadata(path) {
            Ok(m) => Ok(Some(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                len: m.len(),
                mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
                ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The component and its sidecar manifest.
type FileStamp = (Stamp, Option<Stamp>);

enum Woken {
    Stop,
    Event,
    Timeout,
}

struct Watcher {
    host: Weak<Host>,
    dir: PathBuf,
    notify: Option<OwnedFd>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    options: WatchOptions,
    /// Files settled (acted on or found already loaded) at this stamp.
    stamps: HashMap<PathBuf, FileStamp>,
    /// Files seen changing: stamp and fingerprint at the last scan.
    pending: HashMap<PathBuf, (FileStamp, Fingerprint)>,
    /// The grants directory, and its files' stamps at the last scan.
    grants_dir: Option<PathBuf>,
    grant_stamps: Option<BTreeMap<PathBuf, Stamp>>,
}

impl Watcher {
    fn run(&mut self) {
        let mut dirty_since: Option<Instant> = Some(Instant::now());
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let timeout = if dirty_since.is_some() || !self.pending.is_empty() {
                self.options.settle
            } else {
                self.options.rescan
            };
            match self.wait(timeout) {
                Woken::Stop => return,
                Woken::Event => {
                    // Debounce: scan once events stop for `settle`, but not
                    // later than `rescan` after the first one (a writer that
                    // never pauses must not starve the watcher).
                    let first = *dirty_since.get_or_insert_with(Instant::now);
                    if first.elapsed() < self.options.rescan {
                        continue;
                    }
                }
                Woken::Timeout => {}
            }
            dirty_since = None;
            let Some(host) = self.host.upgrade() else {
                return;
            };
            self.scan(&host);
        }
    }

    /// Wait for an inotify event, a stop request or `timeout`.
    fn wait(&self, timeout: Duration) -> Woken {
        let ts = Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = vec![PollFd::new(&*self.wake, PollFlags::IN)];
        if let Some(n) = &self.notify {
            fds.push(PollFd::new(n, PollFlags::IN));
        }
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => Woken::Timeout,
            Ok(_) => {
                if !fds[0].revents().is_empty() {
                    let _ = rustix::io::read(&*self.wake, &mut [0u8; 8]);
                    if self.stop.load(Ordering::Relaxed) {
                        return Woken::Stop;
                    }
                }
                drop(fds);
                self.drain();
                Woken::Event
            }
            Err(rustix::io::Errno::INTR) => Woken::Event,
            Err(e) => {
                tracing::warn!("managers watcher: poll failed ({e}); sleeping");
                std::thread::sleep(timeout);
                Woken::Timeout
            }
        }
    }

    /// Discard queued inotify events: they only say "look again".
    fn drain(&self) {
        let Some(n) = &self.notify else { return };
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(n, &mut buf);
        while reader.next().is_ok() {}
    }

    fn stamp(file: &Path) -> std::io::Result<Option<FileStamp>> {
        let Some(own) = Stamp::of(file)? else {
            return Ok(None);
        };
        Ok(Some((own, Stamp::of(&sidecar_path(file))?)))
    }

    /// Re-read the grants when a file of the grants directory changed.
    fn scan_grants(&mut self, host: &Host) {
        let Some(dir) = &self.grants_dir else { return };
        let mut now = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                if crate::grants::is_grant_file(&path) {
                    if let Ok(Some(stamp)) = Stamp::of(&path) {
                        now.insert(path, stamp);
                    }
                }
            }
        }
        if self.grant_stamps.as_ref() == Some(&now) {
            return;
        }
        self.grant_stamps = Some(now);
        if let Err(e) = host.runtime.block_on(host.reload_grants()) {
            tracing::error!("grants not changed: {e}");
        }
    }

    /// One pass: find stable changes and removals and apply them together.
    fn scan(&mut self, host: &Host) {
        self.scan_grants(host);
        let files = match wasm_files(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("managers watcher: {e}");
                return;
            }
        };
        let mut changes = Vec::new();
        for file in &files {
            let stamp = match Self::stamp(file) {
                Ok(Some(s)) => s,
                Ok(None) => continue, // Gone since the listing; next scan.
                Err(e) => {
                    tracing::debug!(file = %file.display(), "managers watcher: {e}");
                    continue;
                }
            };
            if !self.pending.contains_key(file) && self.stamps.get(file) == Some(&stamp) {
                continue;
            }
            let (bytes, fingerprint) = match read_component(file) {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(file = %file.display(), "managers watcher: {e}");
                    continue;
                }
            };
            if host.fingerprint_of(file) == Some(fingerprint) {
                // Already processed (e.g. loaded at start, or touched).
                self.pending.remove(file);
                self.stamps.insert(file.clone(), stamp);
                continue;
            }
            match self.pending.get(file) {
                Some(&(s, f)) if s == stamp && f == fingerprint => {
                    self.pending.remove(file);
                    self.stamps.insert(file.clone(), stamp);
                    changes.push(Change::Upsert {
                        file: file.clone(),
                        bytes,
                        fingerprint,
                        force: false,
                    });
                }
                _ => {
                    self.pending.insert(file.clone(), (stamp, fingerprint));
                }
            }
        }
        let present: HashSet<&PathBuf> = files.iter().collect();
        self.pending.retain(|f, _| present.contains(f));
        self.stamps.retain(|f, _| present.contains(f));
        for known in host.known_files() {
            if known.parent() == Some(self.dir.as_path()) && !present.contains(&known) {
                changes.push(Change::Remove {
                    file: known,
                    forget: true,
                });
            }
        }
        if changes.is_empty() {
            return;
        }
        let report = host.runtime.block_on(host.apply(changes));
        if !report.is_empty() {
            tracing::info!(added = ?report.added, replaced = ?report.replaced, removed = ?report.removed, rejected = report.rejected.len(), "managers directory changed");
        }
    }
}
