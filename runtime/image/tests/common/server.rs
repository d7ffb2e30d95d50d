//! A tiny HTTP/1.1 file server on 127.0.0.1 for tests and the bench:
//! Range support plus fault modes (drop the connection once, 404, truncated
//! body, ignore Range, one 500). One request per connection.
//! Bodies go out with `std::io::copy` (sendfile on Linux), so the server
//! costs little CPU in throughput measurements.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// First request: send this fraction of the body, then close.
    DropOnceAt(f64),
    NotFound,
    /// Every request: claim the full length, send only up to this absolute fraction.
    Truncate(f64),
    /// Answer 200 with the whole file even to Range requests (after a first drop at 50 %).
    IgnoreRangeAfterDrop,
    /// First request: 500.
    ServerErrorOnce,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub range: Option<String>,
    pub auth: Option<String>,
    /// Sent in absolute form, i.e. through this server as a proxy.
    pub proxied: bool,
}

struct Entry {
    path: PathBuf,
    mode: Mode,
    tripped: AtomicBool,
}

#[derive(Default)]
struct State {
    files: Mutex<HashMap<String, Arc<Entry>>>,
    log: Mutex<Vec<Request>>,
}

pub struct TestServer {
    pub base: String,
    state: Arc<State>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        TestServer { base, state }
    }

    /// Serves `path` at `/<name>`; returns its URL.
    pub fn add(&self, name: &str, path: PathBuf, mode: Mode) -> String {
        let e = Arc::new(Entry {
            path,
            mode,
            tripped: AtomicBool::new(false),
        });
        self.state
            .files
            .lock()
            .expect("lock")
            .insert(format!("/{name}"), e);
        format!("{}/{name}", self.base)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().expect("lock").clone()
    }
}

fn handle(stream: TcpStream, st: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Absolute-form target: we are being used as an HTTP proxy.
    let proxied = path.starts_with("http://");
    if proxied {
        let rest = path.trim_start_matches("http://");
        path = rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string());
    }
    let mut range = None;
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
            if k.trim().eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
    }
    st.log.lock().expect("lock").push(Request {
        path: path.clone(),
        range: range.clone(),
        auth,
        proxied,
    });
    let mut out = stream;
    let entry = st.files.lock().expect("lock").get(&path).cloned();
    let Some(entry) = entry else {
        return respond_status(&mut out, "404 Not Found");
    };
    let first = !entry.tripped.swap(true, Ordering::SeqCst);
    match entry.mode {
        Mode::NotFound => return respond_status(&mut out, "404 Not Found"),
        Mode::ServerErrorOnce if first => {
            return respond_status(&mut out, "500 Internal Server Error")
        }
        _ => {}
    }
    let file = std::fs::File::open(&entry.path)?;
    let len = file.metadata()?.len();
    let start = match (&range, entry.mode) {
        (_, Mode::IgnoreRangeAfterDrop) => 0,
        (Some(r), _) => r
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0),
        (None, _) => 0,
    };
    let body_len = len.saturating_sub(start);
    let header = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {body_len}\r\nContent-Range: bytes {start}-{}/{len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            len.saturating_sub(1)
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n")
    };
    out.write_all(header.as_bytes())?;
    let cut = |f: f64| ((len as f64 * f) as u64).max(start);
    let end = match entry.mode {
        Mode::DropOnceAt(f) if first => cut(f),
        Mode::IgnoreRangeAfterDrop if first => cut(0.5),
        Mode::Truncate(f) => cut(f),
        _ => len,
    };
    send_range(&file, &out, start, end)?;
    out.flush()?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}

/// sendfile(2) loop: the kernel moves page-cache pages to the socket, so the
/// server costs little CPU next to the client under test. (std::io::copy
/// fell back to an 8 KiB userspace copy here and dominated the profile.)
fn send_range(file: &std::fs::File, out: &TcpStream, start: u64, end: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut off = start as libc::off_t;
    let end = end as libc::off_t;
    while off < end {
        let want = ((end - off) as usize).min(1 << 30);
        // SAFETY: both descriptors are open for the duration of the call and
        // `off` is a valid pointer the kernel updates.
        let n = unsafe { libc::sendfile(out.as_raw_fd(), file.as_raw_fd(), &mut off, want) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
    }
    Ok(())
}

fn respond_status(out: &mut TcpStream, status: &str) -> std::io::Result<()> {
    let body = status.as_bytes();
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(body)?;
    let _ = out.shutdown(Shutdown::Both);
    Ok(())
}
