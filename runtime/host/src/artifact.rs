//! Compiled components: a cache of precompiled artifacts keyed by the
//! component's bytes and the engine, written atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The wasmtime release the workspace pins (`=48.0.8`); part of the cache key.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// A component that cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// This agent cannot compile (built without the `compiler` feature) and
    /// no usable precompiled artifact was found.
    #[error(
        "manager {manager}: {file} is not precompiled for this agent, which is built without \
         a compiler ({why}); precompile it with `ironic-agent managers compile` (an agent of \
         the same version built with the compiler) into this agent's cache directory"
    )]
    NotPrecompiled {
        /// File stem of the component (the name grants know).
        manager: String,
        /// The component file.
        file: PathBuf,
        /// No cache directory, no artifact, or why the artifact was refused.
        why: String,
    },
}

/// Cache key: sha256 over the component bytes, the wasmtime version and the
/// engine configuration (`engine::profile`). The same with and
/// without the compiler, so artifacts made by one build serve the other.
pub fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(bytes));
    hasher.update(WASMTIME_VERSION.as_bytes());
    hasher.update(crate::engine::profile(engine).as_bytes());
    hex::encode(hasher.finalize())
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFrom {
    /// Compiled now (no cache, cache miss or unusable artifact).
    Compiled,
    /// Deserialized from the artifact cache.
    Cache,
    /// Already compiled by this process (same bytes seen before, e.g. a
    /// manager swapped back to an earlier version).
    Memory,
    /// Compiled by the baseline compiler (Winch) to serve at once; the
    /// optimised code is being compiled and takes its place when ready
    /// (the manager then reports how that was obtained: `Compiled`, or
    /// `Cache`/`Memory` if the same bytes were optimised meanwhile).
    Baseline,
}

/// Load `bytes` (from `wasm_path`) as a component, through the cache when
/// `cache_dir` is set.
#[cfg(all(test, feature = "compiler"))]
pub fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Component, LoadedFrom)> {
    load_component_keyed(
        engine,
        wasm_path,
        bytes,
        &cache_key(engine, bytes),
        cache_dir,
        u64::MAX,
    )
}

/// [`load_component`] with the cache key already computed.
/// A newly written artifact may push the cache over `max_cache_bytes`;
/// the least recently used artifacts go then.
pub(crate) fn load_component_keyed(
    engine: &Engine,
    wasm_path: &Path,
    bytes: &[u8],
    key: &str,
    cache_dir: Option<&Path>,
    max_cache_bytes: u64,
) -> anyhow::Result<(Component, LoadedFrom)> {
    let loaded = load_with(
        engine,
        crate::engine::COMPILER,
        wasm_path,
        bytes,
        key,
        cache_dir,
    )?;
    if let (Some(dir), LoadedFrom::Compiled) = (cache_dir, loaded.1) {
        prune_cache(dir, max_cache_bytes, &artifact_path(dir, key));
    }
    Ok(loaded)
}

/// Removes the least recently used artifacts (by modification time, which
/// a cache hit refreshes) until the directory's artifacts fit in
/// `max_bytes`; `keep` (the one just written) stays whatever its size.
pub(crate) fn prune_cache(dir: &Path, max_bytes: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut artifacts: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = artifacts.iter().map(|(_, len, _)| len).sum();
    if total <= max_bytes {
        return;
    }
    artifacts.sort();
    for (_, len, path) in artifacts {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                total -= len;
                tracing::info!(artifact = %path.display(), bytes = len, "compile cache over its size limit: removed the least recently used artifact");
            }
            Err(e) => tracing::warn!(artifact = %path.display(), "pruning the compile cache: {e}"),
        }
    }
}

