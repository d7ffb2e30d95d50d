//! End-to-end tests of `write_image` against a real HTTP server on
//! 127.0.0.1. Targets are regular files in temp dirs; no block device is
//! touched.
//!
//! Longer than most files here: the pipeline's end-to-end cases (formats, checksums, resume,
//! failures) share one HTTP server and one set of image builders.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::{Mode, TestServer};
use ironic_image::{write_image, ImageError, ImageInfo, WriteOptions, HOLD_BYTES};
use serde_json::json;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// Deterministic pseudo-random bytes (xorshift64), fast enough in debug builds.
fn fill_random(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// A sparse raw disk image of `size` bytes with an MBR partition table
/// (disk id 0x1a2b3c4d, one Linux partition) and random data in `regions`
/// (offset, len); everything else is zeros.
fn make_raw_image(path: &Path, size: u64, regions: &[(u64, u64)]) {
    let f = std::fs::File::create(path).expect("create image");
    f.set_len(size).expect("size");
    let mut mbr = [0u8; 512];
    fill_random(&mut mbr[..440], 42); // boot code
    mbr[440..444].copy_from_slice(&0x1a2b_3c4d_u32.to_le_bytes());
    let e = 446;
    mbr[e + 4] = 0x83;
    mbr[e + 8..e + 12].copy_from_slice(&2048u32.to_le_bytes());
    mbr[e + 12..e + 16].copy_from_slice(&(((size / 512) - 2048) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    f.write_all_at(&mbr, 0).expect("mbr");
    let mut buf = vec![0u8; MIB as usize];
    for (i, &(off, len)) in regions.iter().enumerate() {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(MIB) as usize;
            fill_random(&mut buf[..n], 7 + i as u64 * 1000 + done);
            f.write_all_at(&buf[..n], off + done).expect("data");
            done += n as u64;
        }
    }
}

fn sha256_file(path: &Path, limit: Option<u64>) -> String {
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want]).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    hex::encode(h.finalize())
}

/// A target "disk": a sparse file holding old data (0xAA) in a few places,
/// so tests notice regions that were skipped instead of zeroed.
fn make_target(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).expect("target");
    f.set_len(size).expect("size");
    let old = vec![0xAAu8; (4 * MIB) as usize];
    for off in [0, 100 * MIB, size - 8 * MIB] {
        f.seek(SeekFrom::Start(off)).expect("seek");
        f.write_all(&old).expect("old data");
    }
}

fn opts() -> WriteOptions {
    WriteOptions {
        connect_timeout: Duration::from_secs(5),
        retries: 2,
        retry_interval: Duration::from_millis(50),
        md5_allowed: false,
        ..WriteOptions::default()
    }
}

fn info(url: &str, disk_format: &str, stream: bool, sha: &str) -> ImageInfo {
    let v = json!({
        "id": url.rsplit('/').next().unwrap_or("img"),
        "urls": [url],
        "disk_format": disk_format,
        "container_format": "bare",
        "stream_raw_images": stream,
        "os_hash_algo": "sha256",
        "os_hash_value": sha,
    });
    ImageInfo::from_value(&v, false).expect("valid image_info")
}

fn first_mib(path: &Path) -> Vec<u8> {
    let f = std::fs::File::open(path).expect("open");
    let mut b = vec![0u8; HOLD_BYTES];
    f.read_exact_at(&mut b, 0).expect("read");
    b
}

