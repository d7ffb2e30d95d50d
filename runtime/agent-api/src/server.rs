//! The HTTP API (IPA `api/app.py` `Application`): routes and aliases, JSON faults for
//! every error, 308 redirects of slash-less forms, body cap, version
//! documents, and a server that stops cleanly after lockdown/rescue.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use axum::Router;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::errors::{json_response, HttpFault};
use crate::system_actions::SystemAction;
use crate::token::query_param;
use crate::{AgentState, StopReason};

const GET_HEAD: &str = "GET, HEAD";
const GET_HEAD_POST: &str = "HEAD, GET, POST";

/// How long in-flight requests may take to finish once a stop was requested.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The agent's router (no listener attached).
pub fn router(state: AgentState) -> Router {
    let commands = || {
        get(list_commands)
            .post(post_command)
            .fallback(|| async { HttpFault::method_not_allowed(GET_HEAD_POST) })
    };
    let one = || get(get_command).fallback(|| async { HttpFault::method_not_allowed(GET_HEAD) });
    Router::new()
        .route("/", json_get(root))
        .route("/v1/", json_get(v1_index))
        .route("/v1", any(redirect_with_slash_get))
        .route("/v1/status", json_get(status))
        .route("/status", json_get(status))
        .route("/v1/commands/", commands())
        .route("/commands/", commands())
        .route("/v1/commands", any(redirect_with_slash_post))
        .route("/commands", any(redirect_with_slash_post))
        .route("/v1/commands/{id}", one())
        .route("/commands/{id}", one())
        .fallback(|| async { HttpFault::route_not_found() })
        .with_state(state)
}

fn json_get<H, T>(handler: H) -> MethodRouter<AgentState>
where
    H: axum::handler::Handler<T, AgentState>,
    T: 'static,
{
    get(handler).fallback(|| async { HttpFault::method_not_allowed(GET_HEAD) })
}

/// Serves `router(state)` on `listener` until `shutdown` resolves or a
/// command asks the API to stop (lockdown, rescue). On such a stop the reply
/// that triggered it is completed first, the listener is closed, and for a
/// lockdown the network is then brought down through the system backend.
pub async fn serve<L>(
    listener: L,
    state: AgentState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Option<StopReason>>
where
    L: axum::serve::Listener,
{
    let mut stop_rx = state.stop_requested();
    let (fired_tx, mut fired_rx) = tokio::sync::oneshot::channel::<Option<StopReason>>();
    let signal = async move {
        let reason = tokio::select! {
            _ = shutdown => None,
            r = stop_rx.wait_for(|r| r.is_some()) => r.ok().and_then(|r| *r),
        };
        let _ = fired_tx.send(reason);
    };
    let app = router(state.clone());
    // In-flight replies (the lockdown answer itself) finish; waits on
    // never-ending commands are cut after a grace period.
    crate::connections::serve_connections(listener, app, state.config().http, signal, STOP_GRACE)
        .await;
    let reason = fired_rx.try_recv().ok().flatten();
    tracing::info!(?reason, "API stopped");

    if reason == Some(StopReason::Lockdown) {
        let system = state.system();
        match tokio::task::spawn_blocking(move || system.perform(SystemAction::NetworkDown)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "lockdown: bringing the network down failed"),
            Err(e) => tracing::error!(error = %e, "lockdown worker failed"),
        }
    }
    Ok(reason)
}

/// `scheme://host` of this request, without trailing slash (IPA `Application.api_root`).
fn base_url(state: &AgentState, headers: &HeaderMap, uri: &Uri) -> String {
    let scheme = if state.config().tls { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| state.config().listen.to_string());
    format!("{scheme}://{}", host.trim_end_matches('/'))
}

fn version_object(url: &str) -> Value {
    json!({
        "id": "v1",
        "links": [
            {"href": format!("{url}/v1"), "rel": "self"},
            {"href": "https://docs.openstack.org/ironic-python-agent/", "rel": "describedby", "type": "text/html"}
        ]
    })
}

async fn root(State(state): State<AgentState>, headers: HeaderMap, uri: Uri) -> Response {
    let url = base_url(&state, &headers, &uri);
    let v = version_object(&url);
    json_response(
        StatusCode::OK,
        &json!({
            "name": "OpenStack Ironic Python Agent API",
            "description": "Ironic Python Agent is a provisioning agent for OpenStack Ironic",
            "versions": [v.clone()],
            "default_version": v,
        }),
    )
}

async fn v1_index(State(state): State<AgentState>, headers: HeaderMap, uri: Uri) -> Response {
    let url = base_url(&state, &headers, &uri);
    let mut doc = json!({
        "commands": [
            {"href": format!("{url}/v1/commands"), "rel": "self"},
            {"href": format!("{url}/commands"), "rel": "bookmark"}
        ],
        "status": [
            {"href": format!("{url}/v1/status"), "rel": "self"},
            {"href": format!("{url}/status"), "rel": "bookmark"}
        ],
        "media_types": [
            {"base": "application/json", "type": "application/vnd.openstack.ironic-python-agent.v1+json"}
        ],
    });
    if let (Value::Object(d), Value::Object(v)) = (&mut doc, version_object(&url)) {
        d.extend(v);
    }
    json_response(StatusCode::OK, &doc)
}

