//! Throwaway PostgreSQL clusters for tests: `initdb` into a temp dir, a free
//! port on 127.0.0.1 and a private socket dir, `db/schema.sql` applied to a
//! template, a fresh database per test (`CREATE DATABASE … TEMPLATE`), and
//! everything torn down when the test binary exits, pass or fail. As root
//! the server binaries run as the `postgres` user. `TEST_DATABASE_URL`
//! points the tests at an existing server instead.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How a cluster is set up.
#[derive(Clone, Default)]
pub struct ClusterOptions {
    /// `pg_hba.conf` lines after `local all all trust` (which the harness
    /// uses); default `host all all 127.0.0.1/32 trust`.
    pub hba: Vec<String>,
    /// Turn on TLS with these files (written into the data dir).
    pub tls: Option<TlsFiles>,
    /// Extra `postgresql.conf` lines.
    pub conf: Vec<String>,
}

#[derive(Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    pub socket_dir: PathBuf,
    bin: PathBuf,
    child: Mutex<Option<Child>>,
}

/// PIDs and dirs of clusters still running, for the exit-time teardown.
static LIVE: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn teardown_at_exit() {
    let live = match LIVE.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(p) => std::mem::take(&mut *p.into_inner()),
    };
    for (pid, dir) in live {
        stop_pid(pid);
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn stop_pid(pid: u32) {
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if unsafe { libc::kill(pid as i32, 0) } != 0 {
            return;
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

/// The directory with `initdb` and `postgres` (the same search as the run
/// command's: the newest `/usr/lib/postgresql/*/bin`, else `PATH`).
pub fn bin_dir() -> PathBuf {
    message_service::devdb::server_binaries()
        .unwrap_or_else(|e| panic!("{e}; or set TEST_DATABASE_URL"))
}

/// uid and gid to run the server as: `postgres` when we are root.
fn server_identity() -> Option<(u32, u32)> {
    let id = message_service::devdb::server_identity();
    if id.is_none() && unsafe { libc::geteuid() } == 0 {
        panic!("running as root needs a `postgres` user to run the server as");
    }
    id
}

fn chown(path: &Path, id: Option<(u32, u32)>) {
    if let Some((uid, gid)) = id {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        unsafe { libc::chown(c.as_ptr(), uid, gid) };
    }
}

fn as_server(cmd: &mut Command, id: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = id {
        cmd.gid(gid).uid(uid);
    }
    cmd
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    pub fn start(opts: ClusterOptions) -> Cluster {
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(teardown_at_exit);
        });
        let bin = bin_dir();
        let id = server_identity();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ms-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        chown(&dir, id);
        let data = dir.join("data");
        let socket_dir = dir.join("sock");
        std::fs::create_dir_all(&socket_dir).unwrap();
        chown(&socket_dir, id);

        let out = as_server(&mut Command::new(bin.join("initdb")), id)
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let port = free_port();
        let mut conf = vec![
            format!("port = {port}"),
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", socket_dir.display()),
            "fsync = off".into(),
            "synchronous_commit = off".into(),
            "full_page_writes = off".into(),
            "max_connections = 200".into(),
            "shared_buffers = 64MB".into(),
            "log_min_messages = warning".into(),
        ];
        if let Some(tls) = &opts.tls {
            for (src, name) in [(&tls.cert, "server.crt"), (&tls.key, "server.key")] {
                let dst = data.join(name);
                std::fs::copy(src, &dst).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
                chown(&dst, id);
            }
            conf.push("ssl = on".into());
            conf.push("ssl_cert_file = 'server.crt'".into());
            conf.push("ssl_key_file = 'server.key'".into());
        }
        conf.extend(opts.conf.iter().cloned());
        let mut pgconf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pgconf.push_str(&conf.join("\n"));
        pgconf.push('\n');
        std::fs::write(data.join("postgresql.conf"), pgconf).unwrap();

        let mut hba = vec!["local all all trust".to_string()];
        if opts.hba.is_empty() {
            hba.push("host all all 127.0.0.1/32 trust".into());
        } else {
            hba.extend(opts.hba.iter().cloned());
        }
        std::fs::write(data.join("pg_hba.conf"), hba.join("\n") + "\n").unwrap();

        let cluster = Cluster {
            port,
            dir,
            socket_dir,
            bin,
            child: Mutex::new(None),
        };
        cluster.start_server();
        cluster
    }

    /// Starts (or starts again) the server and waits until it takes connections.
    pub fn start_server(&self) {
        let id = server_identity();
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        chown(&self.dir.join("server.log"), id);
        let child = as_server(&mut Command::new(self.bin.join("postgres")), id)
            .arg("-D")
            .arg(self.dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let pid = child.id();
        *self.child.lock().unwrap() = Some(child);
        LIVE.lock().unwrap().push((pid, self.dir.clone()));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h"])
                .arg(&self.socket_dir)
                .args(["-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("postgres did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    pub fn stop_server(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let pid = child.id();
            unsafe { libc::kill(pid as i32, libc::SIGINT) };
            let _ = child.wait();
            LIVE.lock().unwrap().retain(|(p, _)| *p != pid);
        }
    }

    /// Runs SQL through psql over the Unix socket as `postgres`; returns
    /// unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let conninfo = format!(
            "host={} port={} user=postgres dbname={db}",
            self.socket_dir.display(),
            self.port
        );
        psql_url(&conninfo, sql)
    }

    /// A TCP URL to `db` as `user` (no password).
    pub fn url(&self, user: &str, db: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where per-test databases come from: the shared cluster, or TEST_DATABASE_URL.
enum Source {
    Cluster(Cluster),
    External(String),
}

fn source() -> &'static Source {
    static SOURCE: OnceLock<Source> = OnceLock::new();
    SOURCE.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let src = Source::External(url);
            create_template(&src);
            src
        }
        _ => {
            let src = Source::Cluster(Cluster::start(ClusterOptions::default()));
            create_template(&src);
            src
        }
    })
}

