//! `--limits FILE`: every bound the agent puts on what managers and clients
//! can make it spend, in one TOML file (each key optional; unknown keys are
//! an error naming them). docs/security.md lists each with its default.
//!
//! ```toml
//! [managers]
//! call_timeout_secs = 60
//! step_timeout_secs = 21600
//! memory_mib = 128
//! [api]
//! max_connections = 256
//! [history]
//! max_results = 1000
//! ```

use std::path::Path;
use std::time::Duration;

use agent_api::connections::HttpLimits;
use agent_api::engine::HistoryLimits;
use anyhow::Context;
use ironic_host::Limits;
use serde::Deserialize;

/// The file's content.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default)]
    managers: ManagerLimits,
    #[serde(default)]
    api: ApiLimits,
    #[serde(default)]
    history: HistoryFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagerLimits {
    call_timeout_secs: Option<f64>,
    step_timeout_secs: Option<f64>,
    memory_mib: Option<usize>,
    output_cap_bytes: Option<usize>,
    max_open_disks: Option<usize>,
    max_erase_threads: Option<u32>,
    max_progress_message: Option<usize>,
    max_progress_devices: Option<usize>,
    log_lines_per_second: Option<u32>,
    log_burst: Option<u32>,
    max_log_message: Option<usize>,
    max_step_result_bytes: Option<usize>,
    max_steps: Option<usize>,
    max_cache_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiLimits {
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<f64>,
    max_head_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFile {
    max_results: Option<usize>,
    max_total_bytes: Option<usize>,
    max_result_bytes: Option<usize>,
}

/// Every bound, the defaults where the file is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentLimits {
    pub managers: Limits,
    pub http: HttpLimits,
    pub history: HistoryLimits,
}

fn secs(value: f64, key: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{key} = {value}: a positive number of seconds"))
}

impl AgentLimits {
    /// The defaults, or those of `path` when given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<AgentLimits> {
        let Some(path) = path else {
            return Ok(AgentLimits::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading limits file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("limits file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<AgentLimits> {
        let file: LimitsFile = toml::from_str(text)?;
        let mut out = AgentLimits::default();
        let m = &file.managers;
        let l = &mut out.managers;
        if let Some(v) = m.call_timeout_secs {
            l.call_timeout = secs(v, "managers.call_timeout_secs")?;
        }
        if let Some(v) = m.step_timeout_secs {
            l.step_timeout = secs(v, "managers.step_timeout_secs")?;
        }
        if let Some(v) = m.memory_mib {
            l.memory_bytes = v
                .checked_mul(1 << 20)
                .context("managers.memory_mib too large")?;
        }
        macro_rules! set {
            ($src:expr => $dst:expr, $($field:ident),*) => {
                $(if let Some(v) = $src.$field { $dst.$field = v; })*
            };
        }
        if let Some(v) = m.output_cap_bytes {
            l.output_cap = v;
        }
        set!(m => l, max_open_disks, max_erase_threads, max_progress_message, max_progress_devices,
            log_lines_per_second, log_burst, max_log_message, max_step_result_bytes, max_steps,
            max_cache_bytes);
        let a = &file.api;
        set!(a => out.http, max_connections, max_head_bytes);
        if let Some(v) = a.header_read_timeout_secs {
            out.http.header_read_timeout = secs(v, "api.header_read_timeout_secs")?;
        }
        set!(file.history => out.history, max_results, max_total_bytes, max_result_bytes);
        anyhow::ensure!(
            out.http.max_connections > 0,
            "api.max_connections must be at least 1"
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_override_defaults_and_unknown_keys_are_named() {
        let l = AgentLimits::parse(
            "[managers]\ncall_timeout_secs = 2.5\nmax_open_disks = 8\n[api]\nmax_connections = 4\n[history]\nmax_results = 3\n",
        )
        .expect("parses");
        assert_eq!(l.managers.call_timeout, Duration::from_millis(2500));
        assert_eq!(l.managers.max_open_disks, 8);
        assert_eq!(l.managers.step_timeout, Limits::default().step_timeout);
        assert_eq!(l.http.max_connections, 4);
        assert_eq!(l.history.max_results, 3);
        let err = AgentLimits::parse("[managers]\ncall_timeout = 2\n").expect_err("typo");
        assert!(format!("{err:#}").contains("call_timeout"), "{err:#}");
        assert!(AgentLimits::parse("[managers]\ncall_timeout_secs = 0\n").is_err());
        assert_eq!(
            AgentLimits::parse("").expect("empty"),
            AgentLimits::default()
        );
    }
}