struct Fixture {
    dir: tempfile::TempDir,
    server: TestServer,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("tmp"),
            server: TestServer::start(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    /// Work files go to `<tmp>/work`, apart from the served files.
    fn opts(&self) -> WriteOptions {
        let work = self.path("work");
        std::fs::create_dir_all(&work).expect("work dir");
        WriteOptions {
            work_dir: work,
            ..opts()
        }
    }
}

/// 256 MiB raw image with a partition table, streamed onto a file holding
/// old data: bytes equal, old data gone, zero runs not written as data.
#[tokio::test]
async fn raw_stream_bytes_equal() {
    let fx = Fixture::new();
    let img = fx.path("disk.raw");
    make_raw_image(
        &img,
        256 * MIB,
        &[
            (MIB, 40 * MIB),
            (150 * MIB, 24 * MIB),
            (256 * MIB - 3 * MIB, 3 * MIB),
        ],
    );
    let sha = sha256_file(&img, None);
    let url = fx.server.add("disk.raw", img.clone(), Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 300 * MIB);

    let report = write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect("write");
    assert!(report.streamed);
    assert_eq!(report.bytes, 256 * MIB);
    assert_eq!(report.digest, sha);
    assert_eq!(report.format, "raw");
    assert_eq!(
        sha256_file(&target, Some(256 * MIB)),
        sha,
        "target holds the image"
    );
    assert!(
        report.zero_bytes_skipped >= 180 * MIB,
        "zero runs skipped: {}",
        report.zero_bytes_skipped
    );
    assert!(
        report.data_bytes <= 70 * MIB,
        "data written: {}",
        report.data_bytes
    );
    assert_eq!(
        ironic_image::mbr_disk_identifier(&target).expect("id"),
        "0x1a2b3c4d"
    );
}

/// Wrong digest: error carries both digests; the target's first MiB is zero
/// (old boot sector wiped, new one never written).
#[tokio::test]
async fn wrong_checksum_leaves_first_mib_zero() {
    let fx = Fixture::new();
    let img = fx.path("bad.raw");
    make_raw_image(&img, 32 * MIB, &[(0, 8 * MIB)]);
    let real = sha256_file(&img, None);
    let url = fx.server.add("bad.raw", img, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 64 * MIB);
    let wrong = "0".repeat(64);

    let err = write_image(&info(&url, "raw", true, &wrong), &target, &fx.opts())
        .await
        .expect_err("must fail");
    match &err {
        ImageError::ChecksumMismatch {
            expected,
            actual,
            url: u,
            algorithm,
        } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &real);
            assert_eq!(u, &url);
            assert_eq!(algorithm, "sha256");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.ipa_type(), "ImageChecksumError");
    assert!(
        first_mib(&target).iter().all(|&b| b == 0),
        "first MiB must stay zero"
    );
}

/// Connection dropped at 50 %: resumed with Range, image correct.
#[tokio::test]
async fn dropped_connection_resumes_with_range() {
    let fx = Fixture::new();
    let img = fx.path("drop.raw");
    make_raw_image(&img, 64 * MIB, &[(0, 64 * MIB)]);
    let sha = sha256_file(&img, None);
    let url = fx.server.add("drop.raw", img, Mode::DropOnceAt(0.5));
    let target = fx.path("target");
    make_target(&target, 128 * MIB);

    let report = write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect("write");
    assert_eq!(report.resumes, 1);
    assert_eq!(report.restarts, 0);
    assert_eq!(sha256_file(&target, Some(64 * MIB)), sha);
    let reqs = fx.server.requests();
    assert_eq!(reqs.len(), 2);
    let range = reqs[1].range.as_deref().expect("second request has Range");
    let at: u64 = range
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .expect("offset");
    assert!(at > 0 && at <= 32 * MIB, "resumed at {at}");
}

/// A server that answers a Range request with 200: restart from byte 0.
#[tokio::test]
async fn range_ignored_restarts_from_zero() {
    let fx = Fixture::new();
    let img = fx.path("norange.raw");
    make_raw_image(&img, 48 * MIB, &[(0, 48 * MIB)]);
    let sha = sha256_file(&img, None);
    let url = fx
        .server
        .add("norange.raw", img, Mode::IgnoreRangeAfterDrop);
    let target = fx.path("target");
    make_target(&target, 64 * MIB);

    let report = write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect("write");
    assert_eq!(report.restarts, 1);
    assert_eq!(sha256_file(&target, Some(48 * MIB)), sha);
}

