//! Shared by `slowstep-v1` and `slowstep-v2` (the crate root defines
//! `VERSION`): support 3, one clean step `slow_step` that reports progress
//! and sleeps for `ms` milliseconds (default 1500), then answers
//! `{"version": VERSION, "slept_ms": ms}` so a caller can tell which build ran it.
use ironic_hardware_guest::prelude::*;

use crate::VERSION;

pub struct SlowStep;

impl HardwareManager for SlowStep {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "SlowStepHardwareManager",
            "slowstep_hardware_manager",
            VERSION,
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_SERVICE_PROVIDER)
    }
    fn get_steps(kind: StepKind, _node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
        Ok(match kind {
            StepKind::Clean => vec![Step::new("slow_step", 0, "management")
                .abortable(false)
                .arg("ms", "how long the step runs, in milliseconds", false)],
            _ => Vec::new(),
        })
    }
    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: Json,
        _ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        if name != "slow_step" {
            return Err(ManagerError::unsupported(name));
        }
        let parsed: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        let ms = parsed.get("ms").and_then(|v| v.as_u64()).unwrap_or(1500);
        let start = std::time::Instant::now();
        progress::report(Some(0), &format!("slow_step {VERSION} started"));
        while (start.elapsed().as_millis() as u64) < ms {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        progress::report(Some(100), &format!("slow_step {VERSION} done"));
        json_result(&serde_json::json!({ "version": VERSION, "slept_ms": ms }))
    }
}
