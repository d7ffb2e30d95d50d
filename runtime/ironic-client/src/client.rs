//! HTTP to Ironic: URL failover, microversion discovery, one lookup /
//! heartbeat / inspection POST (IPA `ironic_api_client.py` `APIClient`,
//! `inspector.py` `call_inspector`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tls::{client_config, ClientTls};
use crate::Error;

/// The version the agent assumes when discovery fails.
pub const MIN_VERSION: (u32, u32) = (1, 31);
/// `agent_version` in heartbeats.
pub const AGENT_VERSION_VERSION: (u32, u32) = (1, 36);
/// Agent token.
pub const TOKEN_VERSION: (u32, u32) = (1, 62);
/// `agent_verify_ca` / auto-TLS.
pub const VERIFY_CA_VERSION: (u32, u32) = (1, 68);
/// The agent never sends more than this.
pub const MAX_VERSION: (u32, u32) = (1, 68);

/// `"X.Y"` → (X, Y).
pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn fmt_version(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

/// Settings of the Ironic client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URLs, right-stripped of `/`.
    pub api_urls: Vec<String>,
    /// `http_request_timeout`.
    pub request_timeout: Duration,
    /// `global_request_id` → `X-OpenStack-Request-ID`.
    pub global_request_id: Option<String>,
    /// `ironic_api_version` (skips discovery when parseable).
    pub api_version: Option<String>,
    /// Outbound TLS.
    pub tls: ClientTls,
}

impl ClientSettings {
    /// From the effective configuration.
    pub fn from_config(cfg: &ironic_config::Config) -> ClientSettings {
        ClientSettings {
            api_urls: cfg.api_urls(),
            request_timeout: Duration::from_secs(
                cfg.int("http_request_timeout").unwrap_or(30).max(1) as u64,
            ),
            global_request_id: cfg.non_empty("global_request_id"),
            api_version: cfg.non_empty("ironic_api_version"),
            tls: ClientTls {
                insecure: cfg.bool("insecure"),
                cafile: cfg.non_empty("cafile"),
                certfile: cfg.non_empty("certfile"),
                keyfile: cfg.non_empty("keyfile"),
                min_version: cfg.str("tls_min_version").unwrap_or_else(|| "1.2".into()),
            },
        }
    }
}

/// Outcome of one HTTP exchange.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body parsed as JSON (`Null` if empty or not JSON).
    pub json: Value,
    /// Raw body text (for error messages).
    pub text: String,
}

impl Reply {
    /// Ironic's fault string, if the body is an Ironic error document.
    pub fn fault(&self) -> String {
        let em = &self.json["error_message"];
        let inner = match em {
            Value::String(s) => {
                serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.clone()))
            }
            other => other.clone(),
        };
        inner["faultstring"]
            .as_str()
            .or_else(|| inner["title"].as_str())
            .or_else(|| inner.as_str())
            .map(String::from)
            .unwrap_or_else(|| self.text.chars().take(300).collect())
    }
}

/// The Ironic API client.
pub struct IronicClient {
    http: reqwest::Client,
    urls: Mutex<Vec<String>>,
    settings: ClientSettings,
    version: Mutex<Option<(u32, u32)>>,
}

