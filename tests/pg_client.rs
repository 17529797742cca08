//! The PostgreSQL client against real servers started by the harness:
//! authentication methods, TLS modes, pipelining, errors, broken and
//! restarted servers, types, and transactions.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use message_service::pg::{
    connect, oid, Connection, Error, Param, PgConfig, Pool, PoolConfig, Statement, StatementMode,
};
use support::pg::{Cluster, ClusterOptions, TestCerts, TestDb};

/// Runs `f` on a coroutine and returns its result.
fn co<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    message_service::http::init_runtime(support::TEST_WORKERS);
    may::go!(f)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs `f(i, pool)` for each `i` in `0..n`, each on a coroutine of its
/// own, all at once; returns their results in `i` order.
fn on_coroutines<T: Send + 'static>(
    n: i32,
    pool: &Pool,
    f: impl Fn(i32, Pool) -> T + Send + Clone + 'static,
) -> Vec<T> {
    message_service::http::init_runtime(support::TEST_WORKERS);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (pool, f) = (pool.clone(), f.clone());
            may::go!(move || f(i, pool))
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
        .collect()
}

fn pool_config(url: &str, max: usize) -> PoolConfig {
    // Before anything spawns a coroutine: the runtime's stack size is set once.
    message_service::http::init_runtime(support::TEST_WORKERS);
    PoolConfig {
        pg: PgConfig::parse(url).unwrap(),
        max_conns: max,
        min_conns: 0,
        max_lifetime: Duration::from_secs(3600),
        max_idle: Duration::from_secs(1800),
        connect_timeout: Duration::from_secs(2),
        mode: StatementMode::Prepare,
        query_timeout: Duration::from_secs(10),
    }
}

fn connect_once(url: &str) -> Result<Connection, Error> {
    message_service::http::init_runtime(support::TEST_WORKERS);
    let cfg = PgConfig::parse(url)?;
    let tls = message_service::pg::tls::client_config(&cfg)?;
    let url = url.to_string();
    co(move || {
        let _ = url;
        let est = connect::connect(&cfg, tls.as_ref(), Duration::from_secs(5))?;
        Connection::new(est, StatementMode::Prepare, Duration::from_secs(10))
    })
}

static SELECT_TEXT: Statement = Statement {
    sql: "SELECT current_user::text",
    param_types: &[],
};

static ECHO: Statement = Statement {
    sql: "SELECT $1::int4 * 2, $2::text",
    param_types: &[oid::INT4, oid::TEXT],
};

static DIVIDE: Statement = Statement {
    sql: "SELECT 100 / $1::int4",
    param_types: &[oid::INT4],
};

fn current_user(conn: Connection) -> String {
    co(move || {
        let rows = conn.query(&SELECT_TEXT, &[]).unwrap();
        rows.get(0).unwrap().unwrap().text(0).unwrap().to_string()
    })
}

fn auth_cluster() -> Cluster {
    let c = Cluster::start(ClusterOptions {
        hba: vec![
            "host all trustuser 127.0.0.1/32 trust".into(),
            "host all pwuser 127.0.0.1/32 password".into(),
            "host all md5user 127.0.0.1/32 md5".into(),
            "host all scramuser 127.0.0.1/32 scram-sha-256".into(),
        ],
        ..Default::default()
    });
    c.psql(
        "postgres",
        "CREATE ROLE trustuser LOGIN; \
         CREATE ROLE pwuser LOGIN PASSWORD 'pw secret'; \
         SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5:p@ss/word'; \
         SET password_encryption = 'scram-sha-256'; CREATE ROLE scramuser LOGIN PASSWORD 's3cr@t:/x';",
    );
    c
}

