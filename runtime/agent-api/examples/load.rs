//! Load generator for the agent API (loopback only, bounded).
//!
//! Starts the real server on 127.0.0.1 with fake managers, records 50
//! command results, then measures `GET /v1/status` and `GET /v1/commands/`:
//! median/p99 latency over 10,000 sequential keep-alive requests, and
//! throughput with 16 concurrent connections.
//!
//! Run: `cargo run --release -p agent-api --example load`

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_api::{AgentError, AgentState, ApiConfig, ManagerSteps, Managers, Recorder, StepKind};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TOKEN: &str = "bench-token";
const SEQUENTIAL: usize = 10_000;
const CONCURRENCY: usize = 16;
const CONCURRENT_TOTAL: usize = 20_000;

struct Idle;

#[async_trait::async_trait]
impl Managers for Idle {
    async fn get_steps(
        &self,
        _: StepKind,
        _: &Value,
        _: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError> {
        Ok(vec![])
    }
    async fn execute_step(
        &self,
        _: StepKind,
        _: &str,
        _: &Value,
        _: &Value,
        _: &Value,
        _: agent_api::managers::StepProgressFn,
    ) -> Result<Value, AgentError> {
        Ok(Value::Null)
    }
    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError> {
        Ok(BTreeMap::from([(
            "generic_hardware_manager".into(),
            "1.2".into(),
        )]))
    }
    async fn inventory(&self) -> Result<Value, AgentError> {
        Ok(json!({}))
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(s),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends one request and reads the full reply; returns the status.
    async fn roundtrip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        self.reader.get_mut().write_all(request).await?;
        self.line.clear();
        self.reader.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        self.body.resize(len, 0);
        self.reader.read_exact(&mut self.body).await?;
        Ok(status)
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn sequential(addr: SocketAddr, request: &[u8]) -> std::io::Result<()> {
    let mut conn = Conn::open(addr).await?;
    for _ in 0..200 {
        conn.roundtrip(request).await?; // warm-up
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let status = conn.roundtrip(request).await?;
        samples.push(t.elapsed());
        assert_eq!(status, 200);
    }
    samples.sort();
    println!(
        "  sequential x{SEQUENTIAL}: median {:?}, p99 {:?}, max {:?}, reply {} bytes",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        conn.body.len()
    );
    Ok(())
}

async fn concurrent(addr: SocketAddr, request: Vec<u8>) -> std::io::Result<()> {
    let request = Arc::new(request);
    let per_conn = CONCURRENT_TOTAL / CONCURRENCY;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut samples = Vec::with_capacity(per_conn);
            for _ in 0..per_conn {
                let t = Instant::now();
                conn.roundtrip(&request).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, std::io::Error>(samples)
        }));
    }
    let mut samples = Vec::with_capacity(CONCURRENT_TOTAL);
    for task in tasks {
        samples.extend(task.await.map_err(std::io::Error::other)??);
    }
    let elapsed = t.elapsed();
    samples.sort();
    println!(
        "  concurrency {CONCURRENCY}: {} requests in {:?} = {:.0} req/s, median {:?}, p99 {:?}",
        per_conn * CONCURRENCY,
        elapsed,
        (per_conn * CONCURRENCY) as f64 / elapsed.as_secs_f64(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = AgentState::new(
        ApiConfig::new(addr, root.path()),
        Arc::new(Idle),
        Arc::new(Recorder::new(
            root.path(),
            root.path().join("actions.jsonl"),
        )),
    );
    state.set_token(Some(TOKEN.into()));
    for _ in 0..50 {
        state
            .engine()
            .execute(
                &state,
                "standby.get_partition_uuids",
                Default::default(),
                false,
            )
            .await
            .map_err(|f| anyhow::anyhow!("{f}"))?;
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(agent_api::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));

    for (label, path) in [
        ("GET /v1/status", "/v1/status".to_string()),
        (
            "GET /v1/commands/ (50 results)",
            format!("/v1/commands/?agent_token={TOKEN}"),
        ),
    ] {
        println!("{label}");
        let request = get(&path);
        sequential(addr, &request).await?;
        concurrent(addr, request).await?;
    }
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
