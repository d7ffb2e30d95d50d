//! `qemu-img info` / `convert` for non-raw images (IPA `qemu_img.py`), run with
//! IPA's environment (`MALLOC_ARENA_MAX=3`, `LC_ALL=C`) and an address-space
//! limit, so a hostile image cannot make it eat the ramdisk's memory.

use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::error::ImageError;
use crate::format::Format;

/// How to run qemu-img.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QemuImg<'a> {
    pub(crate) bin: &'a Path,
    pub(crate) mem_limit_mib: u64,
    pub(crate) attempts: u32,
}

impl<'a> QemuImg<'a> {
    /// The converter as the write options configure it.
    pub(crate) fn new(opts: &'a crate::WriteOptions) -> QemuImg<'a> {
        QemuImg {
            bin: &opts.qemu_img,
            mem_limit_mib: opts.convert_memory_limit_mib,
            attempts: opts.convert_attempts,
        }
    }
}

/// What `qemu-img info --output=json` says about the work file.
#[derive(Debug, Clone)]
pub(crate) struct QemuInfo {
    pub(crate) format: String,
    pub(crate) virtual_size: u64,
}

fn command(qemu_img: &Path, mem_limit_mib: u64) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(qemu_img);
    cmd.env_clear()
        .env("MALLOC_ARENA_MAX", "3")
        .env("LC_ALL", "C")
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if mem_limit_mib > 0 {
        let bytes = mem_limit_mib.saturating_mul(1 << 20);
        // SAFETY: the closure runs between fork and exec and only calls
        // setrlimit, which is async-signal-safe; it touches no shared state.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: bytes as libc::rlim_t,
                    rlim_max: bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

async fn run(
    qemu_img: &Path,
    mem_limit_mib: u64,
    args: &[&std::ffi::OsStr],
    device: &Path,
    op: &'static str,
) -> Result<String, ImageError> {
    let out = command(qemu_img, mem_limit_mib)
        .args(args)
        .output()
        .await
        .map_err(|e| ImageError::Convert {
            device: device.to_path_buf(),
            op,
            exit_code: None,
            stdout: String::new(),
            stderr: format!("cannot run {}: {e}", qemu_img.display()),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(ImageError::Convert {
            device: device.to_path_buf(),
            op,
            exit_code: out.status.code(),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(stdout)
}

/// `qemu-img info` with the format forced (no probing), refusing backing
/// files and external data files a second time.
pub(crate) async fn info(
    tool: &QemuImg<'_>,
    file: &Path,
    format: Format,
) -> Result<QemuInfo, ImageError> {
    let (qemu_img, mem_limit_mib) = (tool.bin, tool.mem_limit_mib);
    let args: [&std::ffi::OsStr; 6] = [
        "info".as_ref(),
        "-f".as_ref(),
        format.qemu_driver().as_ref(),
        "--output=json".as_ref(),
        "--".as_ref(),
        file.as_os_str(),
    ];
    let out = run(qemu_img, mem_limit_mib, &args, file, "info").await?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| ImageError::invalid(format!("qemu-img info returned invalid JSON: {e}")))?;
    if v.get("backing-filename").is_some() || v.get("full-backing-filename").is_some() {
        return Err(ImageError::invalid(
            "image has a backing file (qemu-img info)",
        ));
    }
    if v.pointer("/format-specific/data/data-file").is_some() {
        return Err(ImageError::invalid(
            "image has an external data file (qemu-img info)",
        ));
    }
    let fmt = v
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if fmt != format.qemu_driver() {
        return Err(ImageError::invalid(format!(
            "qemu-img reports format {fmt}, expected {}",
            format.qemu_driver()
        )));
    }
    let virtual_size = v.get("virtual-size").and_then(Value::as_u64).unwrap_or(0);
    Ok(QemuInfo {
        format: fmt,
        virtual_size,
    })
}

/// Converts the work file onto the device.
///
/// `-n`: the target exists and may hold old data, so qemu-img must not
/// assume zeros; it then turns unallocated/zero clusters into write-zeroes
/// itself (no `-S 0`: that would write every zero as data).
/// `-t none` (O_DIRECT) when the target supports it; `-W` allows
/// out-of-order writes for throughput. Retried like IPA on ENOMEM/EAGAIN.
pub(crate) async fn convert(
    tool: &QemuImg<'_>,
    file: &Path,
    format: Format,
    device: &Path,
    is_block: bool,
    direct: bool,
) -> Result<(), ImageError> {
    let QemuImg {
        bin: qemu_img,
        mem_limit_mib,
        attempts,
    } = *tool;
    let out_fmt = if is_block { "host_device" } else { "raw" };
    let cache = if direct { "none" } else { "writeback" };
    let args: [&std::ffi::OsStr; 12] = [
        "convert".as_ref(),
        "-f".as_ref(),
        format.qemu_driver().as_ref(),
        "-O".as_ref(),
        out_fmt.as_ref(),
        "-n".as_ref(),
        "-t".as_ref(),
        cache.as_ref(),
        "-W".as_ref(),
        "--".as_ref(),
        file.as_os_str(),
        device.as_os_str(),
    ];
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run(qemu_img, mem_limit_mib, &args, device, "convert").await {
            Ok(_) => return Ok(()),
            Err(ImageError::Convert { ref stderr, .. })
                if attempt < attempts.max(1)
                    && (stderr.contains("Resource temporarily unavailable")
                        || stderr.contains("Cannot allocate memory")) =>
            {
                tracing::warn!(attempt, "qemu-img convert ran out of resources; retrying");
                // SAFETY: sync(2) has no preconditions.
                unsafe { libc::sync() };
            }
            Err(e) => return Err(e),
        }
    }
}