#[test]
fn each_authentication_method_connects_and_a_wrong_password_fails_clearly() {
    let c = auth_cluster();
    let url = |user: &str, pw: &str| {
        format!(
            "postgres://{user}:{pw}@127.0.0.1:{}/postgres?sslmode=disable",
            c.port
        )
    };
    let trust = format!(
        "postgres://trustuser@127.0.0.1:{}/postgres?sslmode=disable",
        c.port
    );
    assert_eq!(current_user(connect_once(&trust).unwrap()), "trustuser");
    assert_eq!(
        current_user(connect_once(&url("pwuser", "pw%20secret")).unwrap()),
        "pwuser"
    );
    assert_eq!(
        current_user(connect_once(&url("md5user", "md5%3Ap%40ss%2Fword")).unwrap()),
        "md5user"
    );
    assert_eq!(
        current_user(connect_once(&url("scramuser", "s3cr%40t%3A%2Fx")).unwrap()),
        "scramuser"
    );

    for user in ["pwuser", "md5user", "scramuser"] {
        let err = connect_once(&url(user, "wrong"))
            .err()
            .expect("wrong password must fail");
        let text = err.to_string();
        assert!(matches!(err, Error::Auth(_)), "{user}: {err:?}");
        assert!(
            text.contains("password authentication failed"),
            "{user}: {text}"
        );
        assert!(
            !text.contains("wrong"),
            "the password is not echoed: {text}"
        );
    }
    let err = connect_once(&format!(
        "postgres://scramuser@127.0.0.1:{}/postgres?sslmode=disable",
        c.port
    ))
    .err()
    .unwrap();
    assert!(err.to_string().contains("none is set"), "{err}");
}

#[test]
fn unix_socket_and_keyword_value_settings() {
    let c = Cluster::start(ClusterOptions::default());
    let kv = format!(
        "host={} port={} user=postgres dbname=postgres application_name='ms test' options='-c search_path=pg_catalog'",
        c.socket_dir.display(),
        c.port
    );
    let conn = connect_once(&kv).unwrap();
    static SHOW: Statement = Statement {
        sql: "SELECT current_setting('application_name'), current_setting('search_path')",
        param_types: &[],
    };
    let (app, path) = co(move || {
        let rows = conn.query(&SHOW, &[]).unwrap();
        let row = rows.get(0).unwrap().unwrap();
        (
            row.text(0).unwrap().to_string(),
            row.text(1).unwrap().to_string(),
        )
    });
    assert_eq!(app, "ms test");
    assert_eq!(path, "pg_catalog");
}

#[test]
fn tls_modes() {
    let certs = TestCerts::generate();
    let c = Cluster::start(ClusterOptions {
        hba: vec!["hostssl all all 127.0.0.1/32 scram-sha-256".into()],
        tls: Some(certs.server.clone()),
        ..Default::default()
    });
    c.psql("postgres", "ALTER ROLE postgres PASSWORD 'tls-pw'");
    let url = |host: &str, mode: &str, extra: &str| {
        format!(
            "postgres://postgres:tls-pw@{host}:{}/postgres?sslmode={mode}{extra}",
            c.port
        )
    };
    static SSL_IN_USE: Statement = Statement {
        sql: "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        param_types: &[],
    };
    let uses_tls = |conn: Connection| {
        co(move || {
            conn.query(&SSL_IN_USE, &[])
                .unwrap()
                .get(0)
                .unwrap()
                .unwrap()
                .bool(0)
                .unwrap()
        })
    };

    // require: encrypted, certificate not checked. SCRAM runs with channel
    // binding (the server offers SCRAM-SHA-256-PLUS over TLS).
    assert!(uses_tls(
        connect_once(&url("127.0.0.1", "require", "")).unwrap()
    ));
    assert!(uses_tls(
        connect_once(&url("127.0.0.1", "prefer", "")).unwrap()
    ));
    let ca = format!("&sslrootcert={}", certs.ca.display());
    let other = format!("&sslrootcert={}", certs.other_ca.display());
    // verify-full: the right CA and host name.
    assert!(uses_tls(
        connect_once(&url("localhost", "verify-full", &ca)).unwrap()
    ));
    // verify-full: a host name the certificate does not name.
    let err = connect_once(&url("127.0.0.1", "verify-full", &ca))
        .err()
        .unwrap();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    // verify-ca: the chain is checked, the name is not.
    assert!(uses_tls(
        connect_once(&url("127.0.0.1", "verify-ca", &ca)).unwrap()
    ));
    let err = connect_once(&url("localhost", "verify-ca", &other))
        .err()
        .unwrap();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    // require with sslrootcert verifies the chain, as libpq does.
    assert!(connect_once(&url("127.0.0.1", "require", &other)).is_err());
    // verify-full without sslrootcert uses the built-in roots, which do not
    // hold the test CA.
    assert!(matches!(
        connect_once(&url("localhost", "verify-full", ""))
            .err()
            .unwrap(),
        Error::Tls(_)
    ));
    // disable against a hostssl-only server: refused, and the message says why.
    let err = connect_once(&url("127.0.0.1", "disable", ""))
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("no pg_hba.conf entry") && text.contains("no encryption"),
        "{text}"
    );
    // allow: plain is refused, so it retries with TLS.
    assert!(uses_tls(
        connect_once(&url("127.0.0.1", "allow", "")).unwrap()
    ));
}

