//! The operator's grants and where they come from.
//!
//! Three sources, combined by union per manager (file stem):
//! - the base: the built-in grants or the operator's grants file
//!   (`[managers.<name>]` tables plus `[managers."*"]` for every manager);
//! - the grants directory: one file per manager, `<name>.toml`, holding one
//!   capability table (the manifest's schema). Watched like the managers
//!   directory and re-read on SIGHUP, so grants change without a restart;
//! - grants installed with a manager by `load_manager` (written into the
//!   grants directory, so they survive a re-read).
//!
//! See docs/managers/grants.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::HostError;
use crate::manifest::Capabilities;
use crate::policy::compile_globs;

/// The operator's grants: a capability table per manager (file stem), plus
/// `"*"` applying to every manager.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    managers: BTreeMap<String, Capabilities>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsFile {
    #[serde(default)]
    managers: BTreeMap<String, Capabilities>,
}

const BUILTIN_GRANTS: &str = include_str!("default-grants.toml");

/// Checks a grant table up front, so that a typo fails when the grants are
/// read, not on some later call. `what` names the table in errors.
pub fn check_grant(what: &str, caps: &Capabilities) -> Result<(), String> {
    if !caps.assets.is_empty() {
        return Err(format!(
            "{what}.assets: assets are listed in a manager's manifest, not granted"
        ));
    }
    compile_globs(&caps.machine.paths)
        .and(compile_globs(&caps.machine.remove))
        .and(compile_globs(&caps.disks.read))
        .and(compile_globs(&caps.disks.write))
        .and(compile_globs(&caps.fetch.urls))
        .map_err(|e| format!("{what}: {e:#}"))?;
    if let Some(bad) = caps
        .commands
        .programs
        .iter()
        .find(|p| p.contains('/') || p.is_empty())
    {
        return Err(format!(
            "{what}.commands.programs: {bad:?} is not a bare program name"
        ));
    }
    Ok(())
}

impl Grants {
    /// The built-in grants: `generic` gets what the generic manager declares,
    /// every manager may log, report progress and use `fallback`.
    pub fn builtin() -> Grants {
        // The file is part of the crate and covered by a unit test.
        Grants::from_toml(BUILTIN_GRANTS, Path::new("<built-in default-grants.toml>"))
            .unwrap_or_default()
    }

    /// Parse a grants file; errors name the file and the offending key.
    pub fn from_toml(text: &str, source: &Path) -> Result<Grants, HostError> {
        let file: GrantsFile = toml::from_str(text).map_err(|e| HostError::Grants {
            file: source.to_path_buf(),
            message: e.to_string(),
        })?;
        for (name, caps) in &file.managers {
            check_grant(&format!("managers.{name}"), caps).map_err(|message| {
                HostError::Grants {
                    file: source.to_path_buf(),
                    message,
                }
            })?;
        }
        Ok(Grants {
            managers: file.managers,
        })
    }

    /// Grant a manager (by file stem) a set of capabilities, replacing any
    /// previous table for it.
    pub fn grant(&mut self, name: &str, caps: Capabilities) {
        self.managers.insert(name.to_string(), caps);
    }

    /// Add `caps` to what manager `name` is granted.
    pub fn add(&mut self, name: &str, caps: &Capabilities) {
        let merged = match self.managers.get(name) {
            Some(own) => own.union(caps),
            None => caps.clone(),
        };
        self.managers.insert(name.to_string(), merged);
    }

    /// What the operator grants manager `name`: its table ∪ the `"*"` table.
    pub fn for_manager(&self, name: &str) -> Capabilities {
        let everyone = self.managers.get("*").cloned().unwrap_or_default();
        match self.managers.get(name) {
            Some(own) => own.union(&everyone),
            None => everyone,
        }
    }

    /// Add the grants directory's files (see the module documentation).
    /// A file that does not parse is skipped and returned with the reason:
    /// one bad file must not take the other managers' grants away.
    pub fn add_dir(&mut self, dir: &Path) -> Vec<(PathBuf, String)> {
        let mut bad = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return bad,
            Err(e) => {
                bad.push((
                    dir.to_path_buf(),
                    format!("reading the grants directory: {e}"),
                ));
                return bad;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_grant_file(p))
            .collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match read_grant_file(&file, name) {
                Ok(caps) => self.add(name, &caps),
                Err(reason) => bad.push((file.clone(), reason)),
            }
        }
        bad
    }
}

/// `<name>.toml`, not hidden (staged files are).
pub(crate) fn is_grant_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

/// Largest grants file read (they are a few lines).
const MAX_GRANT_FILE_BYTES: u64 = 1 << 20;

fn read_grant_file(file: &Path, name: &str) -> Result<Capabilities, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| {
            f.take(MAX_GRANT_FILE_BYTES + 1)
                .read_to_string(&mut text)
                .map(drop)
        })
        .map_err(|e| format!("reading: {e}"))?;
    if text.len() as u64 > MAX_GRANT_FILE_BYTES {
        return Err(format!("larger than {MAX_GRANT_FILE_BYTES} bytes"));
    }
    let caps: Capabilities = toml::from_str(&text).map_err(|e| e.to_string())?;
    check_grant(name, &caps)?;
    Ok(caps)
}

