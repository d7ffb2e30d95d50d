//! `disks.erase-many`: whole-disk overwrites on host threads, so that one
//! single-threaded guest can erase several devices at the same time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::disks::DiskHandle;
use super::progress::ProgressSink;
use crate::bindings::latest::ironic::hardware::disks::{DiskError, ZeroPass};

/// Bytes per write of a random or zero pass: few syscalls, little memory
/// per worker.
const CHUNK: u64 = 4 << 20;
/// Per write-zeroes request of a `cheapest` pass; only sets the progress
/// granularity (the kernel splits requests itself).
const ZERO_CHUNK: u64 = 1 << 30;

/// One disk to erase.
pub(crate) struct Job {
    pub disk: DiskHandle,
    pub random_passes: u32,
    pub zeroes: ZeroPass,
}

/// What [`run`] did.
pub(crate) struct Outcome {
    /// One per job, in order.
    pub results: Vec<Result<(), DiskError>>,
    /// Most jobs that were running at the same moment.
    pub peak: usize,
}

/// Run `jobs`, at most `concurrency` at a time (0 counts as 1), until each
/// has finished or failed, or `deadline` passes.
pub(crate) fn run(
    jobs: &[Job],
    concurrency: u32,
    deadline: Instant,
    progress: Option<&ProgressSink>,
) -> Outcome {
    let workers = (concurrency.max(1) as usize).min(jobs.len());
    let next = AtomicUsize::new(0);
    let running = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<(), DiskError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    if let Some(p) = progress {
        for job in jobs {
            p.device(job.disk.name(), Some(0), "waiting");
        }
    }
    let work = || loop {
        let index = next.fetch_add(1, Ordering::SeqCst);
        let Some(job) = jobs.get(index) else {
            break;
        };
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        let result = erase_one(job, deadline, progress);
        running.fetch_sub(1, Ordering::SeqCst);
        if let Some(p) = progress {
            match &result {
                Ok(()) => p.device(job.disk.name(), Some(100), "erased"),
                Err(_) => p.device(job.disk.name(), Some(100), "failed"),
            }
        }
        results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
    };
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for n in 0..workers {
            let spawned = std::thread::Builder::new()
                .name(format!("erase-{n}"))
                .spawn_scoped(scope, work);
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => tracing::warn!("cannot start erase worker {n}: {e}"),
            }
        }
        if handles.is_empty() {
            // No thread at all: still erase, one after another.
            work();
        }
        for h in handles {
            if h.join().is_err() {
                tracing::error!("an erase worker panicked");
            }
        }
    });
    let results = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                Err(DiskError::Io(format!(
                    "{}: the erase worker stopped before finishing",
                    job.disk.name()
                )))
            })
        })
        .collect();
    Outcome {
        results,
        peak: peak.into_inner(),
    }
}

/// Reports one device's progress when its whole percent changes.
struct DeviceProgress<'a> {
    sink: Option<&'a ProgressSink>,
    name: &'a str,
    total: u64,
    done: u64,
    last: Option<u8>,
}

impl DeviceProgress<'_> {
    fn advance(&mut self, bytes: u64, what: &str, pass_done: u64, pass_size: u64) {
        self.done += bytes;
        let Some(sink) = self.sink else { return };
        let percent = (self.done.saturating_mul(100) / self.total.max(1)).min(100) as u8;
        if self.last != Some(percent) {
            self.last = Some(percent);
            let pass_percent = pass_done.saturating_mul(100) / pass_size.max(1);
            sink.device(self.name, Some(percent), &format!("{what} {pass_percent}%"));
        }
    }
}

