//! Burn-in steps of the generic manager on a simulated machine, with
//! stand-ins for stress-ng and fio that record their arguments: IPA's
//! argument names and defaults, and immediate, named failures when the tool
//! or the partner is missing or the run could never finish in time.

use std::path::{Path, PathBuf};

use agent_tests::host::Host;
use agent_tests::{managers_dir, sim_host_config, stand_in_program};
use ironic_host::{DispatchError, StepKind};
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};

struct Fixture {
    host: Host,
    bin: PathBuf,
    _sim: SimMachine,
    _dir: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

/// The default machine, the generic manager, and a directory for stand-ins
/// searched before the machine's own.
fn fixture(programs: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let desc =
        MachineDescription::from_toml(ironic_sim::DEFAULT_MACHINE, Path::new("default.toml"))
            .expect("default machine");
    let sim = ironic_sim::create(&desc, &dir.path().join("machine")).expect("sim");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    for (name, body) in programs {
        let body = format!(
            "echo \"${{0##*/}} $*\" >> {}/calls.log\n{body}",
            bin.display()
        );
        stand_in_program(&bin, name, &body);
    }
    let managers = managers_dir(&[("generic_manager", "generic")]);
    let mut config = sim_host_config(managers.path(), &sim);
    config.program_dirs.insert(0, bin.clone());
    let host = Host::start(config).expect("host");
    Fixture {
        host,
        bin,
        _sim: sim,
        _dir: dir,
        _managers: managers,
    }
}

impl Fixture {
    fn step(&self, kind: StepKind, name: &str, info: Value) -> Result<Value, DispatchError> {
        let node = json!({"uuid": "n1", "driver_info": info});
        self.host
            .execute_step(kind, name, &node, &json!([]), &json!({}), &|_, _| {})
    }
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn failure(e: DispatchError) -> (String, String) {
    match e {
        DispatchError::Failed {
            error_type,
            details,
            ..
        } => (error_type.unwrap_or_default(), details),
        other => panic!("not a step failure: {other}"),
    }
}

#[test]
fn stress_ng_runs_with_ipa_s_arguments() {
    let f = fixture(&[("stress-ng", "echo 'metrics: ok' >&2\nexit 0")]);
    f.step(
        StepKind::Clean,
        "burnin_cpu",
        json!({"agent_burnin_cpu_timeout": 60}),
    )
    .expect("cpu");
    f.step(
        StepKind::Service,
        "burnin_memory",
        json!({"agent_burnin_vm_timeout": 30, "agent_burnin_vm_vm": 2, "agent_burnin_vm_outputfile": "/tmp/vm.log"}),
    )
    .expect("memory");
    assert_eq!(
        f.calls(),
        [
            "stress-ng --cpu 0 --timeout 60 --metrics-brief",
            "stress-ng --vm 2 --timeout 30 --vm-bytes 98% --metrics-brief --log-file /tmp/vm.log",
        ]
    );
    // IPA's 24 h default cannot finish within the agent's step deadline:
    // refused before anything runs, naming the knob.
    let (class, details) = failure(
        f.step(StepKind::Clean, "burnin_cpu", json!({}))
            .expect_err("24 h"),
    );
    assert_eq!(class, "CommandExecutionError");
    assert!(
        details.contains("agent_burnin_cpu_timeout is 86400 s"),
        "{details}"
    );
    assert_eq!(f.calls().len(), 2);
    // A failing run fails the step with stress-ng's words.
    let f = fixture(&[("stress-ng", "echo 'stressor failed' >&2\nexit 2")]);
    let (_, details) = failure(
        f.step(
            StepKind::Clean,
            "burnin_cpu",
            json!({"agent_burnin_cpu_timeout": 1}),
        )
        .expect_err("exit 2"),
    );
    assert!(details.contains("stressor failed"), "{details}");
}

#[test]
fn a_missing_tool_fails_at_once_by_name() {
    let f = fixture(&[]);
    for (step, tool) in [("burnin_cpu", "stress-ng"), ("burnin_disk", "fio")] {
        let (class, details) = failure(
            f.step(
                StepKind::Clean,
                step,
                json!({"agent_burnin_cpu_timeout": 1}),
            )
            .expect_err("no tool"),
        );
        assert_eq!(class, "CommandExecutionError");
        assert!(
            details.contains(&format!("{tool} is not installed")),
            "{details}"
        );
    }
}

#[test]
fn fio_disk_covers_every_disk() {
    let f = fixture(&[("fio", "echo '{}'\nexit 0")]);
    f.step(
        StepKind::Clean,
        "burnin_disk",
        json!({"agent_burnin_fio_disk_loops": 1}),
    )
    .expect("disk");
    assert_eq!(
        f.calls(),
        [
            "fio --rw readwrite --bs 4k --direct 1 --ioengine libaio --iodepth 32 --verify crc32c \
          --verify_dump 1 --continue_on_error verify --loops 1 --runtime 0 --time_based \
          --name /dev/sda --name /dev/sdb"
        ]
    );
}

#[test]
fn network_burn_in_needs_its_partner() {
    // The partner never listens: fio's reader exits 16 (connection refused).
    let f = fixture(&[("fio", "echo 'connection refused' >&2\nexit 16")]);
    let (class, details) = failure(
        f.step(StepKind::Clean, "burnin_network", json!({}))
            .expect_err("no config"),
    );
    assert_eq!(class, "CleaningError");
    assert!(
        details.contains("agent_burnin_fio_network_config"),
        "{details}"
    );
    let (class, details) = failure(
        f.step(
            StepKind::Clean,
            "burnin_network",
            json!({
                "agent_burnin_fio_network_config": {"role": "reader", "partner": "10.0.0.9"},
                "agent_burnin_fio_network_runtime": 10,
                "agent_burnin_fio_network_pairing_timeout": 0,
            }),
        )
        .expect_err("no partner"),
    );
    assert_eq!(class, "CommandExecutionError");
    assert!(
        details.contains("no partner 10.0.0.9 within 0 s"),
        "{details}"
    );
    assert_eq!(f.calls().len(), 1, "no retry beyond the pairing time");
}

#[test]
fn bootc_install_is_refused_clearly() {
    let f = fixture(&[]);
    let (class, details) = failure(
        f.step(StepKind::Deploy, "execute_bootc_install", json!({}))
            .expect_err("refused"),
    );
    assert_eq!(class, "CommandExecutionError");
    assert!(details.contains("not supported by this agent"), "{details}");
}
