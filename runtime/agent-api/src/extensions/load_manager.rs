//! Loading a hardware manager component from a URL, pinned by SHA-256.
//!
//! Used by the native `load_manager` clean/service step and by the
//! boot-time `manager_urls` option (`ipa-manager-urls`). The bytes are
//! downloaded into memory (bounded by [`MAX_COMPONENT_BYTES`]), verified
//! against the pinned digest, and only then handed to
//! [`Managers::load_manager`](crate::managers::Managers::load_manager), which
//! validates, installs and activates them. An unpinned source is refused:
//! a component runs with the grants of the name it is installed under.
//!
//! Boot-time syntax: `URL#sha256=<64 hex>` with an optional `&name=<stem>`
//! (`https://h/x/raid.wasm#sha256=ab12...&name=raid`). The fragment is never
//! sent to the server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::engine::{CommandFuture, Ctx};
use crate::errors::{AgentError, ErrorClass};
use crate::managers::{ManagerUpload, StepKind};
use crate::native_steps::{NativeStep, StepCall};

/// Largest component accepted (64 MiB).
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// `argsinfo` of the `load_manager` step: `(name, description, required)`.
pub const ARGSINFO: &[(&str, &str, bool)] = &[
    ("url", "HTTP(S) URL of the component", true),
    ("sha256", "expected SHA-256 of the component", true),
    (
        "name",
        "manager name (file stem) the grants know; default: the URL's file stem",
        false,
    ),
    (
        "grants",
        "capabilities granted to the manager (an object in the manifest's schema, or TOML text); kept in the grants directory as <name>.toml",
        false,
    ),
    (
        "assets_url",
        "HTTP(S) URL of a tar archive of the manager's assets",
        false,
    ),
    (
        "assets_sha256",
        "expected SHA-256 of the assets archive (required with assets_url)",
        false,
    ),
];

/// Where a component comes from: a URL pinned by its digest, and the name
/// (file stem) it is installed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentSource {
    /// `http://` or `https://` URL (no fragment).
    pub url: String,
    /// Expected SHA-256, lower-case hex.
    pub sha256: String,
    /// File stem: `<name>.wasm` in the managers directory.
    pub name: String,
}

/// Download settings.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// TLS client configuration (`None`: the system's CA store).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Connection (and per-read) timeout.
    pub connect_timeout: Duration,
    /// Whole-transfer deadline.
    pub total_timeout: Duration,
    /// Size cap in bytes.
    pub max_bytes: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            tls: None,
            connect_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            max_bytes: MAX_COMPONENT_BYTES,
        }
    }
}

/// A manager name usable as a file stem: `[A-Za-z0-9_-]+`, not starting
/// with `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The file stem of a URL's last path segment (`.../raid.wasm?x` → `raid`).
pub fn url_file_stem(url: &str) -> Option<String> {
    let no_frag = url.split('#').next()?;
    let path = no_frag.split('?').next()?;
    let after_scheme = path.split_once("://").map_or(path, |(_, r)| r);
    let (_, path) = after_scheme.split_once('/')?;
    let last = path.rsplit('/').next()?;
    let stem = last.strip_suffix(".wasm").unwrap_or(last);
    (!stem.is_empty()).then(|| stem.to_string())
}

fn invalid(details: impl Into<String>) -> AgentError {
    AgentError::invalid_params(details)
}

