//! Start-up waits IPA performs before inspection and lookup
//! (`agent.py` `IronicPythonAgent.run`, `hardware.py` `_wait_for_disks`).

use std::time::Duration;

/// `hardware_initialization_delay`: a fixed pause after the managers load,
/// for slow storage drivers.
pub async fn hardware_initialization_delay(cfg: &ironic_config::Config) {
    let secs = cfg.int("hardware_initialization_delay").unwrap_or(0);
    if secs > 0 {
        tracing::info!(
            secs,
            "waiting before proceeding (hardware_initialization_delay)"
        );
        tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    }
}

/// `disk_wait_attempts` × `disk_wait_delay`: waits until `has_disk` sees a
/// block device, as IPA's generic manager waits for a root device before
/// it reports support. Gives up with a warning, never an error. Returns
/// whether a disk was seen.
pub async fn wait_for_disks<F, Fut>(cfg: &ironic_config::Config, has_disk: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let attempts = cfg.int("disk_wait_attempts").unwrap_or(10).max(0);
    let delay = Duration::from_secs(cfg.int("disk_wait_delay").unwrap_or(3).max(0) as u64);
    if attempts == 0 {
        return false;
    }
    for attempt in 1..=attempts {
        if has_disk().await {
            return true;
        }
        if attempt < attempts {
            tracing::debug!(attempt, attempts, "no disk yet; waiting");
            tokio::time::sleep(delay).await;
        }
    }
    tracing::warn!(
        waited_s = delay.as_secs() * (attempts as u64 - 1),
        "no block device appeared (disk_wait_attempts, disk_wait_delay); continuing"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    fn config(cmdline: &str) -> ironic_config::Config {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("proc")).expect("proc");
        std::fs::write(dir.path().join("proc/cmdline"), cmdline).expect("cmdline");
        ironic_config::load(&ironic_config::LoadOptions {
            hardware_root: dir.path().to_path_buf(),
            ..Default::default()
        })
        .expect("config")
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_a_disk_appears_then_stops() {
        let cfg = config("ipa-disk-wait-attempts=5 ipa-disk-wait-delay=2");
        let probes = Arc::new(AtomicU32::new(0));
        let counter = probes.clone();
        let seen = wait_for_disks(&cfg, || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { n >= 2 }
        })
        .await;
        assert!(seen);
        assert_eq!(probes.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_attempts() {
        let cfg = config("ipa-disk-wait-attempts=3 ipa-disk-wait-delay=1");
        let probes = Arc::new(AtomicU32::new(0));
        let counter = probes.clone();
        let start = tokio::time::Instant::now();
        let seen = wait_for_disks(&cfg, || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { false }
        })
        .await;
        assert!(!seen);
        assert_eq!(probes.load(Ordering::SeqCst), 3);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_attempts_never_probes() {
        let cfg = config("ipa-disk-wait-attempts=0");
        assert!(!wait_for_disks(&cfg, || async { panic!("probed") }).await);
    }
}