/// The artifact of `key` in `cache_dir`, if there is a usable one; else
/// why not (for the error of an agent that cannot compile).
pub(crate) fn cached_component(
    engine: &Engine,
    wasm_path: &Path,
    key: &str,
    cache_dir: Option<&Path>,
) -> Result<Component, String> {
    let Some(cache_dir) = cache_dir else {
        return Err("no cache directory is configured".to_string());
    };
    let artifact = artifact_path(cache_dir, key);
    if !artifact.exists() {
        return Err(format!("no artifact {}", artifact.display()));
    }
    let start = Instant::now();
    // SAFETY: the artifact was written by `store_artifact` from our own
    // compilation (the key covers the bytes and the engine), or by
    // `managers compile`, in a cache directory the operator controls;
    // wasmtime also checks the engine compatibility header before
    // using it.
    match unsafe { Component::deserialize_file(engine, &artifact) } {
        Ok(component) => {
            tracing::debug!(component = %wasm_path.display(), artifact = %artifact.display(), elapsed_us = start.elapsed().as_micros() as u64, "loaded precompiled component");
            // Recently used: pruning removes the others first.
            if let Ok(f) = std::fs::File::options().write(true).open(&artifact) {
                let _ = f.set_modified(std::time::SystemTime::now());
            }
            Ok(component)
        }
        Err(e) => {
            tracing::warn!(component = %wasm_path.display(), artifact = %artifact.display(), "precompiled artifact unusable: {e:#}");
            Err(format!("artifact {} unusable: {e:#}", artifact.display()))
        }
    }
}

/// The cache lookup, then compiling when `compile` allows it (the engine
/// must have a compiler then).
fn load_with(
    engine: &Engine,
    compile: bool,
    wasm_path: &Path,
    bytes: &[u8],
    key: &str,
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Component, LoadedFrom)> {
    let why = match cached_component(engine, wasm_path, key, cache_dir) {
        Ok(component) => return Ok((component, LoadedFrom::Cache)),
        Err(why) => why,
    };
    if !compile {
        return Err(ArtifactError::NotPrecompiled {
            manager: wasm_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file: wasm_path.to_path_buf(),
            why,
        }
        .into());
    }
    let component = compile_component(engine, "cranelift", wasm_path, bytes)?;
    if let Some(cache_dir) = cache_dir {
        let artifact = artifact_path(cache_dir, key);
        match component.serialize() {
            Ok(serialized) => {
                if let Err(e) = store_artifact(cache_dir, &artifact, &serialized) {
                    tracing::warn!(artifact = %artifact.display(), "could not cache compiled component: {e:#}");
                }
            }
            Err(e) => {
                tracing::warn!(component = %wasm_path.display(), "could not serialize compiled component: {e}")
            }
        }
    }
    Ok((component, LoadedFrom::Compiled))
}

/// Compile `bytes` with `engine`'s compiler (`compiler` names it in the log).
#[cfg(feature = "compiler")]
pub(crate) fn compile_component(
    engine: &Engine,
    compiler: &str,
    wasm_path: &Path,
    bytes: &[u8],
) -> anyhow::Result<Component> {
    let start = Instant::now();
    let component = Component::from_binary(engine, bytes)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("compiling {} ({compiler})", wasm_path.display()))?;
    tracing::info!(component = %wasm_path.display(), compiler, elapsed_ms = start.elapsed().as_millis() as u64, "compiled component");
    release_freed_memory();
    Ok(component)
}

#[cfg(not(feature = "compiler"))]
pub(crate) fn compile_component(
    _engine: &Engine,
    _compiler: &str,
    wasm_path: &Path,
    _bytes: &[u8],
) -> anyhow::Result<Component> {
    // Unreachable: `load_with` is only asked to compile when the build can.
    anyhow::bail!(
        "compiling {}: this agent is built without a compiler",
        wasm_path.display()
    )
}

/// Compiling takes tens of MiB of short-lived allocations (Cranelift on
/// several threads); glibc keeps that freed memory in its arenas, which
/// kept the agent's resident size high for the rest of its life (measured
/// after compiling the generic manager: 45 MiB without this, 39 MiB with it).
#[cfg(feature = "compiler")]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Compile every `*.wasm` in `managers_dir` for `cpu` (see
/// [`crate::engine::build_engine_for_cpu`]) into `cache_dir`, replacing an
/// artifact of the same key (which may have been made for another CPU).
/// Per-file errors are returned, not fatal; an unknown CPU name fails whole.
#[cfg(feature = "compiler")]
pub fn precompile_for_cpu(
    managers_dir: &Path,
    cache_dir: &Path,
    cpu: &str,
) -> Result<Vec<Result<crate::Precompiled, crate::RejectedManager>>, crate::HostError> {
    let engine = crate::engine::build_engine_for_cpu(cpu)
        .map_err(|e| crate::HostError::Engine(format!("{e:#}")))?;
    let mut out = Vec::new();
    for file in crate::registry::wasm_files(managers_dir)? {
        let started = Instant::now();
        let result = std::fs::read(&file)
            .with_context(|| format!("reading {}", file.display()))
            .and_then(|bytes| {
                let key = cache_key(&engine, &bytes);
                let artifact = engine
                    .precompile_component(&bytes)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
                    .with_context(|| format!("compiling {} for CPU {cpu}", file.display()))?;
                store_artifact(cache_dir, &artifact_path(cache_dir, &key), &artifact)?;
                Ok(key)
            });
        out.push(match result {
            Ok(key) => Ok(crate::Precompiled {
                file,
                key,
                from: LoadedFrom::Compiled,
                elapsed: started.elapsed(),
            }),
            Err(e) => Err(crate::RejectedManager {
                file,
                reason: format!("{e:#}"),
                kind: crate::Unused::Rejected,
            }),
        });
    }
    Ok(out)
}

