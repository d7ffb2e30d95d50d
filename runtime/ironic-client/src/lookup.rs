//! Lookup with IPA's retry rules and token adoption (`APIClient.lookup_node`,
//! `IronicPythonAgent.process_lookup_data`).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::IronicClient;
use crate::Error;

/// A successful lookup.
#[derive(Debug, Clone)]
pub struct LookupResult {
    /// `node` (uuid, properties, instance_info, driver_internal_info, ...).
    pub node: Value,
    /// `config` (heartbeat_timeout, agent_token, ...).
    pub config: Value,
    /// `config.heartbeat_timeout` in seconds.
    pub heartbeat_timeout: f64,
}

impl LookupResult {
    /// The node's UUID.
    pub fn node_uuid(&self) -> String {
        self.node["uuid"].as_str().unwrap_or_default().to_string()
    }

    /// Validates a 200 body (IPA `APIClient._do_lookup`): `node.uuid` mandatory; a
    /// top-level `heartbeat_timeout` of very old Ironic is wrapped into `config`.
    pub fn from_body(body: &Value) -> Option<LookupResult> {
        let node = body.get("node")?;
        node.get("uuid")?.as_str()?;
        let config = match body.get("config") {
            Some(c) if c.is_object() => c.clone(),
            _ => serde_json::json!({ "heartbeat_timeout": body.get("heartbeat_timeout")?.clone() }),
        };
        let heartbeat_timeout = config.get("heartbeat_timeout")?.as_f64()?;
        Some(LookupResult {
            node: node.clone(),
            config,
            heartbeat_timeout,
        })
    }
}

/// What to do with `config.agent_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenDecision {
    /// A new token (≥ 32 characters): use it, replacing any pre-set one.
    Adopt(String),
    /// Keep what the agent has (`"******"` with a token, or an unusable value).
    Keep,
    /// `"******"` and the agent has no token: IPA's dead state.
    Dead,
}

/// IPA's token rules (`IronicPythonAgent.process_lookup_data`).
pub fn decide_token(current: Option<&str>, offered: &Value) -> TokenDecision {
    match offered.as_str() {
        Some("******") if current.is_none() => TokenDecision::Dead,
        Some("******") => TokenDecision::Keep,
        Some(t) if t.len() >= 32 => TokenDecision::Adopt(t.to_string()),
        _ => TokenDecision::Keep,
    }
}

/// 409 escalation, kept for the agent's lifetime as IPA does.
#[derive(Debug, Default)]
pub struct LookupState {
    conflicts: u32,
}

/// Retries until found or `timeout` passes. Backoff after the n-th failed
/// attempt: `U(interval, max(interval, min(2^(n-1), max_wait)))`; 409 adds
/// 5 s, then 10 s, then 30 s.
pub async fn lookup_until_found(
    client: &IronicClient,
    state: &mut LookupState,
    macs: &[String],
    node_uuid: Option<&str>,
    timeout: Duration,
    interval: Duration,
) -> Result<LookupResult, Error> {
    lookup_loop(
        client,
        state,
        macs,
        node_uuid,
        Some(timeout),
        interval,
        60.0,
    )
    .await
}

pub(crate) async fn lookup_loop(
    client: &IronicClient,
    state: &mut LookupState,
    macs: &[String],
    node_uuid: Option<&str>,
    timeout: Option<Duration>,
    interval: Duration,
    max_wait: f64,
) -> Result<LookupResult, Error> {
    let start = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        match client.lookup_once(macs, node_uuid).await {
            Ok(r) if r.status == 200 => match LookupResult::from_body(&r.json) {
                Some(found) => {
                    tracing::info!(node = %found.node_uuid(), heartbeat_timeout = found.heartbeat_timeout, "lookup succeeded");
                    return Ok(found);
                }
                None => {
                    tracing::warn!("lookup answer has no node.uuid or heartbeat_timeout; retrying")
                }
            },
            Ok(r) if r.status == 409 => {
                let extra = match state.conflicts {
                    0 => 5,
                    1 => 10,
                    _ => 30,
                };
                state.conflicts += 1;
                tracing::info!(
                    extra_wait_s = extra,
                    "lookup: node locked (409): {}",
                    r.fault()
                );
                tokio::time::sleep(Duration::from_secs(extra)).await;
            }
            Ok(r) => tracing::info!(
                status = r.status,
                "lookup: node not found yet: {}",
                r.fault()
            ),
            Err(e) => tracing::warn!("lookup: {e}"),
        }
        if let Some(t) = timeout {
            if start.elapsed() >= t {
                return Err(Error::LookupTimeout(t.as_secs()));
            }
        }
        let lo = interval.as_secs_f64();
        let hi = lo.max(
            2f64.powi(attempt.saturating_sub(1).min(30) as i32)
                .min(max_wait),
        );
        let wait = lo + fastrand::f64() * (hi - lo);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let long = "a".repeat(43);
        assert_eq!(
            decide_token(None, &Value::from(long.clone())),
            TokenDecision::Adopt(long.clone())
        );
        assert_eq!(
            decide_token(Some("preset"), &Value::from(long.clone())),
            TokenDecision::Adopt(long)
        );
        assert_eq!(
            decide_token(None, &Value::from("******")),
            TokenDecision::Dead
        );
        assert_eq!(
            decide_token(Some("x"), &Value::from("******")),
            TokenDecision::Keep
        );
        assert_eq!(decide_token(None, &Value::Null), TokenDecision::Keep);
        assert_eq!(
            decide_token(None, &Value::from("short")),
            TokenDecision::Keep
        );
    }

    #[test]
    fn lookup_body_validation() {
        assert!(LookupResult::from_body(&serde_json::json!({"node": {}})).is_none());
        assert!(LookupResult::from_body(&serde_json::json!({"node": {"uuid": "u"}})).is_none());
        let old = LookupResult::from_body(
            &serde_json::json!({"node": {"uuid": "u"}, "heartbeat_timeout": 300}),
        )
        .expect("old Ironic shape");
        assert_eq!(old.heartbeat_timeout, 300.0);
        let new = LookupResult::from_body(
            &serde_json::json!({"node": {"uuid": "u"}, "config": {"heartbeat_timeout": 10}}),
        )
        .expect("current shape");
        assert_eq!(new.node_uuid(), "u");
    }
}
