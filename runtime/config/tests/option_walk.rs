//! No option silently does nothing: every option of the table
//! (`ironic_config::OPTIONS`, IPA's documented options) is either read by the
//! agent's code or listed in `ironic_config::unsupported::UNSUPPORTED`, and
//! never both.
//!
//! "Read" means the option's name appears as a string literal in the
//! agent's non-test Rust sources outside the config crate (which only
//! declares options). Names without `_` or `-` are common words, so for them
//! only a read through an accessor counts: `.bool("debug")`, or the group
//! and name side by side, `"mdns", "interfaces"`.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Non-test Rust sources of the agent (runtime/ and its crates), except the
/// config crate. Text after `#[cfg(test)]` is test code and is dropped.
fn sources() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![workspace().join("runtime")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), "tests" | "target" | "config" | "benches") {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&path).expect("read source");
                let code = match text.find("#[cfg(test)]") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                out.push((path, code));
            }
        }
    }
    assert!(
        out.len() > 20,
        "found only {} sources under runtime/",
        out.len()
    );
    out
}

/// Where `[group]name` is read, if anywhere.
fn read_at(sources: &[(PathBuf, String)], group: &str, name: &str) -> Option<PathBuf> {
    let quoted = format!("\"{name}\"");
    let qualified = format!("\"{group}\", \"{name}\"");
    let plain_word = !name.contains('_') && !name.contains('-');
    let accessors = ["str", "non_empty", "bool", "int", "float"];
    sources.iter().find_map(|(path, code)| {
        let found = if plain_word {
            code.contains(&qualified)
                || (group == "DEFAULT"
                    && accessors
                        .iter()
                        .any(|a| code.contains(&format!(".{a}({quoted})"))))
        } else {
            code.contains(&quoted)
        };
        found.then(|| path.clone())
    })
}

/// Options the config crate itself turns into a typed accessor, which the
/// agent calls: `(group, option, accessor)`.
const READ_THROUGH_ACCESSORS: &[(&str, &str, &str)] = &[
    ("DEFAULT", "api_url", "api_urls"),
    ("DEFAULT", "log_file", "log_file_path"),
    ("DEFAULT", "log_dir", "log_file_path"),
];

fn read_through_accessor(
    sources: &[(PathBuf, String)],
    group: &str,
    name: &str,
) -> Option<PathBuf> {
    let (_, _, accessor) = READ_THROUGH_ACCESSORS
        .iter()
        .find(|(g, n, _)| *g == group && *n == name)?;
    let lib = std::fs::read_to_string(workspace().join("runtime/config/src/lib.rs")).ok()?;
    let defined =
        lib.contains(&format!("pub fn {accessor}(")) && lib.contains(&format!("\"{name}\""));
    if !defined {
        return None;
    }
    let call = format!(".{accessor}()");
    sources
        .iter()
        .find(|(_, code)| code.contains(&call))
        .map(|(p, _)| p.clone())
}

#[test]
fn every_option_is_read_or_declared_unsupported() {
    let sources = sources();
    let mut silent = Vec::new();
    let mut contradictory = Vec::new();
    for spec in ironic_config::OPTIONS {
        let read = read_at(&sources, spec.group, spec.name)
            .or_else(|| read_through_accessor(&sources, spec.group, spec.name));
        let unsupported = ironic_config::unsupported(spec.group, spec.name);
        match (read, unsupported) {
            (None, None) => silent.push(format!("[{}]{}", spec.group, spec.name)),
            (Some(path), Some(_)) => contradictory.push(format!(
                "[{}]{} (read in {})",
                spec.group,
                spec.name,
                path.display()
            )),
            _ => {}
        }
    }
    assert!(
        silent.is_empty(),
        "options neither read by the agent nor listed in runtime/config/src/unsupported.rs: {silent:?}"
    );
    assert!(
        contradictory.is_empty(),
        "options listed as unsupported but read by the agent: {contradictory:?}"
    );
}

#[test]
fn the_unsupported_list_names_only_known_options() {
    for (group, name, _) in ironic_config::unsupported::UNSUPPORTED {
        assert!(
            ironic_config::options::find(group, name).is_some(),
            "[{group}]{name} is not an option IPA documents"
        );
    }
}

#[test]
fn unsupported_options_are_named_at_start_up_and_in_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("proc")).expect("proc");
    std::fs::write(
        dir.path().join("proc/cmdline"),
        "ipa-api-url=http://127.0.0.1:6385 ipa-guard-special-filesystems=false",
    )
    .expect("cmdline");
    let conf = dir.path().join("agent.conf");
    std::fs::write(&conf, "[metrics]\nbackend = statsd\n").expect("conf");
    let cli = ironic_config::CliLayer::parse(["--config-file".into(), conf.into_os_string()])
        .expect("flags");
    let cfg = ironic_config::load(&ironic_config::LoadOptions {
        hardware_root: dir.path().to_path_buf(),
        cli,
        ..Default::default()
    })
    .expect("load");
    let in_use = cfg.unsupported_in_use();
    assert_eq!(in_use.len(), 2, "{in_use:?}");
    assert!(in_use[0].starts_with("[DEFAULT]guard-special-filesystems = false (kernel"));
    assert!(in_use[1].starts_with("[metrics]backend = statsd ("));
    let rendered = ironic_config::render(&cfg);
    let line = rendered
        .lines()
        .find(|l| l.starts_with("backend = statsd"))
        .expect("backend line");
    assert!(line.contains("# NOT SUPPORTED by this agent"), "{line}");
    let api = rendered
        .lines()
        .find(|l| l.starts_with("api_url = "))
        .expect("api_url line");
    assert!(!api.contains("NOT SUPPORTED"), "{api}");
}
