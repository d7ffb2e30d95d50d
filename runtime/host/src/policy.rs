//! The effective policy: a capability is usable only when the
//! manager declared it AND the operator granted it; checked on every call.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::manifest::Capabilities;

pub(crate) fn compile_globs(patterns: &[String]) -> anyhow::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        // `*` stays inside one path component: `/dev/*` is not `/dev/disk/by-id/x`.
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .with_context(|| format!("invalid glob {p:?}"))?;
        builder.add(glob);
    }
    builder.build().context("building glob set")
}

/// One side (declared or granted) compiled for matching.
#[derive(Debug)]
struct Side {
    caps: Capabilities,
    paths: GlobSet,
    removable: GlobSet,
    disk_read: GlobSet,
    disk_write: GlobSet,
    urls: GlobSet,
}

impl Side {
    fn new(caps: Capabilities) -> anyhow::Result<Side> {
        Ok(Side {
            paths: compile_globs(&caps.machine.paths).context("machine.paths")?,
            removable: compile_globs(&caps.machine.remove).context("machine.remove")?,
            disk_read: compile_globs(&caps.disks.read).context("disks.read")?,
            disk_write: compile_globs(&caps.disks.write).context("disks.write")?,
            urls: compile_globs(&caps.fetch.urls).context("fetch.urls")?,
            caps,
        })
    }
}

