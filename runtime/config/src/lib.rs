//! IPA-compatible configuration with provenance.
//!
//! Layers, lowest first (IPA `cmd/agent.py` `run` with oslo.config,
//! simplified): built-in defaults < kernel command line
//! (`<hardware_root>/proc/cmdline`; IPA `config.py` takes its `ipa-*`
//! parameters as option defaults) < environment `OS_<GROUP>__<OPT>` < config
//! files / dirs and CLI flags, resolved in command-line order (as oslo.config
//! does) < runtime overrides (`ipa-debug`, Ironic's lookup `config`). Every
//! effective value remembers the layer (and file + line) it came from;
//! [`render`] prints them for `ironic-agent config`.
//!
//! Unknown keys and sections in files are *warnings* (oslo ignores them, we
//! never do so silently); unknown `ipa-*` kernel parameters are warnings;
//! malformed files, unknown CLI flags and invalid values are errors that
//! stop start-up and name the file, line, key and value.
//!
//! Longer than most files here: the layers and their precedence are one algorithm (`LayerLoader`,
//! `load`) that only reads correctly whole; the option registry, INI parsing and values are already
//! modules of their own, the tests a file of their own.

mod ini;
pub mod options;
pub mod unsupported;
mod value;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub use options::{OptSpec, OptType, OPTIONS};
pub use unsupported::unsupported;
pub use value::{parse_bool, Value};

/// Where an effective value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// Decided at load time from the environment of the machine (e.g. `listen_host`).
    Computed(String),
    /// A kernel command-line parameter.
    Kernel { param: String, path: PathBuf },
    /// An environment variable `OS_<GROUP>__<OPTION>`.
    Env { var: String },
    /// A config file assignment.
    File { path: PathBuf, line: usize },
    /// A command-line flag.
    Cli { flag: String },
    /// `ipa-debug` applied as an override (beats everything but Ironic).
    KernelOverride { param: String },
    /// The `config` object of Ironic's lookup response.
    Ironic { key: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Computed(why) => write!(f, "computed: {why}"),
            Source::Kernel { param, path } => {
                write!(f, "kernel command line {param} ({})", path.display())
            }
            Source::Env { var } => write!(f, "environment {var}"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Cli { flag } => write!(f, "command line {flag}"),
            Source::KernelOverride { param } => write!(f, "kernel command line {param} (override)"),
            Source::Ironic { key } => write!(f, "Ironic lookup config.{key}"),
        }
    }
}

/// An effective value and its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The typed value.
    pub value: Value,
    /// The layer it came from.
    pub source: Source,
}

/// A problem found while loading that does not stop start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Warning {
    /// Where (file:line, kernel command line, ...).
    pub origin: String,
    /// What.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// Errors that stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not fit its option's type.
    #[error("{origin}: invalid value for [{group}]{key}: {value:?} ({reason})")]
    InvalidValue {
        origin: String,
        group: String,
        key: String,
        value: String,
        reason: String,
    },
    /// A config file that is not valid INI.
    #[error("{path}:{line}: {message}", path = path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A file or directory that cannot be read.
    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A command-line flag that is not an IPA option.
    #[error("unknown command-line flag {0}")]
    UnknownFlag(String),
    /// A flag that needs a value at the end of the command line.
    #[error("command-line flag {0} needs a value")]
    MissingValue(String),
}

/// One item of the IPA part of the command line, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum CliItem {
    /// `--config-file PATH`.
    ConfigFile(PathBuf),
    /// `--config-dir DIR`.
    ConfigDir(PathBuf),
    /// `--<option> VALUE`, `--<bool>` / `--no<bool>`, `-d`.
    Set {
        flag: String,
        name: &'static str,
        raw: String,
    },
}

/// IPA's command-line flags, in command-line order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliLayer {
    /// The items, in the order given.
    pub items: Vec<CliItem>,
}

/// oslo.log flag spellings → `[DEFAULT]` option (value flags).
const LOG_VALUE_FLAGS: &[(&str, &str)] = &[
    ("log-config-append", "log_config_append"),
    ("log-config", "log_config_append"),
    ("log_config", "log_config_append"),
    ("log-date-format", "log_date_format"),
    ("log-file", "log_file"),
    ("logfile", "log_file"),
    ("log-dir", "log_dir"),
    ("logdir", "log_dir"),
    ("syslog-log-facility", "syslog_log_facility"),
];
/// oslo.log boolean flags (`--x` / `--nox`).
const LOG_BOOL_FLAGS: &[(&str, &str)] = &[
    ("debug", "debug"),
    ("use-syslog", "use_syslog"),
    ("use-journal", "use_journal"),
    ("use-json", "use_json"),
];