/// 404 is fatal: one request, no retry, a clear error.
#[tokio::test]
async fn not_found_is_fatal_without_retry() {
    let fx = Fixture::new();
    let url = fx
        .server
        .add("missing.raw", fx.path("nothing"), Mode::NotFound);
    let target = fx.path("target");
    make_target(&target, 16 * MIB);
    let err = write_image(
        &info(&url, "raw", true, &"a".repeat(64)),
        &target,
        &fx.opts(),
    )
    .await
    .expect_err("404");
    assert!(
        matches!(&err, ImageError::DownloadFatal { status: 404, url: u } if u == &url),
        "{err:?}"
    );
    assert_eq!(err.ipa_type(), "ImageDownloadFatalError");
    assert!(err.to_string().contains("404"));
    assert_eq!(fx.server.requests().len(), 1);
}

/// 5xx is retried.
#[tokio::test]
async fn server_error_is_retried() {
    let fx = Fixture::new();
    let img = fx.path("flaky.raw");
    make_raw_image(&img, 8 * MIB, &[(0, 8 * MIB)]);
    let sha = sha256_file(&img, None);
    let url = fx.server.add("flaky.raw", img, Mode::ServerErrorOnce);
    let target = fx.path("target");
    make_target(&target, 16 * MIB);
    write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect("write after retry");
    assert_eq!(fx.server.requests().len(), 2);
    assert_eq!(sha256_file(&target, Some(8 * MIB)), sha);
}

/// Content-Length promises more than the server ever sends: bounded retries,
/// then a download error; nothing bootable on the target.
#[tokio::test]
async fn truncated_body_fails_after_retries() {
    let fx = Fixture::new();
    let img = fx.path("trunc.raw");
    make_raw_image(&img, 16 * MIB, &[(0, 16 * MIB)]);
    let sha = sha256_file(&img, None);
    let url = fx.server.add("trunc.raw", img, Mode::Truncate(0.5));
    let target = fx.path("target");
    make_target(&target, 32 * MIB);
    let err = write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect_err("truncated");
    assert!(
        matches!(&err, ImageError::Download { failures, .. } if failures.len() == 1),
        "{err:?}"
    );
    assert_eq!(err.ipa_type(), "ImageDownloadError");
    // 1 partial + (retries + 1) attempts without progress
    assert_eq!(fx.server.requests().len(), 4);
    assert!(first_mib(&target).iter().all(|&b| b == 0));
}

fn qemu_img(args: &[&str]) {
    let st = Command::new("qemu-img")
        .args(args)
        .status()
        .expect("qemu-img runs");
    assert!(st.success(), "qemu-img {args:?}");
}

/// qcow2 → downloaded, verified, converted; target contents equal the raw source.
#[tokio::test]
async fn qcow2_is_converted() {
    let fx = Fixture::new();
    let raw = fx.path("src.raw");
    make_raw_image(&raw, 64 * MIB, &[(MIB, 10 * MIB), (40 * MIB, 5 * MIB)]);
    let raw_sha = sha256_file(&raw, None);
    let q = fx.path("disk.qcow2");
    qemu_img(&[
        "convert",
        "-q",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().expect("utf8"),
        q.to_str().expect("utf8"),
    ]);
    let qsha = sha256_file(&q, None);
    let url = fx.server.add("disk.qcow2", q, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 128 * MIB);

    let report = write_image(&info(&url, "qcow2", true, &qsha), &target, &fx.opts())
        .await
        .expect("convert");
    assert!(!report.streamed);
    assert_eq!(report.format, "qcow2");
    assert_eq!(sha256_file(&target, Some(64 * MIB)), raw_sha);
    assert!(!fx.path("work/disk.qcow2").exists(), "work file removed");
}

/// qcow2 whose backing file is a host path → refused before writing.
#[tokio::test]
async fn qcow2_with_backing_file_is_refused() {
    let fx = Fixture::new();
    let base = fx.path("host-secret.raw");
    std::fs::write(&base, vec![0x5Au8; MIB as usize]).expect("base");
    let q = fx.path("backed.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        base.to_str().expect("utf8"),
        "-F",
        "raw",
        q.to_str().expect("utf8"),
        "16M",
    ]);
    let sha = sha256_file(&q, None);
    let url = fx.server.add("backed.qcow2", q, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 32 * MIB);
    let err = write_image(&info(&url, "qcow2", false, &sha), &target, &fx.opts())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ImageError::InvalidImage { reason } if reason.contains("backing file")),
        "{err:?}"
    );
    assert_eq!(err.ipa_type(), "InvalidImage");
    assert_eq!(first_mib(&target)[0], 0xAA, "target untouched");
}

