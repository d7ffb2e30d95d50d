//! The software clock from `ntp_server` (IPA `utils.sync_clock`, called at
//! the start of `agent.run` with errors ignored unless
//! `fail_if_clock_not_set`). Runs first, before any TLS: certificates are
//! checked against this clock, and auto-TLS certificates are dated by it.
//! IPA runs ntpdate or chronyd; the agent asks the server itself (SNTP,
//! RFC 4330) and steps the clock. Only the real machine's clock is set: a
//! simulated machine records the offset instead (the clock is not
//! namespaced, so even an agent in a test namespace must not set it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::NetError;

/// What to do with the measured offset.
#[derive(Debug, Clone)]
pub enum ClockControl {
    /// Step this machine's clock (`clock_settime`).
    Set,
    /// Record `{"action": "clock_set", ...}` in a simulated machine's
    /// actions file.
    Record { actions_file: PathBuf },
}

/// How long one SNTP exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
/// Exchanges tried (per address) before giving up.
const ATTEMPTS: u32 = 3;

/// Syncs the clock when `ntp_server` is set. `Err` only when the clock
/// could not be set and `fail_if_clock_not_set` asks the agent to stop.
pub async fn sync(cfg: &ironic_config::Config, control: &ClockControl) -> Result<(), NetError> {
    let Some(server) = cfg.non_empty("ntp_server") else {
        return Ok(());
    };
    match sync_with(&server, control).await {
        Ok(offset_us) => {
            tracing::info!(%server, offset_us, "software clock synced");
            Ok(())
        }
        Err(e) if cfg.bool("fail_if_clock_not_set") => Err(e),
        Err(e) => {
            tracing::error!(%server, error = %e, "could not sync the clock; continuing");
            Ok(())
        }
    }
}

/// One successful exchange with `server` (host or IP, port 123) and the
/// clock stepped by the offset; returns the offset in microseconds.
pub async fn sync_with(server: &str, control: &ClockControl) -> Result<i64, NetError> {
    let fail = |message: String| NetError::Clock {
        server: server.to_string(),
        message,
    };
    let host = server.trim_matches(|c| c == '[' || c == ']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 123))
        .await
        .map_err(|e| fail(format!("resolving: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for addr in &addrs {
        for _ in 0..ATTEMPTS {
            match exchange(*addr).await {
                Ok(offset_us) => {
                    apply(offset_us, server, control).map_err(|e| fail(e.to_string()))?;
                    return Ok(offset_us);
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
    }
    Err(fail(last))
}

async fn exchange(addr: SocketAddr) -> Result<i64, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    let context = sntpc::NtpContext::new(sntpc::StdTimestampGen::default());
    let result = tokio::time::timeout(
        EXCHANGE_TIMEOUT,
        sntpc::get_time(addr, &Udp(socket), context),
    )
    .await
    .map_err(|_| format!("no answer within {} s", EXCHANGE_TIMEOUT.as_secs()))?
    .map_err(|e| format!("{e:?}"))?;
    Ok(result.offset())
}

/// sntpc's socket interface over a tokio UDP socket.
struct Udp(tokio::net::UdpSocket);

impl sntpc::NtpUdpSocket for Udp {
    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> sntpc::Result<usize> {
        self.0
            .send_to(buf, addr)
            .await
            .map_err(|_| sntpc::Error::Network)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> sntpc::Result<(usize, SocketAddr)> {
        self.0
            .recv_from(buf)
            .await
            .map_err(|_| sntpc::Error::Network)
    }
}

fn apply(offset_us: i64, server: &str, control: &ClockControl) -> std::io::Result<()> {
    match control {
        ClockControl::Record { actions_file } => {
            crate::record(
                actions_file,
                &json!({"action": "clock_set", "server": server, "offset_us": offset_us}),
            );
            Ok(())
        }
        ClockControl::Set => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(std::io::Error::other)?;
            let target = now.as_micros() as i128 + i128::from(offset_us);
            let target = u128::try_from(target.max(0)).unwrap_or(0);
            // SAFETY: timespec is plain data; zeroed is a valid start.
            let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
            // `as _`: time_t's width differs between glibc and musl.
            ts.tv_sec = (target / 1_000_000) as _;
            ts.tv_nsec = ((target % 1_000_000) * 1000) as _;
            // SAFETY: a valid timespec; CLOCK_REALTIME needs CAP_SYS_TIME.
            let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
    }
}
