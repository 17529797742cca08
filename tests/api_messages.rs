//! The message API end to end: real HTTP to the server, real PostgreSQL
//! behind it, and every check of what the database holds made through psql.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use message_service::api::Api;
use message_service::http::{DrainFlag, Limits};
use message_service::pg::{PgConfig, Pool, PoolConfig, StatementMode};
use message_service::store::Store;
use serde_json::{json, Value};
use support::pg::{Cluster, ClusterOptions, TestDb};
use support::{Client, RawResponse, TestServer};

const CONV: &str = "11111111-1111-4111-8111-111111111111";
const CONV2: &str = "22222222-2222-4222-8222-222222222222";
const USER: &str = "33333333-3333-4333-8333-333333333333";
const CONTACT: &str = "44444444-4444-4444-8444-444444444444";
const MISSING: &str = "99999999-9999-4999-8999-999999999999";

struct App {
    server: TestServer,
    db: Option<TestDb>,
    key: Option<String>,
}

fn pool(url: &str, connect_timeout: Duration) -> Pool {
    message_service::http::init_runtime(support::TEST_WORKERS);
    Pool::new(PoolConfig {
        pg: PgConfig::parse(url).unwrap(),
        max_conns: 4,
        min_conns: 0,
        max_lifetime: Duration::from_secs(3600),
        max_idle: Duration::from_secs(1800),
        connect_timeout,
        mode: StatementMode::Prepare,
        query_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn seed(db: &TestDb) {
    db.psql(&format!(
        "INSERT INTO conversations (id) VALUES ('{CONV}'), ('{CONV2}'); \
         INSERT INTO users (id) VALUES ('{USER}'); INSERT INTO contacts (id) VALUES ('{CONTACT}');"
    ));
}

fn app_with_keys(keys: &[&str]) -> App {
    let db = TestDb::new();
    seed(&db);
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let api = Api::new(
        DrainFlag::new(),
        Store::new(pool(&db.url, Duration::from_secs(2))),
        &keys,
    );
    App {
        server: TestServer::start(api, Limits::default()),
        db: Some(db),
        key: keys.first().cloned(),
    }
}

fn app() -> App {
    app_with_keys(&[])
}

impl App {
    fn db(&self) -> &TestDb {
        self.db.as_ref().unwrap()
    }

    fn send(&self, method: &str, path: &str, body: Option<&[u8]>, extra: &str) -> RawResponse {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}");
        if let Some(k) = &self.key {
            raw.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        let mut bytes = match body {
            Some(b) => {
                raw.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                ));
                let mut v = raw.into_bytes();
                v.extend_from_slice(b);
                v
            }
            None => {
                raw.push_str("\r\n");
                raw.into_bytes()
            }
        };
        let mut c = Client::connect(self.server.addr);
        c.send(&std::mem::take(&mut bytes));
        c.expect_response()
    }

    fn post(&self, path: &str, body: &Value) -> RawResponse {
        self.send("POST", path, Some(body.to_string().as_bytes()), "")
    }

    fn create(&self, body: &Value) -> RawResponse {
        self.post("/api/v1/messages", body)
    }

    fn get(&self, path: &str) -> RawResponse {
        self.send("GET", path, None, "")
    }

    fn count(&self) -> i64 {
        self.db()
            .psql("SELECT count(*) FROM messages")
            .parse()
            .unwrap()
    }
}

fn assert_error(r: &RawResponse, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{}", r.text());
    match field {
        Some(f) => assert_eq!(v["error"]["field"], f, "{}", r.text()),
        None => assert!(v["error"].get("field").is_none(), "{}", r.text()),
    }
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[test]
fn create_stores_the_seed_body_and_answers_201_with_location() {
    let a = app();
    let r = a.create(&json!({
        "conversation_id": CONV,
        "content": "Olá, como posso ajudar?",
        "sender_id": USER,
        "contact_id": CONTACT,
        "message_type": "outgoing",
        "content_type": "text",
        "private": false,
        "source_id": "external-id",
        "unknown_field": {"ignored": true}
    }));
    assert_eq!(r.status, 201, "{}", r.text());
    let m = r.json();
    let id = m["id"].as_str().unwrap();
    assert_eq!(
        r.header("Location"),
        Some(format!("/api/v1/messages/{id}").as_str())
    );
    assert_eq!(m["status"], "sent");
    assert_eq!(m["source_id"], "external-id");
    assert_eq!(m.as_object().unwrap().len(), 12);
    let created = m["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 27, "{created}");
    let row = a.db().psql(&format!(
        "SELECT conversation_id, sender_id, contact_id, content, message_type, content_type, private, status, source_id, \
         to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM messages WHERE id = '{id}'"
    ));
    assert_eq!(
        row,
        format!("{CONV}|{USER}|{CONTACT}|Olá, como posso ajudar?|outgoing|text|f|sent|external-id|{created}")
    );
    // The stored time is UTC.
    let skew: f64 = a
        .db()
        .psql(&format!(
            "SELECT abs(extract(epoch FROM (now() AT TIME ZONE 'UTC') - created_at)) FROM messages WHERE id = '{id}'"
        ))
        .parse()
        .unwrap();
    assert!(skew < 60.0, "created_at is {skew} s away from UTC now");
}

#[test]
fn defaults_are_stored() {
    let a = app();
    let r = a.create(&json!({"conversation_id": CONV, "content": "hi", "sender_id": null}));
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let row = a.db().psql(&format!(
        "SELECT sender_id IS NULL, contact_id IS NULL, message_type, content_type, private, status, source_id IS NULL \
         FROM messages WHERE id = '{id}'"
    ));
    assert_eq!(row, "t|t|incoming|text|f|sent|t");
}

#[test]
fn every_validation_error_has_its_code_and_field() {
    let a = app();
    let long = "x".repeat(256);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"content": "x"}), "conversation_id"),
        (
            json!({"conversation_id": "not-a-uuid", "content": "x"}),
            "conversation_id",
        ),
        (
            json!({"conversation_id": 5, "content": "x"}),
            "conversation_id",
        ),
        (json!({"conversation_id": CONV}), "content"),
        (json!({"conversation_id": CONV, "content": ""}), "content"),
        (json!({"conversation_id": CONV, "content": 7}), "content"),
        (
            json!({"conversation_id": CONV, "content": "x", "sender_id": "nope"}),
            "sender_id",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "contact_id": 1}),
            "contact_id",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "message_type": "shout"}),
            "message_type",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "content_type": "video"}),
            "content_type",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "status": "lost"}),
            "status",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "private": "yes"}),
            "private",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "source_id": long}),
            "source_id",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "source_id": 12}),
            "source_id",
        ),
        (
            json!({"conversation_id": CONV, "content": "a\u{0}b"}),
            "content",
        ),
        (
            json!({"conversation_id": CONV, "content": "x", "source_id": "a\u{0}"}),
            "source_id",
        ),
    ];
    for (body, field) in cases {
        let r = a.create(&body);
        assert_error(&r, 400, "invalid_field", Some(field));
    }
    assert_eq!(a.count(), 0, "nothing invalid is stored");
}