fn default_option(flag_name: &str) -> Option<&'static OptSpec> {
    // `--listen-host` is accepted for `--listen_host` (the agent's own CLI
    // used dashes before), except where the dashed spelling is the real name.
    options::find("DEFAULT", flag_name)
}

/// What a `--name` (without the dashes) means, if it is an IPA flag:
/// (option name, takes a value, value when it is a bare boolean flag).
fn classify(name: &str) -> Option<(&'static str, bool, Option<&'static str>)> {
    if let Some((_, opt)) = LOG_VALUE_FLAGS.iter().find(|(f, _)| *f == name) {
        return Some((opt, true, None));
    }
    if let Some((_, opt)) = LOG_BOOL_FLAGS.iter().find(|(f, _)| *f == name) {
        return Some((opt, false, Some("true")));
    }
    if let Some(rest) = name.strip_prefix("no") {
        if let Some((_, opt)) = LOG_BOOL_FLAGS.iter().find(|(f, _)| *f == rest) {
            return Some((opt, false, Some("false")));
        }
    }
    if let Some(spec) = default_option(name) {
        return Some(match spec.ty {
            OptType::Bool => (spec.name, false, Some("true")),
            _ => (spec.name, true, None),
        });
    }
    if let Some(rest) = name.strip_prefix("no") {
        if let Some(spec) = default_option(rest).filter(|s| s.ty == OptType::Bool) {
            return Some((spec.name, false, Some("false")));
        }
    }
    None
}

impl CliLayer {
    /// Takes IPA's flags (every `[DEFAULT]` option as `--name VALUE` or
    /// `--name=VALUE`, booleans as `--name`/`--noname`, oslo.log flags,
    /// `-d`, `--config-file`, `--config-dir`) out of `args` (without the
    /// program name) and returns them with the remaining arguments, for
    /// clap. Arguments after `--` are left alone.
    pub fn split_args<I>(args: I) -> Result<(CliLayer, Vec<OsString>), ConfigError>
    where
        I: IntoIterator<Item = OsString>,
    {
        let mut layer = CliLayer::default();
        let mut rest = Vec::new();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let Some(text) = arg.to_str() else {
                rest.push(arg);
                continue;
            };
            if text == "--" {
                rest.push(arg);
                rest.extend(it.by_ref());
                break;
            }
            if text == "-d" {
                layer.items.push(CliItem::Set {
                    flag: "-d".into(),
                    name: "debug",
                    raw: "true".into(),
                });
                continue;
            }
            let Some(body) = text.strip_prefix("--") else {
                rest.push(arg);
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let take_value =
                |it: &mut dyn Iterator<Item = OsString>| -> Result<String, ConfigError> {
                    match &inline {
                        Some(v) => Ok(v.clone()),
                        None => it
                            .next()
                            .and_then(|v| v.into_string().ok())
                            .ok_or_else(|| ConfigError::MissingValue(format!("--{name}"))),
                    }
                };
            match name {
                "config-file" | "config_file" => {
                    layer
                        .items
                        .push(CliItem::ConfigFile(PathBuf::from(take_value(&mut it)?)));
                }
                "config-dir" | "config_dir" => {
                    layer
                        .items
                        .push(CliItem::ConfigDir(PathBuf::from(take_value(&mut it)?)));
                }
                _ => match classify(name) {
                    Some((opt, true, _)) => {
                        let raw = take_value(&mut it)?;
                        layer.items.push(CliItem::Set {
                            flag: format!("--{name}"),
                            name: opt,
                            raw,
                        });
                    }
                    Some((opt, false, Some(v))) => {
                        // `--debug=false` is not oslo syntax, but be explicit about it.
                        let raw = inline.clone().unwrap_or_else(|| v.to_string());
                        layer.items.push(CliItem::Set {
                            flag: format!("--{name}"),
                            name: opt,
                            raw,
                        });
                    }
                    _ => rest.push(arg),
                },
            }
        }
        Ok((layer, rest))
    }

