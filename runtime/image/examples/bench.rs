//! Benchmark driver for tests/bench/image.sh: serves IMAGE from a local
//! HTTP server on 127.0.0.1 and writes it onto TARGET with `write_image`,
//! then prints one JSON line (seconds, MB/s, peak RSS of this process and
//! of children such as qemu-img).
//!
//! usage: bench IMAGE TARGET DISK_FORMAT SHA256 [WORK_DIR]

#[path = "../tests/common/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::Instant;

use ironic_image::{write_image, ImageInfo, WriteOptions};

fn max_rss_kib(who: libc::c_int) -> i64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage struct.
    unsafe { libc::getrusage(who, &mut ru) };
    ru.ru_maxrss
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 5,
        "usage: bench IMAGE TARGET DISK_FORMAT SHA256 [WORK_DIR]"
    );
    let (image, target, disk_format, sha) = (
        PathBuf::from(&args[1]),
        PathBuf::from(&args[2]),
        &args[3],
        &args[4],
    );
    let work_dir = args
        .get(5)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let srv = server::TestServer::start();
    let url = srv.add("bench-image", image.clone(), server::Mode::Normal);
    let info = ImageInfo::from_value(
        &serde_json::json!({
            "id": "bench-image", "urls": [url], "disk_format": disk_format,
            "stream_raw_images": true, "os_hash_algo": "sha256", "os_hash_value": sha,
        }),
        false,
    )?;
    let opts = WriteOptions {
        work_dir,
        ..WriteOptions::default()
    };
    let t = Instant::now();
    let report = write_image(&info, &target, &opts).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"seconds\": {secs:.3}, \"mb_per_s\": {:.0}, \"bytes\": {}, \"data_bytes\": {}, \"zero_bytes\": {}, \
         \"format\": \"{}\", \"max_rss_self_kib\": {}, \"max_rss_children_kib\": {}}}",
        report.bytes as f64 / secs / 1e6,
        report.bytes,
        report.data_bytes,
        report.zero_bytes_skipped,
        report.format,
        max_rss_kib(libc::RUSAGE_SELF),
        max_rss_kib(libc::RUSAGE_CHILDREN),
    );
    Ok(())
}