#[test]
fn malformed_bodies_are_400_invalid_json_and_content_type_is_checked() {
    let a = app();
    for body in [
        &b"{"[..],
        b"",
        b"[1,2]",
        b"\"text\"",
        b"null",
        b"{\"content\": \"\xff\xfe\"}",
    ] {
        let r = a.send("POST", "/api/v1/messages", Some(body), "");
        assert_error(&r, 400, "invalid_json", None);
    }
    let deep = "[".repeat(100_000);
    let r = a.send("POST", "/api/v1/messages", Some(deep.as_bytes()), "");
    assert_error(&r, 400, "invalid_json", None);
    let deep_obj = format!("{{\"a\":{}", "{\"a\":".repeat(50_000));
    let r = a.send("POST", "/api/v1/messages", Some(deep_obj.as_bytes()), "");
    assert_error(&r, 400, "invalid_json", None);

    let body = json!({"conversation_id": CONV, "content": "x"}).to_string();
    let raw = format!(
        "POST /api/v1/messages HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = support::request(a.server.addr, &raw);
    assert_error(&r, 415, "unsupported_media_type", None);
    let raw = format!(
        "POST /api/v1/messages HTTP/1.1\r\nHost: t\r\nContent-Type: Application/JSON; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(support::request(a.server.addr, &raw).status, 201);
    let raw = format!(
        "POST /api/v1/messages HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_error(
        &support::request(a.server.addr, &raw),
        415,
        "unsupported_media_type",
        None,
    );
    // The server still serves after all of that.
    assert_eq!(a.get("/health").status, 200);
}

#[test]
fn unknown_references_are_422_naming_the_field() {
    let a = app();
    for (field, body) in [
        (
            "conversation_id",
            json!({"conversation_id": MISSING, "content": "x"}),
        ),
        (
            "sender_id",
            json!({"conversation_id": CONV, "content": "x", "sender_id": MISSING}),
        ),
        (
            "contact_id",
            json!({"conversation_id": CONV, "content": "x", "contact_id": MISSING}),
        ),
    ] {
        let r = a.create(&body);
        assert_error(&r, 422, "unknown_reference", Some(field));
        assert!(
            !r.text().contains("INSERT") && !r.text().contains("fkey"),
            "no SQL in errors: {}",
            r.text()
        );
    }
    assert_eq!(a.count(), 0);
}

#[test]
fn unicode_is_stored_byte_for_byte() {
    let a = app();
    for text in [
        "Olá, ação, coração 😀👍🏽",
        "中文消息，日本語のメッセージ，한국어",
        "e\u{301} ﷽ 𝔘𝔫𝔦",
    ] {
        let r = a.create(&json!({"conversation_id": CONV, "content": text}));
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["content"], text);
        let id = r.json()["id"].as_str().unwrap().to_string();
        let hex = a.db().psql(&format!(
            "SELECT encode(convert_to(content, 'UTF8'), 'hex') FROM messages WHERE id = '{id}'"
        ));
        let expected: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert_eq!(
            a.get(&format!("/api/v1/messages/{id}")).json()["content"],
            text
        );
    }
}

#[test]
fn content_of_150000_characters_is_accepted_and_150001_refused() {
    let a = app();
    // Two-byte characters: the limit is in characters, not bytes.
    let ok = "é".repeat(150_000);
    let r = a.create(&json!({"conversation_id": CONV, "content": ok}));
    assert_eq!(r.status, 201);
    let len = a.db().psql("SELECT char_length(content) FROM messages");
    assert_eq!(len, "150000");
    let too_long = "é".repeat(150_001);
    assert_error(
        &a.create(&json!({"conversation_id": CONV, "content": too_long})),
        400,
        "invalid_field",
        Some("content"),
    );
    assert_eq!(a.count(), 1);
}

#[test]
fn get_one_by_id() {
    let a = app();
    let created = a
        .create(&json!({"conversation_id": CONV, "content": "find me"}))
        .json();
    let id = created["id"].as_str().unwrap();
    let r = a.get(&format!("/api/v1/messages/{id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), created);
    assert_error(
        &a.get(&format!("/api/v1/messages/{MISSING}")),
        404,
        "not_found",
        None,
    );
    assert_error(
        &a.get("/api/v1/messages/not-a-uuid"),
        400,
        "invalid_field",
        Some("id"),
    );
}

#[test]
fn patch_changes_status_and_content_and_moves_updated_at() {
    let a = app();
    let created = a
        .create(&json!({"conversation_id": CONV, "content": "draft"}))
        .json();
    let id = created["id"].as_str().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let r = a.send(
        "PATCH",
        &format!("/api/v1/messages/{id}"),
        Some(br#"{"status":"read"}"#),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["status"], "read");
    assert_eq!(m["content"], "draft");
    assert_eq!(m["created_at"], created["created_at"]);
    assert!(m["updated_at"].as_str().unwrap() > created["updated_at"].as_str().unwrap());
    let r = a.send(
        "PATCH",
        &format!("/api/v1/messages/{id}"),
        Some(r#"{"content":"final ✓"}"#.as_bytes()),
        "",
    );
    assert_eq!(r.json()["content"], "final ✓");
    assert_eq!(
        a.db().psql(&format!(
            "SELECT status || '|' || content FROM messages WHERE id = '{id}'"
        )),
        "read|final ✓"
    );
    let moved = a.db().psql(&format!(
        "SELECT updated_at > created_at FROM messages WHERE id = '{id}'"
    ));
    assert_eq!(moved, "t");

    let path = format!("/api/v1/messages/{id}");
    assert_error(
        &a.send("PATCH", &path, Some(b"{}"), ""),
        400,
        "invalid_field",
        None,
    );
    assert_error(
        &a.send("PATCH", &path, Some(br#"{"status":"gone"}"#), ""),
        400,
        "invalid_field",
        Some("status"),
    );
    assert_error(
        &a.send("PATCH", &path, Some(br#"{"content":""}"#), ""),
        400,
        "invalid_field",
        Some("content"),
    );
    assert_error(
        &a.send("PATCH", &path, Some(b"[]"), ""),
        400,
        "invalid_json",
        None,
    );
    assert_error(
        &a.send(
            "PATCH",
            &format!("/api/v1/messages/{MISSING}"),
            Some(br#"{"status":"read"}"#),
            "",
        ),
        404,
        "not_found",
        None,
    );
    assert_error(
        &a.send(
            "PATCH",
            "/api/v1/messages/zzz",
            Some(br#"{"status":"read"}"#),
            "",
        ),
        400,
        "invalid_field",
        Some("id"),
    );
}

#[test]
fn batch_keeps_order_and_is_all_or_nothing() {
    let a = app();
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"conversation_id": CONV, "content": format!("item {i}")}))
        .collect();
    let r = a.post("/api/v1/messages/batch", &json!({"messages": items}));
    assert_eq!(r.status, 201, "{}", r.text());
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 10);
    for (i, m) in data.iter().enumerate() {
        assert_eq!(m["content"], format!("item {i}"));
    }
    assert_eq!(a.count(), 10);

    // One unknown reference: nothing stored, and the item is named.
    let mut items: Vec<Value> = (0..5)
        .map(|i| json!({"conversation_id": CONV, "content": format!("b {i}")}))
        .collect();
    items[3]["conversation_id"] = json!(MISSING);
    let r = a.post("/api/v1/messages/batch", &json!({"messages": items}));
    assert_error(
        &r,
        422,
        "unknown_reference",
        Some("messages[3].conversation_id"),
    );
    items[3]["conversation_id"] = json!(CONV);
    items[2]["sender_id"] = json!(MISSING);
    let r = a.post("/api/v1/messages/batch", &json!({"messages": items}));
    assert_error(&r, 422, "unknown_reference", Some("messages[2].sender_id"));
    // One invalid item: nothing stored.
    items[2]["sender_id"] = json!(null);
    items[4]["content"] = json!("");
    let r = a.post("/api/v1/messages/batch", &json!({"messages": items}));
    assert_error(&r, 400, "invalid_field", Some("messages[4].content"));
    assert_eq!(a.count(), 10);

    assert_error(
        &a.post("/api/v1/messages/batch", &json!({"messages": []})),
        400,
        "invalid_field",
        Some("messages"),
    );
    assert_error(
        &a.post("/api/v1/messages/batch", &json!({})),
        400,
        "invalid_field",
        Some("messages"),
    );
    assert_error(
        &a.post("/api/v1/messages/batch", &json!({"messages": [1]})),
        400,
        "invalid_field",
        Some("messages[0]"),
    );
}

#[test]
fn batch_of_500_is_accepted_and_501_refused() {
    let a = app();
    let items = |n: usize| -> Value {
        json!({"messages": (0..n).map(|i| json!({"conversation_id": CONV2, "content": format!("m{i}"), "contact_id": CONTACT})).collect::<Vec<_>>()})
    };
    let r = a.post("/api/v1/messages/batch", &items(500));
    assert_eq!(r.status, 201, "{}", r.text());
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 500);
    assert!(data
        .iter()
        .enumerate()
        .all(|(i, m)| m["content"] == format!("m{i}")));
    assert_eq!(a.count(), 500);
    assert_error(
        &a.post("/api/v1/messages/batch", &items(501)),
        400,
        "invalid_field",
        Some("messages"),
    );
    assert_eq!(a.count(), 500);
}

/// Inserts 250 messages into CONV with created_at values that repeat (ten
/// messages share each instant), so ties must be broken by id.
fn seed_conversation(a: &App) -> Vec<String> {
    a.db().psql(
        "INSERT INTO messages (conversation_id, content, created_at) \
         SELECT '11111111-1111-4111-8111-111111111111', 'm' || g, timestamp '2026-01-01' + (g / 10) * interval '1 second' \
         FROM generate_series(0, 249) g",
    );
    a.db()
        .psql("SELECT id FROM messages ORDER BY created_at, id")
        .lines()
        .map(str::to_string)
        .collect()
}

fn page(a: &App, query: &str) -> (Vec<String>, bool) {
    let r = a.get(&format!("/api/v1/conversations/{CONV}/messages{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let ids: Vec<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(v["meta"]["count"], ids.len());
    (ids, v["meta"]["has_more"].as_bool().unwrap())
}

#[test]
fn paging_backwards_and_forwards_through_250_messages_with_ties() {
    let a = app();
    let all = seed_conversation(&a);
    assert_eq!(all.len(), 250);

    // Newest page: the last 20, oldest first.
    let (first, more) = page(&a, "");
    assert_eq!(first, all[230..].to_vec());
    assert!(more);

    // Backwards to the beginning with before=.
    let mut seen = first.clone();
    let mut cursor = first[0].clone();
    loop {
        let (ids, more) = page(&a, &format!("?limit=100&before={cursor}"));
        let start = all.iter().position(|id| *id == cursor).unwrap();
        assert_eq!(ids, all[start.saturating_sub(100)..start].to_vec());
        seen.splice(0..0, ids.clone());
        if !more {
            assert_eq!(
                start.saturating_sub(100),
                0,
                "has_more false only at the oldest end"
            );
            break;
        }
        cursor = ids[0].clone();
    }
    assert_eq!(seen, all);

    // Forwards from the oldest with after=.
    let mut forward = vec![all[0].clone()];
    let mut cursor = all[0].clone();
    loop {
        let (ids, more) = page(&a, &format!("?limit=33&after={cursor}"));
        let start = all.iter().position(|id| *id == cursor).unwrap() + 1;
        assert_eq!(ids, all[start..(start + 33).min(250)].to_vec());
        forward.extend(ids.clone());
        if !more {
            break;
        }
        cursor = ids.last().unwrap().clone();
    }
    assert_eq!(forward, all);

    // has_more right at both ends.
    let (ids, more) = page(&a, &format!("?before={}", all[0]));
    assert!(ids.is_empty() && !more);
    let (ids, more) = page(&a, &format!("?after={}", all[249]));
    assert!(ids.is_empty() && !more);
    let (ids, more) = page(&a, &format!("?after={}&limit=5", all[244]));
    assert_eq!(ids, all[245..].to_vec());
    assert!(!more);
    let (ids, more) = page(&a, &format!("?after={}&limit=5", all[243]));
    assert_eq!(ids, all[244..249].to_vec());
    assert!(more);
    let (ids, more) = page(&a, "?limit=100");
    assert_eq!(ids.len(), 100);
    assert!(more);
}

#[test]
fn listing_rules() {
    let a = app();
    let (ids, more) = page(&a, "");
    assert!(
        ids.is_empty() && !more,
        "a conversation with no messages is an empty page"
    );
    let other = a
        .create(&json!({"conversation_id": CONV2, "content": "elsewhere"}))
        .json();
    let other_id = other["id"].as_str().unwrap();
    let base = format!("/api/v1/conversations/{CONV}/messages");
    for (q, field) in [
        ("?limit=0", Some("limit")),
        ("?limit=101", Some("limit")),
        ("?limit=abc", Some("limit")),
        ("?before=xyz", Some("before")),
        ("?after=1", Some("after")),
        (&*format!("?before={other_id}"), Some("before")),
        (&*format!("?after={MISSING}"), Some("after")),
        (&*format!("?before={MISSING}&after={MISSING}"), None),
    ] {
        assert_error(&a.get(&format!("{base}{q}")), 400, "invalid_field", field);
    }
    assert_error(
        &a.get("/api/v1/conversations/nope/messages"),
        400,
        "invalid_field",
        Some("conversation_id"),
    );
    assert_eq!(a.get(&format!("{base}?limit=100&unknown=1")).status, 200);
}

#[test]
fn api_keys_two_keys_both_headers_wrong_key_open_operational_endpoints() {
    let mut a = app_with_keys(&["key-one", "key-two"]);
    a.key = None;
    let body = json!({"conversation_id": CONV, "content": "x"}).to_string();
    let post = |auth: &str| {
        let raw = format!(
            "POST /api/v1/messages HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        support::request(a.server.addr, &raw)
    };
    assert_error(&post(""), 401, "unauthorized", None);
    assert_error(
        &post("Authorization: Bearer wrong\r\n"),
        401,
        "unauthorized",
        None,
    );
    assert_error(&post("apikey: key-one-\r\n"), 401, "unauthorized", None);
    assert_error(
        &post("Authorization: Basic key-one\r\n"),
        401,
        "unauthorized",
        None,
    );
    assert_eq!(post("Authorization: Bearer key-one\r\n").status, 201);
    assert_eq!(post("Authorization: bearer key-two\r\n").status, 201);
    assert_eq!(post("apikey: key-two\r\n").status, 201);
    assert_eq!(a.count(), 3);
    assert_error(
        &a.get(&format!("/api/v1/messages/{MISSING}")),
        401,
        "unauthorized",
        None,
    );
    assert_eq!(a.get("/health").status, 200);
    assert_eq!(a.get("/ready").status, 200);
}

#[test]
fn ready_answers_and_turns_503_when_draining() {
    let db = TestDb::new();
    let draining = DrainFlag::new();
    let api = Api::new(
        draining.clone(),
        Store::new(pool(&db.url, Duration::from_secs(2))),
        &[],
    );
    let s = TestServer::start(api, Limits::default());
    let r = support::request(s.addr, "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status": "ready"}));
    draining.begin();
    let r = support::request(s.addr, "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "unavailable");
    assert!(r.header("Retry-After").is_some());
}

#[test]
fn a_stopped_database_is_503_within_the_connect_timeout_and_the_service_recovers() {
    let cluster = Cluster::start(ClusterOptions::default());
    cluster.psql("postgres", message_service::devdb::SCHEMA);
    cluster.psql(
        "postgres",
        &format!("INSERT INTO conversations (id) VALUES ('{CONV}')"),
    );
    let connect_timeout = Duration::from_secs(1);
    let api = Api::new(
        DrainFlag::new(),
        Store::new(pool(&cluster.url("postgres", "postgres"), connect_timeout)),
        &[],
    );
    let a = App {
        server: TestServer::start(api, Limits::default()),
        db: None,
        key: None,
    };
    let body = json!({"conversation_id": CONV, "content": "before"});
    assert_eq!(a.create(&body).status, 201);

    cluster.stop_server();
    for _ in 0..3 {
        let t = Instant::now();
        let r = a.create(&json!({"conversation_id": CONV, "content": "while down"}));
        assert_error(&r, 503, "unavailable", None);
        assert!(r.header("Retry-After").is_some());
        assert!(
            !r.text().contains("127.0.0.1") && !r.text().contains("postgres"),
            "{}",
            r.text()
        );
        assert!(
            t.elapsed() < connect_timeout + Duration::from_millis(500),
            "took {:?}",
            t.elapsed()
        );
    }
    let t = Instant::now();
    let r = a.get("/ready");
    assert_eq!(r.status, 503);
    assert!(t.elapsed() < Duration::from_millis(1500));
    assert_eq!(
        a.get("/health").status,
        200,
        "liveness does not depend on the database"
    );

    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = a.create(&json!({"conversation_id": CONV, "content": "after"}));
        if r.status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not recover: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(a.get("/ready").status, 200);
    let contents = cluster.psql(
        "postgres",
        "SELECT string_agg(content, ',' ORDER BY created_at) FROM messages",
    );
    assert_eq!(
        contents, "before,after",
        "nothing from the outage half-stored"
    );
}

#[test]
fn sixty_four_clients_times_fifty_creates_store_exactly_3200_distinct_rows() {
    let a = app();
    let addr = a.server.addr;
    let threads: Vec<_> = (0..64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut ids = Vec::new();
                for i in 0..50 {
                    let body = json!({"conversation_id": CONV, "content": format!("client {t} message {i}")}).to_string();
                    c.send(
                        format!(
                            "POST /api/v1/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    let r = c.expect_response();
                    assert_eq!(r.status, 201, "{}", r.text());
                    ids.push(r.json()["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(ids.len(), 3200);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 3200);
    assert_eq!(a.count(), 3200);
    let stored: HashSet<String> = a
        .db()
        .psql("SELECT id FROM messages")
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        ids.iter().all(|id| stored.contains(id)),
        "every 201's id is stored"
    );
}
