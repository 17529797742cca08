//! The HTTP core's rules, each over a real socket against a server on an
//! ephemeral port with a test handler.

mod support;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use message_service::http::{Limits, Request, Response};
use support::{request, Client, TestServer};

/// `/echo` answers with the body; `/panic` panics; `/slow?ms=N` sleeps
/// (on the coroutine) first; anything else answers with its path.
fn test_handler(req: &Request<'_>, res: &mut Response<'_>) {
    match req.path {
        "/echo" => {
            res.set_content_type("application/octet-stream");
            let _ = res.header("X-Method", req.method);
            let _ = res.body().write_all(req.body);
        }
        "/panic" => panic!("test handler panics on purpose"),
        "/slow" => {
            let ms: u64 = req
                .query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(500);
            may::coroutine::sleep(Duration::from_millis(ms));
            let _ = res.body().write_all(b"slow done");
        }
        path => {
            let _ = res.body().write_all(path.as_bytes());
        }
    }
}

fn server() -> TestServer {
    TestServer::start(test_handler, Limits::default())
}

fn server_with(limits: Limits) -> TestServer {
    TestServer::start(test_handler, limits)
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[test]
fn every_response_carries_the_core_headers() {
    let s = server();
    let r = request(s.addr, &get("/x"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "/x");
    for h in ["Content-Type", "Content-Length", "Date", "X-Request-Id"] {
        assert!(r.header(h).is_some(), "missing {h}");
    }
    assert!(r.header("Date").unwrap().ends_with(" GMT"));
    assert_eq!(r.header("X-Request-Id").unwrap().len(), 32);
}

#[test]
fn request_id_is_echoed_when_usable_and_fresh_otherwise() {
    let s = server();
    let r = request(
        s.addr,
        "GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-123\r\n\r\n",
    );
    assert_eq!(r.header("X-Request-Id"), Some("trace-123"));
    let long = "a".repeat(129);
    let r = request(
        s.addr,
        &format!("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: {long}\r\n\r\n"),
    );
    let id = r.header("X-Request-Id").unwrap();
    assert_ne!(id, long);
    assert_eq!(id.len(), 32);
}

#[test]
fn a_request_with_100_headers_is_served() {
    let s = server();
    let mut raw = String::from("GET /many HTTP/1.1\r\nHost: t\r\n");
    for i in 0..99 {
        raw.push_str(&format!("X-Mesh-{i}: value-{i}\r\n"));
    }
    raw.push_str("\r\n");
    let r = request(s.addr, &raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "/many");
}

#[test]
fn more_headers_than_the_limit_is_431_and_close() {
    let s = server();
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..100 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    let mut c = Client::connect(s.addr);
    c.send(raw.as_bytes());
    c.send(get("/after").as_bytes());
    let r = c.expect_response();
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["error"]["code"], "headers_too_large");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(
        c.is_closed(),
        "nothing after a request that cannot be framed is read"
    );
}

#[test]
fn a_head_over_16_kib_is_431() {
    let s = server();
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let mut c = Client::connect(s.addr);
    c.send(raw.as_bytes());
    assert_eq!(c.expect_response().status, 431);
    assert!(c.is_closed());
}

#[test]
fn ten_pipelined_requests_get_ten_answers_in_order() {
    let s = server();
    let mut raw = String::new();
    for i in 0..10 {
        raw.push_str(&get(&format!("/p{i}")));
    }
    let mut c = Client::connect(s.addr);
    c.send(raw.as_bytes());
    for i in 0..10 {
        let r = c.expect_response();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("/p{i}"));
    }
    assert!(
        c.is_quiet_for(Duration::from_millis(200)),
        "connection stays open"
    );
}

#[test]
fn requests_split_across_writes_are_reassembled() {
    let s = server();
    let mut c = Client::connect(s.addr);
    let raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world";
    for b in raw.chunks(3) {
        c.send(b);
        thread::sleep(Duration::from_millis(5));
    }
    let r = c.expect_response();
    assert_eq!(r.text(), "hello world");
}