    /// Like [`CliLayer::split_args`] but every argument must be an IPA flag.
    pub fn parse<I>(args: I) -> Result<CliLayer, ConfigError>
    where
        I: IntoIterator<Item = OsString>,
    {
        let (layer, rest) = Self::split_args(args)?;
        match rest.first() {
            Some(a) => Err(ConfigError::UnknownFlag(a.to_string_lossy().into_owned())),
            None => Ok(layer),
        }
    }
}

/// Inputs of [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Root of the machine's view; the kernel command line is read from
    /// `<hardware_root>/proc/cmdline` (absent file = empty command line).
    pub hardware_root: PathBuf,
    /// IPA flags in command-line order.
    pub cli: CliLayer,
    /// Candidates used when no `--config-file` is given: the first existing
    /// one is read. [`LoadOptions::ipa_default_paths`] fills IPA's.
    pub default_config_files: Vec<PathBuf>,
    /// Candidates used when no `--config-dir` is given: the first existing one.
    pub default_config_dirs: Vec<PathBuf>,
    /// Environment variables to consider (only `OS_*__*` are used).
    pub env: Vec<(String, String)>,
    /// `parameters.txt` of the `ir-vfd-dev` virtual media and where it was
    /// read: used when the command line says `boot_method=vmedia`, and then
    /// wins over the command line (IPA `utils.get_agent_params`).
    pub vmedia_params: Option<(PathBuf, BTreeMap<String, String>)>,
}

impl LoadOptions {
    /// IPA's default search paths (oslo.config `find_config_files` /
    /// `find_config_dirs` for project `ironic-python-agent`):
    /// `~/ironic-python-agent.conf`, `/etc/ironic-python-agent.conf`, and the same
    /// with `.d/`-style dirs `~/ironic-python-agent.conf.d/`,
    /// `/etc/ironic-python-agent.conf.d/`.
    pub fn ipa_default_paths(mut self) -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        if let Some(h) = &home {
            files.push(h.join("ironic-python-agent.conf"));
            dirs.push(h.join("ironic-python-agent.conf.d"));
        }
        files.push(PathBuf::from("/etc/ironic-python-agent.conf"));
        dirs.push(PathBuf::from("/etc/ironic-python-agent.conf.d"));
        self.default_config_files = files;
        self.default_config_dirs = dirs;
        self
    }

    /// The process environment's `OS_*` variables.
    pub fn with_process_env(mut self) -> Self {
        self.env = std::env::vars()
            .filter(|(k, _)| k.starts_with("OS_"))
            .collect();
        self
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<(String, String), Entry>,
    kernel: BTreeMap<String, String>,
    cmdline_path: PathBuf,
    files_read: Vec<PathBuf>,
    warnings: Vec<Warning>,
}

fn key(group: &str, name: &str) -> (String, String) {
    (group.to_string(), name.to_string())
}

