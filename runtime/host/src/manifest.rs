//! Capability manifests: what a manager declares (embedded custom section
//! `ironic:manifest` or a `<stem>.manifest.toml` beside the component) and,
//! in the same shape, what the operator grants.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Name of the custom section the guest SDK embeds the manifest in.
pub const MANIFEST_SECTION: &str = "ironic:manifest";

/// A set of capabilities: declared by a manager or granted by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// May write to the agent's log.
    #[serde(default)]
    pub log: bool,
    /// May report step progress.
    #[serde(default)]
    pub progress: bool,
    /// Read-only machine view.
    #[serde(default)]
    pub machine: MachineCaps,
    /// Block devices.
    #[serde(default)]
    pub disks: DiskCaps,
    /// Programs to run.
    #[serde(default)]
    pub commands: CommandCaps,
    /// May ask the managers after it for their inventory answers
    /// (`fallback`, contract 0.3.0).
    #[serde(default)]
    pub fallback: bool,
    /// Downloads (`fetch`, contract 0.3.0).
    #[serde(default)]
    pub fetch: FetchCaps,
    /// A private directory (`scratch`, contract 0.3.0).
    #[serde(default)]
    pub scratch: ScratchCaps,
    /// Files shipped beside the component, name → SHA-256 (lower-case
    /// hex). Manifest only: a grant has none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub assets: std::collections::BTreeMap<String, String>,
}

/// `[fetch]`: URLs to download from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchCaps {
    /// URL globs, e.g. `https://firmware.example.com/**` (`*` stays inside
    /// one path segment).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Largest download, in bytes (the smaller of declared and granted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// `[scratch]`: the size of the private directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScratchCaps {
    /// MiB; none: no scratch space. The smaller of declared and granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<u64>,
    /// Kept from call to call until the manager is unloaded (a grant's
    /// choice; by default it is wiped after every call).
    #[serde(default)]
    pub persistent: bool,
}

/// `[machine]`: path globs and network addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineCaps {
    /// Globs over absolute paths, e.g. `/sys/**`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// May list interface addresses.
    #[serde(default)]
    pub network: bool,
    /// Globs over absolute paths of files that may be removed, e.g.
    /// `/sys/fs/pstore/*`. Separate from `paths`, which only allows reading.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `[disks]`: device globs for read-only and read-write opens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskCaps {
    /// Devices that may be opened read-only, e.g. `/dev/*`.
    #[serde(default)]
    pub read: Vec<String>,
    /// Devices that may be opened read-write.
    #[serde(default)]
    pub write: Vec<String>,
}

/// `[commands]`: bare program names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandCaps {
    /// Program names, looked up in the host's program directories.
    #[serde(default)]
    pub programs: Vec<String>,
    /// Environment variable names a program may be given
    /// (`commands.run-with`, contract 0.3.0).
    #[serde(default)]
    pub env: Vec<String>,
}

impl Capabilities {
    /// Parse a manifest; the error names `source` and the offending key.
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Capabilities> {
        let caps: Capabilities =
            toml::from_str(text).with_context(|| format!("manifest {source} is invalid"))?;
        for (name, digest) in &caps.assets {
            if !crate::capabilities::is_plain_name(name) {
                bail!("manifest {source}: assets: {name:?} is not a plain file name");
            }
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("manifest {source}: assets.{name}: {digest:?} is not a SHA-256 in hex");
            }
        }
        for name in &caps.commands.env {
            if name.is_empty() || name.contains(['=', '\0']) || name == "PATH" {
                bail!(
                    "manifest {source}: commands.env: {name:?} is not a variable a manager may set"
                );
            }
        }
        for program in &caps.commands.programs {
            if program.is_empty() || program.contains('/') || program.contains('\0') {
                bail!(
                    "manifest {source}: commands.programs: {program:?} is not a bare program name"
                );
            }
        }
        Ok(caps)
    }

    /// Union of two capability sets (used for `[managers."*"]` + per-manager grants).
    pub fn union(&self, other: &Capabilities) -> Capabilities {
        fn join(a: &[String], b: &[String]) -> Vec<String> {
            let mut v: Vec<String> = a.to_vec();
            for s in b {
                if !v.contains(s) {
                    v.push(s.clone());
                }
            }
            v
        }
        Capabilities {
            log: self.log || other.log,
            progress: self.progress || other.progress,
            machine: MachineCaps {
                paths: join(&self.machine.paths, &other.machine.paths),
                remove: join(&self.machine.remove, &other.machine.remove),
                network: self.machine.network || other.machine.network,
            },
            disks: DiskCaps {
                read: join(&self.disks.read, &other.disks.read),
                write: join(&self.disks.write, &other.disks.write),
            },
            commands: CommandCaps {
                programs: join(&self.commands.programs, &other.commands.programs),
                env: join(&self.commands.env, &other.commands.env),
            },
            fallback: self.fallback || other.fallback,
            fetch: FetchCaps {
                urls: join(&self.fetch.urls, &other.fetch.urls),
                max_bytes: match (self.fetch.max_bytes, other.fetch.max_bytes) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                },
            },
            scratch: ScratchCaps {
                size_mib: match (self.scratch.size_mib, other.scratch.size_mib) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                },
                persistent: self.scratch.persistent || other.scratch.persistent,
            },
            assets: self
                .assets
                .iter()
                .chain(&other.assets)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Where a manager's manifest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// The `ironic:manifest` custom section of the component.
    Embedded,
    /// A TOML file beside the component.
    File(PathBuf),
}

