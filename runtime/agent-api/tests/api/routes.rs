//! Routes, aliases, methods, statuses, token and HTTP-level faults
//! (IPA `api/app.py` `Application`).

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::*;

const NOT_FOUND: &str = "404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.";
const NOT_ALLOWED: &str =
    "405 Method Not Allowed: The method is not allowed for the requested URL.";

#[tokio::test]
async fn root_document_uses_host_header() {
    let a = agent();
    let r = a.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type(), "application/json");
    let v = json!({"id": "v1", "links": [
        {"href": "http://10.0.0.5:9999/v1", "rel": "self"},
        {"href": "https://docs.openstack.org/ironic-python-agent/", "rel": "describedby", "type": "text/html"}]});
    assert_eq!(
        r.json(),
        json!({
        "name": "OpenStack Ironic Python Agent API",
        "description": "Ironic Python Agent is a provisioning agent for OpenStack Ironic",
        "versions": [v.clone()], "default_version": v})
    );
}

#[tokio::test]
async fn v1_index_document() {
    let a = agent();
    let r = a.get("/v1/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({
        "commands": [{"href": "http://10.0.0.5:9999/v1/commands", "rel": "self"}, {"href": "http://10.0.0.5:9999/commands", "rel": "bookmark"}],
        "status": [{"href": "http://10.0.0.5:9999/v1/status", "rel": "self"}, {"href": "http://10.0.0.5:9999/status", "rel": "bookmark"}],
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.ironic-python-agent.v1+json"}],
        "id": "v1",
        "links": [{"href": "http://10.0.0.5:9999/v1", "rel": "self"}, {"href": "https://docs.openstack.org/ironic-python-agent/", "rel": "describedby", "type": "text/html"}]})
    );
}

