//! Agent-native steps: steps the agent executes itself instead of a
//! hardware manager, because the work lives in the native agent (the image
//! pipeline) and not in a sandboxed component.
//!
//! * Listing: [`NativeSteps::merge_listing`] adds them to the deduplicated
//!   `get_<kind>_steps` answer under [`NATIVE_OWNER`] and drops any manager
//!   step of the same name, so the listing names what will really run.
//! * Execution: `execute_<kind>_step` looks a step up here first
//!   ([`NativeSteps::find`]) and only dispatches to the managers when it is
//!   not native.
//! * Safety: [`device_in_root`] is the only way a device path reported by
//!   the managers becomes a path the agent writes to.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::engine::{CommandError, CommandFuture, Ctx};
use crate::errors::AgentError;
use crate::managers::StepKind;

/// Manager id the native steps are listed under.
///
/// IPA lists `write_image` under `GenericHardwareManager`, and our generic
/// component carries the same id, so the listing looks exactly like IPA's.
/// Ironic flattens the listing and regroups steps by `interface`, so the key
/// never changes what runs; the alternative (the highest-support manager
/// offering deploy steps) would make a vendor manager appear to own a step
/// it never sees.
pub const NATIVE_OWNER: &str = "GenericHardwareManager";

/// What a native step receives: `(node, ports, **kwargs)` as IPA calls a
/// manager method.
#[derive(Debug, Clone)]
pub struct StepCall {
    /// The step name.
    pub name: String,
    /// The node (already cached by the executor).
    pub node: Value,
    /// The node's ports.
    pub ports: Value,
    /// Extra top-level params overlaid with the step's `args`.
    pub kwargs: Map<String, Value>,
}

/// A native step body. `Exception` errors are wrapped by the executor as
/// `Unexpected exception performing <kind> step <name>`, like a manager's.
pub type NativeHandler = fn(Ctx, StepCall) -> CommandFuture;

/// One agent-native step.
#[derive(Clone)]
pub struct NativeStep {
    /// Step family.
    pub kind: StepKind,
    /// Step name (`write_image`).
    pub name: &'static str,
    /// Advertised priority.
    pub priority: i64,
    /// Ironic interface owning it.
    pub interface: &'static str,
    /// The body.
    pub handler: NativeHandler,
    /// Listed `abortable` (clean and service steps only).
    pub abortable: bool,
    /// Listed `argsinfo`: `(name, description, required)`; omitted when empty.
    pub argsinfo: &'static [(&'static str, &'static str, bool)],
}

impl std::fmt::Debug for NativeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeStep")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NativeStep {
    /// The step dict as `get_<kind>_steps` lists it: deploy steps carry no
    /// `abortable` and no `argsinfo` (hardware-managers.md §9.2).
    ///
    /// Clean and service steps also carry `abortable`, and any step with
    /// arguments its `argsinfo`, as a manager's steps do.
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "step": self.name,
            "priority": self.priority,
            "interface": self.interface,
            "reboot_requested": false,
        });
        if self.kind != StepKind::Deploy {
            v["abortable"] = Value::Bool(self.abortable);
        }
        if !self.argsinfo.is_empty() {
            let info: Map<String, Value> = self
                .argsinfo
                .iter()
                .map(|(name, description, required)| {
                    (
                        name.to_string(),
                        json!({"description": description, "required": required}),
                    )
                })
                .collect();
            v["argsinfo"] = Value::Object(info);
        }
        v
    }
}

/// The registry of native steps.
#[derive(Debug, Clone, Default)]
pub struct NativeSteps {
    steps: Vec<NativeStep>,
}

impl NativeSteps {
    /// A registry holding `steps`.
    pub fn new(steps: Vec<NativeStep>) -> Self {
        Self { steps }
    }

    /// The agent's built-in native steps: the `write_image` deploy step and
    /// the `load_manager` clean and service steps.
    pub fn builtin() -> Self {
        let load_manager = |kind| NativeStep {
            kind,
            name: "load_manager",
            priority: 0,
            interface: "deploy",
            handler: crate::load_manager::load_manager_step,
            abortable: false,
            argsinfo: crate::load_manager::ARGSINFO,
        };
        Self::new(vec![
            NativeStep {
                kind: StepKind::Deploy,
                name: "write_image",
                priority: 0,
                interface: "deploy",
                handler: crate::extensions::standby::write_image_step,
                abortable: false,
                argsinfo: &[],
            },
            load_manager(StepKind::Clean),
            load_manager(StepKind::Service),
        ])
    }

    /// The native step `kind`/`name`, if any.
    pub fn find(&self, kind: StepKind, name: &str) -> Option<&NativeStep> {
        self.steps.iter().find(|s| s.kind == kind && s.name == name)
    }

