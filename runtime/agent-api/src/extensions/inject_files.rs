//! The `inject_files` deploy and service step (IPA `inject_files.py`),
//! native because it mounts partitions of the install disk: each file of
//! `node.properties.inject_files` plus the step's `files` is written into
//! (or, `deleted`, removed from) the partition it names, with `mode`,
//! `owner`, `group` and the leaf directory's `dirmode`. Content is base64,
//! or a URL (`{node[...]}` / `{ports[N][...]}` placeholders filled from the
//! node) downloaded into the file.
//!
//! `partition` is a number on the install device, a device path, or
//! (beyond IPA) `LABEL=…`, `UUID=…`, `PARTUUID=…` and
//! `/dev/disk/by-label/…`, `/dev/disk/by-uuid/…`, `/dev/disk/by-partuuid/…`
//! resolved against the install device's partitions without udev (the
//! ramdisk has none). Without `partition`, the first partition holding the
//! path's top directory is used, as IPA does.
//!
//! Nothing is written outside the partition: paths with `..` are refused
//! up front (IPA joins them to the mount point and would write into the
//! ramdisk), and files are opened relative to the mount point through
//! `cap-std`, which does not follow the image's symbolic links out of it
//! (IPA would follow e.g. an absolute `/etc/resolv.conf` link into the
//! ramdisk's own `/etc`).
//!
//! A little over the usual size: the step, its partition resolution and its tests stay together.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::device::device_in_root;
use crate::engine::{CommandError, CommandFuture, Ctx};
use crate::errors::{AgentError, ErrorClass};
use crate::managers::StepKind;
use crate::native_steps::{NativeStep, StepCall};
use ironic_image::programs::{Outcome, ProgramRunner};

/// IPA's `ARGSINFO`.
pub const ARGSINFO: &[(&str, &str, bool)] = &[
    (
        "files",
        "Files to inject, a list of file structures with keys: 'path' (path to the file), \
         'partition' (partition specifier), 'content' (base64 encoded string), 'mode' (new \
         file mode) and 'dirmode' (mode for the leaf directory, if created). Merged with the \
         values from node.properties[inject_files].",
        false,
    ),
    (
        "verify_ca",
        "Whether to verify TLS certificates. Global agent options are used by default.",
        false,
    ),
];

/// Largest content written into one file (base64 or downloaded).
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// Most files one step may inject.
const MAX_FILES: usize = 1024;

/// The step, for deployment and servicing; the listed priority is
/// `inject_files_priority` (set when the agent starts, see
/// `AgentState::new`).
pub fn native_steps() -> Vec<NativeStep> {
    [StepKind::Deploy, StepKind::Service]
        .into_iter()
        .map(|kind| NativeStep {
            kind,
            name: "inject_files",
            priority: 0,
            interface: "deploy",
            handler: inject_files_step,
            abortable: false,
            argsinfo: ARGSINFO,
        })
        .collect()
}

fn invalid(message: String) -> AgentError {
    AgentError::new(ErrorClass::InvalidCommandParamsError, message)
}

/// One file to inject, validated.
#[derive(Debug, Clone)]
struct FileSpec {
    raw: Value,
    /// Relative to the partition's root, no `..`.
    path: PathBuf,
    partition: Option<String>,
    content: Option<String>,
    deleted: bool,
    mode: Option<u32>,
    dirmode: Option<u32>,
    owner: Option<u32>,
    group: Option<u32>,
}