#[tokio::test]
async fn status_and_alias_need_no_token() {
    let a = agent();
    for path in ["/v1/status", "/status"] {
        let r = a.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(
            r.json(),
            json!({"started_at": 1700000000.123, "version": "13.0.0"})
        );
    }
    let r = a.request(Method::HEAD, "/v1/status", Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn slashless_forms_redirect_308_keeping_query() {
    let a = agent();
    for (method, path, target) in [
        (Method::GET, "/v1", "http://10.0.0.5:9999/v1/"),
        (
            Method::GET,
            "/v1/commands?agent_token=x",
            "http://10.0.0.5:9999/v1/commands/?agent_token=x",
        ),
        (
            Method::POST,
            "/v1/commands?wait=true&agent_token=x",
            "http://10.0.0.5:9999/v1/commands/?wait=true&agent_token=x",
        ),
        (Method::HEAD, "/commands", "http://10.0.0.5:9999/commands/"),
    ] {
        let r = a.request(method.clone(), path, Body::empty()).await;
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT, "{method} {path}");
        assert_eq!(r.headers["location"], target);
        assert_eq!(r.content_type(), "text/html; charset=utf-8");
    }
}

#[tokio::test]
async fn unknown_paths_are_json_404() {
    let a = agent();
    for path in [
        "/nope",
        "/v1/status/",
        "/v2/",
        "/v1/commands/abc/",
        "/v1/commands/a/b",
    ] {
        a.get(path).await.assert_fault(404, NOT_FOUND);
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405_with_allow() {
    let a = agent();
    let r = a
        .request(
            Method::DELETE,
            &format!("/v1/commands/?agent_token={TOKEN}"),
            Body::empty(),
        )
        .await;
    r.assert_fault(405, NOT_ALLOWED);
    let mut allow: Vec<String> = r.headers["allow"]
        .to_str()
        .unwrap()
        .split(", ")
        .map(str::to_string)
        .collect();
    allow.sort();
    assert_eq!(allow, ["GET", "HEAD", "POST"]);
    for (method, path) in [
        (Method::POST, "/v1/status"),
        (Method::PUT, "/status"),
        (Method::POST, "/"),
        (Method::POST, "/v1/"),
        (Method::DELETE, "/v1/commands/some-id"),
        (Method::PUT, "/commands/"),
    ] {
        let r = a.request(method.clone(), path, Body::empty()).await;
        r.assert_fault(405, NOT_ALLOWED);
        assert!(
            r.headers["allow"].to_str().unwrap().contains("GET"),
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn token_rules() {
    let a = agent();
    let unauthorized = "401 Unauthorized: Token invalid.";
    for uri in [
        "/v1/commands/",
        "/v1/commands/?agent_token=",
        "/v1/commands/?agent_token=wrong",
        "/commands/?agent_token=tkn-123",
        "/v1/commands/someid?agent_token=nope",
    ] {
        let r = a.get(uri).await;
        r.assert_fault(401, unauthorized);
        assert!(r.headers.get("www-authenticate").is_none());
    }
    // HEAD of command routes needs the token too.
    let r = a
        .request(Method::HEAD, "/v1/commands/", Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = a
        .request(
            Method::HEAD,
            &format!("/v1/commands/?agent_token={TOKEN}"),
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Token checked before the body is parsed.
    a.request(Method::POST, "/v1/commands/?agent_token=bad", "{not json")
        .await
        .assert_fault(401, unauthorized);
    // Right token on both spellings.
    assert_eq!(
        a.get(&format!("/v1/commands/?agent_token={TOKEN}"))
            .await
            .json(),
        json!({"commands": []})
    );
    assert_eq!(
        a.get(&format!("/commands/?agent_token={TOKEN}"))
            .await
            .status,
        StatusCode::OK
    );
    // Routes needing none keep working without it.
    assert_eq!(a.get("/").await.status, StatusCode::OK);
    assert_eq!(a.get("/v1/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn agent_without_token_rejects_every_command_request() {
    let a = agent();
    a.state.set_token(None);
    a.get("/v1/commands/")
        .await
        .assert_fault(401, "401 Unauthorized: Token invalid.");
    a.get(&format!("/v1/commands/?agent_token={TOKEN}"))
        .await
        .assert_fault(401, "401 Unauthorized: Token invalid.");
    a.post_cmd("standby.sync", json!({}), true)
        .await
        .assert_fault(401, "401 Unauthorized: Token invalid.");
    assert_eq!(a.get("/v1/status").await.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_are_clear_400s_and_agent_keeps_serving() {
    let a = agent();
    let uri = format!("/v1/commands/?wait=true&agent_token={TOKEN}");
    let r = a.request(Method::POST, &uri, "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["faultstring"]
        .as_str()
        .unwrap()
        .starts_with("400 Bad Request: Failed to decode JSON object: "));
    let r = a
        .request(Method::POST, &uri, vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["faultstring"]
        .as_str()
        .unwrap()
        .starts_with("400 Bad Request: Failed to decode JSON object: "));
    let r = a.request(Method::POST, &uri, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for body in [
        json!({"name": "standby.sync"}),
        json!({"params": {}}),
        json!({"name": "standby.sync", "params": []}),
        json!([1]),
        json!(5),
        json!({"name": 3, "params": {}}),
    ] {
        a.request(Method::POST, &uri, body.to_string())
            .await
            .assert_fault(400, "400 Bad Request: Missing or invalid name or params");
    }
    a.post_cmd("sync", json!({}), true).await.assert_fault(
        400,
        "Invalid command: Command name must be of the form <extension>.<name>",
    );
    a.post_cmd("nosuch.sync", json!({}), true)
        .await
        .assert_fault(404, "Not found: Extension with id nosuch not found.");
    a.post_cmd("standby.nosuch", json!({}), true)
        .await
        .assert_fault(400, "Invalid command: Unknown command: nosuch");
    // 20 MiB body → 413 JSON fault.
    let big = format!(
        "{{\"name\": \"standby.sync\", \"params\": {{\"x\": \"{}\"}}}}",
        "a".repeat(20 * 1024 * 1024)
    );
    a.request(Method::POST, &uri, big).await.assert_fault(
        413,
        "413 Request Entity Too Large: The data value transmitted exceeds the capacity limit.",
    );
    // Nothing was recorded and the agent still serves.
    assert!(a.list().await.is_empty());
    let r = a.post_cmd("standby.sync", json!({}), true).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["command_status"], "SUCCEEDED");
}

#[tokio::test]
async fn unknown_command_id_is_404() {
    let a = agent();
    a.get(&format!("/v1/commands/abc?agent_token={TOKEN}"))
        .await
        .assert_fault(404, "Not found: Command Result with id abc not found.");
    let r = a
        .post_cmd("standby.get_partition_uuids", json!({}), false)
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    for prefix in ["/v1/commands/", "/commands/"] {
        let g = a.get(&format!("{prefix}{id}?agent_token={TOKEN}")).await;
        assert_eq!(g.status, StatusCode::OK);
        assert_eq!(g.json(), r.json());
    }
}
