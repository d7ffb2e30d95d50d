//! The overlapped stream: producer (async: HTTP body or a local file) →
//! hasher thread → writer thread, with a fixed pool of aligned buffers.
//!
//! Three stages so the digest (one core, ~1.9 GB/s sha256) and the device
//! writes (mostly waiting on I/O) overlap instead of adding up. The buffer
//! pool bounds memory ([`POOL`] × [`BUF_SIZE`]) and provides backpressure:
//! the producer waits for a buffer the writer has returned.

use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::checksum::Algorithm;
use crate::error::ImageError;
use crate::target::{is_zero, AlignedBuf, GuardedTarget};

/// Buffer size: large writes for O_DIRECT, few syscalls.
pub(crate) const BUF_SIZE: usize = 4 << 20;
/// Buffers in flight (memory = POOL × BUF_SIZE = 24 MiB).
pub(crate) const POOL: usize = 6;
/// Zero-run granule. Aligned runs of zeros at least this long are issued as
/// write-zeroes; 256 KiB catches the typical sparse filesystem layout while
/// keeping the number of fallocate/BLKZEROOUT calls low (adjacent runs are
/// coalesced anyway).
pub(crate) const ZERO_GRANULE: usize = 256 << 10;

/// Progress callback: (bytes received, total if known).
pub type ByteProgressFn = Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// Called with the first buffer (offset 0) before anything of it is written.
pub(crate) type InspectFn = Box<dyn FnMut(&[u8]) -> Result<(), ImageError> + Send>;

enum Msg {
    Data {
        offset: u64,
        buf: AlignedBuf,
    },
    /// The producer restarts from offset 0 (server ignored Range).
    Reset,
}

/// What the writer did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteStats {
    pub(crate) data_bytes: u64,
    pub(crate) busy: Duration,
}

pub(crate) struct Pipeline {
    pool_rx: mpsc::Receiver<AlignedBuf>,
    tx: Option<mpsc::UnboundedSender<Msg>>,
    cur: Option<AlignedBuf>,
    /// Stream offset of `cur`'s first byte.
    offset: u64,
    hasher: JoinHandle<Option<String>>,
    writer: JoinHandle<Result<(GuardedTarget, WriteStats), ImageError>>,
    inspect: Option<InspectFn>,
    progress: Option<ByteProgressFn>,
    pub(crate) total: Option<u64>,
    pub(crate) restarts: u32,
    /// Time the producer waited for a free buffer (backpressure).
    waited: Duration,
    /// Capacity of a block-device target: the stream may not exceed it.
    pub(crate) limit: Option<(std::path::PathBuf, u64)>,
}

