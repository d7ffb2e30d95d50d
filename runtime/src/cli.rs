//! The non-agent subcommands.

use std::path::Path;

use anyhow::Context;

use crate::host_setup::HostFlags;

/// Tracing targets of the agent's own code: its crates (a target is the
/// emitting module's path, which starts with the crate name) and `manager`,
/// the target of what hardware managers log through the `log` capability.
const OWN_TARGETS: &[&str] = &[
    "ironic_agent",
    "ironic_host",
    "agent_api",
    "ironic_client",
    "ironic_image",
    "ironic_config",
    "ironic_sim",
    "ironic_net",
    "ironic_steps",
    "blockdev",
    "generic_storage",
    "manager",
];

/// The log filter: info for everything; with `debug` (`--debug`,
/// `ipa-debug=1`), debug for the agent's own targets only. Libraries stay at
/// info, because their debug output drowns the console an operator reads
/// (Cranelift alone logs tens of thousands of lines while compiling one
/// manager). `IRONIC_AGENT_LOG` (an `EnvFilter` directive) overrides both.
pub fn log_filter(debug: bool) -> String {
    let mut directives = vec!["info".to_string()];
    if debug {
        directives.extend(OWN_TARGETS.iter().map(|t| format!("{t}=debug")));
    }
    directives.join(",")
}

/// Logging to stderr, the in-memory agent log and, when `log_file` is
/// given, that file (appended).
pub fn init_logging(debug: bool, json: bool, log_file: Option<&Path>) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("IRONIC_AGENT_LOG")
        .unwrap_or_else(|_| EnvFilter::new(log_filter(debug)));
    let file = log_file.and_then(|path| {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => Some(std::sync::Arc::new(std::sync::Mutex::new(f))),
            Err(e) => {
                eprintln!("cannot open the log file {}: {e}", path.display());
                None
            }
        }
    });
    // Colours only for a person at a terminal: the same text goes to the
    // in-memory log and the log file, which end up in Ironic's log store.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // Teed into memory: the logs collector and `collect_system_logs`
        // carry the agent's own log where there is no journal (the ramdisk).
        .with_writer(
            std::io::stderr
                .and(|| agent_api::AgentLogWriter)
                .and(move || LogFileWriter(file.clone())),
        );
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the host's async work for a one-shot subcommand.
fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

async fn start_host(flags: &HostFlags) -> anyhow::Result<ironic_host::Host> {
    let mut config = flags.host_config(&flags.machine()?)?;
    // A one-shot command exits before a background compile would finish:
    // compile optimised code at once, so its artifact reaches the cache.
    config.tiering = ironic_host::Tiering::OptimisedOnly;
    ironic_host::Host::start(config)
        .await
        .context("loading hardware managers")
}

/// Appends each formatted event to the log file, if one is open.
struct LogFileWriter(Option<std::sync::Arc<std::sync::Mutex<std::fs::File>>>);