fn erase_one(job: &Job, deadline: Instant, sink: Option<&ProgressSink>) -> Result<(), DiskError> {
    let d = &job.disk;
    d.check_writable()?;
    let size = d.size();
    let zero_pass = !matches!(job.zeroes, ZeroPass::None);
    let passes = u64::from(job.random_passes) + u64::from(zero_pass);
    let mut progress = DeviceProgress {
        sink,
        name: d.name(),
        total: passes.saturating_mul(size),
        done: 0,
        last: None,
    };
    let in_time = |what: &str, offset: u64| {
        if Instant::now() >= deadline {
            Err(DiskError::Io(format!(
                "{}: {what}: stopped at offset {offset}: the call's deadline passed",
                d.name()
            )))
        } else {
            Ok(())
        }
    };
    let mut direct = DirectIo::enable(d);
    let mut aligned = AlignedBuffer::new(CHUNK.min(size) as usize);
    let buffer = aligned.as_mut_slice();
    let mut rng = Rng::seeded(d.name());
    for pass in 1..=job.random_passes {
        let what = format!("random pass {pass}/{}", job.random_passes);
        let mut offset = 0;
        while offset < size {
            in_time(&what, offset)?;
            let len = CHUNK.min(size - offset);
            let chunk = &mut buffer[..len as usize];
            rng.fill(chunk);
            direct
                .write(d, chunk, offset)
                .map_err(|e| d.io(&format!("{what}: write at offset {offset}"), e))?;
            offset += len;
            progress.advance(len, &what, offset, size);
        }
    }
    match job.zeroes {
        ZeroPass::None => {}
        ZeroPass::Overwrite => {
            buffer.fill(0);
            let mut offset = 0;
            while offset < size {
                in_time("zero pass", offset)?;
                let len = CHUNK.min(size - offset);
                direct
                    .write(d, &buffer[..len as usize], offset)
                    .map_err(|e| d.io(&format!("zero pass: write at offset {offset}"), e))?;
                offset += len;
                progress.advance(len, "zero pass", offset, size);
            }
        }
        ZeroPass::Cheapest => {
            let mut offset = 0;
            while offset < size {
                in_time("zero pass", offset)?;
                let len = ZERO_CHUNK.min(size - offset);
                d.zero_range(offset, len).map_err(|e| match e {
                    DiskError::Io(m) => DiskError::Io(format!("zero pass at offset {offset}: {m}")),
                    other => other,
                })?;
                offset += len;
                progress.advance(len, "zero pass", offset, size);
            }
        }
    }
    d.sync()
}

/// O_DIRECT on the disk's descriptor for the length of a job, restored on
/// drop. Passes stream the whole device once: through the page cache they
/// would only evict everything else (a ramdisk has little memory) and make
/// concurrent jobs fight over dirty-page throttling. The guest is blocked in
/// `erase-many`, so nothing else uses the descriptor meanwhile. Filesystems
/// without O_DIRECT (tmpfs) keep buffered writes.
struct DirectIo<'a> {
    file: &'a std::fs::File,
    before: Option<rustix::fs::OFlags>,
}

impl<'a> DirectIo<'a> {
    fn enable(disk: &'a DiskHandle) -> DirectIo<'a> {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
        let file = disk.file();
        let before = fcntl_getfl(file)
            .ok()
            .filter(|flags| fcntl_setfl(file, *flags | OFlags::DIRECT).is_ok());
        tracing::debug!(
            disk = disk.name(),
            direct = before.is_some(),
            "erase job I/O"
        );
        DirectIo { file, before }
    }
}

impl DirectIo<'_> {
    /// Write through the disk; a write O_DIRECT refuses (EINVAL: e.g. the
    /// unaligned tail of an odd-sized image) is retried buffered.
    fn write(&mut self, disk: &DiskHandle, data: &[u8], offset: u64) -> std::io::Result<()> {
        match disk.write_at(data, offset) {
            Err(e) if self.before.is_some() && e.raw_os_error() == Some(libc::EINVAL) => {
                self.restore();
                disk.write_at(data, offset)
            }
            other => other,
        }
    }

    fn restore(&mut self) {
        if let Some(flags) = self.before.take() {
            let _ = rustix::fs::fcntl_setfl(self.file, flags);
        }
    }
}

impl Drop for DirectIo<'_> {
    fn drop(&mut self) {
        self.restore();
    }
}

/// A buffer aligned for O_DIRECT (4 KiB covers every logical sector size).
struct AlignedBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuffer {
    const ALIGN: usize = 4096;

    fn new(len: usize) -> AlignedBuffer {
        let storage = vec![0u8; len + Self::ALIGN];
        let start = storage.as_ptr().align_offset(Self::ALIGN);
        AlignedBuffer {
            storage,
            start,
            len,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// xoshiro256++: fast enough that a random pass is bound by the disk. It
/// only needs to be unpredictable enough to overwrite, like shred's ISAAC.
struct Rng([u64; 4]);

impl Rng {
    fn seeded(salt: &str) -> Rng {
        use std::hash::{BuildHasher, RandomState};
        // RandomState's keys come from the OS's random source.
        let state = RandomState::new();
        let mut seed = [0u64; 4];
        for (i, word) in seed.iter_mut().enumerate() {
            *word = state.hash_one((salt, i)) | 1;
        }
        Rng(seed)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        // The state stays in locals inside the loop (registers).
        let [mut a, mut b, mut c, mut d] = self.0;
        let mut next = || {
            let result = a.wrapping_add(d).rotate_left(23).wrapping_add(a);
            let t = b << 17;
            c ^= a;
            d ^= b;
            b ^= c;
            a ^= d;
            c ^= t;
            d = d.rotate_left(45);
            result
        };
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = next().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
        self.0 = [a, b, c, d];
    }
}
