//! The API's routing over real HTTP: `/health`, unknown paths and wrong
//! methods answer with the JSON of `shared/API.md`.

mod support;

use std::time::Duration;

use message_service::api::Api;
use message_service::http::{DrainFlag, Limits};
use message_service::pg::{PgConfig, Pool, PoolConfig, StatementMode};
use message_service::store::Store;
use support::{request, Client, TestServer};

/// The API over a database that is not there: `/health` must not need it.
fn server() -> TestServer {
    message_service::http::init_runtime(support::TEST_WORKERS);
    let pool = Pool::new(PoolConfig {
        pg: PgConfig::parse("postgres://postgres@127.0.0.1:1/none?sslmode=disable").unwrap(),
        max_conns: 1,
        min_conns: 0,
        max_lifetime: Duration::from_secs(60),
        max_idle: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(1),
        mode: StatementMode::Prepare,
        query_timeout: Duration::from_secs(5),
    })
    .unwrap();
    TestServer::start(
        Api::new(DrainFlag::new(), Store::new(pool), &[]),
        Limits::default(),
    )
}

#[test]
fn health_answers_ok() {
    let s = server();
    let r = request(s.addr, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "ok", "service": "message-service"})
    );
}

#[test]
fn head_health_has_no_body() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_with(true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("43"));
}

#[test]
fn unknown_path_is_404_json() {
    let s = server();
    for path in ["/", "/nope", "/health/", "/healthz", "/api/v1/unknown"] {
        let r = request(s.addr, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["error"]["code"], "not_found");
    }
}

#[test]
fn wrong_method_is_405_with_allow() {
    let s = server();
    let r = request(s.addr, "DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
}
