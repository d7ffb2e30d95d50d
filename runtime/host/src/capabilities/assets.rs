//! `assets`: files a manager ships beside its component, in a directory
//! `<stem>.assets/` or a tar archive `<stem>.assets.tar`, each listed with
//! its SHA-256 in the manifest. [`load_assets`] checks every digest when the
//! manager is loaded (an archive is unpacked into an agent-owned directory
//! first); unlisted files are not visible to the manager.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::AssetsView;
use crate::bindings::latest::ironic::hardware::assets::{self, AssetError};
use crate::text::sanitize;

/// Largest single read.
const MAX_READ: u32 = 16 * 1024 * 1024;

/// A manager's verified assets: name → file.
#[derive(Debug, Default)]
pub(crate) struct Assets {
    files: BTreeMap<String, PathBuf>,
    /// An unpacked archive, removed with the manager.
    unpacked: Option<PathBuf>,
}

impl Drop for Assets {
    fn drop(&mut self) {
        if let Some(dir) = &self.unpacked {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The assets `listed` (name → SHA-256) of the component at `component`,
/// from `<stem>.assets/` or `<stem>.assets.tar` beside it (unpacked under
/// `unpack_dir`), every digest checked.
pub(crate) fn load_assets(
    component: &Path,
    listed: &BTreeMap<String, String>,
    unpack_dir: &Path,
) -> anyhow::Result<Assets> {
    if listed.is_empty() {
        return Ok(Assets::default());
    }
    let stem = component
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let beside = component.with_file_name(format!("{stem}.assets"));
    let archive = component.with_file_name(format!("{stem}.assets.tar"));
    let (dir, unpacked) = if beside.is_dir() {
        (beside, None)
    } else if archive.is_file() {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = unpack_dir.join(format!("assets-{stem}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = std::fs::File::open(&archive)?;
        let mut tar = tar::Archive::new(file);
        for entry in tar.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let name = path.to_string_lossy().into_owned();
            // Only listed, plain names are unpacked: nothing can land
            // outside the directory.
            if entry.header().entry_type().is_file() && listed.contains_key(&name) {
                entry.unpack(dir.join(&name))?;
            }
        }
        (dir.clone(), Some(dir))
    } else {
        anyhow::bail!(
            "the manifest lists {} asset(s) but neither {} nor {} exists",
            listed.len(),
            beside.display(),
            archive.display()
        );
    };
    let mut assets = Assets {
        files: BTreeMap::new(),
        unpacked,
    };
    for (name, want) in listed {
        let path = dir.join(name);
        let got = sha256_of(&path).map_err(|e| anyhow::anyhow!("asset {name}: {e}"))?;
        if !got.eq_ignore_ascii_case(want) {
            anyhow::bail!("asset {name}: SHA-256 {got}, the manifest lists {want}");
        }
        assets.files.insert(name.clone(), path);
    }
    Ok(assets)
}

impl AssetsView<'_> {
    fn asset(&self, name: &str) -> Result<&PathBuf, AssetError> {
        self.manager
            .assets
            .files
            .get(name)
            .ok_or_else(|| AssetError::NotFound(sanitize(name, 128).into_owned()))
    }
}

impl assets::Host for AssetsView<'_> {
    async fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.manager.assets.files.keys().cloned().collect())
    }

    async fn size(&mut self, name: String) -> wasmtime::Result<Result<u64, AssetError>> {
        Ok(self.asset(&name).and_then(|p| {
            std::fs::metadata(p)
                .map(|m| m.len())
                .map_err(|e| AssetError::Io(format!("{name}: {e}")))
        }))
    }

    async fn read(
        &mut self,
        name: String,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, AssetError>> {
        Ok(self.asset(&name).and_then(|p| {
            let io = |e: std::io::Error| AssetError::Io(format!("{name}: {e}"));
            let mut f = std::fs::File::open(p).map_err(io)?;
            f.seek(SeekFrom::Start(offset)).map_err(io)?;
            let mut out = Vec::new();
            f.take(u64::from(len.min(MAX_READ)))
                .read_to_end(&mut out)
                .map_err(io)?;
            Ok(out)
        }))
    }

    async fn path(&mut self, name: String) -> wasmtime::Result<Result<String, AssetError>> {
        Ok(self.asset(&name).map(|p| p.display().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_checked_against_the_manifest() {
        let dir = tempfile::tempdir().expect("dir");
        let component = dir.path().join("vendor.wasm");
        std::fs::create_dir(dir.path().join("vendor.assets")).expect("assets dir");
        std::fs::write(dir.path().join("vendor.assets/fw.bin"), b"firmware").expect("asset");
        let good = hex::encode(Sha256::digest(b"firmware"));
        let listed = BTreeMap::from([("fw.bin".to_string(), good)]);
        let a = load_assets(&component, &listed, dir.path()).expect("loads");
        assert_eq!(a.files.len(), 1);
        let bad = BTreeMap::from([("fw.bin".to_string(), "0".repeat(64))]);
        let err = load_assets(&component, &bad, dir.path()).expect_err("digest");
        assert!(err.to_string().contains("fw.bin"), "{err}");
        let missing = BTreeMap::from([("nope.bin".to_string(), "0".repeat(64))]);
        assert!(load_assets(&component, &missing, dir.path()).is_err());
    }
}
