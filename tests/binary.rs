//! The real binary: command line, configuration errors, `.env` loading and
//! graceful shutdown on SIGTERM.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Client;

const BIN: &str = env!("CARGO_BIN_EXE_message-service");

/// The binary, in an empty directory (so no stray `.env` is read), with
/// only the given variables set.
fn command(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ms-bin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process that is killed (by its PID) and reaped if the test ends early.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Starts the server on a free port and returns it with its address, read
/// from the start-up line.
fn spawn_server(
    dir: &std::path::Path,
    vars: &[(&str, &str)],
) -> (Proc, SocketAddr, BufReader<std::process::ChildStderr>) {
    // A database that is not there: these tests need none, and the pool
    // does not wait for one at start.
    let mut all = vec![
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("WORKERS", "2"),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none?sslmode=disable",
        ),
        ("DB_MIN_CONNS", "0"),
    ];
    all.extend_from_slice(vars);
    let mut child = Proc(
        command(dir, &all)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "server exited before listening"
        );
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    (child, addr, stderr)
}

fn kill(child: &Child, signal: i32) {
    unsafe { libc::kill(child.id() as i32, signal) };
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_lets_in_flight_requests_finish_and_exits_0() {
    let dir = temp_dir("sigterm");
    let (mut child, addr, _stderr) = spawn_server(&dir, &[("SHUTDOWN_TIMEOUT", "5s")]);

    let mut idle = Client::connect(addr);
    idle.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.expect_response().status, 200);

    // A request in flight: head and half its body sent.
    let mut in_flight = Client::connect(addr);
    in_flight.send(b"GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345");
    std::thread::sleep(Duration::from_millis(200));

    kill(&child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(idle.is_closed(), "idle connection closed at shutdown");
    assert!(child.try_wait().unwrap().is_none(), "still draining");

    in_flight.send(b"67890");
    let r = in_flight.expect_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(in_flight.is_closed());

    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_with_nothing_in_flight_exits_0_at_once() {
    let dir = temp_dir("sigint");
    let (mut child, _addr, _stderr) = spawn_server(&dir, &[]);
    let t = Instant::now();
    kill(&child, libc::SIGINT);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(5)).code(),
        Some(0)
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_bad_value_exits_2_with_one_line_naming_it() {
    let dir = temp_dir("badvalue");
    for (var, value) in [
        ("DB_MAX_CONN_LIFETIME", "forever"),
        ("PORT", "http"),
        ("MAX_BODY_BYTES", "1MB"),
        ("LOG_LEVEL", "loud"),
    ] {
        let out = command(&dir, &[(var, value)]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(var) && err.contains(value) && err.contains("expected"),
            "{err}"
        );
    }
}

#[test]
fn help_version_and_config() {
    let dir = temp_dir("cli");
    let out = command(&dir, &[]).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("message-service "));

    let out = command(&dir, &[]).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for var in [
        "DATABASE_URL",
        "DB_STATEMENT_CACHE",
        "SHUTDOWN_TIMEOUT",
        "API_KEY",
    ] {
        assert!(help.contains(var), "{var} missing from --help");
    }

    let out = command(
        &dir,
        &[
            ("DATABASE_URL", "postgres://u:hunter2@db:5432/app"),
            ("API_KEY", "k1,k2"),
        ],
    )
    .arg("config")
    .output()
    .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("DATABASE_URL=postgres://u:***@db:5432/app"),
        "{text}"
    );
    assert!(!text.contains("hunter2") && !text.contains("k1"), "{text}");

    let out = command(&dir, &[]).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_go_services_env_file_loads_and_the_environment_wins() {
    let dir = temp_dir("dotenv");
    std::fs::write(
        dir.join(".env"),
        "SUPABASE_DB_URL=postgresql://postgres:[PASSWORD]@db.ref.supabase.co:5432/postgres?sslmode=require\n\
         SUPABASE_KEY=your-supabase-anon-key\nPORT=3001\nGO_ENV=production\n",
    )
    .unwrap();
    let out = command(&dir, &[("PORT", "4555")])
        .arg("config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("PORT=4555"), "environment wins: {text}");
    assert!(text.contains("APP_ENV=production"));
    assert!(text.contains("LOG_FORMAT=json"));
    assert!(text.contains("DATABASE_URL=postgresql://postgres:***@db.ref.supabase.co"));
}

#[test]
fn production_logs_are_json_lines() {
    let dir = temp_dir("jsonlogs");
    let (mut child, _addr, mut stderr) = spawn_server(&dir, &[("APP_ENV", "production")]);
    kill(&child, libc::SIGTERM);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(5)).code(),
        Some(0)
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    for line in rest.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["level"].is_string() && v["msg"].is_string() && v["ts"].is_string());
    }
    assert!(rest.contains("SIGTERM"));
}

#[test]
fn without_a_url_the_run_command_starts_a_local_cluster_and_serves() {
    let dir = temp_dir("localdb");
    let port = support::pg::free_port().to_string();
    let run = |dir: &std::path::Path| {
        let mut child = Proc(
            command(
                dir,
                &[
                    ("HOST", "127.0.0.1"),
                    ("PORT", "0"),
                    ("WORKERS", "2"),
                    ("LOCAL_DB_PORT", &port),
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        );
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut printed = String::new();
        let mut line = String::new();
        while !printed.contains("/messages\n") {
            line.clear();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "exited early: {printed}"
            );
            printed.push_str(&line);
        }
        let conversation = printed
            .split("\"conversation_id\": \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        let api_port: u16 = printed
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap()
            .parse()
            .unwrap();
        (child, conversation, api_port)
    };

    let (mut child, conversation, api_port) = run(&dir);
    let body = format!(
        "{{\"conversation_id\": \"{conversation}\", \"content\": \"Olá, como posso ajudar?\"}}"
    );
    let r = support::request(
        ([127, 0, 0, 1], api_port).into(),
        &format!(
            "POST /api/v1/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    kill(&child, libc::SIGTERM);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
    assert!(dir.join(".data/postgres/PG_VERSION").exists());
    assert!(
        !dir.join(".data/postgres/postmaster.pid").exists(),
        "the local cluster stopped with the service"
    );

    // Again: the cluster, its schema and the demo conversation are reused.
    let (mut child, again, api_port) = run(&dir);
    assert_eq!(again, conversation);
    let r = support::request(
        ([127, 0, 0, 1], api_port).into(),
        &format!("GET /api/v1/conversations/{conversation}/messages HTTP/1.1\r\nHost: t\r\n\r\n"),
    );
    assert_eq!(r.json()["meta"]["count"], 1);
    kill(&child, libc::SIGTERM);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(15)).code(),
        Some(0)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