#[test]
fn tls_required_by_sslmode_but_not_offered_fails_clearly() {
    let c = Cluster::start(ClusterOptions::default());
    let err = connect_once(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=require",
        c.port
    ))
    .err()
    .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("does not accept TLS") && text.contains("sslmode=require"),
        "{text}"
    );
    // prefer falls back to plain.
    assert!(connect_once(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=prefer",
        c.port
    ))
    .is_ok());
}

#[test]
fn two_hundred_coroutines_on_two_connections_get_their_own_results() {
    let db = TestDb::new();
    let pool = Pool::new(pool_config(&db.url, 2)).unwrap();
    on_coroutines(200, &pool, |i, pool| {
        for j in 0..50 {
            let n = i * 1000 + j;
            let tag = format!("c{i}-q{j}");
            let rows = pool
                .query(&ECHO, &[Param::Int4(n), Param::Text(&tag)])
                .unwrap();
            let row = rows.get(0).unwrap().unwrap();
            assert_eq!(row.i32(0).unwrap(), n * 2);
            assert_eq!(row.text(1).unwrap(), tag);
        }
    });
    let status = pool.status();
    assert!(status.open <= 2, "{status:?}");
    let backends: i64 = db
        .psql(&format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()", db.name))
        .parse()
        .unwrap();
    assert!(backends <= 2, "{backends} backends");
}

#[test]
fn an_error_in_one_pipelined_statement_leaves_its_neighbours_correct() {
    let db = TestDb::new();
    let pool = Pool::new(pool_config(&db.url, 1)).unwrap();
    on_coroutines(100, &pool, |i, pool| {
        let divisor = if i % 7 == 0 { 0 } else { i };
        match pool.query(&DIVIDE, &[Param::Int4(divisor)]) {
            Ok(rows) => {
                assert_ne!(divisor, 0);
                assert_eq!(rows.get(0).unwrap().unwrap().i32(0).unwrap(), 100 / divisor);
            }
            Err(e) => {
                assert_eq!(divisor, 0, "only division by zero fails: {e}");
                assert_eq!(e.code(), Some("22012"));
            }
        }
    });
    assert_eq!(pool.status().open, 1, "the connection survived the errors");
}

#[test]
fn foreign_key_errors_carry_constraint_and_table() {
    let db = TestDb::new();
    let pool = Pool::new(pool_config(&db.url, 1)).unwrap();
    static INSERT: Statement = Statement {
        sql: "INSERT INTO messages (conversation_id, content) VALUES ($1, $2)",
        param_types: &[oid::UUID, oid::TEXT],
    };
    let err = co(move || {
        pool.query(&INSERT, &[Param::Uuid([7; 16]), Param::Text("hi")])
            .unwrap_err()
    });
    let db_err = err.db().expect("a server error");
    assert_eq!(db_err.code, "23503");
    assert_eq!(
        db_err.constraint.as_deref(),
        Some("messages_conversation_id_fkey")
    );
    assert_eq!(db_err.table.as_deref(), Some("messages"));
    assert!(!err.is_unavailable());
}

#[test]
fn types_round_trip() {
    let db = TestDb::new();
    let pool = Pool::new(pool_config(&db.url, 1)).unwrap();
    static ROUND: Statement = Statement {
        sql: "SELECT $1::uuid, $2::text, $3::varchar, $4::bool, $5::int2, $6::int4, $7::int8, \
              $8::timestamp, $9::timestamptz, $10::uuid[], $11::text[], $12::text",
        param_types: &[
            oid::UUID,
            oid::TEXT,
            oid::VARCHAR,
            oid::BOOL,
            oid::INT2,
            oid::INT4,
            oid::INT8,
            oid::TIMESTAMP,
            oid::TIMESTAMPTZ,
            oid::UUID_ARRAY,
            oid::TEXT_ARRAY,
            oid::TEXT,
        ],
    };
    co(move || {
        let ts = 1_796_390_570_123_456i64;
        let uuids = [Param::Uuid([1; 16]), Param::Null, Param::Uuid([2; 16])];
        let texts = [Param::Text("olá 😀"), Param::Null, Param::Text("中文")];
        let rows = pool
            .query(
                &ROUND,
                &[
                    Param::Uuid([9; 16]),
                    Param::Text("Olá, como posso ajudar? 😀"),
                    Param::Text("vc"),
                    Param::Bool(true),
                    Param::Int2(-2),
                    Param::Int4(1 << 30),
                    Param::Int8(-(1 << 50)),
                    Param::Timestamp(ts),
                    Param::Timestamp(ts),
                    Param::Array {
                        element: oid::UUID,
                        items: &uuids,
                    },
                    Param::Array {
                        element: oid::TEXT,
                        items: &texts,
                    },
                    Param::Null,
                ],
            )
            .unwrap();
        let row = rows.get(0).unwrap().unwrap();
        assert_eq!(row.uuid(0).unwrap(), [9; 16]);
        assert_eq!(row.text(1).unwrap(), "Olá, como posso ajudar? 😀");
        assert_eq!(row.text(2).unwrap(), "vc");
        assert!(row.bool(3).unwrap());
        assert_eq!(row.i16(4).unwrap(), -2);
        assert_eq!(row.i32(5).unwrap(), 1 << 30);
        assert_eq!(row.i64(6).unwrap(), -(1 << 50));
        assert_eq!(row.timestamp(7).unwrap(), ts);
        assert_eq!(row.timestamp(8).unwrap(), ts);
        let got = row
            .array(9, message_service::pg::types::element::uuid)
            .unwrap();
        assert_eq!(got, vec![Some([1; 16]), None, Some([2; 16])]);
        let got = row
            .array(10, message_service::pg::types::element::text)
            .unwrap();
        assert_eq!(
            got,
            vec![Some("olá 😀".to_string()), None, Some("中文".to_string())]
        );
        assert_eq!(row.opt_text(11).unwrap(), None);
        assert!(
            row.text(11).is_err(),
            "NULL where a value is required is an error, not a panic"
        );
        assert!(
            row.text(12).is_err(),
            "a missing column is an error, not a panic"
        );
    });
}

#[test]
fn a_nul_character_is_a_clean_server_error() {
    let db = TestDb::new();
    let pool = Pool::new(pool_config(&db.url, 1)).unwrap();
    static TEXT: Statement = Statement {
        sql: "SELECT $1::text",
        param_types: &[oid::TEXT],
    };
    let err = co(move || pool.query(&TEXT, &[Param::Text("a\0b")]).unwrap_err());
    assert_eq!(err.code(), Some("22021"), "{err}");
}

#[test]
fn a_batch_is_one_transaction() {
    let db = TestDb::new();
    db.psql("INSERT INTO conversations (id) VALUES ('11111111-1111-1111-1111-111111111111')");
    let pool = Pool::new(pool_config(&db.url, 1)).unwrap();
    static INSERT: Statement = Statement {
        sql: "INSERT INTO messages (conversation_id, content) VALUES ($1, $2)",
        param_types: &[oid::UUID, oid::TEXT],
    };
    let good = Param::Uuid([0x11; 16]);
    let bad = Param::Uuid([0x22; 16]);
    let p2 = pool.clone();
    let err = co(move || {
        let first = [good, Param::Text("one")];
        let second = [bad, Param::Text("two")];
        let third = [good, Param::Text("three")];
        p2.batch(&[(&INSERT, &first), (&INSERT, &second), (&INSERT, &third)])
            .unwrap_err()
    });
    assert_eq!(err.code(), Some("23503"));
    assert_eq!(
        db.psql("SELECT count(*) FROM messages"),
        "0",
        "nothing of a failed batch is kept"
    );
    let results = co(move || {
        let first = [good, Param::Text("one")];
        let second = [good, Param::Text("two")];
        pool.batch(&[(&INSERT, &first), (&INSERT, &second)])
            .unwrap()
    });
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].affected, 1);
    assert_eq!(db.psql("SELECT count(*) FROM messages"), "2");
}