impl std::io::Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = &self.0 {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn inventory(flags: &HostFlags, skip_bmc_detect: bool) -> anyhow::Result<()> {
    let inventory = block_on(async {
        let host = start_host(flags).await?;
        Ok(host.inventory(skip_bmc_detect).await?)
    })?;
    println!("{}", serde_json::to_string_pretty(&inventory)?);
    Ok(())
}

pub fn managers_list(flags: &HostFlags) -> anyhow::Result<()> {
    block_on(managers_list_async(flags))
}

async fn managers_list_async(flags: &HostFlags) -> anyhow::Result<()> {
    let host = start_host(flags).await?;
    println!("managers directory: {}", flags.managers_dir.display());
    for m in host.managers() {
        println!();
        println!("{} ({})", m.name, m.file.display());
        println!("  id:        {}", m.id);
        println!("  version:   {} {}", m.manager_name, m.version);
        println!("  contract:  ironic:hardware@{}", m.contract);
        println!("  support:   {}", m.support);
        println!("  manifest:  {:?}", m.manifest);
        println!("  loaded:    {:?}", m.loaded_from);
        println!("  declared:  {}", capabilities_line(&m.declared)?);
        println!("  granted:   {}", capabilities_line(&m.granted)?);
        if m.log_lines_dropped > 0 {
            println!("  log lines dropped (rate limit): {}", m.log_lines_dropped);
        }
    }
    for r in host.rejected() {
        println!();
        // The same words as the agent's log and `managers validate`.
        println!("{} {}: {}", r.kind, r.file.display(), r.reason);
    }
    print_step_owners(&host).await;
    Ok(())
}

/// Steps more than one manager lists: who runs them, whom that overrides,
/// and who was refused a takeover.
async fn print_step_owners(host: &ironic_host::Host) {
    use ironic_host::StepKind;
    let (node, ports) = (serde_json::json!({}), serde_json::json!([]));
    let mut printed_header = false;
    for kind in [StepKind::Clean, StepKind::Deploy, StepKind::Service] {
        let listings = match host.get_steps(kind, &node, &ports).await {
            Ok(l) => l,
            Err(e) => {
                println!();
                println!("{} steps: {e}", kind.as_str());
                continue;
            }
        };
        for owned in ironic_steps::step_ownership(&listings) {
            if owned.order.len() < 2 && owned.refused.is_empty() {
                continue;
            }
            if !printed_header {
                println!();
                println!("steps offered by several managers:");
                printed_header = true;
            }
            let id = |i: &usize| listings[*i].id.as_str();
            let mut line = format!("  {} {}:", kind.as_str(), owned.step);
            if let Some(winner) = owned.order.first() {
                line.push_str(&format!(" run by {}", id(winner)));
            }
            let overridden: Vec<&str> = owned.order.iter().skip(1).map(id).collect();
            if !overridden.is_empty() {
                line.push_str(&format!(", overriding {}", overridden.join(", ")));
            }
            let refused: Vec<&str> = owned.refused.iter().map(id).collect();
            if !refused.is_empty() {
                line.push_str(&format!(
                    "; refused to {} (no disk-write grant)",
                    refused.join(", ")
                ));
            }
            println!("{line}");
        }
    }
}

/// `managers compile [--cpu CPU]`.
pub fn managers_compile(flags: &HostFlags, cpu: Option<&str>) -> anyhow::Result<()> {
    if !ironic_host::COMPILER {
        anyhow::bail!(
            "this agent is built without a compiler (cargo feature `compiler`); \
             run `managers compile` with an agent of the same version built with it"
        );
    }
    let config = flags.host_config(&flags.machine()?)?;
    let cache_dir = config
        .cache_dir
        .clone()
        .context("no cache directory: pass --cache-dir (artifacts are looked up there at start)")?;
    let results = match cpu {
        None => ironic_host::precompile(&config, &cache_dir)?,
        Some(cpu) => precompile_for_cpu(&config.managers_dir, &cache_dir, cpu)?,
    };
    let mut failed = 0;
    for r in &results {
        match r {
            Ok(p) => println!(
                "{}: {} in {} ms -> {}",
                p.file.display(),
                match p.from {
                    ironic_host::LoadedFrom::Compiled => "compiled",
                    _ => "already cached",
                },
                p.elapsed.as_millis(),
                cache_dir.join(format!("{}.cwasm", p.key)).display()
            ),
            Err(r) => {
                failed += 1;
                println!("{}: FAILED: {}", r.file.display(), r.reason);
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} components could not be compiled",
            results.len()
        );
    }
    Ok(())
}

#[cfg(feature = "compiler")]
fn precompile_for_cpu(
    managers_dir: &Path,
    cache_dir: &Path,
    cpu: &str,
) -> anyhow::Result<Vec<Result<ironic_host::Precompiled, ironic_host::RejectedManager>>> {
    let cpu = if cpu == "portable" {
        ironic_host::PORTABLE_CPU
    } else {
        cpu
    };
    println!("compiling for CPU {cpu}");
    Ok(ironic_host::precompile_for_cpu(
        managers_dir,
        cache_dir,
        cpu,
    )?)
}

#[cfg(not(feature = "compiler"))]
fn precompile_for_cpu(
    _managers_dir: &Path,
    _cache_dir: &Path,
    _cpu: &str,
) -> anyhow::Result<Vec<Result<ironic_host::Precompiled, ironic_host::RejectedManager>>> {
    // Unreachable: `managers_compile` refuses first in a build without a compiler.
    anyhow::bail!("this agent is built without a compiler")
}

/// Prints the report; exits 1 (through the error) when the component would
/// be rejected.
pub fn managers_validate(flags: &HostFlags, file: &Path) -> anyhow::Result<()> {
    let config = flags.host_config(&flags.machine()?)?;
    let v = block_on(async { Ok(ironic_host::validate(&config, file).await?) })?;
    println!("component: {}", v.file.display());
    println!("  name:      {}", v.name);
    match &v.manifest {
        Some(source) => println!("  manifest:  {source:?}"),
        None => println!("  manifest:  none found"),
    }
    if let Some((id, name, version)) = &v.info {
        println!("  id:        {id}");
        println!("  version:   {name} {version}");
    }
    if let Some(contract) = v.contract {
        println!("  contract:  ironic:hardware@{contract}");
    }
    if let Some(support) = v.support {
        println!("  support:   {support}");
    }
    println!("  declared:  {}", capabilities_line(&v.declared)?);
    println!("  granted:   {}", capabilities_line(&v.granted)?);
    if !v.ungranted.is_empty() {
        println!("  ungranted: {}", v.ungranted.join(" "));
    }
    for (kind, steps) in &v.steps {
        match steps {
            Ok(steps) if steps.is_empty() => {}
            Ok(steps) => {
                println!("  {} steps:", kind.as_str());
                for step in steps {
                    println!("    {}", step_line(step));
                }
            }
            Err(e) => println!("  {} steps: listing failed: {e}", kind.as_str()),
        }
    }
    match (&v.verdict, &v.unused) {
        (Ok(()), _) => {
            println!("verdict: OK");
            Ok(())
        }
        (Err(reason), kind) => {
            let kind = kind.clone().unwrap_or(ironic_host::Unused::Rejected);
            println!("verdict: {}: {reason}", kind.to_string().to_uppercase());
            anyhow::bail!("{} {kind}: {reason}", v.file.display())
        }
    }
}

/// `name (priority P, interface I, abortable, reboot) args: a*, b` for a
/// step dict; `*` marks required arguments.
fn step_line(step: &serde_json::Value) -> String {
    let mut line = format!(
        "{} (priority {}, interface {}",
        step["step"].as_str().unwrap_or("?"),
        step["priority"],
        step["interface"].as_str().unwrap_or("?")
    );
    if step["abortable"] == serde_json::Value::Bool(true) {
        line.push_str(", abortable");
    }
    if step["reboot_requested"] == serde_json::Value::Bool(true) {
        line.push_str(", reboot requested");
    }
    line.push(')');
    if let Some(args) = step["argsinfo"].as_object() {
        let names: Vec<String> = args
            .iter()
            .map(|(name, info)| {
                if info["required"] == serde_json::Value::Bool(true) {
                    format!("{name}*")
                } else {
                    name.clone()
                }
            })
            .collect();
        if !names.is_empty() {
            line.push_str(&format!(" args: {}", names.join(", ")));
        }
    }
    line
}

/// One line per capability set, e.g. `log progress machine.paths=[...]`.
fn capabilities_line(caps: &ironic_host::Capabilities) -> anyhow::Result<String> {
    let value = serde_json::to_value(caps)?;
    let mut parts = Vec::new();
    flatten("", &value, &mut parts);
    Ok(if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(" ")
    })
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Bool(true) => out.push(prefix.to_string()),
        serde_json::Value::Array(items) if !items.is_empty() => {
            out.push(format!("{prefix}={value}"))
        }
        serde_json::Value::Number(n) => out.push(format!("{prefix}={n}")),
        serde_json::Value::String(s) => out.push(format!("{prefix}={s}")),
        _ => {}
    }
}

