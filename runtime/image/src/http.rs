//! HTTP(S) download with IPA's retry rules (`standby.py` `_download_with_proxy`,
//! `ImageDownload`, `_download_image`) plus
//! resume: a dropped connection continues with `Range: bytes=N-`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_RANGE, RANGE};
use reqwest::StatusCode;

use crate::error::ImageError;
use crate::info::ImageInfo;
use crate::pipeline::Pipeline;
use crate::WriteOptions;

/// Upper bound for a checksum file (they are a few KiB; refuse to buffer more).
const MAX_CHECKSUM_FILE: usize = 16 << 20;

pub(crate) struct Http {
    client: reqwest::Client,
    auth: Option<HeaderValue>,
    retries: u32,
    interval: Duration,
    deadline: Option<(Instant, Duration)>,
}

/// Outcome of a successful transfer.
pub(crate) struct Transfer {
    pub(crate) url: String,
    pub(crate) resumes: u32,
}

enum Failure {
    /// Connection error, 5xx, truncated body: retry / resume.
    Retry(String),
    Fatal(ImageError),
}

/// Default client TLS: ring provider, the system's CA store.
pub fn default_tls_config() -> Result<rustls::ClientConfig, ImageError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // Individual unparsable system certificates are skipped, as browsers do.
        let _ = roots.add(cert);
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImageError::Internal(anyhow::anyhow!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Http {
    pub(crate) fn new(
        info: &ImageInfo,
        opts: &WriteOptions,
        started: Instant,
    ) -> Result<Http, ImageError> {
        let tls = match &opts.tls {
            Some(c) => c.as_ref().clone(),
            None => default_tls_config()?,
        };
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(opts.connect_timeout)
            // Per-read timeout: IPA's stall detection (`image_download_connection_timeout`).
            .read_timeout(opts.connect_timeout)
            .user_agent(concat!("ironic-wasm-agent/", env!("CARGO_PKG_VERSION")));
        let no_proxy = info
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        for (scheme, url) in &info.proxies {
            let proxy = match scheme.as_str() {
                "http" => reqwest::Proxy::http(url),
                "https" => reqwest::Proxy::https(url),
                "all" => reqwest::Proxy::all(url),
                other => {
                    tracing::warn!(scheme = other, "ignoring proxy for unknown scheme");
                    continue;
                }
            }
            .map_err(|e| ImageError::InvalidParams {
                message: format!("invalid proxy {url}: {e}"),
            })?;
            builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
        }
        let client = builder
            .build()
            .map_err(|e| ImageError::Internal(anyhow::anyhow!("HTTP client: {e}")))?;
        Ok(Http {
            client,
            auth: auth_header(info)?,
            retries: opts.retries,
            interval: opts.retry_interval,
            deadline: opts
                .max_duration
                .filter(|d| !d.is_zero())
                .map(|d| (started, d)),
        })
    }

    fn check_deadline(&self) -> Result<(), ImageError> {
        if let Some((start, limit)) = self.deadline {
            let elapsed = start.elapsed();
            if elapsed > limit {
                return Err(ImageError::DownloadTimeout { elapsed, limit });
            }
        }
        Ok(())
    }

    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        let mut req = self.client.get(url);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req
    }

    /// Fetches a (small) checksum file with the connection retry rules.
    pub(crate) async fn fetch_text(&self, url: &str) -> Result<String, ImageError> {
        let err = |message: String| ImageError::ChecksumFile {
            url: url.to_string(),
            message,
        };
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(self.interval).await;
            }
            let resp = match self.request(url).send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{e}");
                    continue;
                }
            };
            let status = resp.status();
            if status.is_server_error() {
                last = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                return Err(err(format!("HTTP {status}")));
            }
            if resp
                .content_length()
                .is_some_and(|l| l > MAX_CHECKSUM_FILE as u64)
            {
                return Err(err("checksum file is too large".into()));
            }
            let mut body = Vec::new();
            let mut resp = resp;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        body.extend_from_slice(&c);
                        if body.len() > MAX_CHECKSUM_FILE {
                            return Err(err("checksum file is too large".into()));
                        }
                    }
                    Ok(None) => return Ok(String::from_utf8_lossy(&body).into_owned()),
                    Err(e) => {
                        last = format!("{e}");
                        break;
                    }
                }
            }
        }
        Err(err(last))
    }

    /// Streams the image into `pipe`, trying `urls` in order. Each URL gets
    /// `retries + 1` attempts that make no progress; an attempt that moved
    /// the stream forward resets the count, since resuming costs nothing.
    pub(crate) async fn download(
        &self,
        image_id: &str,
        urls: &[String],
        pipe: &mut Pipeline,
    ) -> Result<Transfer, ImageError> {
        let mut failures = Vec::new();
        let mut resumes = 0;
        for url in urls {
            let mut failed_attempts = 0;
            loop {
                self.check_deadline()?;
                let before = pipe.position();
                if before > 0 {
                    resumes += 1;
                }
                let attempt = self.attempt(url, pipe);
                let result = match self.deadline {
                    Some((start, limit)) => {
                        let left = limit.saturating_sub(start.elapsed());
                        match tokio::time::timeout(left, attempt).await {
                            Ok(r) => r,
                            Err(_) => {
                                return Err(ImageError::DownloadTimeout {
                                    elapsed: start.elapsed(),
                                    limit,
                                })
                            }
                        }
                    }
                    None => attempt.await,
                };
                match result {
                    Ok(()) => {
                        return Ok(Transfer {
                            url: url.clone(),
                            resumes,
                        })
                    }
                    Err(Failure::Fatal(e)) => return Err(e),
                    Err(Failure::Retry(msg)) => {
                        // Progress made: resuming is free, start counting afresh.
                        if pipe.position() > before {
                            failed_attempts = 0;
                        } else {
                            failed_attempts += 1;
                        }
                        tracing::warn!(url = %url, position = pipe.position(), attempt = failed_attempts, error = %msg,
                            "image download interrupted");
                        if failed_attempts > self.retries {
                            failures.push(format!("{url}: {msg}"));
                            break;
                        }
                        if failed_attempts > 0 {
                            tokio::time::sleep(self.interval).await;
                        }
                    }
                }
            }
        }
        Err(ImageError::Download {
            image_id: image_id.to_string(),
            failures,
        })
    }

    async fn attempt(&self, url: &str, pipe: &mut Pipeline) -> Result<(), Failure> {
        let pos = pipe.position();
        let mut req = self.request(url);
        if pos > 0 {
            req = req.header(RANGE, format!("bytes={pos}-"));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| Failure::Retry(error_chain(&e)))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(Failure::Retry(format!("HTTP {status}")));
        }
        match status {
            StatusCode::PARTIAL_CONTENT if pos > 0 => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(pos) {
                    pipe.reset();
                    return Err(Failure::Retry(format!(
                        "server resumed at {start:?}, wanted {pos}; restarting"
                    )));
                }
                tracing::info!(url, position = pos, "resumed download with Range");
            }
            StatusCode::OK => {
                if pos > 0 {
                    // No Range support: the body starts at byte 0 again.
                    tracing::warn!(
                        url,
                        position = pos,
                        "server ignored Range; restarting from byte 0"
                    );
                    pipe.reset();
                }
            }
            _ => {
                return Err(Failure::Fatal(ImageError::DownloadFatal {
                    url: url.to_string(),
                    status: status.as_u16(),
                }))
            }
        }
        pipe.total = resp.content_length().map(|l| l + pipe.position());
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => pipe.push(&bytes).await.map_err(Failure::Fatal)?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Failure::Retry(error_chain(&e))),
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Authorization, in IPA's order: `image_request_authorization` (base64 of
/// the header value) → `http_basic` from image_info.
fn auth_header(info: &ImageInfo) -> Result<Option<HeaderValue>, ImageError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(enc) = info
        .image_request_authorization
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        let raw = b64
            .decode(enc.trim())
            .map_err(|e| ImageError::InvalidParams {
                message: format!("image_request_authorization is not base64: {e}"),
            })?;
        let mut v = HeaderValue::from_bytes(&raw).map_err(|e| ImageError::InvalidParams {
            message: format!("image_request_authorization is not a valid header value: {e}"),
        })?;
        v.set_sensitive(true);
        return Ok(Some(v));
    }
    if info.image_server_auth_strategy.as_deref() == Some("http_basic") {
        let (Some(user), Some(password)) = (
            info.image_server_user.as_deref(),
            info.image_server_password.as_deref(),
        ) else {
            return Err(ImageError::Download {
                image_id: info.id.clone(),
                failures: vec![
                    "http_basic requires image_server_user and image_server_password".into(),
                ],
            });
        };
        let mut v = HeaderValue::from_str(&format!(
            "Basic {}",
            b64.encode(format!("{user}:{password}"))
        ))
        .map_err(|e| ImageError::InvalidParams {
            message: format!("invalid basic auth credentials: {e}"),
        })?;
        v.set_sensitive(true);
        return Ok(Some(v));
    }
    Ok(None)
}