/// A format outside `permitted_image_formats` is refused.
#[tokio::test]
async fn format_not_permitted_is_refused() {
    let fx = Fixture::new();
    let q = fx.path("np.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        q.to_str().expect("utf8"),
        "16M",
    ]);
    let sha = sha256_file(&q, None);
    let url = fx.server.add("np.qcow2", q, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 32 * MIB);
    let opts = WriteOptions {
        permitted_formats: vec!["raw".into()],
        ..fx.opts()
    };
    let err = write_image(&info(&url, "qcow2", false, &sha), &target, &opts)
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ImageError::FormatNotPermitted { format, .. } if format == "qcow2"),
        "{err:?}"
    );
}

/// A qcow2 labelled `raw` on the streaming path is caught on its first
/// buffer, before it can be written verbatim.
#[tokio::test]
async fn qcow2_labelled_raw_is_refused_when_streaming() {
    let fx = Fixture::new();
    let q = fx.path("liar.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        q.to_str().expect("utf8"),
        "16M",
    ]);
    let sha = sha256_file(&q, None);
    let url = fx.server.add("liar.qcow2", q, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 32 * MIB);
    let err = write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, ImageError::FormatMismatch { declared, detected } if declared == "raw" && detected == "qcow2"),
        "{err:?}"
    );
}

/// 1 GiB image with 64 MiB of data: zero runs are write-zeroes (holes in
/// the target file), old data in those runs is gone, bytes are equal.
#[tokio::test]
async fn sparse_image_writes_only_data() {
    let fx = Fixture::new();
    let img = fx.path("sparse.raw");
    let size = 1024 * MIB;
    let regions: Vec<(u64, u64)> = (0..16).map(|i| (i * 64 * MIB + 2 * MIB, 4 * MIB)).collect();
    make_raw_image(&img, size, &regions);
    let sha = sha256_file(&img, None);
    let url = fx.server.add("sparse.raw", img, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, size + 64 * MIB);
    let t = std::time::Instant::now();
    let report = write_image(&info(&url, "raw", true, &sha), &target, &fx.opts())
        .await
        .expect("write");
    eprintln!("sparse 1 GiB/64 MiB data: {:?}", t.elapsed());
    assert_eq!(sha256_file(&target, Some(size)), sha);
    let allocated = std::fs::metadata(&target).expect("meta").blocks() * 512;
    // 64 MiB data + first MiB + the untouched 4 MiB of old data past the image end.
    assert!(
        allocated <= 72 * MIB,
        "target allocates {} MiB",
        allocated / MIB
    );
    assert!(report.zero_bytes_skipped >= 900 * MIB);
    assert!(report.data_bytes <= 66 * MIB);
}

/// `checksum` as a URL of a SHA256SUMS file.
#[tokio::test]
async fn checksum_file_url() {
    let fx = Fixture::new();
    let img = fx.path("cs.raw");
    make_raw_image(&img, 8 * MIB, &[(0, 2 * MIB)]);
    let sha = sha256_file(&img, None);
    let sums = fx.path("SHA256SUMS");
    std::fs::write(
        &sums,
        format!("{}  other.raw\n{sha}  cs.raw\n", "f".repeat(64)),
    )
    .expect("sums");
    let url = fx.server.add("cs.raw", img, Mode::Normal);
    let sums_url = fx.server.add("SHA256SUMS", sums, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 16 * MIB);
    let v = json!({"id": "cs.raw", "urls": [url], "disk_format": "raw", "stream_raw_images": false, "checksum": sums_url});
    let info = ImageInfo::from_value(&v, false).expect("valid");
    let report = write_image(&info, &target, &fx.opts())
        .await
        .expect("write");
    assert_eq!(report.digest, sha);
    assert!(!report.streamed);
    assert_eq!(sha256_file(&target, Some(8 * MIB)), sha);
    assert!(!fx.path("work/cs.raw").exists(), "work file removed");
}

