//! `ironic-agent`: Ironic's deploy agent with hardware managers as sandboxed
//! WebAssembly components.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod cli;
mod hardware_init;
mod host_setup;
mod limits;
mod machine;
mod managers;
mod run;
mod scaffold;
mod settings;

/// Ironic's deploy agent; hardware managers run as sandboxed WebAssembly
/// components. Without a subcommand it runs the agent.
///
/// IPA's own flags (`--config-file`, `--config-dir`, `--debug`, `--api_url`,
/// `--listen_port`, `--agent_token`, ... every `[DEFAULT]` option) are
/// accepted too; `ironic-agent config` shows where each value comes from.
#[derive(Parser, Debug)]
#[command(name = "ironic-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    agent: AgentFlags,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print each effective configuration value and the layer it came from.
    Config {
        /// Root whose `proc/cmdline` supplies the kernel parameters.
        #[arg(long, alias = "hardware_root", default_value = "/")]
        hardware_root: PathBuf,
    },
    /// Print the inventory JSON exactly as the agent sends it to Ironic.
    Inventory {
        #[command(flatten)]
        host: host_setup::HostFlags,
        /// Leave the BMC fields empty, as when Ironic asks to skip BMC detection.
        #[arg(long)]
        skip_bmc_detect: bool,
    },
    /// Inspect the hardware managers.
    Managers {
        #[command(subcommand)]
        command: ManagersCommand,
    },
    /// Simulated machines, so the agent runs without real hardware.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ManagersCommand {
    /// The managers directory and every manager loaded from it: name,
    /// version, support level, declared and granted capabilities.
    List {
        #[command(flatten)]
        host: host_setup::HostFlags,
    },
    /// Precompile every component of the managers directory into the cache
    /// directory for this exact engine (present artifacts are reused).
    Compile {
        /// Compile for this CPU instead of the one running the command, so
        /// the artifacts load on every CPU with its features (present
        /// artifacts are replaced): `portable` (x86-64-v2 on x86-64, the
        /// base instruction set elsewhere), `baseline`, or a Cranelift ISA
        /// preset such as `x86-64-v3`.
        #[arg(long, value_name = "CPU")]
        cpu: Option<String>,
        #[command(flatten)]
        host: host_setup::HostFlags,
    },
    /// Check one component against the contract (instantiate, `info`,
    /// `evaluate-hardware-support`) and the grants; print its manifest,
    /// declared vs granted capabilities and the verdict. Exit 1 if rejected.
    Validate {
        /// The component (`*.wasm`); its file stem is the name grants use.
        file: PathBuf,
        #[command(flatten)]
        host: host_setup::HostFlags,
    },
    /// Write a new manager project: the code (one example clean step), its
    /// manifest, a build script (`build.sh` → `NAME.wasm`), the grants
    /// snippet for the operator and a README.
    New {
        /// The language.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// The manager's name: the component's file stem, which grants use.
        name: String,
        /// Directory to write (absent or empty); default `./NAME`.
        dir: Option<PathBuf>,
        /// Checkout of ironic-wasm-agent whose SDKs the project uses;
        /// default: the one this binary was built from.
        #[arg(long)]
        sdk_root: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum SimCommand {
    /// Build a hardware root in DIR from a machine description.
    Create {
        /// Directory to create (must be empty or absent).
        dir: PathBuf,
        /// Machine description (TOML); default: the built-in default machine.
        #[arg(long)]
        machine: Option<PathBuf>,
    },
}

/// Flags of the agent itself (IPA's spellings with `_` are accepted too).
#[derive(Args, Debug)]
struct AgentFlags {
    #[command(flatten)]
    host: host_setup::HostFlags,

    /// Run without Ironic: no lookup, no heartbeats.
    #[arg(long)]
    standalone: bool,
}

fn main() -> ExitCode {
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ironic-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    // IPA's flags are order-sensitive against its config files, so they are
    // taken out first and handed to the configuration layers; clap sees the rest.
    let (ipa_flags, rest) = ironic_config::CliLayer::split_args(std::env::args_os().skip(1))?;
    let cli = Cli::parse_from(std::iter::once("ironic-agent".into()).chain(rest));
    let config_root = match &cli.command {
        None => Some(cli.agent.host.hardware_root.clone()),
        Some(Command::Config { hardware_root }) => Some(hardware_root.clone()),
        Some(_) => None,
    };
    let Some(root) = config_root else {
        cli::init_logging(false, false, None);
        return dispatch(cli, None);
    };
    let machine = machine::Machine::at(&root)?;
    // Virtual media before the configuration: parameters.txt is a layer of
    // it, and IPA copies the media's etc/ironic-python-agent* first.
    let media = ironic_net::vmedia::find(machine.root());
    if machine.reads_etc() && vmedia_boot(machine.root()) {
        if let Err(e) = ironic_net::vmedia::copy_config(&media, std::path::Path::new("/")) {
            eprintln!("cannot copy the virtual media's configuration: {e}");
        }
    }
    let mut load = ironic_config::LoadOptions {
        hardware_root: machine.root().to_path_buf(),
        cli: ipa_flags,
        vmedia_params: ironic_net::vmedia::parameters(&media),
        ..Default::default()
    }
    .with_process_env();
    if machine.reads_etc() {
        load = load.ipa_default_paths();
    }
    let config = ironic_config::load(&load)?;
    cli::init_logging(
        config.bool("debug"),
        config.bool("use_json"),
        config.log_file_path().as_deref(),
    );
    config.log_warnings();
    dispatch(cli, Some((machine, config)))
}

/// `boot_method=vmedia` on the kernel command line.
fn vmedia_boot(root: &std::path::Path) -> bool {
    std::fs::read_to_string(root.join("proc/cmdline"))
        .map(|t| {
            ironic_config::parse_cmdline(&t)
                .get("boot_method")
                .map(String::as_str)
                == Some("vmedia")
        })
        .unwrap_or(false)
}

fn dispatch(
    cli: Cli,
    config: Option<(machine::Machine, ironic_config::Config)>,
) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Config { .. }) => {
            let (_, config) = config.context("configuration not loaded")?;
            print!("{}", ironic_config::render(&config));
            Ok(())
        }
        Some(Command::Inventory {
            host,
            skip_bmc_detect,
        }) => cli::inventory(&host, skip_bmc_detect),
        Some(Command::Managers {
            command: ManagersCommand::List { host },
        }) => cli::managers_list(&host),
        Some(Command::Managers {
            command: ManagersCommand::Compile { host, cpu },
        }) => cli::managers_compile(&host, cpu.as_deref()),
        Some(Command::Managers {
            command: ManagersCommand::Validate { file, host },
        }) => cli::managers_validate(&host, &file),
        Some(Command::Managers {
            command:
                ManagersCommand::New {
                    lang,
                    name,
                    dir,
                    sdk_root,
                },
        }) => {
            let dir = scaffold::new_manager(lang, &name, dir.as_deref(), sdk_root.as_deref())?;
            println!(
                "wrote manager {name} in {}: build it with {}/build.sh; grants.toml holds \
                 the grants the operator installs for it",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
        Some(Command::Sim {
            command: SimCommand::Create { dir, machine },
        }) => cli::sim_create(&dir, machine.as_deref()),
        None => {
            let flags = cli.agent;
            let (machine, config) = config.context("configuration not loaded")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(run::run_agent(run::RunOptions {
                machine,
                host: flags.host,
                standalone: flags.standalone,
                config,
            }))
        }
    }
}