    /// Adds the native steps of `kind` to a deduplicated listing
    /// (`{manager id: [step, ...]}`): same-named manager steps are removed
    /// (they would never run), managers left without steps disappear, and
    /// the native steps are appended under [`NATIVE_OWNER`].
    pub fn merge_listing(&self, kind: StepKind, listing: &mut Map<String, Value>) {
        let native: Vec<&NativeStep> = self.steps.iter().filter(|s| s.kind == kind).collect();
        if native.is_empty() {
            return;
        }
        for steps in listing.values_mut() {
            if let Value::Array(list) = steps {
                list.retain(|s| {
                    let name = s.get("step").and_then(Value::as_str);
                    !native.iter().any(|n| Some(n.name) == name)
                });
            }
        }
        listing.retain(|_, steps| steps.as_array().is_none_or(|l| !l.is_empty()));
        let owner = listing
            .entry(NATIVE_OWNER.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = owner {
            list.extend(native.iter().map(|s| s.to_value()));
        }
    }
}

/// Runs a native step, wording non-IPA failures as IPA wraps a step's
/// unexpected exception.
pub(crate) async fn execute(
    ctx: Ctx,
    kind: StepKind,
    step: &NativeStep,
    call: StepCall,
) -> Result<Value, CommandError> {
    let name = step.name;
    match (step.handler)(ctx, call).await {
        Ok(v) => Ok(v),
        Err(CommandError::Agent(e)) => Err(e.into()),
        Err(CommandError::Exception { class, text }) => {
            Err(kind.step_failure(name, class, &text).into())
        }
    }
}

/// Maps a device path reported by the managers (`/dev/sda`) into the
/// hardware root (`<root>/dev/sda`).
///
/// On a real machine the root is `/` and the path is unchanged. Under any
/// other root (a simulated machine, a fixture) the result is guaranteed to
/// resolve inside that root: `..`, relative paths and symlinks leading out of
/// it are refused, so a simulated machine can never make the agent write a
/// host block device. The returned path is canonical.
pub fn device_in_root(root: &Path, device: &str) -> Result<PathBuf, AgentError> {
    let not_found = |why: String| AgentError::new("DeviceNotFound", why);
    let path = Path::new(device);
    let clean = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !clean || !device.starts_with("/dev/") {
        return Err(not_found(format!(
            "install device {device:?} is not an absolute /dev path"
        )));
    }
    let canon_root = root.canonicalize().map_err(|e| {
        not_found(format!(
            "hardware root {} for install device {device}: {e}",
            root.display()
        ))
    })?;
    let relative = path.strip_prefix("/").unwrap_or(path);
    let mapped = canon_root.join(relative);
    let resolved = mapped.canonicalize().map_err(|e| {
        not_found(format!(
            "install device {device} ({}): {e}",
            mapped.display()
        ))
    })?;
    if canon_root != Path::new("/") && !resolved.starts_with(&canon_root) {
        // A symlink out of a simulated root: refusing it is what keeps a
        // test from ever writing the host's disks.
        return Err(not_found(format!(
            "install device {device} resolves to {} outside the hardware root {}",
            resolved.display(),
            canon_root.display()
        )));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: Ctx, _: StepCall) -> CommandFuture {
        Box::pin(async { Ok(Value::Null) })
    }

    #[test]
    fn simulated_root_never_yields_a_host_dev_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        std::fs::write(root.join("dev/sda"), b"").unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("dev/sdb")).unwrap();
        std::os::unix::fs::symlink("sda", root.join("dev/disk0")).unwrap();

        let canon = root.canonicalize().unwrap();
        let sda = device_in_root(root, "/dev/sda").unwrap();
        assert_eq!(sda, canon.join("dev/sda"));
        // A link inside the root is fine and resolved.
        assert_eq!(
            device_in_root(root, "/dev/disk0").unwrap(),
            canon.join("dev/sda")
        );
        for bad in [
            "/dev/sdb",           // symlink to a host device
            "/dev/../etc/passwd", // climbs out
            "dev/sda",            // relative
            "/etc/passwd",        // not a device path
            "/dev/nvme9n9",       // absent
            "",
        ] {
            let r = device_in_root(root, bad);
            assert!(r.is_err(), "{bad:?} → {r:?}");
            assert_eq!(r.unwrap_err().error_type, "DeviceNotFound");
        }
        // Whatever is returned lies inside the simulated root.
        for ok in ["/dev/sda", "/dev/disk0"] {
            let p = device_in_root(root, ok).unwrap();
            assert!(p.starts_with(&canon) && !p.starts_with("/dev"), "{p:?}");
        }
    }

    #[test]
    fn real_root_keeps_the_device_path() {
        // Only resolves the path; nothing is opened.
        assert_eq!(
            device_in_root(Path::new("/"), "/dev/null").unwrap(),
            PathBuf::from("/dev/null")
        );
    }

    #[test]
    fn listing_merge_replaces_manager_steps_of_the_same_name() {
        let natives = NativeSteps::new(vec![NativeStep {
            kind: StepKind::Deploy,
            name: "write_image",
            priority: 0,
            interface: "deploy",
            handler: noop,
            abortable: false,
            argsinfo: &[],
        }]);
        let mut listing = json!({
            "Vendor": [{"step": "write_image", "priority": 0, "interface": "deploy"}],
            "GenericHardwareManager": [{"step": "erase_devices_metadata", "priority": 0, "interface": "deploy"}],
        })
        .as_object()
        .unwrap()
        .clone();
        natives.merge_listing(StepKind::Deploy, &mut listing);
        assert_eq!(
            Value::Object(listing),
            json!({"GenericHardwareManager": [
                {"step": "erase_devices_metadata", "priority": 0, "interface": "deploy"},
                {"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false},
            ]})
        );
        // Other kinds are untouched.
        let mut clean = json!({"A": [{"step": "x"}]}).as_object().unwrap().clone();
        natives.merge_listing(StepKind::Clean, &mut clean);
        assert_eq!(Value::Object(clean), json!({"A": [{"step": "x"}]}));
    }
}