impl ComponentSource {
    /// A source from the step's arguments; every problem is an
    /// `InvalidCommandParamsError`.
    pub fn new(url: &str, sha256: Option<&str>, name: Option<&str>) -> Result<Self, AgentError> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.contains('#') {
            return Err(invalid(format!(
                "load_manager: url {url:?} is not an http(s) URL without a fragment"
            )));
        }
        let Some(sha256) = sha256.map(str::trim).filter(|s| !s.is_empty()) else {
            return Err(invalid(format!(
                "load_manager: component {url} is not pinned: the sha256 argument is required"
            )));
        };
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "load_manager: sha256 {sha256:?} is not 64 hexadecimal digits"
            )));
        }
        let name = match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => url_file_stem(url).ok_or_else(|| {
                invalid(format!(
                    "load_manager: url {url} has no file name; pass the name argument"
                ))
            })?,
        };
        if !valid_name(&name) {
            return Err(invalid(format!(
                "load_manager: manager name {name:?} must match [A-Za-z0-9_-]+"
            )));
        }
        Ok(Self {
            url: url.to_string(),
            sha256: sha256.to_ascii_lowercase(),
            name,
        })
    }

    /// A boot-time source: `URL#sha256=<hex>[&name=<stem>]`.
    pub fn parse_pinned(spec: &str) -> Result<Self, AgentError> {
        let spec = spec.trim();
        let Some((url, fragment)) = spec.split_once('#') else {
            return Err(invalid(format!(
                "manager url {spec:?} is not pinned: expected URL#sha256=<hex>"
            )));
        };
        let mut sha = None;
        let mut name = None;
        for part in fragment.split('&') {
            match part.split_once('=') {
                Some(("sha256", v)) => sha = Some(v),
                Some(("name", v)) => name = Some(v),
                _ => {
                    return Err(invalid(format!(
                        "manager url {spec:?}: unknown fragment item {part:?} (expected sha256=<hex>[&name=<stem>])"
                    )))
                }
            }
        }
        Self::new(url, sha, name)
    }
}

