//! The heartbeat loop (IPA `agent.py` `IronicPythonAgentHeartbeater`), with
//! re-lookup when Ironic no longer accepts the token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{HeartbeatBody, IronicClient};
use crate::lookup::{decide_token, lookup_loop, LookupState, TokenDecision};
use crate::{AgentHandle, IPA_COMPAT_VERSION};

/// Timing knobs (defaults = IPA).
#[derive(Debug, Clone)]
pub struct HeartbeatTiming {
    /// Interval after success: `heartbeat_timeout × U(lo, hi)`.
    pub success_factor: (f64, f64),
    /// Interval after a failure: `U(lo, hi)` seconds.
    pub failure_wait: (f64, f64),
    /// A forced heartbeat (command finished) waits until this long after
    /// the previous one, so Ironic is not flooded while it processes one.
    /// One second: the conductor has normally released the node by then
    /// (measured here: under 0.3 s), and a heartbeat it ignores because the
    /// node is still locked is followed by the regular one anyway.
    pub forced_min_gap: Duration,
    /// Interval after a 409 (node locked): short, the lock is transient.
    pub conflict_wait: (f64, f64),
    /// Longest single sleep: the loop re-checks at least this often.
    pub max_sleep: Duration,
    /// Re-lookup backoff cap (seconds) after a rejected token.
    pub relookup_max_wait: f64,
}

impl Default for HeartbeatTiming {
    fn default() -> Self {
        HeartbeatTiming {
            success_factor: (0.3, 0.6),
            failure_wait: (5.0, 10.0),
            forced_min_gap: Duration::from_secs(1),
            conflict_wait: (1.0, 2.0),
            max_sleep: Duration::from_secs(5),
            relookup_max_wait: 10.0,
        }
    }
}

/// How one heartbeat ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// 202.
    Accepted,
    /// 409 (node locked before the agent URL was recorded).
    Conflict,
    /// 400 "Invalid or missing agent token": Ironic forgot or changed it.
    TokenRejected,
    /// Other status.
    Rejected(u16, String),
    /// No answer.
    Unreachable(String),
}

pub(crate) struct Heartbeater {
    pub client: Arc<IronicClient>,
    pub node_uuid: String,
    pub callback_url: String,
    pub token: Option<String>,
    pub verify_ca: Option<String>,
    pub heartbeat_timeout: f64,
    pub timing: HeartbeatTiming,
}

fn uniform(lo: f64, hi: f64) -> f64 {
    lo + fastrand::f64() * (hi - lo).max(0.0)
}

impl Heartbeater {
    async fn beat(&self) -> HeartbeatOutcome {
        let body = HeartbeatBody {
            callback_url: &self.callback_url,
            agent_token: self.token.as_deref(),
            agent_version: IPA_COMPAT_VERSION,
            agent_verify_ca: self.verify_ca.as_deref(),
        };
        match self.client.heartbeat_once(&self.node_uuid, &body).await {
            Ok(r) if (200..300).contains(&r.status) => HeartbeatOutcome::Accepted,
            Ok(r) if r.status == 409 => HeartbeatOutcome::Conflict,
            Ok(r) => {
                let fault = r.fault();
                // "Invalid or missing agent token received." / "Agent token
                // is required ...": Ironic wiped or replaced the token.
                if r.status == 400 && fault.to_ascii_lowercase().contains("agent token") {
                    HeartbeatOutcome::TokenRejected
                } else {
                    HeartbeatOutcome::Rejected(r.status, fault)
                }
            }
            Err(e) => HeartbeatOutcome::Unreachable(e.to_string()),
        }
    }

    pub async fn run(
        &mut self,
        lookup_state: &mut LookupState,
        macs: &[String],
        agent: Arc<dyn AgentHandle>,
        command_finished: Arc<tokio::sync::Notify>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        let mut interval = 0.0f64;
        let mut previous: Option<Instant> = None;
        let mut forced = false;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let since = previous.map_or(f64::INFINITY, |p| p.elapsed().as_secs_f64());
            let due =
                since >= interval || (forced && since >= self.timing.forced_min_gap.as_secs_f64());
            if !due {
                let mut wait = (interval - since).max(0.0);
                if forced {
                    wait = wait.min((self.timing.forced_min_gap.as_secs_f64() - since).max(0.0));
                }
                let wait = Duration::from_secs_f64(wait).min(self.timing.max_sleep);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = command_finished.notified() => {
                        tracing::debug!("command finished: heartbeat forced");
                        forced = true;
                    }
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let outcome = self.beat().await;
            previous = Some(Instant::now());
            match outcome {
                HeartbeatOutcome::Accepted => {
                    forced = false;
                    interval = self.heartbeat_timeout
                        * uniform(self.timing.success_factor.0, self.timing.success_factor.1);
                    tracing::info!(next_in_s = format!("{interval:.1}"), "heartbeat accepted");
                }
                HeartbeatOutcome::TokenRejected => {
                    tracing::warn!("Ironic rejected the agent token (node rebooted or torn down?); looking the node up again");
                    interval = match self
                        .relookup(lookup_state, macs, agent.as_ref(), shutdown)
                        .await
                    {
                        None => return,
                        Some(true) => 0.0,
                        // Same token still stored at Ironic: back off as after a failure.
                        Some(false) => {
                            uniform(self.timing.failure_wait.0, self.timing.failure_wait.1)
                        }
                    };
                }
                HeartbeatOutcome::Conflict => {
                    interval = uniform(self.timing.conflict_wait.0, self.timing.conflict_wait.1);
                    tracing::info!(
                        retry_in_s = format!("{interval:.1}"),
                        "node locked by the conductor; heartbeating again shortly"
                    );
                }
                other => {
                    interval = uniform(self.timing.failure_wait.0, self.timing.failure_wait.1);
                    tracing::warn!(
                        retry_in_s = format!("{interval:.1}"),
                        "heartbeat failed: {other:?}"
                    );
                }
            }
        }
    }

    /// Looks the node up until it is found: `Some(true)` with a new token,
    /// `Some(false)` when Ironic still holds one, `None` on shutdown.
    async fn relookup(
        &mut self,
        state: &mut LookupState,
        macs: &[String],
        agent: &dyn AgentHandle,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<bool> {
        loop {
            let found = tokio::select! {
                r = lookup_loop(&self.client, state, macs, Some(&self.node_uuid), None, Duration::from_secs(1), self.timing.relookup_max_wait) => r,
                _ = shutdown.changed() => return None,
            };
            let Ok(found) = found else { continue };
            match decide_token(self.token.as_deref(), &found.config["agent_token"]) {
                TokenDecision::Adopt(t) => {
                    tracing::info!("Ironic issued a new agent token");
                    agent.set_token(&t);
                    agent.set_node(&found.node);
                    self.token = Some(t);
                    self.heartbeat_timeout = found.heartbeat_timeout;
                    return Some(true);
                }
                // "******": Ironic still holds a token; ours may be fine again
                // (e.g. the rejection raced a power action). Heartbeat and see.
                TokenDecision::Keep | TokenDecision::Dead => {
                    self.heartbeat_timeout = found.heartbeat_timeout;
                    return Some(false);
                }
            }
        }
    }
}