/// IPA `_validate_files`, plus: no `..` (never outside the partition),
/// modes and ids in range, at most [`MAX_FILES`]. Failures are collected
/// and reported together (`InvalidCommandParamsError`).
fn validate_files(from_properties: &Value, from_args: &Value) -> Result<Vec<FileSpec>, AgentError> {
    let as_list = |v: &Value, what: &str| -> Result<Vec<Value>, AgentError> {
        match v {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => Ok(a.clone()),
            other => Err(invalid(format!(
                "The {what} must be a list, got {}",
                json_type(other)
            ))),
        }
    };
    let mut all = as_list(from_properties, "`inject_files` node property")?;
    all.extend(as_list(from_args, "`files` argument")?);
    if all.len() > MAX_FILES {
        return Err(invalid(format!(
            "Validation of files failed: {} files, at most {MAX_FILES} per step",
            all.len()
        )));
    }
    let mut failures = Vec::new();
    let mut specs = Vec::new();
    for fl in &all {
        let Some(obj) = fl.as_object() else {
            failures.push(format!("expected an object, got {fl}"));
            continue;
        };
        let known = [
            "path",
            "partition",
            "content",
            "deleted",
            "mode",
            "dirmode",
            "owner",
            "group",
        ];
        let unknown: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        if !unknown.is_empty() {
            failures.push(format!("unexpected fields in {fl}: {}", unknown.join(", ")));
        }
        let path_text = obj.get("path").and_then(Value::as_str).unwrap_or("");
        let partition = match obj.get("partition") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                failures.push(format!(
                    "partition must be a number or a string in {fl}, got {other}"
                ));
                None
            }
        };
        let mut path = None;
        if path_text.is_empty() {
            failures.push(format!("expected a path in {fl}"));
        } else if path_text.ends_with('/') {
            failures.push(format!("directories not supported for {fl}"));
        } else if Path::new(path_text)
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            failures.push(format!(
                "{fl}: \"..\" is not allowed in a path (files stay inside their partition)"
            ));
        } else {
            let rel: PathBuf = Path::new(path_text)
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            if rel.parent().is_none_or(|p| p.as_os_str().is_empty()) && partition.is_none() {
                failures.push(format!("{fl} in root directory requires \"partition\""));
            }
            path = Some(rel);
        }
        let content = obj.get("content").and_then(Value::as_str).map(String::from);
        let deleted = obj
            .get("deleted")
            .is_some_and(|d| crate::extensions::image::flag(Some(d)).unwrap_or(false));
        if content.as_deref().is_some_and(|c| !c.is_empty()) && deleted {
            failures.push(format!("content cannot be used with deleted in {fl}"));
        }
        let mut number = |field: &str, max: u64| -> Option<u32> {
            let v = obj.get(field)?;
            match v.as_u64() {
                Some(n) if n <= max && !v.is_f64() => Some(n as u32),
                _ => {
                    failures.push(format!("{field} must be a number in {fl}"));
                    None
                }
            }
        };
        let mode = number("mode", 0o7777);
        let dirmode = number("dirmode", 0o7777);
        let owner = number("owner", u64::from(u32::MAX - 1));
        let group = number("group", u64::from(u32::MAX - 1));
        if let Some(path) = path {
            specs.push(FileSpec {
                raw: fl.clone(),
                path,
                partition,
                content,
                deleted,
                mode,
                dirmode,
                owner,
                group,
            });
        }
    }
    if failures.is_empty() {
        Ok(specs)
    } else {
        Err(invalid(format!(
            "Validation of files failed: {}",
            failures.join("; ")
        )))
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// `content.format(node=node, ports=ports)` for the placeholders a deploy
/// template uses: `{node[a][b]}`, `{ports[0][address]}`; `{{`/`}}` escape.
fn fill_placeholders(text: &str, node: &Value, ports: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        if rest[i + 1..].starts_with(char::from(c)) {
            out.push(char::from(c));
            rest = &rest[i + 2..];
            continue;
        }
        if c == b'}' {
            return Err(format!("single '}}' in {text:?}"));
        }
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {text:?}"))?;
        let field = &rest[i + 1..i + end];
        let (root, keys) = field.split_at(field.find('[').unwrap_or(field.len()));
        let mut v = match root {
            "node" => node,
            "ports" => ports,
            other => return Err(format!("unknown placeholder {other:?} in {text:?}")),
        };
        for key in keys.split(['[', ']']).filter(|k| !k.is_empty()) {
            v = match v {
                Value::Array(a) => key.parse::<usize>().ok().and_then(|n| a.get(n)),
                Value::Object(m) => m.get(key),
                _ => None,
            }
            .ok_or_else(|| format!("{{{field}}} is not in the node"))?;
        }
        match v {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A partition mounted on a temporary directory for the lifetime of the
/// value (IPA `utils.mounted`).
struct Mounted {
    runner: ProgramRunner,
    dir: Option<tempfile::TempDir>,
    device: String,
}

impl Mounted {
    fn mount(runner: &ProgramRunner, device: &str) -> Result<Mounted, String> {
        let dir = tempfile::Builder::new()
            .prefix("ironic-inject-")
            .tempdir()
            .map_err(|e| format!("creating a mount point: {e}"))?;
        let target = dir.path().to_string_lossy().into_owned();
        match runner.run("mount", &[device, &target]) {
            Ok(o @ Outcome::Ran { .. }) if o.success() => Ok(Mounted {
                runner: runner.clone(),
                dir: Some(dir),
                device: device.to_string(),
            }),
            Ok(Outcome::Ran { stderr, status, .. }) => Err(format!(
                "mount {device} failed ({status:?}): {}",
                stderr.trim()
            )),
            // A simulated machine without a mount stand-in: nothing would be
            // written where the caller expects, so say so instead.
            Ok(Outcome::Skipped) => Err(format!(
                "mount {device}: this simulated machine cannot mount partitions"
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), |d| d.path())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let target = self.path().to_string_lossy().into_owned();
        if let Err(e) = self.runner.check("umount", &[&target]) {
            tracing::warn!(device = %self.device, %target, error = %e, "unmounting failed; leaving the mount point");
            if let Some(dir) = self.dir.take() {
                let _ = dir.keep();
            }
        }
    }
}

/// Resolves a `partition` specifier to a device path of the machine.
fn partition_device(spec: &str, device: &str, disk: &Path) -> Result<String, String> {
    if let Ok(n) = spec.trim().parse::<u32>() {
        return Ok(ironic_image::partition_path(device, n));
    }
    let (kind, value) = if let Some(v) = spec.strip_prefix("LABEL=") {
        ("label", v)
    } else if let Some(v) = spec.strip_prefix("UUID=") {
        ("uuid", v)
    } else if let Some(v) = spec.strip_prefix("PARTUUID=") {
        ("partuuid", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-label/") {
        ("label", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-uuid/") {
        ("uuid", v)
    } else if let Some(v) = spec.strip_prefix("/dev/disk/by-partuuid/") {
        ("partuuid", v)
    } else if spec.starts_with("/dev/") {
        return Ok(spec.to_string());
    } else {
        return Err(format!(
            "partition {spec:?} is neither a number, a device path nor LABEL=/UUID=/PARTUUID="
        ));
    };
    let (_, parts) = ironic_image::disk::read_partitions(disk).map_err(|e| e.to_string())?;
    for p in &parts {
        let hit = match kind {
            "label" => ironic_image::disk::filesystem_label(disk, p.offset)
                .ok()
                .flatten()
                .is_some_and(|l| l == value),
            "uuid" => ironic_image::disk::filesystem_uuid(disk, p.offset)
                .ok()
                .flatten()
                .is_some_and(|u| u.eq_ignore_ascii_case(value)),
            _ => p.part_uuid.eq_ignore_ascii_case(value),
        };
        if hit {
            return Ok(ironic_image::partition_path(device, p.number));
        }
    }
    Err(format!("no partition of {device} has the {kind} {value:?}"))
}

fn failed(spec: &FileSpec, why: impl std::fmt::Display) -> AgentError {
    AgentError::command_execution(format!("Failed to process file {}. {why}", spec.raw))
}

/// Writes or deletes one file under `root` (the mounted partition).
async fn apply(
    spec: &FileSpec,
    rel: &Path,
    root: &Path,
    node: &Value,
    ports: &Value,
    client: &reqwest::Client,
) -> Result<(), AgentError> {
    let dir = cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority())
        .map_err(|e| failed(spec, format!("opening {}: {e}", root.display())))?;
    if spec.deleted {
        match dir.remove_file(rel) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(spec, format!("removing {}: {e}", rel.display()))),
        }
        return Ok(());
    }
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.exists(parent) {
            dir.create_dir_all(parent)
                .map_err(|e| failed(spec, format!("creating {}: {e}", parent.display())))?;
            if let Some(mode) = spec.dirmode {
                set_mode(&dir, parent, mode).map_err(|e| failed(spec, format!("dirmode: {e}")))?;
            }
        }
    }
    let content = spec.content.clone().unwrap_or_default();
    let mut file = dir
        .create(rel)
        .map_err(|e| failed(spec, format!("creating {}: {e}", rel.display())))?;
    if content.contains("://") {
        let url = fill_placeholders(&content, node, ports).map_err(|e| failed(spec, e))?;
        let mut resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| failed(spec, format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(failed(
                spec,
                format!("{url}: HTTP status {}", resp.status()),
            ));
        }
        let mut written = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failed(spec, format!("{url}: {e}")))?
        {
            written += chunk.len() as u64;
            if written > MAX_FILE_BYTES {
                return Err(failed(
                    spec,
                    format!("{url}: larger than {MAX_FILE_BYTES} bytes"),
                ));
            }
            file.write_all(&chunk)
                .map_err(|e| failed(spec, format!("writing {}: {e}", rel.display())))?;
        }
    } else {
        if content.len() as u64 > MAX_FILE_BYTES * 4 / 3 + 4 {
            return Err(failed(
                spec,
                format!("content larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .map_err(|e| failed(spec, format!("content is not base64: {e}")))?;
        file.write_all(&bytes)
            .map_err(|e| failed(spec, format!("writing {}: {e}", rel.display())))?;
    }
    file.sync_all()
        .map_err(|e| failed(spec, format!("syncing {}: {e}", rel.display())))?;
    if let Some(mode) = spec.mode {
        set_mode(&dir, rel, mode).map_err(|e| failed(spec, format!("mode: {e}")))?;
    }
    if spec.owner.is_some() || spec.group.is_some() {
        let file = file.into_std();
        rustix::fs::fchown(
            &file,
            spec.owner.map(rustix::fs::Uid::from_raw),
            spec.group.map(rustix::fs::Gid::from_raw),
        )
        .map_err(|e| failed(spec, format!("owner/group: {e}")))?;
    }
    Ok(())
}

fn set_mode(dir: &cap_std::fs::Dir, rel: &Path, mode: u32) -> std::io::Result<()> {
    use cap_std::fs::PermissionsExt;
    dir.set_permissions(rel, cap_std::fs::Permissions::from_mode(mode))
}

/// The step body: `inject_files(node, ports, files=None, verify_ca=True)`.
fn inject_files_step(ctx: Ctx, call: StepCall) -> CommandFuture {
    Box::pin(async move {
        let files = call.kwargs.get("files").cloned().unwrap_or(Value::Null);
        let from_props = call
            .node
            .pointer("/properties/inject_files")
            .cloned()
            .unwrap_or(Value::Null);
        let specs = validate_files(&from_props, &files)?;
        if specs.is_empty() {
            tracing::info!("No files to inject");
            return Ok(Value::Null);
        }
        let verify = crate::extensions::image::flag(call.kwargs.get("verify_ca")).unwrap_or(true);
        let client = http_client(&ctx, verify)?;
        let device = ctx
            .state
            .managers()
            .os_install_device(Some(&call.node))
            .await?;
        let root = ctx.state.config().hardware_root.clone();
        let disk = device_in_root(&root, &device)?;
        let runner = ctx.state.config().programs.clone();
        for spec in &specs {
            inject_one(
                spec,
                &device,
                &disk,
                &runner,
                &call.node,
                &call.ports,
                &client,
            )
            .await?;
        }
        Ok(Value::Null)
    })
}

async fn inject_one(
    spec: &FileSpec,
    device: &str,
    disk: &Path,
    runner: &ProgramRunner,
    node: &Value,
    ports: &Value,
    client: &reqwest::Client,
) -> Result<(), CommandError> {
    let mount = |dev: String| {
        let runner = runner.clone();
        async move {
            tokio::task::spawn_blocking(move || Mounted::mount(&runner, &dev))
                .await
                .map_err(|e| format!("mount task: {e}"))?
        }
    };
    match &spec.partition {
        Some(p) => {
            let part = partition_device(p, device, disk).map_err(|e| failed(spec, e))?;
            let mounted = mount(part).await.map_err(|e| failed(spec, e))?;
            apply(spec, &spec.path, mounted.path(), node, ports, client).await?;
            drop(mounted);
        }
        None => {
            // IPA `find_partition_with_path`: the first partition with the
            // path's top directory.
            let mut components = spec.path.components();
            let top = PathBuf::from(components.next().map(|c| c.as_os_str()).unwrap_or_default());
            let rest: PathBuf = components.collect();
            let (_, parts) =
                ironic_image::disk::read_partitions(disk).map_err(|e| failed(spec, e))?;
            let mut scanned = Vec::new();
            for p in &parts {
                let part = ironic_image::partition_path(device, p.number);
                scanned.push(part.clone());
                let Ok(mounted) = mount(part.clone()).await else {
                    tracing::warn!(partition = %part, "could not inspect partition");
                    continue;
                };
                let dir = cap_std::fs::Dir::open_ambient_dir(
                    mounted.path(),
                    cap_std::ambient_authority(),
                );
                let found = dir.is_ok_and(|d| d.metadata(&top).is_ok_and(|m| m.is_dir()));
                if found {
                    tracing::info!(path = %top.display(), partition = %part, "path found on partition");
                    apply(spec, &top.join(&rest), mounted.path(), node, ports, client).await?;
                    return Ok(());
                }
            }
            return Err(AgentError::new(
                ErrorClass::DeviceNotFound,
                format!(
                    "No partition found with path {}, scanned: {scanned:?}",
                    top.display()
                ),
            )
            .into());
        }
    }
    Ok(())
}

fn http_client(ctx: &Ctx, verify_ca: bool) -> Result<reqwest::Client, AgentError> {
    let settings = ctx.state.config().image.clone().unwrap_or_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(settings.write.connect_timeout)
        .read_timeout(settings.write.connect_timeout)
        .user_agent(concat!("ironic-wasm-agent/", env!("CARGO_PKG_VERSION")));
    match (&settings.write.tls, verify_ca) {
        (Some(tls), true) => builder = builder.use_preconfigured_tls(tls.as_ref().clone()),
        (None, true) => {
            let tls = ironic_image::default_tls_config()
                .map_err(|e| AgentError::command_execution(format!("TLS: {e}")))?;
            builder = builder.use_preconfigured_tls(tls);
        }
        (_, false) => builder = builder.danger_accept_invalid_certs(true),
    }
    builder
        .build()
        .map_err(|e| AgentError::command_execution(format!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_follows_ipa_and_refuses_parent_paths() {
        let ok = validate_files(
            &json!([{"path": "/etc/hostname", "partition": "LABEL=root", "content": "aGk="}]),
            &json!([{"path": "/etc/motd", "partition": 2, "mode": 420}]),
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].partition.as_deref(), Some("2"));
        assert_eq!(ok[0].path, PathBuf::from("etc/hostname"));
        let e = |props: Value, files: Value| validate_files(&props, &files).unwrap_err().details;
        assert!(e(json!([]), json!([{"path": "/etc/../../x", "partition": 1}])).contains("\"..\""));
        assert!(e(json!([]), json!([{"path": "/x"}])).contains("requires \"partition\""));
        assert!(
            e(json!([]), json!([{"path": "/etc/x", "colour": 1}])).contains("unexpected fields")
        );
        assert!(e(
            json!([]),
            json!([{"path": "/etc/x", "content": "a", "deleted": true}])
        )
        .contains("content cannot be used with deleted"));
        assert!(e(json!([]), json!([{"path": "/etc/x", "mode": "644"}]))
            .contains("mode must be a number"));
        assert!(e(json!({}), json!([])).contains("node property must be a list, got dict"));
        assert!(e(json!([]), json!("x")).contains("`files` argument must be a list, got str"));
    }

    #[test]
    fn placeholders_come_from_the_node() {
        let node = json!({"uuid": "n1", "properties": {"a": 3}});
        let ports = json!([{"address": "aa:bb"}]);
        assert_eq!(
            fill_placeholders(
                "http://h/{node[uuid]}/{ports[0][address]}/{node[properties][a]}{{x}}",
                &node,
                &ports
            )
            .unwrap(),
            "http://h/n1/aa:bb/3{x}"
        );
        assert!(fill_placeholders("{nope}", &node, &ports).is_err());
        assert!(fill_placeholders("{node[missing]}", &node, &ports).is_err());
    }
}