impl Pipeline {
    /// Starts the hasher and writer threads. `algorithm = None` skips hashing
    /// (copying an already verified work file).
    pub(crate) fn start(
        target: GuardedTarget,
        algorithm: Option<Algorithm>,
        inspect: Option<InspectFn>,
        progress: Option<ByteProgressFn>,
    ) -> Pipeline {
        let (pool_tx, pool_rx) = mpsc::channel(POOL);
        for _ in 0..POOL {
            // Cannot fail: capacity == POOL and the receiver is alive.
            let _ = pool_tx.try_send(AlignedBuf::new(BUF_SIZE));
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let (wtx, wrx) = std_mpsc::channel::<Msg>();
        let hasher = tokio::task::spawn_blocking(move || {
            let mut h = algorithm.map(Algorithm::hasher);
            let mut busy = Duration::ZERO;
            while let Some(msg) = rx.blocking_recv() {
                match &msg {
                    Msg::Data { buf, .. } => {
                        if let Some(h) = h.as_mut() {
                            let t = Instant::now();
                            h.update(buf.as_slice());
                            busy += t.elapsed();
                        }
                    }
                    Msg::Reset => h = algorithm.map(Algorithm::hasher),
                }
                if wtx.send(msg).is_err() {
                    return None; // writer failed; its error is reported instead
                }
            }
            tracing::debug!(busy_ms = busy.as_millis() as u64, "hasher done");
            h.map(|h| h.finish_hex())
        });
        let writer = tokio::task::spawn_blocking(move || writer_loop(target, wrx, pool_tx));
        Pipeline {
            pool_rx,
            tx: Some(tx),
            cur: None,
            offset: 0,
            hasher,
            writer,
            inspect,
            progress,
            total: None,
            restarts: 0,
            waited: Duration::ZERO,
            limit: None,
        }
    }

    /// Bytes accepted so far (the resume position).
    pub(crate) fn position(&self) -> u64 {
        self.offset + self.cur.as_ref().map_or(0, |b| b.len() as u64)
    }

    /// Appends bytes to the stream.
    pub(crate) async fn push(&mut self, mut data: &[u8]) -> Result<(), ImageError> {
        self.check_limit(
            self.total
                .unwrap_or(0)
                .max(self.position() + data.len() as u64),
        )?;
        while !data.is_empty() {
            if self.cur.is_none() {
                let t = Instant::now();
                let got = self.pool_rx.recv().await;
                self.waited += t.elapsed();
                match got {
                    Some(mut b) => {
                        b.clear();
                        self.cur = Some(b);
                    }
                    None => return Err(self.writer_failure().await),
                }
            }
            let Some(buf) = self.cur.as_mut() else {
                continue;
            };
            let n = buf.fill_from(data);
            data = &data[n..];
            if buf.is_full() {
                self.send_current().await?;
            }
        }
        Ok(())
    }

    /// Reads from `reader` straight into pipeline buffers until EOF.
    pub(crate) async fn push_reader<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        mut reader: R,
    ) -> Result<(), ImageError> {
        use tokio::io::AsyncReadExt;
        loop {
            if self.cur.is_none() {
                match self.pool_rx.recv().await {
                    Some(mut b) => {
                        b.clear();
                        self.cur = Some(b);
                    }
                    None => return Err(self.writer_failure().await),
                }
            }
            let Some(buf) = self.cur.as_mut() else {
                continue;
            };
            let n = reader
                .read(buf.spare_mut())
                .await
                .map_err(|e| ImageError::Internal(anyhow!("reading work file: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            buf.advance(n);
            if buf.is_full() {
                self.send_current().await?;
            }
        }
    }

    /// Fails early (before the body is written) when the image cannot fit.
    fn check_limit(&self, bytes: u64) -> Result<(), ImageError> {
        match &self.limit {
            Some((device, size)) if bytes > *size => Err(ImageError::TooLarge {
                device: device.clone(),
                image_bytes: bytes,
                device_bytes: *size,
            }),
            _ => Ok(()),
        }
    }

    async fn send_current(&mut self) -> Result<(), ImageError> {
        let Some(buf) = self.cur.take() else {
            return Ok(());
        };
        if buf.len() == 0 {
            return Ok(());
        }
        let offset = self.offset;
        if offset == 0 {
            if let Some(inspect) = self.inspect.as_mut() {
                inspect(buf.as_slice())?;
            }
        }
        self.offset += buf.len() as u64;
        if let Some(p) = &self.progress {
            p(self.offset, self.total);
        }
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(Msg::Data { offset, buf }).is_ok());
        if sent != Some(true) {
            return Err(self.writer_failure().await);
        }
        Ok(())
    }

    /// Drops everything received and starts again at offset 0.
    pub(crate) fn reset(&mut self) {
        if let Some(b) = self.cur.as_mut() {
            b.clear();
        }
        self.offset = 0;
        self.restarts += 1;
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Reset);
        }
    }

    async fn writer_failure(&mut self) -> ImageError {
        self.tx = None;
        match (&mut self.writer).await {
            Ok(Err(e)) => e,
            Ok(Ok(_)) => ImageError::Internal(anyhow!("image writer stopped early")),
            Err(e) => ImageError::Internal(anyhow!("image writer panicked: {e}")),
        }
    }

