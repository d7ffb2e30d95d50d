//! What machine the agent runs on, decided once.
//!
//! The agent either runs on the machine itself (hardware root `/`) or on a
//! simulated machine (a directory made by `ironic-agent sim create`).
//! Everything that would touch the host differs between the two: where
//! programs come from, whether power and network actions are performed or
//! recorded, where interface addresses and injected faults come from,
//! whether `/etc` configuration applies. [`Machine::at`] decides, and the
//! rest of the agent receives explicit paths and backends from it; nothing
//! below asks again. A root that is neither is refused: guessing wrong here
//! would act on the host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_api::ironic_image::programs::{ProgramRunner, SYSTEM_PROGRAM_DIRS};
use agent_api::{RealSystem, Recorder, SystemActions};
use anyhow::Context;
use ironic_host::NetworkSource;
use ironic_sim::SimMachine;

/// The machine under the agent.
#[derive(Debug, Clone)]
pub enum Machine {
    /// This machine: hardware root `/`, real programs, real power actions.
    Real,
    /// A simulated machine: its own stand-ins, recorded actions.
    Simulated(Box<SimMachine>),
}

impl Machine {
    /// The machine whose hardware root is `root`.
    pub fn at(root: &Path) -> anyhow::Result<Machine> {
        let canonical = root
            .canonicalize()
            .with_context(|| format!("hardware root {}", root.display()))?;
        if canonical == Path::new("/") {
            return Ok(Machine::Real);
        }
        if SimMachine::is_simulated(root) {
            let sim = SimMachine::open(root)
                .with_context(|| format!("opening the simulated machine at {}", root.display()))?;
            return Ok(Machine::Simulated(Box::new(sim)));
        }
        anyhow::bail!(
            "hardware root {} is neither / nor a simulated machine \
             (`ironic-agent sim create DIR` makes one)",
            root.display()
        )
    }

    /// The hardware root managers' paths resolve in.
    pub fn root(&self) -> &Path {
        match self {
            Machine::Real => Path::new("/"),
            Machine::Simulated(sim) => &sim.root,
        }
    }

    /// Whether IPA's configuration files in `/etc` apply (never to a
    /// simulated machine, which must not pick up this host's settings).
    pub fn reads_etc(&self) -> bool {
        matches!(self, Machine::Real)
    }

    /// Directories the programs managers may run are looked up in: the
    /// system's on the real machine, only the stand-ins on a simulated one
    /// (programs take device paths the host does not map).
    pub fn program_dirs(&self) -> Vec<PathBuf> {
        match self {
            Machine::Real => SYSTEM_PROGRAM_DIRS.iter().map(PathBuf::from).collect(),
            Machine::Simulated(sim) => vec![sim.bin_dir()],
        }
    }

    /// How the deploy runs programs (`mkfs`, `efibootmgr`).
    pub fn program_runner(&self) -> ProgramRunner {
        match self {
            Machine::Real => ProgramRunner::system(),
            Machine::Simulated(sim) => ProgramRunner::stand_ins(sim.bin_dir(), sim.actions_file()),
        }
    }

    /// Where interface addresses come from.
    pub fn network(&self) -> NetworkSource {
        match self {
            Machine::Real => NetworkSource::Live,
            Machine::Simulated(sim) => NetworkSource::File(sim.addresses_file()),
        }
    }

    /// The compile cache when none is configured: beside a simulated
    /// machine (so `make run` and the tests write only there), none on the
    /// real one.
    pub fn default_cache_dir(&self) -> Option<PathBuf> {
        match self {
            Machine::Real => None,
            Machine::Simulated(sim) => Some(sim.cache_dir()),
        }
    }

    /// Where managers' scratch spaces and unpacked assets go: the system's
    /// temporary directory (a tmpfs in the ramdisk), or beside a simulated
    /// machine.
    pub fn scratch_dir(&self) -> PathBuf {
        match self {
            Machine::Real => std::env::temp_dir().join("ironic-agent-scratch"),
            Machine::Simulated(sim) => sim.root.join(ironic_sim::SIM_DIR).join("scratch"),
        }
    }

    /// The default grants directory (one `<manager>.toml` per manager):
    /// `/etc/ironic-wasm-agent/grants.d`, or inside a simulated machine's
    /// state directory.
    pub fn default_grants_dir(&self) -> PathBuf {
        match self {
            Machine::Real => PathBuf::from("/etc/ironic-wasm-agent/grants.d"),
            Machine::Simulated(sim) => sim.root.join(ironic_sim::SIM_DIR).join("grants.d"),
        }
    }

    /// Fault injection: a simulated machine's faults file only.
    pub fn faults_file(&self) -> Option<PathBuf> {
        match self {
            Machine::Real => None,
            Machine::Simulated(sim) => Some(sim.faults_file()),
        }
    }

    /// Where network changes (links up, VLANs) go: performed on the real
    /// machine and on a simulated one whose agent runs in a network
    /// namespace of its own (the tests' veth namespaces); recorded in the
    /// actions file for a simulated machine in this host's namespace.
    pub fn network_scope(&self) -> ironic_net::Scope {
        match self {
            Machine::Real => ironic_net::Scope::Live,
            Machine::Simulated(_) if ironic_net::in_own_network_namespace() => {
                ironic_net::Scope::Live
            }
            Machine::Simulated(sim) => ironic_net::Scope::Recorded {
                actions_file: sim.actions_file(),
            },
        }
    }

    /// Whether the clock may be stepped (`ntp_server`): only on the real
    /// machine. The clock is not namespaced, so a simulated machine records
    /// the offset even when its agent runs in a namespace of its own.
    pub fn clock_control(&self) -> ironic_net::clock::ClockControl {
        match self {
            Machine::Real => ironic_net::clock::ClockControl::Set,
            Machine::Simulated(sim) => ironic_net::clock::ClockControl::Record {
                actions_file: sim.actions_file(),
            },
        }
    }

    /// Power, network and log actions: performed on the real machine,
    /// recorded on a simulated one.
    pub fn system_actions(&self) -> Arc<dyn SystemActions> {
        match self {
            Machine::Real => Arc::new(RealSystem::new(Path::new("/"))),
            Machine::Simulated(sim) => {
                tracing::info!(root = %sim.root.display(), "simulated machine: system actions are recorded, not performed");
                Arc::new(Recorder::new(&sim.root, sim.actions_file()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slash_and_simulated_machines_are_machines() {
        assert!(matches!(Machine::at(Path::new("/")), Ok(Machine::Real)));
        let plain = tempfile::tempdir().expect("dir");
        let err = Machine::at(plain.path()).expect_err("plain directory");
        assert!(
            format!("{err:#}").contains("neither / nor a simulated machine"),
            "{err:#}"
        );
        let desc = ironic_sim::MachineDescription::from_toml(
            ironic_sim::DEFAULT_MACHINE,
            Path::new("default.toml"),
        )
        .expect("default machine");
        let sim = ironic_sim::create(&desc, &plain.path().join("m")).expect("sim");
        let machine = Machine::at(&sim.root).expect("simulated");
        assert!(!machine.reads_etc());
        assert_eq!(machine.program_dirs(), vec![sim.bin_dir()]);
        assert!(machine.program_runner().is_simulated());
        assert_eq!(machine.faults_file(), Some(sim.faults_file()));
        assert!(Machine::Real.faults_file().is_none());
        assert!(!Machine::Real.program_runner().is_simulated());
    }
}
