//! `ironic-agent`: Ironic's deploy agent with hardware managers as sandboxed
//! WebAssembly components.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

mod cli;
mod host_setup;
mod run;

/// Ironic's deploy agent; hardware managers run as sandboxed WebAssembly
/// components. Without a subcommand it runs the agent.
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

    /// Debug logging.
    #[arg(short, long)]
    debug: bool,

    /// Log as JSON lines.
    #[arg(long, alias = "use-json")]
    log_json: bool,

    /// Address the API listens on.
    #[arg(long, alias = "listen_host", default_value = "::")]
    listen_host: String,

    /// Port the API listens on.
    #[arg(long, alias = "listen_port", default_value_t = 9999)]
    listen_port: u16,

    /// Pre-shared agent token (IPA's `ipa-agent-token`); without one, every
    /// command request is refused until Ironic issues a token.
    #[arg(long, alias = "agent_token", env = "IRONIC_AGENT_TOKEN", hide_env_values = true)]
    agent_token: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let debug = cli.command.is_none() && cli.agent.debug;
    cli::init_logging(debug, cli.agent.log_json);
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ironic-agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Inventory { host, skip_bmc_detect }) => cli::inventory(&host, skip_bmc_detect),
        Some(Command::Managers { command: ManagersCommand::List { host } }) => cli::managers_list(&host),
        Some(Command::Sim { command: SimCommand::Create { dir, machine } }) => {
            cli::sim_create(&dir, machine.as_deref())
        }
        None => {
            let flags = cli.agent;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(run::run_agent(run::RunOptions {
                host: flags.host,
                listen_host: flags.listen_host,
                listen_port: flags.listen_port,
                standalone: flags.standalone,
                agent_token: flags.agent_token,
            }))
        }
    }
}