    /// Flushes the last partial buffer and waits for both threads. Returns
    /// the target (not yet committed), the hex digest and the stream length.
    pub(crate) async fn finish(
        mut self,
    ) -> Result<(GuardedTarget, Option<String>, u64, WriteStats), ImageError> {
        self.send_current().await?;
        let len = self.offset;
        self.tx = None;
        let digest = (&mut self.hasher)
            .await
            .map_err(|e| ImageError::Internal(anyhow!("hasher panicked: {e}")))?;
        let (target, stats) = (&mut self.writer)
            .await
            .map_err(|e| ImageError::Internal(anyhow!("image writer panicked: {e}")))??;
        tracing::debug!(
            producer_waited_ms = self.waited.as_millis() as u64,
            writer_busy_ms = stats.busy.as_millis() as u64,
            "pipeline done"
        );
        Ok((target, digest, len, stats))
    }

    /// Stops both threads and waits for them; nothing is committed, so the
    /// held first MiB never reaches the device.
    pub(crate) async fn abort(mut self) {
        self.tx = None;
        let _ = (&mut self.hasher).await;
        let _ = (&mut self.writer).await;
    }
}

fn writer_loop(
    mut target: GuardedTarget,
    rx: std_mpsc::Receiver<Msg>,
    pool: mpsc::Sender<AlignedBuf>,
) -> Result<(GuardedTarget, WriteStats), ImageError> {
    let mut stats = WriteStats::default();
    let mut zeros = ZeroRun::default();
    let path = target.device().path().to_path_buf();
    while let Ok(msg) = rx.recv() {
        let Msg::Data { offset, buf } = msg else {
            zeros
                .flush(&mut target)
                .map_err(|e| ImageError::write(&path, "write-zeroes", e))?;
            continue;
        };
        let t = Instant::now();
        write_buffer(&mut target, offset, buf.as_slice(), &mut zeros, &mut stats)
            .map_err(|e| ImageError::write(&path, "write", e))?;
        stats.busy += t.elapsed();
        // The producer may be gone (aborted); then the buffer is just freed.
        let _ = pool.blocking_send(buf);
    }
    zeros
        .flush(&mut target)
        .map_err(|e| ImageError::write(&path, "write-zeroes", e))?;
    Ok((target, stats))
}

/// A pending run of zeros, coalesced across buffers.
#[derive(Default)]
struct ZeroRun {
    start: u64,
    len: u64,
}

impl ZeroRun {
    fn add(&mut self, target: &mut GuardedTarget, offset: u64, len: u64) -> std::io::Result<()> {
        if self.len > 0 && self.start + self.len != offset {
            self.flush(target)?;
        }
        if self.len == 0 {
            self.start = offset;
        }
        self.len += len;
        Ok(())
    }

    fn flush(&mut self, target: &mut GuardedTarget) -> std::io::Result<()> {
        if self.len > 0 {
            target.zero_range(self.start, self.len)?;
            self.len = 0;
        }
        Ok(())
    }
}

/// Writes one buffer: runs of zero granules become write-zeroes, runs of data
/// granules become one write each.
fn write_buffer(
    target: &mut GuardedTarget,
    offset: u64,
    data: &[u8],
    zeros: &mut ZeroRun,
    stats: &mut WriteStats,
) -> std::io::Result<()> {
    let mut data_start: Option<usize> = None;
    let mut i = 0;
    while i < data.len() {
        let end = (i + ZERO_GRANULE).min(data.len());
        let granule = &data[i..end];
        // Only whole sectors may be zeroed on a block device.
        let zero = granule.len().is_multiple_of(512)
            && (offset + i as u64).is_multiple_of(512)
            && is_zero(granule);
        if zero {
            if let Some(s) = data_start.take() {
                zeros.flush(target)?;
                target.write_at(offset + s as u64, &data[s..i])?;
                stats.data_bytes += (i - s) as u64;
            }
            zeros.add(target, offset + i as u64, granule.len() as u64)?;
        } else if data_start.is_none() {
            data_start = Some(i);
        }
        i = end;
    }
    if let Some(s) = data_start {
        zeros.flush(target)?;
        target.write_at(offset + s as u64, &data[s..])?;
        stats.data_bytes += (data.len() - s) as u64;
    }
    Ok(())
}