/// Where the host's grants come from; [`GrantSources::read`] combines them.
#[derive(Debug, Clone, Default)]
pub struct GrantSources {
    /// Used when there is no grants file (usually [`Grants::builtin`]).
    pub base: Grants,
    /// The operator's grants file, re-read by [`GrantSources::read`].
    pub file: Option<PathBuf>,
    /// The grants directory (one `<name>.toml` per manager).
    pub dir: Option<PathBuf>,
}

impl GrantSources {
    /// Grants from the base alone.
    pub fn fixed(grants: Grants) -> GrantSources {
        GrantSources {
            base: grants,
            file: None,
            dir: None,
        }
    }

    /// The combined grants, and the grants-directory files skipped (with
    /// why). A grants file that cannot be read or parsed is an error: the
    /// caller keeps the grants it had.
    pub fn read(&self) -> Result<(Grants, Vec<(PathBuf, String)>), HostError> {
        let mut grants = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| HostError::Grants {
                    file: path.clone(),
                    message: format!("reading: {e}"),
                })?;
                Grants::from_toml(&text, path)?
            }
            None => self.base.clone(),
        };
        let bad = match &self.dir {
            Some(dir) => grants.add_dir(dir),
            None => Vec::new(),
        };
        Ok((grants, bad))
    }

    /// Write `caps` as manager `name`'s file in the grants directory
    /// (atomically: staged, synced, renamed). Returns the previous content,
    /// to put back if what it was written for fails.
    pub fn write_manager_grant(
        &self,
        name: &str,
        caps: &Capabilities,
    ) -> Result<Option<Vec<u8>>, HostError> {
        let Some(dir) = &self.dir else {
            return Err(HostError::Grants {
                file: PathBuf::from(format!("{name}.toml")),
                message: "the agent has no grants directory to keep grants in".into(),
            });
        };
        let path = dir.join(format!("{name}.toml"));
        let io = |what: &str, e: std::io::Error| HostError::Grants {
            file: path.clone(),
            message: format!("{what}: {e}"),
        };
        check_grant(name, caps).map_err(|message| HostError::Grants {
            file: path.clone(),
            message,
        })?;
        let text = toml::to_string(caps).map_err(|e| HostError::Grants {
            file: path.clone(),
            message: format!("serialising: {e}"),
        })?;
        std::fs::create_dir_all(dir).map_err(|e| io("creating the grants directory", e))?;
        let previous = match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("reading the previous grants", e)),
        };
        write_atomically(&path, text.as_bytes()).map_err(|e| io("writing", e))?;
        Ok(previous)
    }

    /// Put back what [`GrantSources::write_manager_grant`] replaced.
    pub fn restore_manager_grant(&self, name: &str, previous: Option<Vec<u8>>) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join(format!("{name}.toml"));
        let result = match previous {
            Some(bytes) => write_atomically(&path, &bytes),
            None => std::fs::remove_file(&path),
        };
        if let Err(e) = result {
            tracing::error!(file = %path.display(), error = %e, "could not restore the grants file");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("grants");
    let staged = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&staged)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&staged, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_grants_parse() {
        let text = BUILTIN_GRANTS;
        let grants = Grants::from_toml(text, Path::new("default-grants.toml")).expect("parses");
        assert!(grants.for_manager("generic").disks.write.len() == 1);
        assert!(grants.for_manager("anyone").log);
    }

    #[test]
    fn directory_files_add_to_the_base_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("fw.toml"),
            "[commands]\nprograms = [\"flash\"]\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("broken.toml"), "[commands\n").expect("write");
        std::fs::write(
            dir.path().join("evil.toml"),
            "[commands]\nprograms = [\"/bin/sh\"]\n",
        )
        .expect("write");
        std::fs::write(dir.path().join(".staged.toml"), "log = true\n").expect("write");
        let sources = GrantSources {
            base: Grants::builtin(),
            file: None,
            dir: Some(dir.path().to_path_buf()),
        };
        let (grants, bad) = sources.read().expect("reads");
        assert_eq!(grants.for_manager("fw").commands.programs, ["flash"]);
        assert!(
            grants.for_manager("fw").log,
            "the \"*\" table still applies"
        );
        let names: Vec<String> = bad
            .iter()
            .map(|(f, _)| f.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["broken.toml", "evil.toml"]);
        assert!(bad[1].1.contains("not a bare program name"), "{}", bad[1].1);
        assert!(grants.for_manager("staged").commands.programs.is_empty());
    }

    #[test]
    fn a_written_grant_is_read_back_and_can_be_restored() {
        let dir = tempfile::tempdir().expect("dir");
        let sources = GrantSources {
            base: Grants::default(),
            file: None,
            dir: Some(dir.path().join("grants.d")),
        };
        let caps =
            Capabilities::parse("[fetch]\nurls = [\"http://fw/**\"]\n", "test").expect("caps");
        let previous = sources.write_manager_grant("fw", &caps).expect("writes");
        assert_eq!(previous, None);
        let (grants, bad) = sources.read().expect("reads");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(grants.for_manager("fw").fetch.urls, ["http://fw/**"]);
        sources.restore_manager_grant("fw", previous);
        let (grants, _) = sources.read().expect("reads");
        assert!(grants.for_manager("fw").fetch.urls.is_empty());
    }
}
