//! Hardware initialisation at start-up, IPA's
//! `GenericHardwareManager.initialize` (hardware.py) and the
//! `hardware_initialization_delay` before it (agent.py `run`): the wait,
//! iSCSI boot sessions, software RAID arrays assembled, dm-multipath
//! started, then a wait for the root disk to appear
//! (`disk_wait_attempts` × `disk_wait_delay`).
//!
//! The contract has no `initialize` export and managers run a fresh
//! instance per call (no daemon can outlive a call), so the agent does it
//! natively, with the machine's program runner: on a simulated machine its
//! stand-ins.

use std::sync::Arc;
use std::time::Duration;

use agent_api::ironic_image::programs::{Outcome, ProgramRunner};
use ironic_host::{DispatchError, Host};

/// The start-up knobs (IPA's options of the same names).
#[derive(Debug, Clone)]
pub struct InitSettings {
    pub delay: Duration,
    pub disk_wait_attempts: u32,
    pub disk_wait_delay: Duration,
}

impl InitSettings {
    pub fn from_config(cfg: &ironic_config::Config) -> InitSettings {
        let secs = |name: &str, default: i64| cfg.int(name).unwrap_or(default).max(0) as u64;
        InitSettings {
            delay: Duration::from_secs(secs("hardware_initialization_delay", 0)),
            disk_wait_attempts: u32::try_from(secs("disk_wait_attempts", 10)).unwrap_or(u32::MAX),
            disk_wait_delay: Duration::from_secs(secs("disk_wait_delay", 3)),
        }
    }
}

/// Runs `program args` if the machine has it; a failure is logged only
/// (IPA's `try_execute`). Returns whether it ran and succeeded.
fn try_run(runner: &ProgramRunner, program: &str, args: &[&str]) -> bool {
    if runner.find(program).is_none() {
        return false;
    }
    match runner.run(program, args) {
        Ok(o @ Outcome::Ran { .. }) if o.success() => true,
        Ok(Outcome::Ran { status, stderr, .. }) => {
            tracing::info!(program, ?args, ?status, stderr = %stderr.trim(), "start-up program failed");
            false
        }
        Ok(Outcome::Skipped) => false,
        Err(e) => {
            tracing::warn!(program, error = %e, "start-up program could not run");
            false
        }
    }
}

/// Before the managers load: the delay, iSCSI, md arrays, multipath.
pub async fn prepare(settings: &InitSettings, runner: &ProgramRunner) {
    if !settings.delay.is_zero() {
        tracing::info!(
            seconds = settings.delay.as_secs(),
            "waiting hardware_initialization_delay before initialising hardware"
        );
        tokio::time::sleep(settings.delay).await;
    }
    let runner = runner.clone();
    let work = tokio::task::spawn_blocking(move || {
        // iSCSI boot (iBFT): a session to the boot target, when there is one.
        if try_run(&runner, "iscsistart", &["-f"]) {
            try_run(&runner, "iscsistart", &["-b"]);
        }
        // Arrays built before this boot (IPA `_md_scan_and_assemble`).
        if runner.find("mdadm").is_some() {
            if !try_run(&runner, "mdadm", &["--assemble", "--scan", "--verbose"]) {
                tracing::info!("No new RAID devices assembled during start-up");
            }
        } else {
            tracing::warn!("mdadm has not been found, RAID devices will not be supported");
        }
        // dm-multipath (IPA `_enable_multipath`): modules, the daemon, a
        // listing that makes it assemble the maps.
        if runner.find("multipathd").is_some() {
            try_run(&runner, "modprobe", &["dm_multipath"]);
            try_run(&runner, "modprobe", &["multipath"]);
            try_run(&runner, "multipathd", &[]);
            if try_run(&runner, "multipath", &["-ll"]) {
                tracing::info!("multipath enabled");
            }
        }
    });
    if let Err(e) = work.await {
        tracing::warn!(error = %e, "hardware initialisation task failed");
    }
}

/// What one look for the root disk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootDisk {
    Present,
    /// The managers answered `DeviceNotFound`: worth waiting for.
    Missing,
    /// No manager answers, or another failure: nothing to wait for.
    Unknown,
}

/// Asks the managers for the root device, as IPA's `wait_for_disks` calls
/// `get_os_install_device`.
pub async fn probe_root_disk(host: &Arc<Host>) -> RootDisk {
    match host.os_install_device(None).await {
        Ok(device) => {
            tracing::debug!(%device, "root device present");
            RootDisk::Present
        }
        Err(DispatchError::Failed { error_type, .. })
            if error_type.as_deref() == Some("DeviceNotFound") =>
        {
            RootDisk::Missing
        }
        Err(e) => {
            tracing::debug!(error = %e, "not waiting for disks");
            RootDisk::Unknown
        }
    }
}

/// After the managers load: wait for a root disk (IPA `wait_for_disks`),
/// at most `disk_wait_attempts` looks `disk_wait_delay` apart. Gives up
/// with a warning, never an error. Returns whether a disk was seen.
pub async fn wait_for_disks<F, Fut>(settings: &InitSettings, probe: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = RootDisk>,
{
    let attempts = settings.disk_wait_attempts;
    for attempt in 1..=attempts {
        match probe().await {
            RootDisk::Present => return true,
            RootDisk::Unknown => return false,
            RootDisk::Missing => {
                tracing::debug!(
                    attempt,
                    attempts,
                    "Still waiting for the root device to appear"
                );
                if attempt < attempts {
                    tokio::time::sleep(settings.disk_wait_delay).await;
                }
            }
        }
    }
    if attempts > 0 {
        tracing::warn!(
            seconds = settings.disk_wait_delay.as_secs() * u64::from(attempts.saturating_sub(1)),
            "The root device was not detected"
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn settings(cmdline: &str) -> InitSettings {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("proc")).expect("proc");
        std::fs::write(dir.path().join("proc/cmdline"), cmdline).expect("cmdline");
        let cfg = ironic_config::load(&ironic_config::LoadOptions {
            hardware_root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .expect("config");
        InitSettings::from_config(&cfg)
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_the_root_disk_appears_then_stops() {
        let s = settings("ipa-disk-wait-attempts=5 ipa-disk-wait-delay=2");
        let probes = AtomicU32::new(0);
        let seen = wait_for_disks(&s, || {
            let n = probes.fetch_add(1, Ordering::SeqCst);
            async move {
                if n >= 2 {
                    RootDisk::Present
                } else {
                    RootDisk::Missing
                }
            }
        })
        .await;
        assert!(seen);
        assert_eq!(probes.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts() {
        let s = settings("ipa-disk-wait-attempts=3 ipa-disk-wait-delay=1");
        let probes = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let seen = wait_for_disks(&s, || {
            probes.fetch_add(1, Ordering::SeqCst);
            async { RootDisk::Missing }
        })
        .await;
        assert!(!seen);
        assert_eq!(probes.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_or_zero_attempts_means_no_wait() {
        let s = settings("ipa-disk-wait-attempts=4");
        let start = tokio::time::Instant::now();
        assert!(!wait_for_disks(&s, || async { RootDisk::Unknown }).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        let s = settings("ipa-disk-wait-attempts=0");
        assert!(!wait_for_disks(&s, || async { panic!("probed") }).await);
    }
}
