//! Replays every request Ironic 39 sent to IPA 13 (recorded in
//! `tests/fixtures/ironic-to-agent.jsonl`) against the in-process router with fake
//! managers answering like the recorded ones, and compares each answer with
//! the recorded one: status and the whole body, ids mapped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use agent_api::{AgentError, AgentState, ApiConfig, ManagerSteps, Managers, Recorder, StepKind};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{FakeManagers, TestAgent, TOKEN};

/// Answers like the recorded lab sandbox manager.
#[derive(Default)]
struct LabManagers {
    state: OnceLock<AgentState>,
}

#[async_trait::async_trait]
impl Managers for LabManagers {
    async fn get_steps(
        &self,
        kind: StepKind,
        _: &Value,
        _: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError> {
        let s = |name: &str, prio: i64| {
            let mut v = json!({"step": name, "priority": prio, "interface": "deploy", "reboot_requested": false});
            if kind == StepKind::Clean {
                v["abortable"] = json!(true);
            }
            v
        };
        let steps = match kind {
            StepKind::Clean => vec![
                s("erase_devices", 10),
                s("erase_devices_metadata", 99),
                s("erase_devices_express", 0),
            ],
            StepKind::Deploy => vec![s("erase_devices_metadata", 0), s("write_image", 0)],
            StepKind::Service => vec![],
        };
        Ok(vec![ManagerSteps {
            id: "LabSandboxHardwareManager".into(),
            support: 1,
            steps,
            may_write_disks: false,
        }])
    }

    async fn execute_step(
        &self,
        _: StepKind,
        name: &str,
        _: &Value,
        _: &Value,
        args: &Value,
        _: agent_api::managers::StepProgressFn,
    ) -> Result<Value, AgentError> {
        match name {
            "erase_devices_metadata" => Ok(Value::Null),
            "erase_devices" => Ok(json!({"/dev/loop0": null})),
            "write_image" => {
                let id = args["image_info"]["id"].as_str().unwrap_or_default();
                // The image pipeline records partition UUIDs on the agent.
                if let Some(state) = self.state.get() {
                    state.set_partition_uuids(json!({"root uuid": "0x05197912"}));
                }
                Ok(
                    json!({"result": format!("prepare_image: image ({id}) written to device /dev/loop0 root_uuid=0x05197912")}),
                )
            }
            other => Err(AgentError::method_not_found(other)),
        }
    }

    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError> {
        Ok(BTreeMap::from([(
            "ironic_lab_sandbox".to_string(),
            "1.0".to_string(),
        )]))
    }

    async fn inventory(&self) -> Result<Value, AgentError> {
        Ok(json!({}))
    }
}

fn lab_agent() -> TestAgent {
    let root = tempfile::tempdir().unwrap();
    let config = ApiConfig::new("127.0.0.1:9998".parse().unwrap(), root.path());
    let lab = Arc::new(LabManagers::default());
    let state = AgentState::new(
        config,
        lab.clone(),
        Arc::new(Recorder::new(
            root.path(),
            root.path().join("actions.jsonl"),
        )),
    );
    let _ = lab.state.set(state.clone());
    state.set_token(Some(TOKEN.into()));
    let router = agent_api::router(state.clone());
    TestAgent {
        state,
        router,
        managers: Arc::new(FakeManagers::default()),
        root,
    }
}

/// Replaces our ids by the recorded ones, everywhere in `v`.
fn map_ids(v: &mut Value, ours_to_recorded: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(id)) = o.get_mut("id") {
                if let Some(rec) = ours_to_recorded.get(id.as_str()) {
                    *id = rec.clone();
                }
            }
            o.values_mut().for_each(|x| map_ids(x, ours_to_recorded));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| map_ids(x, ours_to_recorded)),
        _ => {}
    }
}

#[tokio::test]
async fn ironic_recording_replays_identically() {
    let text = include_str!("../fixtures/ironic-to-agent.jsonl");
    let exchanges: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(exchanges.len() >= 16);

    // A recorded list's first id marks the first command of an agent's life:
    // the agent was rebooted before that POST.
    let session_starts: HashSet<String> = exchanges
        .iter()
        .filter_map(|e| {
            e["response_body"]["commands"][0]["id"]
                .as_str()
                .map(str::to_string)
        })
        .collect();

    let mut agent = lab_agent();
    let mut ours_to_recorded: HashMap<String, String> = HashMap::new();
    let mut sessions = 1;
    let mut checked = 0;
    for (i, e) in exchanges.iter().enumerate() {
        let path = e["path"].as_str().unwrap().replace("<AGENT-TOKEN>", TOKEN);
        let method = Method::from_bytes(e["method"].as_str().unwrap().as_bytes()).unwrap();
        let recorded_status = e["status"].as_u64().unwrap() as u16;
        let recorded_body = &e["response_body"];

        if method == Method::POST {
            if let Some(rec_id) = recorded_body["id"].as_str() {
                if session_starts.contains(rec_id) && !ours_to_recorded.is_empty() {
                    agent = lab_agent();
                    ours_to_recorded.clear();
                    sessions += 1;
                }
            }
        } else {
            // The recorded agent had finished its step by the time Ironic
            // polled; let ours finish too.
            for r in agent.state.engine().results() {
                r.wait().await;
            }
        }

        let body = if e["request_body"].is_null() {
            String::new()
        } else {
            e["request_body"].to_string()
        };
        let reply = agent.request(method.clone(), &path, body).await;
        assert_eq!(
            reply.status,
            StatusCode::from_u16(recorded_status).unwrap(),
            "exchange {i}: {method} {path}"
        );
        assert_eq!(reply.content_type(), "application/json", "exchange {i}");
        let mut ours = reply.json();
        if let (Some(our_id), Some(rec_id)) = (ours["id"].as_str(), recorded_body["id"].as_str()) {
            ours_to_recorded.insert(our_id.to_string(), rec_id.to_string());
        }
        map_ids(&mut ours, &ours_to_recorded);
        assert_eq!(&ours, recorded_body, "exchange {i}: {method} {path}");
        checked += 1;
    }
    assert_eq!(checked, exchanges.len());
    assert_eq!(sessions, 3, "the recording spans three agent lifetimes");
}