impl IronicClient {
    /// Builds the client (TLS settings are fixed for its lifetime, as IPA's session).
    pub fn new(settings: ClientSettings) -> Result<IronicClient, Error> {
        let tls = client_config(&settings.tls)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(settings.request_timeout)
            .timeout(settings.request_timeout)
            .user_agent(concat!("ironic-wasm-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Tls(format!("building the HTTP client: {e}")))?;
        let fixed = settings.api_version.as_deref().and_then(parse_version);
        if settings.api_version.is_some() && fixed.is_none() {
            tracing::warn!("ironic_api_version is not X.Y; discovering the version instead");
        }
        Ok(IronicClient {
            http,
            urls: Mutex::new(settings.api_urls.clone()),
            version: Mutex::new(fixed),
            settings,
        })
    }

    /// The HTTP client (shared connection pool), e.g. for inspection URLs.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The base URLs in their current order.
    pub fn urls(&self) -> Vec<String> {
        self.urls.lock().map(|u| u.clone()).unwrap_or_default()
    }

    fn promote(&self, base: &str) {
        if let Ok(mut urls) = self.urls.lock() {
            if let Some(pos) = urls.iter().position(|u| u == base) {
                let u = urls.remove(pos);
                urls.insert(0, u);
            }
        }
    }

    /// Sends one request to `url` and reads the reply; logs it with its outcome.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        version: Option<(u32, u32)>,
        body: Option<&Value>,
    ) -> Result<Reply, reqwest::Error> {
        let started = Instant::now();
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json");
        if let Some(v) = version {
            req = req.header("X-OpenStack-Ironic-API-Version", fmt_version(v));
        }
        if let Some(id) = &self.settings.global_request_id {
            req = req.header("X-OpenStack-Request-ID", id);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let result = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let text = resp.text().await?;
            Ok::<_, reqwest::Error>((status, text))
        }
        .await;
        let ms = started.elapsed().as_millis() as u64;
        // The lookup URL carries no secret; heartbeat tokens are in the body only.
        match result {
            Ok((status, text)) => {
                tracing::info!(%method, url, status, ms, "Ironic request");
                let json = serde_json::from_str(&text).unwrap_or(Value::Null);
                Ok(Reply { status, json, text })
            }
            Err(e) => {
                tracing::warn!(%method, url, ms, "Ironic request failed: {e}");
                Err(e)
            }
        }
    }

    /// Tries `path` against each base URL in order; a connection-class
    /// failure moves on to the next, the first URL that answers is promoted.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        version: Option<(u32, u32)>,
        body: Option<&Value>,
    ) -> Result<Reply, Error> {
        let urls = self.urls();
        if urls.is_empty() {
            return Err(Error::NoApiUrl);
        }
        let mut last = None;
        for base in &urls {
            match self
                .send(method.clone(), &format!("{base}{path}"), version, body)
                .await
            {
                Ok(r) => {
                    self.promote(base);
                    return Ok(r);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Connection(
            last.map(|e| error_chain(&e)).unwrap_or_default(),
        ))
    }

    /// The negotiated version: cached discovery, or 1.31 (uncached) on failure.
    pub async fn api_version(&self) -> (u32, u32) {
        if let Some(v) = self.version.lock().ok().and_then(|v| *v) {
            return v;
        }
        match self.request(reqwest::Method::GET, "/", None, None).await {
            Ok(r) if r.status == 200 => {
                if let Some(v) = r.json["default_version"]["version"]
                    .as_str()
                    .and_then(parse_version)
                {
                    tracing::info!(version = %fmt_version(v), "Ironic API version discovered");
                    if let Ok(mut g) = self.version.lock() {
                        *g = Some(v);
                    }
                    return v;
                }
                tracing::warn!(
                    "Ironic's root document has no default_version.version; assuming 1.31"
                );
            }
            Ok(r) => tracing::warn!(
                status = r.status,
                "Ironic version discovery failed; assuming 1.31"
            ),
            Err(e) => tracing::warn!("Ironic version discovery failed: {e}; assuming 1.31"),
        }
        MIN_VERSION
    }

    /// One lookup attempt (GET /v1/lookup), version capped at 1.62.
    pub async fn lookup_once(
        &self,
        macs: &[String],
        node_uuid: Option<&str>,
    ) -> Result<Reply, Error> {
        let v = self.api_version().await.min(TOKEN_VERSION);
        let mut query = String::from("addresses=");
        query.push_str(&encode(&macs.join(",")));
        if let Some(u) = node_uuid {
            query.push_str("&node_uuid=");
            query.push_str(&encode(u));
        }
        self.request(
            reqwest::Method::GET,
            &format!("/v1/lookup?{query}"),
            Some(v),
            None,
        )
        .await
    }

    /// One heartbeat (POST /v1/heartbeat/<uuid>), version capped at 1.68;
    /// fields by version as IPA's `APIClient.heartbeat` sends them.
    pub async fn heartbeat_once(
        &self,
        node_uuid: &str,
        hb: &HeartbeatBody<'_>,
    ) -> Result<Reply, Error> {
        let v = self.api_version().await.min(MAX_VERSION);
        let body = hb.to_json(v);
        self.request(
            reqwest::Method::POST,
            &format!("/v1/heartbeat/{}", encode(node_uuid)),
            Some(v),
            Some(&body),
        )
        .await
    }
}

/// What a heartbeat carries.
#[derive(Debug, Clone)]
pub struct HeartbeatBody<'a> {
    /// `<protocol>://<host>:<port>`.
    pub callback_url: &'a str,
    /// Current token.
    pub agent_token: Option<&'a str>,
    /// Agent version string.
    pub agent_version: &'a str,
    /// Auto-TLS certificate PEM.
    pub agent_verify_ca: Option<&'a str>,
}

impl HeartbeatBody<'_> {
    /// The JSON body for API version `v`.
    pub fn to_json(&self, v: (u32, u32)) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("callback_url".into(), Value::from(self.callback_url));
        if v >= TOKEN_VERSION {
            m.insert(
                "agent_token".into(),
                self.agent_token.map_or(Value::Null, Value::from),
            );
        }
        if v >= AGENT_VERSION_VERSION {
            m.insert("agent_version".into(), Value::from(self.agent_version));
        }
        if v >= VERIFY_CA_VERSION {
            if let Some(ca) = self.agent_verify_ca {
                m.insert("agent_verify_ca".into(), Value::from(ca));
            }
        }
        Value::Object(m)
    }
}

/// Percent-encodes a query value (as python-requests: `:` → `%3A`, `,` → `%2C`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An error with its sources, for one log line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
