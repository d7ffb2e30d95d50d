//! The example vendor managers (managers/examples: Python through
//! componentize-py, JavaScript through componentize-js), built from source
//! by tests/examples-setup.sh, loaded beside the generic manager on the
//! default simulated machine (a "Dell Inc." server).
//!
//! Each example claims the machine at support 3, overrides
//! `get-system-vendor-info` with the firmware version the vendor tool
//! reports, and offers the clean step `update_firmware`, which runs the
//! stand-in tool `managers/examples/vendor-fw-update`.
//!
//! The setup script installs the toolchains (pinned componentize-py in
//! target/py-venv, `npm ci` in managers/examples/js) and builds into
//! target/examples. These tests skip, saying so, only when the script
//! reports that a toolchain cannot be installed here (exit 77);
//! `IRONIC_EXAMPLES_DIR=<dir>` uses components built elsewhere instead.
//!
//! Longer than most files here: each test runs once per example language (Python, JavaScript) from
//! one body, and the toolchain setup they share is built once per test binary.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use agent_tests::host::Host;
use agent_tests::sim_host_config;
use agent_tests::{managers_dir, shared_cwasm_cache, target_dir, workspace_root};
use ironic_host::{
    Capabilities, DispatchError, Grants, HostConfig, Limits, ManifestSource, StepKind,
};
use serde_json::{json, Value};

/// One example manager.
#[derive(Clone, Copy)]
struct Example {
    /// File stem (`<stem>.wasm`): the name grants use.
    stem: &'static str,
    /// Source directory under managers/examples.
    dir: &'static str,
    id: &'static str,
    name: &'static str,
}

const PYTHON: Example = Example {
    stem: "example-vendor-python",
    dir: "python",
    id: "ExampleVendorPythonManager",
    name: "example_vendor_python",
};

const JS: Example = Example {
    stem: "example-vendor-js",
    dir: "js",
    id: "ExampleVendorJsManager",
    name: "example_vendor_js",
};

enum Setup {
    Built(PathBuf),
    Skip(String),
    Failed(String),
}

/// Where the built examples are; `None` (after saying why) when a
/// toolchain cannot be installed here.
fn examples_dir() -> Option<PathBuf> {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    let setup = SETUP.get_or_init(|| {
        if let Some(dir) = std::env::var_os("IRONIC_EXAMPLES_DIR") {
            return Setup::Built(PathBuf::from(dir));
        }
        let script = workspace_root().join("tests/examples-setup.sh");
        let out = match Command::new("bash").arg(&script).output() {
            Ok(out) => out,
            Err(e) => return Setup::Failed(format!("running {}: {e}", script.display())),
        };
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match out.status.code() {
            Some(0) => {
                let dir = target_dir().join("examples");
                warm_cache(&dir);
                Setup::Built(dir)
            }
            Some(77) => Setup::Skip(log.trim().to_string()),
            _ => Setup::Failed(format!(
                "{} failed ({}):\n{log}",
                script.display(),
                out.status
            )),
        }
    });
    match setup {
        Setup::Built(dir) => Some(dir.clone()),
        Setup::Skip(why) => panic!(
            "example managers cannot be built here: {why} (`make setup` installs the toolchains)"
        ),
        Setup::Failed(why) => panic!("{why}"),
    }
}

/// Compile both examples once into the shared cache, before the tests
/// (which run in parallel) would each compile them.
fn warm_cache(dir: &Path) {
    let managers = managers_dir(&[("generic_manager", "generic")]);
    for ex in [PYTHON, JS] {
        std::fs::copy(
            component(dir, ex),
            managers.path().join(format!("{}.wasm", ex.stem)),
        )
        .unwrap();
    }
    let machine = tempfile::tempdir().unwrap();
    let sim = ironic_sim::create(&default_machine(None), machine.path()).unwrap();
    let host = Host::start(HostConfig {
        grants: grants_with_examples(),
        ..sim_host_config(managers.path(), &sim)
    })
    .expect("host starts with both examples");
    assert_eq!(host.managers().len(), 3, "{:?}", host.rejected());
}