/// Reads the kernel command line (IPA `utils._read_params_from_file`):
/// whitespace-split tokens, `key=value` at the first `=`, tokens without `=`
/// ignored, later wins.
pub fn parse_cmdline(text: &str) -> BTreeMap<String, String> {
    text.split_whitespace()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Normalises a `BOOTIF` value: `01-aa-bb-cc-dd-ee-ff` → `aa:bb:cc:dd:ee:ff`.
pub fn normalize_bootif(raw: &str) -> String {
    let mac = if raw.contains('-') {
        raw.split_once('-').map_or(raw, |(_, r)| r)
    } else {
        raw
    };
    mac.replace('-', ":").to_ascii_lowercase()
}

struct LayerLoader {
    values: BTreeMap<(String, String), Entry>,
    warnings: Vec<Warning>,
    files_read: Vec<PathBuf>,
    /// Options set by a config file (oslo's env-var rule needs it).
    set_by_file: std::collections::BTreeSet<(String, String)>,
    /// Options set by a CLI flag.
    set_by_cli: std::collections::BTreeSet<(String, String)>,
}

impl LayerLoader {
    fn set(
        &mut self,
        spec: &OptSpec,
        raw: &str,
        source: Source,
        origin: &str,
    ) -> Result<(), ConfigError> {
        let value = value::parse(spec, raw).map_err(|reason| ConfigError::InvalidValue {
            origin: origin.to_string(),
            group: spec.group.to_string(),
            key: spec.name.to_string(),
            value: if spec.secret {
                "***".into()
            } else {
                raw.to_string()
            },
            reason,
        })?;
        self.values
            .insert(key(spec.group, spec.name), Entry { value, source });
        Ok(())
    }

    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let assignments = ini::parse(&text).map_err(|(line, message)| ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message,
        })?;
        self.files_read.push(path.to_path_buf());
        let mut warned_sections = std::collections::BTreeSet::new();
        for a in assignments {
            let origin = format!("{}:{}", path.display(), a.line);
            let (group, name) = if a.section == "ssl" {
                match options::SSL_ALIASES.iter().find(|(old, _)| *old == a.key) {
                    Some((old, new)) => {
                        self.warnings.push(Warning {
                            origin: origin.clone(),
                            message: format!("[ssl]{old} is deprecated, use [DEFAULT]{new}"),
                        });
                        ("DEFAULT".to_string(), new.to_string())
                    }
                    None => {
                        self.warnings.push(Warning {
                            origin,
                            message: format!("unknown option [ssl]{} (ignored)", a.key),
                        });
                        continue;
                    }
                }
            } else {
                (a.section.clone(), a.key.clone())
            };
            if !options::SECTIONS.contains(&group.as_str()) {
                if warned_sections.insert(group.clone()) {
                    self.warnings.push(Warning {
                        origin,
                        message: format!("unknown section [{group}] (ignored)"),
                    });
                }
                continue;
            }
            let Some(spec) = options::find(&group, &name) else {
                self.warnings.push(Warning {
                    origin,
                    message: format!("unknown option [{group}]{name} (ignored)"),
                });
                continue;
            };
            self.set(
                spec,
                &a.value,
                Source::File {
                    path: path.to_path_buf(),
                    line: a.line,
                },
                &origin,
            )?;
            self.set_by_file.insert(key(spec.group, spec.name));
        }
        Ok(())
    }

    fn read_dir(&mut self, dir: &Path) -> Result<(), ConfigError> {
        let rd = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
            .collect();
        files.sort();
        for f in files {
            self.read_file(&f)?;
        }
        Ok(())
    }
}