#[test]
fn a_terminated_backend_fails_its_caller_and_the_next_query_works() {
    let db = TestDb::new();
    let pool = Pool::new(pool_config(&db.url, 1)).unwrap();
    static PID: Statement = Statement {
        sql: "SELECT pg_backend_pid()",
        param_types: &[],
    };
    let p = pool.clone();
    let pid = co(move || {
        p.query(&PID, &[])
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .i32(0)
            .unwrap()
    });
    db.psql(&format!("SELECT pg_terminate_backend({pid})"));
    let p = pool.clone();
    let err = co(move || p.query(&PID, &[]).unwrap_err());
    assert!(err.is_unavailable(), "{err:?}");
    let p = pool.clone();
    let new_pid = co(move || {
        p.query(&PID, &[])
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .i32(0)
            .unwrap()
    });
    assert_ne!(new_pid, pid);
}

#[test]
fn a_stopped_server_fails_queries_fast_and_a_restarted_one_is_used_again() {
    let c = Cluster::start(ClusterOptions::default());
    let mut cfg = pool_config(&c.url("postgres", "postgres"), 2);
    cfg.connect_timeout = Duration::from_secs(1);
    let pool = Pool::new(cfg).unwrap();
    let p = pool.clone();
    co(move || p.query(&SELECT_TEXT, &[]).unwrap());

    c.stop_server();
    for _ in 0..5 {
        let p = pool.clone();
        let t = Instant::now();
        let err = co(move || p.query(&SELECT_TEXT, &[]).unwrap_err());
        assert!(err.is_unavailable(), "{err:?}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "failed after {:?}",
            t.elapsed()
        );
    }
    let p = pool.clone();
    assert!(co(move || p.ping(Duration::from_secs(1))).is_err());

    c.start_server();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = pool.clone();
        if co(move || p.query(&SELECT_TEXT, &[])).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the pool did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = pool.clone();
    assert!(co(move || p.ping(Duration::from_secs(1))).is_ok());
}

