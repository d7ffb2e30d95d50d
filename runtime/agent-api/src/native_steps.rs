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
//! * Registration: each extension lists the native steps it owns
//!   ([`crate::engine::Extension::native_steps`]).

use serde_json::{json, Map, Value};

use crate::engine::{CommandError, CommandFuture, Ctx};
use crate::errors::step_failure;
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
    /// `abortable` and no `argsinfo` (IPA `GenericHardwareManager.get_deploy_steps`).
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
            Err(step_failure(kind, name, class, &text).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: Ctx, _: StepCall) -> CommandFuture {
        Box::pin(async { Ok(Value::Null) })
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