/// `<cache_dir>/<key>.cwasm`.
pub fn artifact_path(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join(format!("{key}.cwasm"))
}

/// Write `data` to `path` atomically: a temp file in the same directory,
/// then `rename`, so readers never see a partial artifact.
pub fn store_artifact(cache_dir: &Path, path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(cache_dir)
        .with_context(|| format!("creating {}", cache_dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".artifact-")
        .suffix(".tmp")
        .tempfile_in(cache_dir)
        .with_context(|| format!("creating a temp file in {}", cache_dir.display()))?;
    tmp.write_all(data)
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("renaming to {}: {}", path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_bytes_and_is_stable() {
        let engine = crate::engine::build_engine().expect("engine");
        let a = cache_key(&engine, b"one");
        assert_eq!(a, cache_key(&engine, b"one"));
        assert_ne!(a, cache_key(&engine, b"two"));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn store_is_atomic_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = artifact_path(dir.path(), "k");
        store_artifact(dir.path(), &path, b"first").expect("store");
        store_artifact(dir.path(), &path, b"second").expect("store again");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind");
    }

    /// The smallest valid component: preamble only.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[cfg(feature = "compiler")]
    #[test]
    fn corrupt_artifact_falls_back_to_compiling_and_cache_hits_after() {
        let engine = crate::engine::build_engine().expect("engine");
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = EMPTY_COMPONENT;
        let key = cache_key(&engine, bytes);
        std::fs::write(artifact_path(dir.path(), &key), b"garbage").expect("plant");
        let (_, from) =
            load_component(&engine, Path::new("t.wasm"), bytes, Some(dir.path())).expect("load");
        assert_eq!(from, LoadedFrom::Compiled);
        let (_, from) =
            load_component(&engine, Path::new("t.wasm"), bytes, Some(dir.path())).expect("load");
        assert_eq!(from, LoadedFrom::Cache);
    }

    /// Without a compiler, a component with no artifact is refused with an
    /// error naming the manager and the way out; nothing is cached.
    #[test]
    fn without_a_compiler_a_plain_component_is_refused() {
        #[cfg(feature = "compiler")]
        let engine = crate::engine::build_precompiled_only_engine().expect("engine");
        #[cfg(not(feature = "compiler"))]
        let engine = crate::engine::build_engine().expect("engine");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = cache_key(&engine, EMPTY_COMPONENT);
        for cache in [None, Some(dir.path())] {
            let err = load_with(
                &engine,
                false,
                Path::new("/managers/raid.wasm"),
                EMPTY_COMPONENT,
                &key,
                cache,
            )
            .expect_err("refused");
            let text = format!("{err:#}");
            assert!(
                matches!(
                    err.downcast_ref::<ArtifactError>(),
                    Some(ArtifactError::NotPrecompiled { manager, .. }) if manager == "raid"
                ),
                "{text}"
            );
            assert!(text.contains("manager raid:"), "{text}");
            assert!(text.contains("ironic-agent managers compile"), "{text}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    /// An engine that loads artifacts as on a CPU with only the x86-64-v2
    /// features (the CPU feature probe is replaced).
    #[cfg(all(feature = "compiler", target_arch = "x86_64"))]
    fn engine_on_an_x86_64_v2_cpu() -> Engine {
        let mut config = crate::engine::config(false);
        // SAFETY: the probe only answers which features the loader assumes.
        unsafe {
            config.detect_host_feature(|feature| {
                Some(matches!(
                    feature,
                    "sse3" | "ssse3" | "sse4.1" | "sse4.2" | "popcnt" | "cmpxchg16b"
                ))
            });
        }
        Engine::new(&config).expect("engine")
    }

    /// Managers compiled for x86-64-v2 load on a CPU with only those
    /// features, under the key the default engine looks up; an artifact
    /// compiled for a newer CPU (x86-64-v3: AVX2, BMI, FMA) is refused
    /// there, which shows the CPU named, not the build host's, decides.
    #[cfg(all(feature = "compiler", target_arch = "x86_64"))]
    #[test]
    fn artifacts_for_a_named_cpu_load_on_any_cpu_with_its_features() {
        let managers = tempfile::tempdir().expect("tempdir");
        let wasm = managers.path().join("generic.wasm");
        std::fs::write(&wasm, EMPTY_COMPONENT).expect("component");
        let old_cpu = engine_on_an_x86_64_v2_cpu();
        let key = cache_key(
            &crate::engine::build_engine().expect("engine"),
            EMPTY_COMPONENT,
        );
        for (cpu, loads) in [("x86-64-v2", true), ("x86-64-v3", false)] {
            let cache = tempfile::tempdir().expect("tempdir");
            let results = precompile_for_cpu(managers.path(), cache.path(), cpu).expect(cpu);
            assert_eq!(results.len(), 1);
            let compiled = results[0].as_ref().expect("compiled");
            assert_eq!(compiled.key, key, "the default engine's key");
            let loaded = load_with(
                &old_cpu,
                false,
                &wasm,
                EMPTY_COMPONENT,
                &key,
                Some(cache.path()),
            );
            match (loads, loaded) {
                (true, Ok((_, from))) => assert_eq!(from, LoadedFrom::Cache),
                (false, Err(e)) => assert!(
                    format!("{e:#}").contains("not available on the host"),
                    "{e:#}"
                ),
                (_, other) => panic!("{cpu}: {:?}", other.map(|(_, from)| from)),
            }
        }
    }

    #[cfg(feature = "compiler")]
    #[test]
    fn an_unknown_cpu_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = precompile_for_cpu(dir.path(), dir.path(), "pentium-9000").expect_err("unknown");
        assert!(format!("{err}").contains("pentium-9000"), "{err}");
    }

    /// An artifact compiled by the default engine is found (same key) and
    /// accepted by an engine without a compiler: the agent built without
    /// Cranelift runs what `managers compile` produced.
    #[cfg(feature = "compiler")]
    #[test]
    fn an_artifact_from_the_compiler_loads_without_one() {
        let full = crate::engine::build_engine().expect("engine");
        let bare = crate::engine::build_precompiled_only_engine().expect("engine");
        let key = cache_key(&full, EMPTY_COMPONENT);
        assert_eq!(key, cache_key(&bare, EMPTY_COMPONENT), "same cache key");
        let dir = tempfile::tempdir().expect("tempdir");
        let wasm = Path::new("raid.wasm");
        let (_, from) =
            load_component(&full, wasm, EMPTY_COMPONENT, Some(dir.path())).expect("compile");
        assert_eq!(from, LoadedFrom::Compiled);
        let (_, from) = load_with(&bare, false, wasm, EMPTY_COMPONENT, &key, Some(dir.path()))
            .expect("precompiled load");
        assert_eq!(from, LoadedFrom::Cache);
        // A damaged artifact is reported, with wasmtime's reason, not compiled.
        std::fs::write(artifact_path(dir.path(), &key), b"garbage").expect("damage");
        let err = load_with(&bare, false, wasm, EMPTY_COMPONENT, &key, Some(dir.path()))
            .expect_err("refused");
        assert!(format!("{err:#}").contains("unusable"), "{err:#}");
    }

    #[test]
    fn the_cache_is_pruned_least_recently_used_first() {
        let dir = tempfile::tempdir().expect("dir");
        let now = std::time::SystemTime::now();
        let write = |name: &str, age_s: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![0u8; 100]).expect("write");
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(now - std::time::Duration::from_secs(age_s))
                .expect("mtime");
            path
        };
        let old = write("old.cwasm", 300);
        let used = write("used.cwasm", 200);
        let fresh = write("fresh.cwasm", 100);
        std::fs::write(dir.path().join("notes.txt"), vec![0u8; 1000]).expect("other file");
        prune_cache(dir.path(), 250, &fresh);
        assert!(!old.exists(), "least recently used goes first");
        assert!(used.exists() && fresh.exists());
        assert!(
            dir.path().join("notes.txt").exists(),
            "only artifacts are pruned"
        );
        prune_cache(dir.path(), 0, &fresh);
        assert!(
            !used.exists() && fresh.exists(),
            "the artifact just written stays"
        );
    }
}