#[test]
fn min_connections_open_in_the_background_and_idle_ones_are_retired() {
    let db = TestDb::new();
    let mut cfg = pool_config(&db.url, 4);
    cfg.min_conns = 3;
    let pool = Pool::new(cfg).unwrap();
    assert_eq!(
        pool.status().open,
        0,
        "the pool does not wait for connections at start"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.status().open < 3 {
        assert!(
            Instant::now() < deadline,
            "min connections never opened: {:?}",
            pool.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut cfg = pool_config(&db.url, 4);
    cfg.max_lifetime = Duration::from_millis(300);
    let short = Pool::new(cfg).unwrap();
    let p = short.clone();
    co(move || p.query(&SELECT_TEXT, &[]).unwrap());
    assert_eq!(short.status().open, 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        short.status().open,
        0,
        "connection past its lifetime retired"
    );
    let p = short.clone();
    co(move || p.query(&SELECT_TEXT, &[]).unwrap());
}

#[test]
fn describe_mode_runs_unnamed_statements() {
    let db = TestDb::new();
    let mut cfg = pool_config(&db.url, 1);
    cfg.mode = StatementMode::Describe;
    let pool = Arc::new(Pool::new(cfg).unwrap());
    for i in 0..20 {
        let p = pool.clone();
        let v = co(move || {
            p.query(&ECHO, &[Param::Int4(i), Param::Text("x")])
                .unwrap()
                .get(0)
                .unwrap()
                .unwrap()
                .i32(0)
                .unwrap()
        });
        assert_eq!(v, i * 2);
    }
    assert_eq!(db.psql("SELECT count(*) FROM pg_prepared_statements"), "0");
}

/// PgBouncer in transaction mode in front of a cluster.
struct Bouncer {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pgbouncer_bin() -> Option<std::path::PathBuf> {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

fn start_bouncer(c: &Cluster) -> Bouncer {
    use std::os::unix::process::CommandExt;
    let bin = pgbouncer_bin()
        .expect("pgbouncer is needed (apt-get install pgbouncer; .ci/run installs it)");
    let port = support::pg::free_port();
    let dir = c.dir.join("bouncer");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
    std::fs::write(
        dir.join("pgbouncer.ini"),
        format!(
            "[databases]\n* = host=127.0.0.1 port={}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = transaction\n\
             default_pool_size = 4\nmax_client_conn = 100\nlogfile = {}\nignore_startup_parameters = options\n",
            c.port,
            dir.join("users.txt").display(),
            dir.join("bouncer.log").display()
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(bin);
    cmd.arg(dir.join("pgbouncer.ini"));
    if unsafe { libc::geteuid() } == 0 {
        // pgbouncer refuses to run as root.
        let name = std::ffi::CString::new("postgres").unwrap();
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        let cdir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::chown(cdir.as_ptr(), uid, gid) };
        cmd.gid(gid).uid(uid);
    }
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "pgbouncer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Bouncer { child, dir, port }
}

#[test]
fn through_pgbouncer_in_transaction_mode_describe_works_and_prepare_says_what_to_do() {
    let c = Cluster::start(ClusterOptions::default());
    let bouncer = start_bouncer(&c);
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
        bouncer.port
    );

    let mut cfg = pool_config(&url, 4);
    cfg.mode = StatementMode::Describe;
    let pool = Pool::new(cfg).unwrap();
    on_coroutines(20, &pool, |i, p| {
        for j in 0..20 {
            let v = p
                .query(&ECHO, &[Param::Int4(i * 100 + j), Param::Text("b")])
                .unwrap();
            assert_eq!(
                v.get(0).unwrap().unwrap().i32(0).unwrap(),
                (i * 100 + j) * 2
            );
        }
    });

    // Named statements: several client connections share few server
    // connections, so a name prepared on one is missing on another.
    let mut cfg = pool_config(&url, 8);
    cfg.mode = StatementMode::Prepare;
    let pool = Pool::new(cfg).unwrap();
    let results = on_coroutines(32, &pool, |i, p| {
        let mut errors = Vec::new();
        for j in 0..20 {
            if let Err(e) = p.query(&ECHO, &[Param::Int4(i * 100 + j), Param::Text("b")]) {
                errors.push(e.to_string());
            }
        }
        errors
    });
    let errors: Vec<String> = results.into_iter().flatten().collect();
    assert!(
        !errors.is_empty(),
        "named statements cannot work through transaction pooling"
    );
    assert!(
        errors
            .iter()
            .all(|e| e.contains("DB_STATEMENT_CACHE=describe")),
        "every such error says what to do: {errors:?}"
    );
}