/// md5 checksums need `md5_allowed`.
#[tokio::test]
async fn md5_only_when_allowed() {
    let v = json!({"id": "x", "urls": ["http://127.0.0.1:9/x"], "checksum": "d41d8cd98f00b204e9800998ecf8427e"});
    let err = ImageInfo::from_value(&v, false).expect_err("md5 disabled");
    assert_eq!(err.ipa_type(), "InvalidCommandParamsError");
    let fx = Fixture::new();
    let img = fx.path("m.raw");
    make_raw_image(&img, 4 * MIB, &[(0, MIB)]);
    let h = md5_hex(&img);
    let url = fx.server.add("m.raw", img, Mode::Normal);
    // Upper-case hex is accepted (IPA would compare case-sensitively and fail).
    let v = json!({"id": "m.raw", "urls": [url], "disk_format": "raw", "stream_raw_images": true,
        "checksum": h.to_ascii_uppercase()});
    let info = ImageInfo::from_value(&v, true).expect("md5 enabled");
    let target = fx.path("target");
    make_target(&target, 16 * MIB);
    let opts = WriteOptions {
        md5_allowed: true,
        ..fx.opts()
    };
    let report = write_image(&info, &target, &opts).await.expect("md5 write");
    assert_eq!(report.algorithm, "md5");
    assert_eq!(report.digest, h);
}

fn md5_hex(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["dgst", "-md5", "-r"])
        .arg(path)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `image_info.proxies` are used; `no_proxy` bypasses them; the decoded
/// `image_request_authorization` is sent verbatim.
#[tokio::test]
async fn proxies_no_proxy_and_authorization() {
    let fx = Fixture::new();
    let img = fx.path("p.raw");
    make_raw_image(&img, 4 * MIB, &[(0, MIB)]);
    let sha = sha256_file(&img, None);
    let proxy = TestServer::start(); // serves the image when asked as a proxy
    proxy.add("p.raw", img, Mode::Normal);
    let target = fx.path("target");
    make_target(&target, 16 * MIB);
    let token = "Bearer s3cr3t";
    let mut v = json!({
        "id": "p.raw", "urls": ["http://127.0.0.2:9/p.raw"], "disk_format": "raw",
        "stream_raw_images": true, "os_hash_algo": "sha256", "os_hash_value": sha,
        "proxies": {"http": proxy.base},
        "image_request_authorization":
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, token),
    });
    let info = ImageInfo::from_value(&v, false).expect("valid");
    write_image(&info, &target, &fx.opts())
        .await
        .expect("through proxy");
    let reqs = proxy.requests();
    assert!(reqs[0].proxied, "{reqs:?}");
    assert_eq!(reqs[0].auth.as_deref(), Some(token));

    v["no_proxy"] = json!("127.0.0.2");
    let info = ImageInfo::from_value(&v, false).expect("valid");
    let opts = WriteOptions {
        retries: 0,
        ..fx.opts()
    };
    let err = write_image(&info, &target, &opts)
        .await
        .expect_err("direct connection fails");
    assert!(matches!(err, ImageError::Download { .. }), "{err:?}");
    assert_eq!(
        proxy.requests().len(),
        1,
        "no_proxy host bypassed the proxy"
    );
}

/// `image_download_max_duration` bounds the whole download.
#[tokio::test]
async fn max_duration_times_out() {
    let fx = Fixture::new();
    let img = fx.path("slow.raw");
    make_raw_image(&img, 16 * MIB, &[(0, 16 * MIB)]);
    let sha = sha256_file(&img, None);
    // every attempt is truncated, so the retry loop runs until the deadline
    let url = fx.server.add("slow.raw", img, Mode::Truncate(0.5));
    let target = fx.path("target");
    make_target(&target, 32 * MIB);
    let opts = WriteOptions {
        retries: 1000,
        retry_interval: Duration::from_millis(100),
        max_duration: Some(Duration::from_millis(500)),
        ..fx.opts()
    };
    let err = write_image(&info(&url, "raw", true, &sha), &target, &opts)
        .await
        .expect_err("timeout");
    assert!(matches!(err, ImageError::DownloadTimeout { .. }), "{err:?}");
    assert_eq!(err.ipa_type(), "ImageDownloadTimeoutError");
    assert!(first_mib(&target).iter().all(|&b| b == 0));
}