const TEMPLATE: &str = "ms_test_template";

fn schema() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/db/schema.sql")).unwrap()
}

fn psql_url(url: &str, sql: &str) -> String {
    let out = Command::new(bin_dir().join("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn create_template(src: &Source) {
    match src {
        Source::Cluster(c) => {
            c.psql("postgres", &format!("CREATE DATABASE {TEMPLATE}"));
            c.psql(TEMPLATE, &schema());
        }
        Source::External(url) => {
            let _ = psql_url(url, &format!("DROP DATABASE IF EXISTS {TEMPLATE}"));
            psql_url(url, &format!("CREATE DATABASE {TEMPLATE}"));
            psql_url(&with_db(url, TEMPLATE), &schema());
        }
    }
}

/// `url` with its database replaced.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A fresh database with the schema, for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ms_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        match source() {
            Source::Cluster(c) => {
                c.psql(
                    "postgres",
                    &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"),
                );
                TestDb {
                    url: c.url("postgres", &name),
                    name,
                }
            }
            Source::External(url) => {
                psql_url(url, &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"));
                TestDb {
                    url: with_db(url, &name),
                    name,
                }
            }
        }
    }

    /// Runs SQL in this database through psql (independent of the client under test).
    pub fn psql(&self, sql: &str) -> String {
        match source() {
            Source::Cluster(c) => c.psql(&self.name, sql),
            Source::External(_) => psql_url(&self.url, sql),
        }
    }
}

/// A CA and a server certificate for `localhost` signed by it, made with the
/// openssl command line; plus a second CA that signed nothing.
pub struct TestCerts {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server: TlsFiles,
}

impl TestCerts {
    pub fn generate() -> TestCerts {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ms-certs-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509"];
            args.extend_from_slice(&ec);
            let key = format!("{ca}.key");
            let crt = format!("{ca}.crt");
            let subj = format!("/CN=message-service test {ca}");
            args.extend_from_slice(&["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
            run(&args);
        }
        let mut args = vec!["req"];
        args.extend_from_slice(&ec);
        args.extend_from_slice(&[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        run(&args);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "server.ext",
        ]);
        TestCerts {
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            server: TlsFiles {
                cert: dir.join("server.crt"),
                key: dir.join("server.key"),
            },
            dir,
        }
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