/// Builds the configuration from all layers. Warnings are kept in the result
/// ([`Config::warnings`]) because logging is configured from it.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigError> {
    let mut l = LayerLoader {
        values: BTreeMap::new(),
        warnings: Vec::new(),
        files_read: Vec::new(),
        set_by_file: Default::default(),
        set_by_cli: Default::default(),
    };
    // 1. defaults.
    for spec in OPTIONS {
        if let Some(d) = spec.default {
            l.set(spec, d, Source::Default, "built-in default")?;
        }
    }
    let ipv6 = Path::new("/proc/net/if_inet6").exists();
    let (host, why) = if ipv6 {
        ("::", "IPv6 is enabled")
    } else {
        ("0.0.0.0", "IPv6 is disabled")
    };
    l.values.insert(
        key("DEFAULT", "listen_host"),
        Entry {
            value: Value::Str(host.into()),
            source: Source::Computed(why.into()),
        },
    );

    // 2. kernel command line.
    let cmdline_path = opts.hardware_root.join("proc/cmdline");
    let kernel = match std::fs::read_to_string(&cmdline_path) {
        Ok(text) => parse_cmdline(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(source) => {
            return Err(ConfigError::Io {
                path: cmdline_path,
                source,
            })
        }
    };
    let mut kernel = kernel;
    let mut param_paths: BTreeMap<String, PathBuf> = BTreeMap::new();
    if kernel.get("boot_method").map(String::as_str) == Some("vmedia") {
        if let Some((path, params)) = &opts.vmedia_params {
            for (k, v) in params {
                kernel.insert(k.clone(), v.clone());
                param_paths.insert(k.clone(), path.clone());
            }
        }
    }
    const DIRECT: &[&str] = &["ipa-debug", "ipa-inspection-benchmarks"];
    for (param, raw) in &kernel {
        let path = param_paths.get(param).unwrap_or(&cmdline_path);
        if let Some(spec) = OPTIONS.iter().find(|s| s.kernel == Some(param.as_str())) {
            let origin = format!("kernel command line ({}) {param}", path.display());
            l.set(
                spec,
                raw,
                Source::Kernel {
                    param: param.clone(),
                    path: path.clone(),
                },
                &origin,
            )?;
        } else if param.starts_with("ipa-") && !DIRECT.contains(&param.as_str()) {
            l.warnings.push(Warning {
                origin: format!("kernel command line ({})", cmdline_path.display()),
                message: format!("unknown parameter {param} (ignored)"),
            });
        }
    }

    // 3. files and flags in command-line order; default files/dirs first.
    let has_file = opts
        .cli
        .items
        .iter()
        .any(|i| matches!(i, CliItem::ConfigFile(_)));
    let has_dir = opts
        .cli
        .items
        .iter()
        .any(|i| matches!(i, CliItem::ConfigDir(_)));
    if !has_file {
        if let Some(f) = opts.default_config_files.iter().find(|p| p.is_file()) {
            l.read_file(f)?;
        }
    }
    if !has_dir {
        if let Some(d) = opts.default_config_dirs.iter().find(|p| p.is_dir()) {
            l.read_dir(d)?;
        }
    }
    for item in &opts.cli.items {
        match item {
            CliItem::ConfigFile(p) => l.read_file(p)?,
            CliItem::ConfigDir(d) => l.read_dir(d)?,
            CliItem::Set { flag, name, raw } => {
                let spec = options::find("DEFAULT", name)
                    .ok_or_else(|| ConfigError::UnknownFlag(flag.clone()))?;
                l.set(
                    spec,
                    raw,
                    Source::Cli { flag: flag.clone() },
                    &format!("command line {flag}"),
                )?;
                l.set_by_cli.insert(key(spec.group, spec.name));
            }
        }
    }

    // 4. environment: beats files; a CLI flag beats it only when no file set
    // the option (oslo.config `sources/_environment.py` behaviour).
    for (var, raw) in &opts.env {
        let Some(rest) = var.strip_prefix("OS_") else {
            continue;
        };
        let Some((group, name)) = rest.split_once("__") else {
            continue;
        };
        let group = if group == "DEFAULT" {
            "DEFAULT".to_string()
        } else {
            group.to_ascii_lowercase()
        };
        let name = name.to_ascii_lowercase();
        let Some(spec) = options::find(&group, &name) else {
            l.warnings.push(Warning {
                origin: format!("environment {var}"),
                message: "unknown option (ignored)".into(),
            });
            continue;
        };
        let k = key(spec.group, spec.name);
        if l.set_by_cli.contains(&k) && !l.set_by_file.contains(&k) {
            continue;
        }
        l.set(
            spec,
            raw,
            Source::Env { var: var.clone() },
            &format!("environment {var}"),
        )?;
    }

    // 5. `ipa-debug` is an override of `debug` (lenient boolean).
    if let Some(raw) = kernel.get("ipa-debug") {
        l.values.insert(
            key("DEFAULT", "debug"),
            Entry {
                value: Value::Bool(value::parse_lenient_bool(raw)),
                source: Source::KernelOverride {
                    param: "ipa-debug".into(),
                },
            },
        );
    }

    // Cross-option checks that IPA also warns about.
    let mut cfg = Config {
        values: l.values,
        kernel,
        cmdline_path,
        files_read: l.files_read,
        warnings: l.warnings,
    };
    if cfg.str("certfile").is_some() != cfg.str("keyfile").is_some() {
        cfg.warnings.push(Warning {
            origin: "configuration".into(),
            message: "certfile and keyfile must be set together; the one given is ignored".into(),
        });
    }
    Ok(cfg)
}

/// Values Ironic's lookup `config` may override (IPA `agent.py`
/// `IronicPythonAgent.process_lookup_data`).
const CONTAINER_KEYS: &[&str] = &[
    "allow_arbitrary_containers",
    "allowed_containers",
    "container_steps_file",
    "runner",
    "pull_options",
    "run_options",
];

fn json_to_raw(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Array(a) => Some(
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                .collect::<Vec<_>>()
                .join(","),
        ),
        serde_json::Value::Object(_) => None,
    }
}

fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
    }
}

impl Config {
    /// The entry of `[group]name`.
    pub fn get(&self, group: &str, name: &str) -> Option<&Entry> {
        let spec = options::find(group, name)?;
        self.values.get(&key(spec.group, spec.name))
    }

    /// `[DEFAULT]name` as text (any type rendered); `None` when unset.
    pub fn str(&self, name: &str) -> Option<String> {
        self.get("DEFAULT", name).map(|e| e.value.to_string())
    }