/// Partition images never go onto the whole disk; into a root partition
/// (a byte range of the disk) they take the same verified pipeline, and
/// nothing outside the partition is touched.
#[tokio::test]
async fn partition_images_go_to_the_root_partition() {
    let fx = Fixture::new();
    let img = fx.path("root.img");
    make_raw_image(&img, 8 * MIB, &[(0, 8 * MIB)]);
    let sha = sha256_file(&img, None);
    let url = fx.server.add("root.img", img.clone(), Mode::Normal);
    let mut info = info(&url, "raw", true, &sha);
    info.image_type = Some("partition".into());
    let disk = fx.path("disk");
    std::fs::write(&disk, vec![0xAAu8; 32 * MIB as usize]).expect("disk");
    let err = write_image(&info, &disk, &fx.opts())
        .await
        .expect_err("whole disk refused");
    assert_eq!(err.ipa_type(), "InvalidCommandParamsError");
    assert_eq!(first_mib(&disk)[0], 0xAA, "disk untouched");
    ironic_image::write_partition_image(&info, &disk, 4 * MIB, 16 * MIB, &fx.opts())
        .await
        .expect("root partition");
    let all = std::fs::read(&disk).expect("disk");
    assert_eq!(
        &all[4 * MIB as usize..12 * MIB as usize],
        &std::fs::read(&img).expect("img")[..]
    );
    assert!(
        all[..4 * MIB as usize].iter().all(|&b| b == 0xAA),
        "before the partition untouched"
    );
    assert!(
        all[20 * MIB as usize..].iter().all(|&b| b == 0xAA),
        "after the partition untouched"
    );

    // Larger than the partition: refused, the partition's first MiB zero.
    let err = ironic_image::write_partition_image(&info, &disk, 4 * MIB, 4 * MIB, &fx.opts())
        .await
        .expect_err("too large");
    assert!(matches!(err, ImageError::TooLarge { .. }), "{err:?}");

    // Wrong checksum into a partition: its first MiB stays zero.
    let bad = ironic_image::write_partition_image(
        &{
            let mut i = info.clone();
            i.os_hash_value = Some("0".repeat(64));
            i
        },
        &disk,
        4 * MIB,
        16 * MIB,
        &fx.opts(),
    )
    .await
    .expect_err("checksum");
    assert_eq!(bad.ipa_type(), "ImageChecksumError");
    let all = std::fs::read(&disk).expect("disk");
    assert!(
        all[4 * MIB as usize..5 * MIB as usize]
            .iter()
            .all(|&b| b == 0),
        "held MiB zero"
    );
}

/// A qcow2 partition image is converted and lands in the root partition.
#[tokio::test]
async fn qcow2_partition_image_is_converted_into_the_partition() {
    let fx = Fixture::new();
    let img = fx.path("root.raw");
    make_raw_image(&img, 8 * MIB, &[(MIB, 2 * MIB)]);
    let qcow = fx.path("root.qcow2");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        img.to_str().expect("utf-8"),
        qcow.to_str().expect("utf-8"),
    ]);
    let sha = sha256_file(&qcow, None);
    let url = fx.server.add("root.qcow2", qcow, Mode::Normal);
    let mut info = info(&url, "qcow2", false, &sha);
    info.image_type = Some("partition".into());
    let disk = fx.path("disk");
    std::fs::write(&disk, vec![0xAAu8; 32 * MIB as usize]).expect("disk");
    let report = ironic_image::write_partition_image(&info, &disk, 8 * MIB, 16 * MIB, &fx.opts())
        .await
        .expect("converted");
    assert_eq!(report.format, "qcow2");
    let all = std::fs::read(&disk).expect("disk");
    assert_eq!(
        &all[8 * MIB as usize..16 * MIB as usize],
        &std::fs::read(&img).expect("img")[..]
    );
    assert!(all[..8 * MIB as usize].iter().all(|&b| b == 0xAA));
}
