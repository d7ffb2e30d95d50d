//! `ironic-agent managers new`: a working manager to start from, in Rust,
//! Python, JavaScript or C, with its manifest, a build script, the grants
//! snippet for the operator and a README. The templates live in
//! runtime/src/scaffold/; docs/managers/ explains what they contain.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A manager's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
    C,
}

/// One file of a project: path in the project, template, executable.
type Template = (&'static str, &'static str, bool);

const COMMON: &[Template] = &[
    (
        "manifest.toml",
        include_str!("scaffold/manifest.toml"),
        false,
    ),
    ("grants.toml", include_str!("scaffold/grants.toml"), false),
];

impl Lang {
    fn templates(self) -> &'static [Template] {
        match self {
            Lang::Rust => &[
                (
                    "Cargo.toml",
                    include_str!("scaffold/rust/Cargo.toml"),
                    false,
                ),
                ("src/lib.rs", include_str!("scaffold/rust/lib.rs"), false),
                ("build.sh", include_str!("scaffold/rust/build.sh"), true),
            ],
            Lang::Python => &[
                ("app.py", include_str!("scaffold/python/app.py"), false),
                ("build.sh", include_str!("scaffold/python/build.sh"), true),
            ],
            Lang::Js => &[
                ("app.js", include_str!("scaffold/js/app.js"), false),
                (
                    "package.json",
                    include_str!("scaffold/js/package.json"),
                    false,
                ),
                (".npmrc", include_str!("scaffold/js/npmrc"), false),
                ("build.sh", include_str!("scaffold/js/build.sh"), true),
            ],
            Lang::C => &[
                ("manager.c", include_str!("scaffold/c/manager.c"), false),
                ("build.sh", include_str!("scaffold/c/build.sh"), true),
            ],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::C => "C",
        }
    }

    fn guide(self) -> &'static str {
        match self {
            Lang::Rust => "rust.md",
            Lang::Python => "python.md",
            Lang::Js => "javascript.md",
            Lang::C => "c.md",
        }
    }
}

/// The checkout whose SDKs the project uses: `--sdk-root`, else the
/// checkout this binary was built from, when it is still there.
fn sdk_root(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let root = match given {
        Some(p) => p.to_path_buf(),
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            if !built_from.join("sdk/python").is_dir() {
                bail!(
                    "cannot find the SDKs (this binary was built from {}, which is gone): \
                     pass --sdk-root with a checkout of ironic-wasm-agent",
                    built_from.display()
                );
            }
            built_from
        }
    };
    let root = root
        .canonicalize()
        .with_context(|| format!("SDK root {}", root.display()))?;
    for needed in [
        "guest-sdk",
        "sdk/python",
        "sdk/js",
        "wit/ironic-hardware-0.3.0",
    ] {
        if !root.join(needed).exists() {
            bail!(
                "{} is not a checkout of ironic-wasm-agent: it has no {needed}",
                root.display()
            );
        }
    }
    Ok(root)
}

/// `my-vendor` → `MyVendor`.
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Writes a new manager project `name` in `lang` into `dir` (default
/// `./<name>`), which must not exist or be empty. Returns the directory.
pub fn new_manager(
    lang: Lang,
    name: &str,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    if !ironic_host::manager_name_is_valid(name) {
        bail!(
            "invalid manager name {name:?}: letters, digits, '-' and '_', at most 64, \
             not starting with '-' (it becomes the file name <name>.wasm that grants know)"
        );
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        bail!("invalid manager name {name:?}: start it with a letter (it names a crate or module)");
    }
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} exists and is not empty", dir.display());
    }
    let root = sdk_root(sdk)?;
    let snake = name.replace('-', "_");
    let files: String = lang
        .templates()
        .iter()
        .filter(|(path, _, _)| *path != "build.sh" && !path.starts_with('.'))
        .map(|(path, _, _)| format!("| `{path}` | the manager |\n"))
        .collect();
    let substitute = |text: &str| {
        text.replace("@NAME@", name)
            .replace("@CRATE@", &snake)
            .replace("@ID@", &format!("{}HardwareManager", camel(name)))
            .replace("@MANAGER_NAME@", &format!("{snake}_hardware_manager"))
            .replace("@REPO@", &root.display().to_string())
            .replace("@LANG@", lang.label())
            .replace("@GUIDE@", lang.guide())
            .replace("@FILES@", &files)
    };
    let readme: Template = ("README.md", include_str!("scaffold/README.md"), false);
    for (path, template, executable) in lang
        .templates()
        .iter()
        .chain(COMMON)
        .chain(std::iter::once(&readme))
    {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, substitute(template))
            .with_context(|| format!("writing {}", target.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", target.display()))?;
        }
    }
    Ok(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_become_identifiers() {
        assert_eq!(camel("my-vendor_fw"), "MyVendorFw");
        assert_eq!(camel("x"), "X");
    }

    #[test]
    fn bad_names_and_non_empty_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = new_manager(Lang::Python, "../evil", Some(dir.path()), None).unwrap_err();
        assert!(err.to_string().contains("invalid manager name"), "{err}");
        std::fs::write(dir.path().join("x"), "").unwrap();
        let err = new_manager(Lang::Python, "ok", Some(dir.path()), None).unwrap_err();
        assert!(err.to_string().contains("is not empty"), "{err}");
    }

    #[test]
    fn every_placeholder_is_substituted() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("p");
            new_manager(lang, "my-vendor", Some(&out), None).unwrap();
            for entry in walk(&out) {
                let text = std::fs::read_to_string(&entry).unwrap();
                for placeholder in ["@NAME@", "@ID@", "@REPO@", "@CRATE@", "@FILES@"] {
                    assert!(
                        !text.contains(placeholder),
                        "{}: {placeholder}",
                        entry.display()
                    );
                }
            }
            assert!(out.join("grants.toml").exists() && out.join("build.sh").exists());
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