    /// `[DEFAULT]name` as text, `None` when unset or empty.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.str(name).filter(|s| !s.trim().is_empty())
    }

    /// A boolean option of any group (`false` when unset).
    pub fn bool_in(&self, group: &str, name: &str) -> bool {
        matches!(
            self.get(group, name),
            Some(Entry {
                value: Value::Bool(true),
                ..
            })
        )
    }

    /// A `[DEFAULT]` boolean (`false` when unset).
    pub fn bool(&self, name: &str) -> bool {
        self.bool_in("DEFAULT", name)
    }

    /// A `[DEFAULT]` integer (`None` when unset).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get("DEFAULT", name)?.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    /// A `[DEFAULT]` float (`None` when unset).
    pub fn float(&self, name: &str) -> Option<f64> {
        match self.get("DEFAULT", name)?.value {
            Value::Float(x) => Some(x),
            Value::Int(i) => Some(i as f64),
            _ => None,
        }
    }

    /// A comma-list option of any group (also splits `Str` options such as
    /// `api_url` and `inspection_collectors`); empty items dropped.
    pub fn list_in(&self, group: &str, name: &str) -> Vec<String> {
        match self.get(group, name).map(|e| &e.value) {
            Some(Value::List(l)) => l.clone(),
            Some(v) => v
                .to_string()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The Ironic API URLs (`api_url` split on `,`, right-stripped of `/`).
    pub fn api_urls(&self) -> Vec<String> {
        self.list_in("DEFAULT", "api_url")
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect()
    }

    /// All kernel parameters (`BOOTIF`, `boot_method`, ...).
    pub fn kernel_params(&self) -> &BTreeMap<String, String> {
        &self.kernel
    }

    /// Raw `BOOTIF` kernel parameter.
    pub fn bootif(&self) -> Option<&str> {
        self.kernel.get("BOOTIF").map(String::as_str)
    }

    /// Config files read, in order.
    pub fn files_read(&self) -> &[PathBuf] {
        &self.files_read
    }

    /// Non-fatal findings (unknown keys, deprecated aliases, ...).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Logs every warning through `tracing` (call once logging is set up),
    /// then names, once, the options set to something other than their
    /// default that this agent accepts but does not act on.
    pub fn log_warnings(&self) {
        for w in &self.warnings {
            tracing::warn!(origin = %w.origin, "configuration: {}", w.message);
        }
        let set = self.unsupported_in_use();
        if !set.is_empty() {
            tracing::warn!(
                "accepted but not supported by this agent: {}",
                set.join("; ")
            );
        }
        tracing::debug!(
            "options accepted but not supported by this agent (left at their defaults): {}",
            unsupported::UNSUPPORTED
                .iter()
                .map(|(g, n, _)| format!("[{g}]{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    /// Where oslo.log would write (`log_file`, relative to `log_dir` when
    /// both are set; `log_dir` alone gives `ironic-python-agent.log` there).
    pub fn log_file_path(&self) -> Option<PathBuf> {
        let file = self.non_empty("log_file").map(PathBuf::from);
        let dir = self.non_empty("log_dir").map(PathBuf::from);
        match (dir, file) {
            (Some(dir), Some(file)) => Some(dir.join(file)),
            (None, Some(file)) => Some(file),
            (Some(dir), None) => Some(dir.join("ironic-python-agent.log")),
            (None, None) => None,
        }
    }

    /// `[group]name = value (source): why` for every unsupported option
    /// given a value by any layer but the built-in defaults.
    pub fn unsupported_in_use(&self) -> Vec<String> {
        OPTIONS
            .iter()
            .filter_map(|spec| {
                let why = unsupported::unsupported(spec.group, spec.name)?;
                let entry = self.values.get(&key(spec.group, spec.name))?;
                if entry.source == Source::Default {
                    return None;
                }
                let shown = if spec.secret {
                    "***".to_string()
                } else {
                    entry.value.to_string()
                };
                Some(format!(
                    "[{}]{} = {} ({}): {why}",
                    spec.group, spec.name, shown, entry.source
                ))
            })
            .collect()
    }

    /// Sets a runtime override (the agent's own decisions, e.g. auto-TLS
    /// switching `advertise_protocol`). The value is validated like any other.
    pub fn set_override(
        &mut self,
        group: &str,
        name: &str,
        raw: &str,
        source: Source,
    ) -> Result<(), ConfigError> {
        let spec = options::find(group, name)
            .ok_or_else(|| ConfigError::UnknownFlag(format!("[{group}]{name}")))?;
        let value = value::parse(spec, raw).map_err(|reason| ConfigError::InvalidValue {
            origin: source.to_string(),
            group: spec.group.into(),
            key: spec.name.into(),
            value: raw.into(),
            reason,
        })?;
        self.values
            .insert(key(spec.group, spec.name), Entry { value, source });
        Ok(())
    }

    /// Applies the `config` object of a lookup response as the runtime layer (IPA
    /// `IronicPythonAgent.process_lookup_data`). Bad values are logged and ignored,
    /// as IPA does. Returns the option names changed. The token, heartbeat timeout
    /// and `agent_skip_bmc_detect` are not options: the client handles them.
    pub fn apply_ironic(&mut self, config: &serde_json::Value) -> Vec<String> {
        let mut changed = Vec::new();
        let Some(obj) = config.as_object() else {
            return changed;
        };
        let mut apply =
            |cfg: &mut Config, group: &str, name: &str, ikey: &str, v: &serde_json::Value| {
                let Some(raw) = json_to_raw(v) else { return };
                match cfg.set_override(
                    group,
                    name,
                    &raw,
                    Source::Ironic {
                        key: ikey.to_string(),
                    },
                ) {
                    Ok(()) => changed.push(format!("[{group}]{name}")),
                    Err(e) => tracing::warn!("ignoring Ironic's config.{ikey}: {e}"),
                }
            };
        if let Some(v) = obj
            .get("enable_bios_bootloader_install")
            .filter(|v| truthy(v))
        {
            apply(
                self,
                "DEFAULT",
                "enable_bios_bootloader_install",
                "enable_bios_bootloader_install",
                v,
            );
        }
        if let Some(c) = obj.get("agent_containers").and_then(|v| v.as_object()) {
            for (k, v) in c {
                if CONTAINER_KEYS.contains(&k.as_str()) {
                    apply(self, "container", k, &format!("agent_containers.{k}"), v);
                } else {
                    tracing::warn!("ignoring unknown Ironic config.agent_containers.{k}");
                }
            }
        }
        for name in ["disable_deep_image_inspection", "permitted_image_formats"] {
            if let Some(v) = obj.get(name).filter(|v| !v.is_null()) {
                apply(self, "DEFAULT", name, name, v);
            }
        }
        if let Some(v) = obj
            .get("agent_md5_checksum_enable")
            .filter(|v| !v.is_null())
        {
            apply(
                self,
                "DEFAULT",
                "md5_enabled",
                "agent_md5_checksum_enable",
                v,
            );
        }
        for name in ["tls_min_version", "tls_cipher_suites"] {
            if let Some(v) = obj.get(name).filter(|v| truthy(v)) {
                apply(self, "DEFAULT", name, name, v);
            }
        }
        changed
    }
}

/// One line per known option: `[group] name = value    # source`, secrets
/// masked, unset options shown as `<unset>`; then the files read and warnings.
pub fn render(cfg: &Config) -> String {
    let mut out = String::new();
    let mut group = "";
    for spec in OPTIONS {
        if spec.group != group {
            group = spec.group;
            out.push_str(&format!("[{group}]\n"));
        }
        match cfg.values.get(&key(spec.group, spec.name)) {
            Some(e) => {
                let shown = if spec.secret {
                    "***".to_string()
                } else {
                    e.value.to_string()
                };
                out.push_str(&format!("{} = {}    # {}", spec.name, shown, e.source));
            }
            None => out.push_str(&format!("{} = <unset>", spec.name)),
        }
        if let Some(why) = unsupported::unsupported(spec.group, spec.name) {
            out.push_str(&format!("    # NOT SUPPORTED by this agent: {why}"));
        }
        out.push('\n');
    }
    out.push_str("\n# kernel command line: ");
    out.push_str(&cfg.cmdline_path.display().to_string());
    out.push('\n');
    for f in &cfg.files_read {
        out.push_str(&format!("# config file read: {}\n", f.display()));
    }
    for w in &cfg.warnings {
        out.push_str(&format!("# warning: {w}\n"));
    }
    out
}

#[cfg(test)]
mod tests;
