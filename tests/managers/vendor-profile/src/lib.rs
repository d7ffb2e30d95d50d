//! Test manager loaded into a running agent by Ironic (`load_manager`):
//! support 3, one clean step `apply_vendor_profile` with a required
//! `profile` argument. The step is on the `deploy` interface because that is
//! the only interface whose agent steps Ironic's manual cleaning accepts
//! (`AgentBaseMixin.get_clean_steps` reads the cached agent steps of
//! `deploy` only). It answers `{"applied": profile, "by": ...}` so the
//! caller can tell this manager ran it.
use ironic_hardware_guest::prelude::*;

struct VendorProfile;

const ID: &str = "VendorProfileHardwareManager";
const NAME: &str = "vendor_profile_hardware_manager";
const VERSION: &str = "1.0";

impl HardwareManager for VendorProfile {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(ID, NAME, VERSION))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_SERVICE_PROVIDER)
    }
    fn get_steps(kind: StepKind, _node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
        Ok(match kind {
            StepKind::Clean => vec![Step::new("apply_vendor_profile", 0, "deploy")
                .abortable(false)
                .arg("profile", "name of the vendor settings profile", true)],
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
        if name != "apply_vendor_profile" {
            return Err(ManagerError::unsupported(name));
        }
        let parsed: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        let Some(profile) = parsed.get("profile").and_then(|v| v.as_str()) else {
            return Err(ManagerError::invalid_argument(
                "apply_vendor_profile: missing required argument profile",
            ));
        };
        progress::report(Some(100), &format!("profile {profile} applied"));
        json_result(&serde_json::json!({
            "applied": profile,
            "by": format!("{NAME} {VERSION}"),
        }))
    }
}

export_manager!(VendorProfile, manifest = "../manifest.toml");
