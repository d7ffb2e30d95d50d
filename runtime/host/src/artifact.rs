//! Compiled components: a cache of precompiled artifacts keyed by the
//! component's bytes and the engine, written atomically.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Feeds `Hash` output into SHA-256 so the engine's compatibility hash is
/// stable across processes (std's `DefaultHasher` is not guaranteed to be).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0 // Unused: the digest is read with `finalize`.
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The wasmtime release the workspace pins (`=48.0.8`); part of the cache key.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Cache key: sha256 over the component bytes, the wasmtime version and the
/// engine's precompile compatibility hash.
pub fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.0.update(Sha256::digest(bytes));
    hasher.0.update(WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(hasher.0.finalize())
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
}

/// Load `bytes` (from `wasm_path`) as a component, through the cache when
/// `cache_dir` is set.
#[cfg(test)]
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
    )
}

/// [`load_component`] with the cache key already computed.
pub(crate) fn load_component_keyed(
    engine: &Engine,
    wasm_path: &Path,
    bytes: &[u8],
    key: &str,
    cache_dir: Option<&Path>,
) -> anyhow::Result<(Component, LoadedFrom)> {
    let Some(cache_dir) = cache_dir else {
        return Ok((compile(engine, wasm_path, bytes)?, LoadedFrom::Compiled));
    };
    let artifact = artifact_path(cache_dir, key);
    if artifact.exists() {
        let start = Instant::now();
        // SAFETY: the artifact was written by `store_artifact` from our own
        // compilation (the key covers the bytes and the engine), in a cache
        // directory the operator controls; wasmtime also checks the engine
        // compatibility header before using it.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(component) => {
                tracing::debug!(component = %wasm_path.display(), artifact = %artifact.display(), elapsed_us = start.elapsed().as_micros() as u64, "loaded precompiled component");
                return Ok((component, LoadedFrom::Cache));
            }
            Err(e) => {
                tracing::warn!(component = %wasm_path.display(), artifact = %artifact.display(), "precompiled artifact unusable, compiling: {e}")
            }
        }
    }
    let component = compile(engine, wasm_path, bytes)?;
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
    Ok((component, LoadedFrom::Compiled))
}

fn compile(engine: &Engine, wasm_path: &Path, bytes: &[u8]) -> anyhow::Result<Component> {
    let start = Instant::now();
    let component = Component::from_binary(engine, bytes)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("compiling {}", wasm_path.display()))?;
    tracing::info!(component = %wasm_path.display(), elapsed_ms = start.elapsed().as_millis() as u64, "compiled component");
    release_freed_memory();
    Ok(component)
}

/// Compiling takes tens of MiB of short-lived allocations (Cranelift on
/// several threads); glibc keeps that freed memory in its arenas, which
/// kept the agent's resident size high for the rest of its life (measured
/// after compiling the generic manager: 45 MiB without this, 39 MiB with it).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
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

    #[test]
    fn corrupt_artifact_falls_back_to_compiling_and_cache_hits_after() {
        let engine = crate::engine::build_engine().expect("engine");
        let dir = tempfile::tempdir().expect("tempdir");
        // The smallest valid component: preamble only.
        let bytes = b"\0asm\x0d\0\x01\0";
        let key = cache_key(&engine, bytes);
        std::fs::write(artifact_path(dir.path(), &key), b"garbage").expect("plant");
        let (_, from) =
            load_component(&engine, Path::new("t.wasm"), bytes, Some(dir.path())).expect("load");
        assert_eq!(from, LoadedFrom::Compiled);
        let (_, from) =
            load_component(&engine, Path::new("t.wasm"), bytes, Some(dir.path())).expect("load");
        assert_eq!(from, LoadedFrom::Cache);
    }
}
