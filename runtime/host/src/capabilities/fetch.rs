//! `fetch`: downloads into the scratch space. The host streams the body to
//! the file through a SHA-256 (the bytes never cross into the manager),
//! caps its size, checks a pinned digest before it reports success (a file
//! that fails it is removed), and reports progress as it goes.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::FetchView;
use crate::bindings::latest::ironic::hardware::fetch::{self, FetchError, Fetched};
use crate::bindings::latest::ironic::hardware::scratch::ScratchError;
use crate::policy::Need;
use crate::text::sanitize;

impl FetchView<'_> {
    async fn get(
        &mut self,
        url: &str,
        name: &str,
        sha256: Option<String>,
        max_bytes: Option<u64>,
    ) -> Result<Fetched, FetchError> {
        let shown = sanitize(url, 512).into_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Denied(format!(
                "{shown}: only http:// and https:// URLs are fetched"
            )));
        }
        let manager = self.scratch.manager;
        manager
            .policy
            .check(Need::Fetch(url))
            .map_err(FetchError::Denied)?;
        let expected = match sha256 {
            Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(s.to_ascii_lowercase())
            }
            Some(s) => {
                return Err(FetchError::ChecksumMismatch(format!(
                    "{:?} is not a SHA-256 in hex",
                    sanitize(&s, 80)
                )))
            }
            None => None,
        };
        let client = self
            .scratch
            .env
            .http
            .clone()
            .ok_or_else(|| FetchError::Denied("this agent has no HTTP client".into()))?;
        let space = self.scratch.space().map_err(|e| match e {
            ScratchError::Denied(m) => {
                FetchError::Denied(format!("fetch needs a scratch space: {m}"))
            }
            other => FetchError::Io(format!("{other:?}")),
        })?;
        let path = space
            .file(name)
            .map_err(|e| FetchError::Io(format!("{e:?}")))?;
        let room = space.room_for(&path);
        let cap = [max_bytes, manager.policy.fetch_max_bytes(), Some(room)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(room);
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Http(format!("{shown}: {e}")))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(FetchError::Http(format!("{shown}: HTTP status {status}")));
        }
        let total = response.content_length();
        if let Some(len) = total.filter(|len| *len > cap) {
            return Err(FetchError::TooLarge(format!(
                "{shown}: {len} bytes, over the cap of {cap} bytes"
            )));
        }
        let io = |e: std::io::Error| FetchError::Io(format!("{name}: {e}"));
        let mut file = std::fs::File::create(&path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut last_percent = None;
        let mut response = response;
        let outcome = loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break Ok(()),
                Err(e) => break Err(FetchError::Http(format!("{shown}: {e}"))),
            };
            size += chunk.len() as u64;
            if size > cap {
                break Err(FetchError::TooLarge(format!(
                    "{shown}: more than the cap of {cap} bytes"
                )));
            }
            hasher.update(&chunk);
            if let Err(e) = file.write_all(&chunk) {
                break Err(io(e));
            }
            let percent = total.map(|t| (size.saturating_mul(100) / t.max(1)).min(100) as u8);
            if percent != last_percent
                || percent.is_none() && size % (64 << 20) < chunk.len() as u64
            {
                last_percent = percent;
                self.progress.device(
                    name,
                    percent,
                    &format!("fetching {shown}: {} MiB", size >> 20),
                );
            }
        };
        let digest = hex::encode(hasher.finalize());
        let outcome = outcome
            .and_then(|()| file.sync_all().map_err(io))
            .and_then(|()| match &expected {
                Some(want) if *want != digest => Err(FetchError::ChecksumMismatch(format!(
                    "{shown}: expected SHA-256 {want}, got {digest}"
                ))),
                _ => Ok(()),
            });
        if let Err(e) = outcome {
            // Nothing half-fetched or unverified stays behind.
            let _ = std::fs::remove_file(&path);
            tracing::warn!(manager = %manager.name, url = %shown, "fetch failed: {e:?}");
            return Err(e);
        }
        tracing::info!(manager = %manager.name, url = %shown, name, size, sha256 = %digest, "fetched into the scratch space");
        Ok(Fetched {
            name: name.to_string(),
            size,
            sha256: digest,
        })
    }
}

impl fetch::Host for FetchView<'_> {
    async fn get(
        &mut self,
        url: String,
        name: String,
        sha256: Option<String>,
        max_bytes: Option<u64>,
    ) -> wasmtime::Result<Result<Fetched, FetchError>> {
        Ok(FetchView::get(self, &url, &name, sha256, max_bytes).await)
    }
}