pub fn sim_create(dir: &Path, machine: Option<&Path>) -> anyhow::Result<()> {
    let desc = match machine {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading machine description {}", path.display()))?;
            ironic_sim::MachineDescription::from_toml(&text, path)?
        }
        None => ironic_sim::MachineDescription::from_toml(
            ironic_sim::DEFAULT_MACHINE,
            Path::new("<built-in default machine>"),
        )?,
    };
    let machine = ironic_sim::create(&desc, dir)?;
    println!("simulated machine created at {}", machine.root.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What one debug and one info event per target print under the filter.
    fn printed(debug: bool) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(log_filter(debug)))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "ironic_host::registry", "own debug");
            tracing::debug!(target: "manager", "manager debug");
            tracing::debug!(target: "cranelift_codegen::timing", "library debug");
            tracing::info!(target: "ironic_client::lookup", "own info");
            tracing::info!(target: "wasmtime::compile", "library info");
        });
        let bytes = captured.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn debug_raises_only_the_agents_own_targets() {
        let text = printed(true);
        assert!(text.contains("own debug"), "{text}");
        assert!(text.contains("manager debug"), "{text}");
        assert!(!text.contains("library debug"), "{text}");
        assert!(
            text.contains("own info") && text.contains("library info"),
            "{text}"
        );
    }

    #[test]
    fn without_debug_everything_is_at_info() {
        let text = printed(false);
        assert!(
            !text.contains("own debug") && !text.contains("manager debug"),
            "{text}"
        );
        assert!(
            text.contains("own info") && text.contains("library info"),
            "{text}"
        );
    }
}