/// Downloads `source` and verifies its digest. A mismatch is an
/// `ImageChecksumError` naming both digests; nothing is kept.
pub async fn fetch(source: &ComponentSource, opts: &FetchOptions) -> Result<Vec<u8>, AgentError> {
    let url = &source.url;
    let download =
        |why: String| AgentError::new(ErrorClass::ImageDownloadError, format!("{url}: {why}"));
    let tls = match &opts.tls {
        Some(c) => c.as_ref().clone(),
        None => ironic_image::default_tls_config().map_err(|e| download(e.to_string()))?,
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.connect_timeout)
        .timeout(opts.total_timeout)
        .user_agent(concat!("ironic-wasm-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| download(format!("HTTP client: {e}")))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| download(format!("request failed: {e}")))?;
    if !resp.status().is_success() {
        return Err(download(format!("HTTP status {}", resp.status())));
    }
    let too_big = || {
        download(format!(
            "component larger than the {} byte limit",
            opts.max_bytes
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > opts.max_bytes as u64)
    {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| download(format!("reading the body: {e}")))?
    {
        if bytes.len() + chunk.len() > opts.max_bytes {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    verify(source, &bytes)?;
    Ok(bytes)
}

/// Checks `bytes` against the pinned digest.
pub fn verify(source: &ComponentSource, bytes: &[u8]) -> Result<(), AgentError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != source.sha256 {
        return Err(AgentError::new(ErrorClass::ImageChecksumError,
            format!(
                "component {} (manager {}): expected sha256 {}, got {actual}; nothing was installed",
                source.url, source.name, source.sha256
            ),
        ));
    }
    Ok(())
}

/// Download settings for the step, from the image pipeline's (TLS,
/// connection timeout).
fn step_fetch_options(ctx: &Ctx) -> FetchOptions {
    let mut opts = FetchOptions::default();
    if let Some(image) = &ctx.state.config().image {
        opts.tls = image.write.tls.clone();
        opts.connect_timeout = image.write.connect_timeout;
    }
    opts
}

fn str_arg<'a>(kwargs: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, AgentError> {
    match kwargs.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!(
            "load_manager: argument {key} must be a string, got {other}"
        ))),
    }
}

/// The `load_manager` step of `kind` (clean or service), listed on the
/// `deploy` interface: Ironic only takes agent steps there.
pub fn native_step(kind: StepKind) -> NativeStep {
    NativeStep {
        kind,
        name: "load_manager",
        priority: 0,
        interface: "deploy",
        handler: load_manager_step,
        abortable: false,
        argsinfo: ARGSINFO,
    }
}

/// The native `load_manager` step: download, verify, install, activate.
fn load_manager_step(ctx: Ctx, call: StepCall) -> CommandFuture {
    Box::pin(async move {
        if let Some(unknown) = call
            .kwargs
            .keys()
            .find(|k| !ARGSINFO.iter().any(|(name, _, _)| name == k))
        {
            let valid: Vec<&str> = ARGSINFO.iter().map(|(name, _, _)| *name).collect();
            return Err(invalid(format!(
                "load_manager: unknown argument {unknown:?}; valid arguments: {}",
                valid.join(", ")
            ))
            .into());
        }
        let url = str_arg(&call.kwargs, "url")?
            .ok_or_else(|| invalid("load_manager: the url argument is required"))?;
        let source = ComponentSource::new(
            url,
            str_arg(&call.kwargs, "sha256")?,
            str_arg(&call.kwargs, "name")?,
        )?;
        let assets = match str_arg(&call.kwargs, "assets_url")? {
            Some(assets_url) => Some(ComponentSource::new(
                assets_url,
                str_arg(&call.kwargs, "assets_sha256")?,
                Some(&source.name),
            )?),
            None if str_arg(&call.kwargs, "assets_sha256")?.is_some() => {
                return Err(
                    invalid("load_manager: assets_sha256 was given without assets_url").into(),
                )
            }
            None => None,
        };
        let grants = match call.kwargs.get("grants") {
            None | Some(Value::Null) => None,
            Some(g @ (Value::Object(_) | Value::String(_))) => Some(g),
            Some(other) => {
                return Err(invalid(format!(
                    "load_manager: grants must be an object or TOML text, got {other}"
                ))
                .into())
            }
        };
        let options = step_fetch_options(&ctx);
        ctx.progress(None, &format!("downloading {}", source.url));
        let bytes = fetch(&source, &options).await?;
        let assets_tar = match &assets {
            Some(a) => {
                ctx.progress(None, &format!("downloading {}", a.url));
                Some(fetch(a, &options).await?)
            }
            None => None,
        };
        ctx.progress(None, &format!("loading manager {}", source.name));
        let loaded = ctx
            .state
            .managers()
            .load_manager(ManagerUpload {
                name: &source.name,
                component: &bytes,
                grants,
                assets_tar: assets_tar.as_deref(),
            })
            .await?;
        tracing::info!(manager = %loaded.name, version = %loaded.version, url = %source.url, "hardware manager loaded by load_manager");
        Ok(json!({
            "loaded": loaded,
            "url": source.url,
            "sha256": source.sha256,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sources_must_be_pinned_and_well_formed() {
        let s = ComponentSource::new("http://h/x/raid.wasm?a=1", Some(SHA), None).unwrap();
        assert_eq!(s.name, "raid");
        assert_eq!(s.sha256, SHA);
        for (url, sha, name) in [
            ("http://h/x/raid.wasm", None, None),
            ("http://h/x/raid.wasm", Some(""), None),
            ("http://h/x/raid.wasm", Some("abc"), None),
            ("http://h/x/raid.wasm", Some(&SHA[1..]), None),
            ("ftp://h/x/raid.wasm", Some(SHA), None),
            ("http://h/", Some(SHA), None),
            ("http://h/x/raid.wasm", Some(SHA), Some("../etc")),
            ("http://h/x/raid.wasm", Some(SHA), Some(".hidden")),
        ] {
            let e = ComponentSource::new(url, sha, name).unwrap_err();
            assert_eq!(
                e.error_type, "InvalidCommandParamsError",
                "{url} {sha:?} {name:?}"
            );
        }
    }

    #[test]
    fn boot_syntax() {
        let s = ComponentSource::parse_pinned(&format!(
            "https://h/m/raid.wasm#sha256={}&name=vendor",
            SHA.to_uppercase()
        ))
        .unwrap();
        assert_eq!(
            s,
            ComponentSource {
                url: "https://h/m/raid.wasm".into(),
                sha256: SHA.into(),
                name: "vendor".into()
            }
        );
        assert!(ComponentSource::parse_pinned("https://h/m/raid.wasm").is_err());
        assert!(ComponentSource::parse_pinned("https://h/m/raid.wasm#md5=00").is_err());
    }

    #[test]
    fn checksum_mismatch_names_both_digests() {
        let s = ComponentSource::new("http://h/a.wasm", Some(SHA), None).unwrap();
        assert!(verify(&s, b"").is_ok());
        let e = verify(&s, b"x").unwrap_err();
        assert_eq!(e.error_type, "ImageChecksumError");
        assert!(e.details.contains(SHA), "{}", e.details);
        assert!(
            e.details
                .contains(&hex::encode(Sha256::digest(b"x")).to_string()),
            "{}",
            e.details
        );
    }
}
