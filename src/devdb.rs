//! The run command's local database. When neither `DATABASE_URL` nor
//! `SUPABASE_DB_URL` is set, `message-service` starts (or reuses) a
//! PostgreSQL cluster under `./.data/` from the machine's server binaries,
//! applies the schema, makes sure a demo conversation exists, and prints a
//! curl command to try. It exists so that a fresh clone runs with one
//! command; production always sets a URL and never reaches this code.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The schema, compiled in so that the binary works from any directory.
pub const SCHEMA: &str = include_str!("../db/schema.sql");

pub struct LocalDb {
    pub url: String,
    pub demo_conversation: String,
    /// The server, when this process started it (stopped on drop).
    child: Option<Child>,
    data: PathBuf,
}

impl Drop for LocalDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // runuser does not pass signals on: stop the postmaster itself.
            if let Some(pid) = postmaster_pid(&self.data) {
                // SAFETY: a plain kill(2).
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
            let _ = child.wait();
        }
    }
}

/// The directory with the PostgreSQL server binaries: the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout), else the first `PATH`
/// entry holding `initdb` and `postgres`.
pub fn server_binaries() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(PathBuf::from)
        .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .ok_or_else(|| {
            "no DATABASE_URL is set and no PostgreSQL server binaries were found \
             (install them, e.g. apt-get install postgresql, or set DATABASE_URL)"
                .to_string()
        })
}

/// The `postgres` user's ids, to run the server as when we are root
/// (PostgreSQL refuses to run as root).
pub fn server_identity() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions; getpwnam returns static data or null.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn chown_all(path: &Path, id: Option<(u32, u32)>) {
    let Some((uid, gid)) = id else { return };
    let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
}

fn as_server(mut cmd: Command, id: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = id {
        cmd.gid(gid).uid(uid);
    }
    cmd
}

fn postmaster_pid(data: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn run(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Starts or reuses the cluster under `root` (`./.data`), on 127.0.0.1:`port`.
pub fn start(root: &Path, port: u16) -> Result<LocalDb, String> {
    let bin = server_binaries()?;
    let id = server_identity();
    let root = std::path::absolute(root).map_err(|e| e.to_string())?;
    let data = root.join("postgres");
    let sock = root.join("sock");
    for dir in [&root, &sock] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        chown_all(dir, id);
    }

    if !data.join("PG_VERSION").exists() {
        eprintln!(
            "message-service: creating a local PostgreSQL cluster in {}",
            data.display()
        );
        let mut initdb = as_server(Command::new(bin.join("initdb")), id);
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(initdb, "initdb")?;
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n",
            sock.display()
        );
        let mut text =
            std::fs::read_to_string(data.join("postgresql.conf")).map_err(|e| e.to_string())?;
        text.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), text).map_err(|e| e.to_string())?;
    }

    let running = postmaster_pid(&data)
        // SAFETY: signal 0 only checks that the process exists.
        .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
    let child = if running {
        None
    } else {
        let log = std::fs::File::create(root.join("postgres.log")).map_err(|e| e.to_string())?;
        chown_all(&root.join("postgres.log"), id);
        let mut cmd = as_server(Command::new(bin.join("postgres")), id);
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        Some(
            cmd.spawn()
                .map_err(|e| format!("cannot start postgres: {e}"))?,
        )
    };

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = Command::new(bin.join("pg_isready"));
        ready
            .args(["-q", "-h"])
            .arg(&sock)
            .args(["-p", &port.to_string()]);
        if ready.status().map(|s| s.success()).unwrap_or(false) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the local PostgreSQL did not start; see {}",
                root.join("postgres.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let psql = |sql: &str| {
        let mut cmd = Command::new(bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&sock)
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ]);
        run(cmd, "psql")
    };
    if psql("SELECT to_regclass('public.messages') IS NULL")? == "t" {
        psql(SCHEMA)?;
    }
    let mut demo = psql("SELECT id FROM conversations ORDER BY created_at, id LIMIT 1")?;
    if demo.is_empty() {
        demo = psql("INSERT INTO conversations DEFAULT VALUES RETURNING id")?;
    }
    Ok(LocalDb {
        url: format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable"),
        demo_conversation: demo,
        child,
        data,
    })
}