#[test]
fn each_bad_content_length_is_400_and_close() {
    let s = server();
    let bad = [
        "Content-Length: abc\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: 1 2\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    ];
    for header in bad {
        let raw = format!("POST /echo HTTP/1.1\r\nHost: t\r\n{header}\r\nhello");
        let mut c = Client::connect(s.addr);
        c.send(raw.as_bytes());
        let r = c.expect_response();
        assert_eq!(r.status, 400, "{header}");
        assert_eq!(r.json()["error"]["code"], "bad_request");
        assert!(c.is_closed(), "{header}: connection must close");
    }
}

#[test]
fn identical_repeated_content_length_is_accepted() {
    let s = server();
    let r = request(
        s.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
}

#[test]
fn a_body_over_the_limit_is_413_without_being_read() {
    let s = server_with(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    });
    let mut c = Client::connect(s.addr);
    // Only the head is sent: the answer must not wait for the body.
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n");
    let r = c.expect_response();
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
    assert!(c.is_closed());
}

#[test]
fn a_chunked_body_arrives_whole() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(b"5\r\nhello\r\n");
    thread::sleep(Duration::from_millis(20));
    c.send(b"1;ext=x\r\n \r\n6\r\nchunks\r\n0\r\nX-Trailer: 1\r\n\r\n");
    c.send(get("/next").as_bytes());
    let r = c.expect_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello chunks");
    assert_eq!(c.expect_response().text(), "/next");
}

#[test]
fn a_chunked_body_over_the_limit_is_413() {
    let s = server_with(Limits {
        max_body_bytes: 10,
        ..Limits::default()
    });
    let mut c = Client::connect(s.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n");
    assert_eq!(c.expect_response().status, 413);
    assert!(c.is_closed());
}

#[test]
fn malformed_chunked_body_is_400() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    assert_eq!(c.expect_response().status, 400);
    assert!(c.is_closed());
}

#[test]
fn other_transfer_codings_are_501_and_both_framings_are_400() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(c.expect_response().status, 501);
    assert!(c.is_closed());

    let mut c = Client::connect(s.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n");
    assert_eq!(c.expect_response().status, 400);
    assert!(c.is_closed());
}

#[test]
fn a_body_holding_a_second_request_yields_one_answer() {
    let s = server();
    let smuggled = get("/smuggled");
    let raw = format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut c = Client::connect(s.addr);
    c.send(raw.as_bytes());
    let r = c.expect_response();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        smuggled,
        "the second request is the first one's body"
    );
    assert!(
        c.is_quiet_for(Duration::from_millis(300)),
        "exactly one answer"
    );
}

#[test]
fn malformed_request_line_or_header_is_400_and_close() {
    let s = server();
    for raw in [
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\n: empty\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: t\r\n\r\n",
    ] {
        let mut c = Client::connect(s.addr);
        c.send(raw.as_bytes());
        let r = c.expect_response();
        assert_eq!(r.status, 400, "{raw:?}");
        assert_eq!(r.json()["error"]["code"], "bad_request");
        assert!(c.is_closed(), "{raw:?}");
    }
}

#[test]
fn expect_100_continue_gets_100_before_the_body() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.expect_response();
    assert_eq!(interim.status, 100);
    c.send(b"data");
    let r = c.expect_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "data");
}