fn component(dir: &Path, ex: Example) -> PathBuf {
    let path = dir.join(format!("{}.wasm", ex.stem));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// The built-in grants plus the tables of managers/examples/grants.toml for
/// the examples (what an operator's grants file for them holds).
fn grants_with_examples() -> Grants {
    let path = workspace_root().join("managers/examples/grants.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file = Grants::from_toml(&text, &path).unwrap();
    let mut grants = Grants::builtin();
    for ex in [PYTHON, JS] {
        let caps = file.for_manager(ex.stem);
        assert!(
            !caps.commands.programs.is_empty(),
            "grants.toml has no table for {}",
            ex.stem
        );
        grants.grant(ex.stem, caps.union(&Grants::builtin().for_manager(ex.stem)));
    }
    grants
}

struct Opts {
    /// Install the stand-in vendor tool.
    tool: bool,
    /// Grant the example what grants.toml says (else built-in grants only).
    grants: bool,
    /// DMI manufacturer of the simulated machine (default: "Dell Inc.").
    manufacturer: Option<&'static str>,
    /// Per-call limits.
    limits: Limits,
    /// Compile cache (`None`: compile at every start).
    cache: bool,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            tool: true,
            grants: true,
            manufacturer: None,
            limits: Limits::default(),
            cache: true,
        }
    }
}