/// Find the manifest of the component at `wasm_path` (bytes `bytes`): the
/// embedded section first (anywhere, nested core modules included), else
/// `<stem>.manifest.toml` beside it.
pub fn find_manifest(
    wasm_path: &Path,
    bytes: &[u8],
) -> anyhow::Result<(Capabilities, ManifestSource)> {
    if let Some(section) = embedded_manifest(bytes)
        .with_context(|| format!("{} is not a valid component", wasm_path.display()))?
    {
        let text = std::str::from_utf8(&section).with_context(|| {
            format!(
                "{}: custom section {MANIFEST_SECTION} is not UTF-8",
                wasm_path.display()
            )
        })?;
        let caps = Capabilities::parse(text, &format!("{} (embedded)", wasm_path.display()))?;
        return Ok((caps, ManifestSource::Embedded));
    }
    let beside = sidecar_path(wasm_path);
    match std::fs::read_to_string(&beside) {
        Ok(text) => {
            let caps = Capabilities::parse(&text, &beside.display().to_string())?;
            Ok((caps, ManifestSource::File(beside)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no manifest: neither a custom section {MANIFEST_SECTION} in the component nor {}",
            beside.display()
        ),
        Err(e) => Err(e).with_context(|| format!("reading {}", beside.display())),
    }
}

/// `<dir>/<stem>.manifest.toml` for `<dir>/<stem>.wasm`.
pub fn sidecar_path(wasm_path: &Path) -> PathBuf {
    let stem = wasm_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    wasm_path.with_file_name(format!("{stem}.manifest.toml"))
}

/// The contents of the first `ironic:manifest` custom section, searching
/// nested modules and components too (`parse_all` descends into them).
pub fn embedded_manifest(bytes: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::CustomSection(reader) = payload? {
            if reader.name() == MANIFEST_SECTION {
                return Ok(Some(reader.data().to_vec()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_generic_manifest_shape() {
        let caps = Capabilities::parse(
            "log = true\n[machine]\npaths=[\"/sys/**\"]\nnetwork=true\n[disks]\nread=[\"/dev/*\"]\n[commands]\nprograms=[\"wipefs\"]\n",
            "m.toml",
        )
        .expect("valid manifest");
        assert!(caps.log && !caps.progress && caps.machine.network);
        assert_eq!(caps.machine.paths, ["/sys/**"]);
        assert_eq!(caps.disks.read, ["/dev/*"]);
        assert!(caps.disks.write.is_empty());
        assert_eq!(caps.commands.programs, ["wipefs"]);
    }

    #[test]
    fn unknown_key_is_an_error_naming_file_and_key() {
        let err = Capabilities::parse("[machine]\npath = [\"/sys/**\"]\n", "vendor.manifest.toml")
            .expect_err("unknown key must be rejected");
        let text = format!("{err:#}");
        assert!(text.contains("vendor.manifest.toml"), "{text}");
        assert!(text.contains("path"), "{text}");
    }

    #[test]
    fn wrong_type_and_program_paths_are_errors() {
        assert!(Capabilities::parse("log = \"yes\"", "x").is_err());
        let err = Capabilities::parse("[commands]\nprograms=[\"/bin/sh\"]", "x").expect_err("path");
        assert!(format!("{err:#}").contains("/bin/sh"));
    }

    #[test]
    fn missing_manifest_names_the_sidecar() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wasm = dir.path().join("vendor.wasm");
        // A minimal empty core module: magic + version.
        let bytes = b"\0asm\x01\0\0\0";
        let err = find_manifest(&wasm, bytes).expect_err("no manifest");
        assert!(format!("{err:#}").contains("vendor.manifest.toml"));
        std::fs::write(dir.path().join("vendor.manifest.toml"), "log = true\n").expect("write");
        let (caps, source) = find_manifest(&wasm, bytes).expect("sidecar manifest");
        assert!(caps.log);
        assert!(matches!(source, ManifestSource::File(_)));
    }
}