#[test]
fn keep_alive_and_close_rules() {
    let s = server();
    // HTTP/1.1: kept open by default.
    let mut c = Client::connect(s.addr);
    c.send(get("/a").as_bytes());
    assert!(c.expect_response().header("Connection").is_none());
    c.send(get("/b").as_bytes());
    assert_eq!(c.expect_response().text(), "/b");
    // Connection: close honoured.
    c.send(b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(c.expect_response().header("Connection"), Some("close"));
    assert!(c.is_closed());
    // HTTP/1.0: closed unless it asks for keep-alive.
    let mut c = Client::connect(s.addr);
    c.send(b"GET /d HTTP/1.0\r\n\r\n");
    let r = c.expect_response();
    assert_eq!(r.text(), "/d");
    assert!(c.is_closed());
    let mut c = Client::connect(s.addr);
    c.send(b"GET /e HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.expect_response().header("Connection"), Some("keep-alive"));
    c.send(b"GET /f HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.expect_response().text(), "/f");
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(b"HEAD /abc HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response_with(true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("4"));
    c.send(get("/next").as_bytes());
    // Had a body been sent, it would be read here in place of the next answer.
    assert_eq!(c.expect_response().text(), "/next");
}

#[test]
fn a_panicking_handler_costs_one_500_and_the_server_goes_on() {
    let s = server();
    let mut c = Client::connect(s.addr);
    c.send(get("/panic").as_bytes());
    let r = c.expect_response();
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["code"], "internal");
    assert!(
        !r.text().contains("on purpose"),
        "no panic detail in the body"
    );
    assert!(c.is_closed());
    for _ in 0..3 {
        assert_eq!(request(s.addr, &get("/ok")).status, 200);
    }
}

#[test]
fn a_slow_client_is_cut_off_at_the_header_timeout_while_others_are_served() {
    let s = server_with(Limits {
        header_timeout: Duration::from_secs(2),
        ..Limits::default()
    });
    let addr = s.addr;
    let slow = thread::spawn(move || {
        let mut c = Client::connect(addr);
        let started = Instant::now();
        let raw = b"GET /slowloris HTTP/1.1\r\nHost: t\r\nX-Padding: aaaaaaaaaaaaaaaa\r\n\r\n";
        for b in raw.iter() {
            if c.stream.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_secs(1));
            if started.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        let r = c.read_response();
        (r.map(|r| r.status), started.elapsed())
    });
    // Meanwhile another client is served promptly.
    thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    assert_eq!(request(addr, &get("/other")).status, 200);
    assert!(t.elapsed() < Duration::from_secs(1));
    let (status, elapsed) = slow.join().unwrap();
    assert_eq!(status, Some(408));
    assert!(
        elapsed < Duration::from_secs(5),
        "cut off after {elapsed:?}"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let s = server_with(Limits {
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    });
    let mut c = Client::connect(s.addr);
    c.send(get("/a").as_bytes());
    assert_eq!(c.expect_response().status, 200);
    let t = Instant::now();
    assert!(c.is_closed());
    assert!(t.elapsed() >= Duration::from_millis(400));
}

#[test]
fn a_thousand_idle_connections_do_not_stop_a_new_client() {
    support::raise_fd_limit();
    let s = server();
    let idle: Vec<_> = (0..1000).map(|_| s.connect()).collect();
    // Let the server accept them all.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.server.as_ref().unwrap().open_connections() < 1000 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let r = request(s.addr, &get("/fresh"));
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t.elapsed()
    );
    drop(idle);
}

#[test]
fn connections_over_the_cap_get_503() {
    let s = server_with(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let _a = s.connect();
    let _b = s.connect();
    thread::sleep(Duration::from_millis(100));
    let mut c = Client::connect(s.addr);
    let r = c.expect_response();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(c.is_closed());
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests_and_closes_idle_ones() {
    let mut s = server();
    let addr = s.addr;
    let mut idle = Client::connect(addr);
    idle.send(get("/warm").as_bytes());
    assert_eq!(idle.expect_response().status, 200);

    let in_flight = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(get("/slow?ms=700").as_bytes());
        let r = c.expect_response();
        (
            r.status,
            r.text(),
            r.header("Connection").map(str::to_string),
            c.is_closed(),
        )
    });
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert!(
        s.shutdown(Duration::from_secs(5)),
        "all connections finished in time"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(s.draining.is_draining());
    let (status, body, connection, closed) = in_flight.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "slow done"));
    assert_eq!(connection.as_deref(), Some("close"));
    assert!(closed);
    assert!(idle.is_closed(), "idle connection closed by shutdown");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listeners closed"
    );
}

#[test]
fn shutdown_gives_up_on_requests_at_the_timeout() {
    let mut s = server();
    let addr = s.addr;
    let in_flight = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(get("/slow?ms=5000").as_bytes());
        c.read_response()
    });
    thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert!(!s.shutdown(Duration::from_millis(300)));
    assert!(t.elapsed() < Duration::from_secs(3));
    let _ = in_flight.join();
}