/// A capability a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// Read `path` (normalised absolute) through `machine`.
    Path(&'a str),
    /// Remove the file at `path` (normalised absolute) through `machine`.
    Remove(&'a str),
    /// List network addresses.
    Network,
    /// Open a disk read-only.
    DiskRead(&'a str),
    /// Open a disk read-write.
    DiskWrite(&'a str),
    /// Run a program.
    Program(&'a str),
    /// Log.
    Log,
    /// Report progress.
    Progress,
    /// Download `url`.
    Fetch(&'a str),
    /// Give a program the environment variable `name`.
    Env(&'a str),
    /// Use a scratch space.
    Scratch,
    /// Ask the next managers (`fallback`).
    Fallback,
}

impl Need<'_> {
    fn describe(&self) -> String {
        match self {
            Need::Path(p) => format!("machine path {p}"),
            Need::Remove(p) => format!("removal of {p}"),
            Need::Network => "machine network addresses".into(),
            Need::DiskRead(d) => format!("read access to disk {d}"),
            Need::DiskWrite(d) => format!("write access to disk {d}"),
            Need::Program(p) => format!("program {p}"),
            Need::Log => "log".into(),
            Need::Progress => "progress".into(),
            Need::Fetch(u) => format!("download of {u}"),
            Need::Env(n) => format!("environment variable {n}"),
            Need::Scratch => "scratch space".into(),
            Need::Fallback => "fallback to the next managers".into(),
        }
    }
}

/// Declared ∩ granted for one manager.
#[derive(Debug)]
pub struct Policy {
    manager: String,
    declared: Side,
    granted: Side,
}

impl Policy {
    /// Compile the policy of manager `manager` (file stem).
    pub fn new(
        manager: &str,
        declared: Capabilities,
        granted: Capabilities,
    ) -> anyhow::Result<Policy> {
        Ok(Policy {
            manager: manager.to_string(),
            declared: Side::new(declared).with_context(|| format!("manifest of {manager}"))?,
            granted: Side::new(granted).with_context(|| format!("grants for {manager}"))?,
        })
    }

    /// What the manager declared.
    pub fn declared(&self) -> &Capabilities {
        &self.declared.caps
    }

    /// What the operator granted it.
    pub fn granted(&self) -> &Capabilities {
        &self.granted.caps
    }

    /// Bytes of scratch space: the smaller of declared and granted.
    pub fn scratch_bytes(&self) -> Option<u64> {
        let mib = self
            .declared
            .caps
            .scratch
            .size_mib?
            .min(self.granted.caps.scratch.size_mib?);
        (mib > 0).then(|| mib.saturating_mul(1 << 20))
    }

    /// Whether the scratch space lasts from call to call (the grant's
    /// choice).
    pub fn scratch_persistent(&self) -> bool {
        self.granted.caps.scratch.persistent
    }

    /// Largest download: the smaller of declared and granted, when set.
    pub fn fetch_max_bytes(&self) -> Option<u64> {
        match (
            self.declared.caps.fetch.max_bytes,
            self.granted.caps.fetch.max_bytes,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `Ok(())` when allowed; otherwise the denial message (also logged).
    pub fn check(&self, need: Need<'_>) -> Result<(), String> {
        let declared = allows(&self.declared, need);
        let granted = allows(&self.granted, need);
        if declared && granted {
            return Ok(());
        }
        let why = if !declared {
            "not declared by"
        } else {
            "not granted to"
        };
        // What the manager asked for is its own text: escaped before it is
        // logged or returned.
        let need = crate::text::sanitize(&need.describe(), 512).into_owned();
        let message = format!("{need} {why} manager {}", self.manager);
        tracing::warn!(manager = %self.manager, capability = %need, "denied: {message}");
        Err(message)
    }
}

fn allows(side: &Side, need: Need<'_>) -> bool {
    match need {
        Need::Path(p) => side.paths.is_match(p),
        Need::Remove(p) => side.removable.is_match(p),
        Need::Network => side.caps.machine.network,
        Need::DiskRead(d) => side.disk_read.is_match(d) || side.disk_write.is_match(d),
        Need::DiskWrite(d) => side.disk_write.is_match(d),
        Need::Program(p) => side.caps.commands.programs.iter().any(|x| x == p),
        Need::Log => side.caps.log,
        Need::Progress => side.caps.progress,
        Need::Fetch(u) => side.urls.is_match(u),
        Need::Env(n) => side.caps.commands.env.iter().any(|x| x == n),
        Need::Scratch => side.caps.scratch.size_mib.is_some_and(|m| m > 0),
        Need::Fallback => side.caps.fallback,
    }
}

/// What `declared` asks for that `granted` does not cover, one entry per
/// capability (e.g. `disks.write=/dev/*`); empty when fully granted.
///
/// A declared glob is covered when the granted list holds the same pattern
/// or a granted glob matches the declared pattern taken as a literal path
/// (`/sys/class/**` under `/sys/**`, `/dev/sdb` under `/dev/*`). This is a
/// conservative approximation of glob inclusion: it never calls a declared
/// glob covered that reaches outside the grant for ordinary patterns.
pub fn ungranted(declared: &Capabilities, granted: &Capabilities) -> Vec<String> {
    fn globs(key: &str, declared: &[String], granted: &[String], out: &mut Vec<String>) {
        let set = compile_globs(granted).ok();
        for d in declared {
            let covered = granted.contains(d) || set.as_ref().is_some_and(|s| s.is_match(d));
            if !covered {
                out.push(format!("{key}={d}"));
            }
        }
    }
    let mut out = Vec::new();
    if declared.log && !granted.log {
        out.push("log".into());
    }
    if declared.progress && !granted.progress {
        out.push("progress".into());
    }
    if declared.machine.network && !granted.machine.network {
        out.push("machine.network".into());
    }
    globs(
        "machine.paths",
        &declared.machine.paths,
        &granted.machine.paths,
        &mut out,
    );
    globs(
        "machine.remove",
        &declared.machine.remove,
        &granted.machine.remove,
        &mut out,
    );
    // Read access is also granted by a write grant (see `allows`).
    let readable: Vec<String> = granted
        .disks
        .read
        .iter()
        .chain(&granted.disks.write)
        .cloned()
        .collect();
    globs("disks.read", &declared.disks.read, &readable, &mut out);
    globs(
        "disks.write",
        &declared.disks.write,
        &granted.disks.write,
        &mut out,
    );
    for p in &declared.commands.programs {
        if !granted.commands.programs.contains(p) {
            out.push(format!("commands.programs={p}"));
        }
    }
    for n in &declared.commands.env {
        if !granted.commands.env.contains(n) {
            out.push(format!("commands.env={n}"));
        }
    }
    if declared.fallback && !granted.fallback {
        out.push("fallback".into());
    }
    globs(
        "fetch.urls",
        &declared.fetch.urls,
        &granted.fetch.urls,
        &mut out,
    );
    if let Some(mib) = declared.scratch.size_mib {
        if granted.scratch.size_mib.is_none_or(|g| g < mib) {
            out.push(format!("scratch.size_mib={mib}"));
        }
    }
    out
}

/// The one verdict on a manager's grants, the same for the running agent,
/// `managers list`, `managers validate` and `load_manager`: a manager runs
/// only when everything it declares is granted. Otherwise it waits (not
/// loaded, named in the listing) until the grants arrive; it never runs
/// with calls failing one by one. `Err`: the missing capabilities and the
/// wording every caller shows.
pub fn grants_verdict(
    name: &str,
    declared: &Capabilities,
    granted: &Capabilities,
) -> Result<(), (Vec<String>, String)> {
    let missing = ungranted(declared, granted);
    if missing.is_empty() {
        return Ok(());
    }
    let reason = format!(
        "waiting for grants: manager {name} declares {} which the operator has not granted \
         (grant them in the grants directory as {name}.toml, in the grants file as \
         [managers.{name}], or with load_manager's grants argument)",
        missing.join(", ")
    );
    Err((missing, reason))
}

/// Normalise an absolute guest path lexically: `.` dropped, `..` pops;
/// relative paths, NUL bytes and `..` above `/` are errors.
pub fn normalise_path(path: &str) -> Result<PathBuf, String> {
    if path.contains('\0') {
        return Err(format!("{path:?}: path contains a NUL byte"));
    }
    if !path.starts_with('/') {
        return Err(format!("{path}: path must be absolute"));
    }
    let mut out = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(format!("{path}: path leads above /"));
                }
            }
            Component::Normal(c) => out.push(c),
            Component::Prefix(_) => return Err(format!("{path}: invalid path")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::Grants;

    fn caps(toml: &str) -> Capabilities {
        Capabilities::parse(toml, "test").expect("valid")
    }

    #[test]
    fn builtin_grants_parse_and_match_generic_manifest() {
        let builtin = Grants::builtin();
        let manifest = include_str!("../../../managers/generic/manifest.toml");
        let mut declared = caps(manifest);
        // Everyone may fall back to the managers after it.
        declared.fallback = true;
        assert_eq!(
            builtin.for_manager("generic"),
            declared,
            "generic grants == generic manifest + what everyone gets"
        );
        let other = builtin.for_manager("vendor");
        assert!(other.log && other.progress && other.machine.paths.is_empty());
    }

    #[test]
    fn declared_but_not_granted_and_granted_but_not_declared_are_denied() {
        let policy = Policy::new(
            "vendor",
            caps("[machine]\npaths=[\"/sys/**\"]\n[commands]\nprograms=[\"ipmitool\"]"),
            caps("[machine]\npaths=[\"/proc/**\"]\n[commands]\nprograms=[\"ipmitool\",\"wipefs\"]"),
        )
        .expect("policy");
        let err = policy
            .check(Need::Path("/sys/class/net"))
            .expect_err("declared only");
        assert!(err.contains("not granted to manager vendor"), "{err}");
        let err = policy
            .check(Need::Path("/proc/cpuinfo"))
            .expect_err("granted only");
        assert!(err.contains("not declared by manager vendor"), "{err}");
        assert!(policy.check(Need::Program("ipmitool")).is_ok());
        assert!(policy.check(Need::Program("wipefs")).is_err());
        assert!(policy.check(Need::Network).is_err());
    }

    #[test]
    fn globs_stay_inside_components() {
        let both = caps("[machine]\npaths=[\"/sys/**\",\"/dev/ipmi*\"]\n[disks]\nread=[\"/dev/*\"]\nwrite=[\"/dev/sdb\"]");
        let policy = Policy::new("m", both.clone(), both).expect("policy");
        assert!(policy.check(Need::Path("/sys/block/sda/size")).is_ok());
        assert!(policy.check(Need::Path("/dev/ipmi0")).is_ok());
        assert!(policy.check(Need::Path("/dev/ipmi/0")).is_err());
        assert!(policy.check(Need::Path("/etc/shadow")).is_err());
        assert!(policy.check(Need::DiskRead("/dev/sda")).is_ok());
        assert!(policy.check(Need::DiskRead("/dev/mapper/x")).is_err());
        assert!(policy.check(Need::DiskWrite("/dev/sda")).is_err());
        assert!(policy.check(Need::DiskWrite("/dev/sdb")).is_ok());
    }

    #[test]
    fn star_grants_apply_to_everyone() {
        let grants = Grants::from_toml(
            "[managers.\"*\"]\nlog=true\n[managers.v.commands]\nprograms=[\"nvme\"]\n",
            Path::new("g.toml"),
        )
        .expect("grants");
        let v = grants.for_manager("v");
        assert!(v.log);
        assert_eq!(v.commands.programs, ["nvme"]);
        assert!(grants.for_manager("w").log);
    }

    #[test]
    fn grants_errors_name_file_and_key() {
        let err = Grants::from_toml("[managers.v]\nlogs = true\n", Path::new("/etc/grants.toml"))
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.contains("/etc/grants.toml") && text.contains("logs"),
            "{text}"
        );
        let err = Grants::from_toml(
            "[managers.v.machine]\npaths=[\"/sys/[\"]\n",
            Path::new("g.toml"),
        )
        .expect_err("bad glob");
        assert!(err.to_string().contains("managers.v"), "{err}");
    }

    #[test]
    fn ungranted_lists_what_the_grant_does_not_cover() {
        let declared = caps(
            "log=true\n[machine]\npaths=[\"/sys/class/**\",\"/etc/**\"]\n[disks]\nread=[\"/dev/sdb\"]\nwrite=[\"/dev/*\"]\n[commands]\nprograms=[\"nvme\",\"lshw\"]",
        );
        let granted = caps(
            "log=true\n[machine]\npaths=[\"/sys/**\"]\n[disks]\nwrite=[\"/dev/sd*\"]\n[commands]\nprograms=[\"nvme\"]",
        );
        assert_eq!(
            ungranted(&declared, &granted),
            [
                "machine.paths=/etc/**",
                "disks.write=/dev/*",
                "commands.programs=lshw"
            ]
        );
        assert!(ungranted(&granted, &granted).is_empty());
        assert!(ungranted(&Capabilities::default(), &Capabilities::default()).is_empty());
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalise_path("/sys/./class//net/../block").as_deref(),
            Ok(Path::new("/sys/class/block"))
        );
        assert_eq!(
            normalise_path("/sys/../etc/shadow").as_deref(),
            Ok(Path::new("/etc/shadow"))
        );
        assert!(normalise_path("/sys/../../etc/shadow").is_err());
        assert!(normalise_path("sys/class").is_err());
        assert!(normalise_path("/sys/\0x").is_err());
    }
}