struct Fixture {
    host: Host,
    bin: PathBuf,
    _machine: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

impl Fixture {
    /// Command lines the stand-in tool recorded.
    fn tool_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.join("vendor-fw-update.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn default_machine(manufacturer: Option<&str>) -> ironic_sim::MachineDescription {
    let mut text = ironic_sim::DEFAULT_MACHINE.to_string();
    if let Some(m) = manufacturer {
        let from = "manufacturer = \"Dell Inc.\"";
        assert!(
            text.contains(from),
            "default machine changed its manufacturer"
        );
        text = text.replace(from, &format!("manufacturer = {m:?}"));
    }
    ironic_sim::MachineDescription::from_toml(&text, Path::new("default.toml")).unwrap()
}

fn try_fixture(
    dir: &Path,
    ex: Example,
    opts: Opts,
) -> (Result<Host, ironic_host::HostError>, Fixture0) {
    let managers = managers_dir(&[("generic_manager", "generic")]);
    std::fs::copy(
        component(dir, ex),
        managers.path().join(format!("{}.wasm", ex.stem)),
    )
    .unwrap();
    let machine = tempfile::tempdir().unwrap();
    let sim = ironic_sim::create(&default_machine(opts.manufacturer), machine.path()).unwrap();
    if opts.tool {
        let tool = sim.bin_dir().join("vendor-fw-update");
        std::fs::copy(
            workspace_root().join("managers/examples/vendor-fw-update"),
            &tool,
        )
        .unwrap();
    }
    let host = Host::start(HostConfig {
        cache_dir: opts.cache.then(shared_cwasm_cache),
        grants: if opts.grants {
            grants_with_examples()
        } else {
            Grants::builtin()
        },
        limits: opts.limits,
        ..sim_host_config(managers.path(), &sim)
    });
    (
        host,
        Fixture0 {
            bin: sim.bin_dir(),
            machine,
            managers,
        },
    )
}

struct Fixture0 {
    bin: PathBuf,
    machine: tempfile::TempDir,
    managers: tempfile::TempDir,
}

fn fixture(dir: &Path, ex: Example, opts: Opts) -> Fixture {
    let (host, f) = try_fixture(dir, ex, opts);
    Fixture {
        host: host.expect("host starts"),
        bin: f.bin,
        _machine: f.machine,
        _managers: f.managers,
    }
}

/// Progress reports of a step: (percent, message).
type Progress = Vec<(Option<u8>, String)>;

/// Run `update_firmware` with `args`, collecting progress reports.
fn update_firmware(f: &Fixture, args: Value) -> (Result<Value, DispatchError>, Progress) {
    let reports = Mutex::new(Vec::new());
    let sink = |percent: Option<u8>, message: &str| {
        reports.lock().unwrap().push((percent, message.to_string()));
    };
    let out = f.host.execute_step(
        StepKind::Clean,
        "update_firmware",
        &json!({"uuid": "node-1"}),
        &json!([]),
        &args,
        &sink,
    );
    (out, reports.into_inner().unwrap())
}

// ---- checks, run for each language ----

fn loads_at_support_3_ahead_of_generic(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let f = fixture(&dir, ex, Opts::default());
    let loaded: Vec<(String, u32, String)> = f
        .host
        .managers()
        .into_iter()
        .map(|m| (m.id, m.support, m.name))
        .collect();
    assert_eq!(
        loaded,
        [
            (ex.id.to_string(), 3, ex.stem.to_string()),
            (
                "GenericHardwareManager".to_string(),
                1,
                "generic".to_string()
            ),
        ]
    );
    assert!(f.host.rejected().is_empty(), "{:?}", f.host.rejected());
    let summary = &f.host.managers()[0];
    // The build embedded the manifest: the .wasm is all there is to deploy.
    assert_eq!(summary.manifest, ManifestSource::Embedded);
    let manifest_path = workspace_root()
        .join("managers/examples")
        .join(ex.dir)
        .join("manifest.toml");
    let manifest = Capabilities::parse(
        &std::fs::read_to_string(&manifest_path).unwrap(),
        "manifest.toml",
    )
    .unwrap();
    assert_eq!(summary.declared, manifest);
    assert_eq!(summary.granted.commands.programs, ["vendor-fw-update"]);
    let versions = f.host.versions().unwrap();
    assert_eq!(versions.get(ex.name).map(String::as_str), Some("1.0"));
}

fn inventory_override_wins(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let f = fixture(&dir, ex, Opts::default());
    let inv = f.host.inventory(false).expect("inventory");
    // From the example (support 3): the vendor tool's firmware version,
    // the rest read from DMI...
    assert_eq!(
        inv["system_vendor"],
        json!({
            "product_name": "PowerEdge R250",
            "serial_number": "7XK2Q93",
            "manufacturer": "Dell Inc.",
            "firmware": {"vendor": "Dell Inc.", "version": "2.17.1", "build_date": "01/18/2024"},
        })
    );
    assert_eq!(f.tool_calls(), ["--query"]);
    // ...everything else from the generic manager.
    assert_eq!(
        inv["cpu"]["model_name"],
        "Intel(R) Xeon(R) E-2378 CPU @ 2.60GHz"
    );
    assert_eq!(inv["boot"]["current_boot_mode"], "bios");
    assert_eq!(inv["hostname"], "sim-server");
    assert_eq!(inv["bmc_address"], "192.0.2.100");
}

fn update_firmware_runs_the_vendor_tool(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let f = fixture(&dir, ex, Opts::default());

    let expected_step = json!({
        "step": "update_firmware",
        "priority": 0,
        "interface": "management",
        "reboot_requested": false,
        "abortable": true,
        "argsinfo": {"version": {"description": "firmware version to install, e.g. 2.19.0", "required": true}},
    });
    for kind in [StepKind::Clean, StepKind::Service] {
        let steps = f.host.get_steps(kind, &json!({}), &json!([])).unwrap();
        assert_eq!(steps[0].id, ex.id);
        assert_eq!(steps[0].support, 3);
        assert_eq!(
            steps[0].steps,
            std::slice::from_ref(&expected_step),
            "{kind:?}"
        );
    }
    let deploy = f
        .host
        .get_steps(StepKind::Deploy, &json!({}), &json!([]))
        .unwrap();
    assert!(deploy.iter().any(|m| m.id == ex.id && m.steps.is_empty()));

    let (out, progress) = update_firmware(&f, json!({"version": "2.19.0"}));
    assert_eq!(
        out.expect("update_firmware runs"),
        json!({
            "updated": true,
            "version": "2.19.0",
            "previous_version": "2.17.1",
            "tool_output": "installed 2.19.0",
        })
    );
    assert_eq!(
        f.tool_calls(),
        [
            "--query",
            "--install 2.19.0 --component bios --non-interactive"
        ]
    );
    assert_eq!(
        progress,
        [
            (Some(0), "checking the installed firmware".to_string()),
            (
                Some(10),
                "installing firmware 2.19.0 (was 2.17.1)".to_string()
            ),
            (Some(100), "firmware 2.19.0 installed".to_string()),
        ]
    );

    // The inventory now reports what the tool installed, and a second run
    // has nothing to do.
    let inv = f.host.inventory(true).unwrap();
    assert_eq!(inv["system_vendor"]["firmware"]["version"], "2.19.0");
    let (out, progress) = update_firmware(&f, json!({"version": "2.19.0"}));
    assert_eq!(
        out.unwrap(),
        json!({"updated": false, "version": "2.19.0", "previous_version": "2.19.0"})
    );
    assert_eq!(
        progress.last(),
        Some(&(Some(100), "firmware 2.19.0 already installed".to_string()))
    );
}

fn update_firmware_rejects_bad_arguments_and_reports_tool_failures(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let f = fixture(&dir, ex, Opts::default());
    let call = "execute-step clean update_firmware";
    for (args, why) in [
        (json!({}), "missing required argument version"),
        (json!({"version": 7}), "missing required argument version"),
        (json!({"version": "--all"}), "invalid version"),
        (json!({"version": "2.19.0 --force"}), "invalid version"),
        // Checked by the SDK against the step's argsinfo.
        (
            json!({"version": "2.19.0", "force": true}),
            "unknown argument force; its arguments are: version",
        ),
    ] {
        let (out, _) = update_firmware(&f, args.clone());
        match out {
            Err(DispatchError::InvalidArgument {
                manager,
                call: c,
                details,
            }) => {
                assert_eq!((manager.as_str(), c.as_str()), (ex.stem, call));
                assert!(details.contains(why), "{args}: {details}");
            }
            other => panic!("{args}: expected invalid argument, got {other:?}"),
        }
    }
    // Nothing ran for bad arguments.
    assert!(f.tool_calls().is_empty(), "{:?}", f.tool_calls());

    let (out, progress) = update_firmware(&f, json!({"version": "3.0-bad"}));
    match out {
        Err(DispatchError::Failed {
            manager,
            call: c,
            error_type,
            details,
        }) => {
            assert_eq!((manager.as_str(), c.as_str()), (ex.stem, call));
            assert_eq!(error_type, None);
            assert!(
                details.contains("exited with 3")
                    && details.contains("image 3.0-bad failed verification"),
                "{details}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(progress.len(), 2, "{progress:?}");
}

fn without_the_tool_the_generic_manager_answers(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let f = fixture(
        &dir,
        ex,
        Opts {
            tool: false,
            ..Opts::default()
        },
    );
    let inv = f.host.inventory(true).unwrap();
    // DMI's BIOS version, as the generic manager reads it.
    assert_eq!(inv["system_vendor"]["firmware"]["version"], "1.6.2");
    let (out, _) = update_firmware(&f, json!({"version": "2.19.0"}));
    let err = out.expect_err("no tool");
    assert!(
        matches!(&err, DispatchError::Failed { details, .. }
            if details.contains("vendor-fw-update --query: not-found")),
        "{err:?}"
    );
}

fn not_used_without_grants_or_on_other_hardware(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    for opts in [
        Opts {
            grants: false,
            ..Opts::default()
        },
        Opts {
            manufacturer: Some("Contoso Ltd."),
            ..Opts::default()
        },
    ] {
        let granted = opts.grants;
        let f = fixture(&dir, ex, opts);
        let names: Vec<String> = f.host.managers().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["generic"]);
        let rejected = f.host.rejected();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(rejected[0].file.ends_with(format!("{}.wasm", ex.stem)));
        if granted {
            // Granted but on other hardware: its evaluate_hardware_support says no.
            assert!(rejected[0].reason.contains("returned 0"), "{rejected:?}");
        } else {
            // Without grants it is never run: it waits, naming what it lacks.
            assert!(
                rejected[0].reason.starts_with("waiting for grants")
                    && rejected[0]
                        .reason
                        .contains("commands.programs=vendor-fw-update"),
                "{rejected:?}"
            );
        }
    }
}

/// Sizes and timings, printed (run with `--nocapture` to see them): the
/// component's size, compiling it, one call (fresh instance + call), and
/// the smallest memory cap it runs under.
fn measurements(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let size = std::fs::metadata(component(&dir, ex)).unwrap().len();

    // Compiling without the cache takes tens of seconds in a debug build:
    // only when asked for.
    let start_uncached = std::env::var_os("IRONIC_EXAMPLES_MEASURE_COMPILE").map(|_| {
        let t = Instant::now();
        drop(fixture(
            &dir,
            ex,
            Opts {
                cache: false,
                ..Opts::default()
            },
        ));
        t.elapsed()
    });
    let t = Instant::now();
    let f = fixture(&dir, ex, Opts::default());
    let start_cached = t.elapsed();

    // get-steps: one fresh instance of each manager plus the call.
    let calls = 10;
    let t = Instant::now();
    for _ in 0..calls {
        f.host
            .get_steps(StepKind::Clean, &json!({}), &json!([]))
            .unwrap();
    }
    let per_call = t.elapsed() / calls;
    let t = Instant::now();
    let (out, _) = update_firmware(&f, json!({"version": "2.19.0"}));
    out.unwrap();
    let step = t.elapsed();

    // Smallest memory cap (in MiB) at which the manager still loads and
    // answers: halve down from the default.
    let mut smallest = 128;
    for mib in [64, 32, 16, 8] {
        let limits = Limits {
            memory_bytes: mib * 1024 * 1024,
            ..Limits::default()
        };
        let (host, _keep) = try_fixture(
            &dir,
            ex,
            Opts {
                limits,
                ..Opts::default()
            },
        );
        let ok = host.is_ok_and(|h| {
            h.managers().iter().any(|m| m.name == ex.stem) && h.inventory(true).is_ok()
        });
        if !ok {
            break;
        }
        smallest = mib;
    }
    println!(
        "{}: component {:.1} MiB; host start (generic + example) compiling {}, from cache {:.0} ms; \
         get-steps over both managers {:.1} ms; update_firmware step {:.0} ms; runs under a {} MiB memory cap",
        ex.stem,
        size as f64 / (1024.0 * 1024.0),
        start_uncached.map_or("not measured (IRONIC_EXAMPLES_MEASURE_COMPILE=1)".to_string(), |d| format!("{:.1} s", d.as_secs_f64())),
        start_cached.as_secs_f64() * 1000.0,
        per_call.as_secs_f64() * 1000.0,
        step.as_secs_f64() * 1000.0,
        smallest,
    );
    assert!(smallest <= 128);
}

macro_rules! for_each_language {
    ($($check:ident),* $(,)?) => {
        mod python {
            $(#[test] fn $check() { super::$check(super::PYTHON) })*
        }
        mod js {
            $(#[test] fn $check() { super::$check(super::JS) })*
        }
    };
}

for_each_language!(
    loads_at_support_3_ahead_of_generic,
    inventory_override_wins,
    update_firmware_runs_the_vendor_tool,
    update_firmware_rejects_bad_arguments_and_reports_tool_failures,
    without_the_tool_the_generic_manager_answers,
    not_used_without_grants_or_on_other_hardware,
    measurements,
    through_the_agent_api,
);

// ---- the agent binary: REST API, `managers list` ----

const TOKEN: &str = "examples-test-token";

struct Agent {
    child: Child,
    port: u16,
    machine: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The grants file an operator writes: built-in grants + the examples'.
fn write_grants_file(dir: &Path) -> PathBuf {
    let mut text =
        std::fs::read_to_string(workspace_root().join("runtime/host/src/default-grants.toml"))
            .unwrap();
    text.push('\n');
    text.push_str(
        &std::fs::read_to_string(workspace_root().join("managers/examples/grants.toml")).unwrap(),
    );
    let path = dir.join("grants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn host_flags(machine: &Path, managers: &Path, grants: &Path) -> Vec<String> {
    [
        "--hardware-root",
        &machine.display().to_string(),
        "--managers-dir",
        &managers.display().to_string(),
        "--grants",
        &grants.display().to_string(),
        "--cache-dir",
        &shared_cwasm_cache().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start_agent(dir: &Path, ex: Example) -> Agent {
    let managers = managers_dir(&[("generic_manager", "generic")]);
    std::fs::copy(
        component(dir, ex),
        managers.path().join(format!("{}.wasm", ex.stem)),
    )
    .unwrap();
    let machine = tempfile::tempdir().unwrap();
    let sim = ironic_sim::create(&default_machine(None), machine.path()).unwrap();
    std::fs::copy(
        workspace_root().join("managers/examples/vendor-fw-update"),
        sim.bin_dir().join("vendor-fw-update"),
    )
    .unwrap();
    let grants = write_grants_file(machine.path());

    // `ironic-agent managers list` shows the example first, then generic.
    let out = Command::new(agent_tests::agent_binary())
        .args(["managers", "list"])
        .args(host_flags(machine.path(), managers.path(), &grants))
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listing}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = listing
        .find(&format!("{} (", ex.stem))
        .expect("example listed");
    let generic = listing.find("generic (").expect("generic listed");
    assert!(first < generic, "{listing}");
    assert!(
        listing.contains(&format!("id:        {}", ex.id)),
        "{listing}"
    );
    assert!(listing.contains("manifest:  Embedded"), "{listing}");
    assert!(!listing.contains("rejected"), "{listing}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(agent_tests::agent_binary())
        .arg("--standalone")
        .args(host_flags(machine.path(), managers.path(), &grants))
        .args([
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
        ])
        .args(["--agent-token", TOKEN])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(machine.path().join(".ironic-sim/agent.log")).unwrap())
        .spawn()
        .unwrap();
    Agent {
        child,
        port,
        machine,
        _managers: managers,
    }
}

fn through_the_agent_api(ex: Example) {
    let Some(dir) = examples_dir() else { return };
    let agent = start_agent(&dir, ex);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", agent.port);
    let t = Instant::now();
    while !http
        .get(url("/v1/status"))
        .send()
        .is_ok_and(|r| r.status() == 200)
    {
        let log = std::fs::read_to_string(agent.machine.path().join(".ironic-sim/agent.log"));
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "agent never served /v1/status: {log:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let post = |name: &str, params: Value| -> Value {
        http.post(url(&format!("/v1/commands/?wait=true&agent_token={TOKEN}")))
            .json(&json!({"name": name, "params": params}))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let node = json!({"uuid": "node-1", "properties": {}, "instance_info": {}, "driver_info": {}});

    let v = post("clean.get_clean_steps", json!({"node": node, "ports": []}));
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let res = &v["command_result"];
    assert_eq!(res["hardware_manager_version"][ex.name], "1.0", "{res}");
    assert_eq!(
        res["clean_steps"][ex.id][0]["step"], "update_firmware",
        "{res}"
    );

    let v = post("poll.get_hardware_info", json!({}));
    assert_eq!(
        v["command_result"]["system_vendor"]["firmware"]["version"], "2.17.1",
        "{v}"
    );

    let step = json!({"step": "update_firmware", "interface": "management", "priority": 0,
                      "args": {"version": "2.19.0"}});
    let v = post(
        "clean.execute_clean_step",
        json!({"step": step, "node": node, "ports": []}),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(
        v["command_result"]["clean_result"],
        json!({"updated": true, "version": "2.19.0", "previous_version": "2.17.1",
               "tool_output": "installed 2.19.0"}),
        "{v}"
    );
    let calls = std::fs::read_to_string(
        agent
            .machine
            .path()
            .join(".ironic-sim/bin/vendor-fw-update.log"),
    )
    .unwrap();
    assert!(
        calls.contains("--install 2.19.0 --component bios --non-interactive"),
        "{calls}"
    );
}
