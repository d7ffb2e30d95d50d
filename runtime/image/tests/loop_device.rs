//! Block-device path (O_EXCL, O_DIRECT, BLKZEROOUT, size check) on a loop
//! device this test creates over a temp file. Runs only as root with a
//! working `losetup`; otherwise it is skipped. The device is always detached.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::server::{Mode, TestServer};
use ironic_image::{write_image, ImageError, ImageInfo, WriteOptions};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// Detaches the loop device on drop, whatever happens in the test.
struct Loop(PathBuf);

impl Loop {
    fn attach(backing: &Path) -> Option<Loop> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(backing)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        dev.starts_with("/dev/loop")
            .then(|| Loop(PathBuf::from(dev)))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn image(size: u64) -> Vec<u8> {
    let mut v = vec![0u8; size as usize];
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    // data in the first 3 MiB and the last MiB; zeros between
    for i in (0..3 * MIB as usize).chain(size as usize - MIB as usize..size as usize) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = x as u8;
    }
    v
}

fn info(url: &str, sha: &str) -> ImageInfo {
    let v = serde_json::json!({"id": "loop.raw", "urls": [url], "disk_format": "raw",
        "stream_raw_images": true, "os_hash_algo": "sha256", "os_hash_value": sha});
    ImageInfo::from_value(&v, false).expect("valid")
}

#[tokio::test]
async fn writes_onto_a_loop_device() {
    let dir = tempfile::tempdir().expect("tmp");
    let backing = dir.path().join("backing");
    std::fs::write(&backing, vec![0xAAu8; (48 * MIB) as usize]).expect("old data");
    let Some(dev) = Loop::attach(&backing) else {
        eprintln!("skipped: needs root and losetup");
        return;
    };
    let img = image(32 * MIB);
    let sha = hex::encode(Sha256::digest(&img));
    let path = dir.path().join("loop.raw");
    std::fs::write(&path, &img).expect("image");
    let server = TestServer::start();
    let url = server.add("loop.raw", path, Mode::Normal);
    let opts = WriteOptions {
        retries: 1,
        retry_interval: Duration::from_millis(50),
        work_dir: dir.path().to_path_buf(),
        ..WriteOptions::default()
    };
    let report = write_image(&info(&url, &sha), &dev.0, &opts)
        .await
        .expect("write");
    assert!(
        report.zero_bytes_skipped >= 27 * MIB,
        "BLKZEROOUT used: {}",
        report.zero_bytes_skipped
    );
    let f = std::fs::File::open(&dev.0).expect("open loop");
    let mut back = vec![0u8; (32 * MIB) as usize];
    f.read_exact_at(&mut back, 0).expect("read back");
    assert!(
        back == img,
        "device holds the image; old 0xAA in zero runs is gone"
    );

    // An image larger than the device is refused before the first MiB is written.
    let big = image(64 * MIB);
    let big_sha = hex::encode(Sha256::digest(&big));
    let big_path = dir.path().join("big.raw");
    std::fs::write(&big_path, &big).expect("big");
    let url = server.add("big.raw", big_path, Mode::Normal);
    let err = write_image(&info(&url, &big_sha), &dev.0, &opts)
        .await
        .expect_err("too large");
    assert!(
        matches!(&err, ImageError::TooLarge { image_bytes, .. } if *image_bytes == 64 * MIB),
        "{err:?}"
    );
    let mut first = vec![0u8; MIB as usize];
    f.read_exact_at(&mut first, 0).expect("read");
    assert!(first.iter().all(|&b| b == 0), "no bootable half-image");
}