async fn status(State(state): State<AgentState>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"started_at": state.config().started_at, "version": state.config().version}),
    )
}

/// 308 to the slash form for `/v1` (GET, HEAD).
async fn redirect_with_slash_get(
    State(state): State<AgentState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return HttpFault::method_not_allowed(GET_HEAD).into_response();
    }
    redirect(&state, &headers, &uri)
}

/// 308 to the slash form for `/v1/commands`, `/commands` (GET, HEAD, POST).
async fn redirect_with_slash_post(
    State(state): State<AgentState>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return HttpFault::method_not_allowed(GET_HEAD_POST).into_response();
    }
    redirect(&state, &headers, &uri)
}

/// werkzeug's strict-slashes redirect: absolute Location, query preserved,
/// small HTML body. 308 keeps the method and body of a POST.
fn redirect(state: &AgentState, headers: &HeaderMap, uri: &Uri) -> Response {
    let mut location = format!("{}{}/", base_url(state, headers, uri), uri.path());
    if let Some(q) = uri.query() {
        location.push('?');
        location.push_str(q);
    }
    let body = format!(
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: <a href=\"{location}\">{location}</a>. If not, click the link.\n"
    );
    let mut r = (StatusCode::PERMANENT_REDIRECT, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => HttpFault::route_not_found().into_response(),
    }
}

fn check_token(state: &AgentState, query: Option<&str>) -> Result<(), HttpFault> {
    let provided = query_param(query, "agent_token");
    if state.token().check(provided.as_deref()) {
        Ok(())
    } else {
        tracing::debug!("command request with a missing or wrong agent token");
        Err(HttpFault::unauthorized())
    }
}

fn wants_wait(query: Option<&str>) -> bool {
    query_param(query, "wait").is_some_and(|w| w.to_lowercase() == "true")
}

async fn list_commands(State(state): State<AgentState>, RawQuery(query): RawQuery) -> Response {
    if let Err(f) = check_token(&state, query.as_deref()) {
        return f.into_response();
    }
    #[derive(Serialize)]
    struct List<'a> {
        commands: Vec<&'a crate::CommandRecord>,
    }
    let results = state.engine().results();
    json_response(
        StatusCode::OK,
        &List {
            commands: results.iter().map(|r| &**r).collect(),
        },
    )
}

async fn get_command(
    State(state): State<AgentState>,
    RawQuery(query): RawQuery,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    if let Err(f) = check_token(&state, query.as_deref()) {
        return f.into_response();
    }
    let Ok(Path(id)) = id else {
        return HttpFault::route_not_found().into_response();
    };
    let Some(record) = state.engine().get(&id) else {
        return HttpFault::result_not_found(&id).into_response();
    };
    if wants_wait(query.as_deref()) {
        record.wait().await;
    }
    json_response(StatusCode::OK, &*record)
}

async fn post_command(
    State(state): State<AgentState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Token first: a bad token with a bad body is a 401 (IPA
    // `Application.require_agent_token_for_command` wraps `api_run_command`).
    if let Err(f) = check_token(&state, query.as_deref()) {
        return f.into_response();
    }
    // Far too big to be worth draining: answer at once.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP as u64) {
        return HttpFault::too_large().into_response();
    }
    let bytes = match read_body(body, state.config().max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(fault) => return fault.into_response(),
    };
    let doc: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return HttpFault::bad_json(&e.to_string()).into_response(),
    };
    let Some((name, params)) = parse_command(doc) else {
        return HttpFault::missing_name_or_params().into_response();
    };
    match state
        .engine()
        .execute(&state, &name, params, wants_wait(query.as_deref()))
        .await
    {
        Ok(record) => json_response(StatusCode::OK, &*record),
        Err(fault) => {
            tracing::info!(command = %name, status = %fault.status, faultstring = %fault.faultstring, "command rejected");
            fault.into_response()
        }
    }
}

/// How much of an oversized body is read and discarded before answering 413:
/// a client still sending when the connection closes sees a broken pipe
/// instead of the JSON fault, so moderately oversized bodies are drained.
const DRAIN_CAP: usize = 64 * 1024 * 1024;

/// Reads the body up to `cap` bytes; over the cap → 413 (after draining).
async fn read_body(mut body: Body, cap: usize) -> Result<axum::body::Bytes, HttpFault> {
    let mut buf = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            HttpFault::new(
                StatusCode::BAD_REQUEST,
                format!("400 Bad Request: Failed to read request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total > cap {
            buf = Vec::new(); // drop what was kept; only count from now on
            if total > DRAIN_CAP {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&data);
    }
    if total > cap {
        tracing::info!(bytes = total, cap, "request body over the cap");
        return Err(HttpFault::too_large());
    }
    Ok(buf.into())
}

/// `{"name": str, "params": object}`; anything else is a 400, as in IPA's
/// `Application.api_run_command`.
fn parse_command(doc: Value) -> Option<(String, Map<String, Value>)> {
    let Value::Object(mut doc) = doc else {
        return None;
    };
    let name = match doc.remove("name")? {
        Value::String(s) => s,
        _ => return None,
    };
    match doc.remove("params")? {
        Value::Object(p) => Some((name, p)),
        _ => None,
    }
}
