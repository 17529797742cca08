//! The service's configuration: every variable of `shared/API.md`, read from
//! the environment and from a `.env` file in the working directory (the real
//! environment wins), so that the Go service's `.env` loads unchanged.
//!
//! Parsing is strict: a value that cannot be read is an error naming the
//! variable, the value and what was expected, and `main` exits with status 2.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::logging::{Format, Level};

/// How SQL statements are sent (`DB_STATEMENT_CACHE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementCache {
    /// Named statements, prepared once per connection.
    Prepare,
    /// Unnamed statements only: works through PgBouncer/Supavisor in transaction mode.
    Describe,
    /// `Describe` when the database port is 6543 (Supabase's transaction pooler), else `Prepare`.
    Auto,
}

impl fmt::Display for StatementCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatementCache::Prepare => "prepare",
            StatementCache::Describe => "describe",
            StatementCache::Auto => "auto",
        })
    }
}

/// The effective configuration.
#[derive(Clone)]
pub struct Config {
    /// `DATABASE_URL`, else `SUPABASE_DB_URL`.
    pub database_url: Option<String>,
    pub host: IpAddr,
    pub port: u16,
    /// `APP_ENV`, alias `GO_ENV`.
    pub app_env: String,
    pub workers: usize,
    pub db_max_conns: usize,
    pub db_min_conns: usize,
    pub db_max_conn_lifetime: Duration,
    pub db_max_conn_idle_time: Duration,
    pub db_connect_timeout: Duration,
    pub db_statement_cache: StatementCache,
    /// `API_KEY`, split on commas; empty means no authentication.
    pub api_keys: Vec<String>,
    /// Read for compatibility with the Go service's `.env`; grants nothing.
    pub supabase_key_set: bool,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    pub log_level: Level,
    pub log_format: Format,
    /// How long a request head may take to arrive once its first byte has.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Open connections accepted at once, across all workers.
    pub max_connections: usize,
    /// Port of the run command's local cluster (used only without a URL).
    pub local_db_port: u16,
}

/// A variable whose value could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every variable this service reads, for `--help` and for the `.env` loader.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "DATABASE_URL",
        "-",
        "PostgreSQL URL or key=value string (wins over SUPABASE_DB_URL)",
    ),
    (
        "SUPABASE_DB_URL",
        "-",
        "PostgreSQL URL, as the Go service's .env names it",
    ),
    ("PORT", "3001", "listening port"),
    ("HOST", "0.0.0.0", "listening address"),
    (
        "APP_ENV",
        "development",
        "alias GO_ENV; `production` turns on JSON logs",
    ),
    (
        "WORKERS",
        "CPUs available",
        "worker threads, one listener each",
    ),
    (
        "DB_MAX_CONNS",
        "20",
        "database connections in total, across workers",
    ),
    (
        "DB_MIN_CONNS",
        "5",
        "connections opened at start, in the background",
    ),
    (
        "DB_MAX_CONN_LIFETIME",
        "1h",
        "recycle a connection after this long",
    ),
    (
        "DB_MAX_CONN_IDLE_TIME",
        "30m",
        "close a connection idle this long",
    ),
    ("DB_CONNECT_TIMEOUT", "5s", "per connection attempt"),
    (
        "DB_STATEMENT_CACHE",
        "auto",
        "prepare | describe | auto (describe on port 6543)",
    ),
    (
        "API_KEY",
        "unset",
        "comma-separated keys accepted on /api/*",
    ),
    (
        "SUPABASE_KEY",
        "unset",
        "read for compatibility; grants nothing",
    ),
    ("MAX_BODY_BYTES", "1048576", "request body limit"),
    (
        "SHUTDOWN_TIMEOUT",
        "10s",
        "how long SIGTERM waits for in-flight requests",
    ),
    ("LOG_LEVEL", "info", "error | warn | info | debug"),
    (
        "LOG_FORMAT",
        "text",
        "text | json (json by default when APP_ENV=production)",
    ),
    (
        "HTTP_HEADER_TIMEOUT",
        "10s",
        "a request head must arrive within this",
    ),
    (
        "HTTP_IDLE_TIMEOUT",
        "60s",
        "idle keep-alive connections close after this",
    ),
    (
        "MAX_CONNECTIONS",
        "10000",
        "open client connections at once",
    ),
];

impl Config {
    /// Reads the process environment, then `./.env` for what it does not set.
    pub fn load() -> Result<Config, ConfigError> {
        let file = read_dotenv(Path::new(".env"));
        Config::from_lookup(|name| match std::env::var(name) {
            Ok(v) => Some(v),
            Err(_) => file.get(name).cloned(),
        })
    }

    /// Builds the configuration from any source of variables (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // An empty value counts as unset, as in the Go service's loader.
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());

        let database_url = get("DATABASE_URL").or_else(|| get("SUPABASE_DB_URL"));
        let app_env = get("APP_ENV")
            .or_else(|| get("GO_ENV"))
            .unwrap_or_else(|| "development".to_string());
        let log_format = match get("LOG_FORMAT") {
            Some(v) => parse_with("LOG_FORMAT", &v, "`text` or `json`", Format::parse)?,
            None if app_env.eq_ignore_ascii_case("production") => Format::Json,
            None => Format::Text,
        };

        let workers = match get("WORKERS") {
            Some(v) => parse_with("WORKERS", &v, "a whole number from 1 to 1024", |s| {
                s.parse::<usize>().ok().filter(|n| (1..=1024).contains(n))
            })?,
            None => available_cpus(),
        };

        let config = Config {
            database_url,
            host: opt(
                "HOST",
                get("HOST"),
                "an IP address such as 0.0.0.0 or ::",
                |s| s.parse().ok(),
            )?
            .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            port: opt("PORT", get("PORT"), "a port number from 0 to 65535", |s| {
                s.parse().ok()
            })?
            .unwrap_or(3001),
            app_env,
            workers,
            db_max_conns: count(&get, "DB_MAX_CONNS", 20, 1)?,
            db_min_conns: count(&get, "DB_MIN_CONNS", 5, 0)?,
            db_max_conn_lifetime: duration(&get, "DB_MAX_CONN_LIFETIME", 3600)?,
            db_max_conn_idle_time: duration(&get, "DB_MAX_CONN_IDLE_TIME", 1800)?,
            db_connect_timeout: duration(&get, "DB_CONNECT_TIMEOUT", 5)?,
            db_statement_cache: opt(
                "DB_STATEMENT_CACHE",
                get("DB_STATEMENT_CACHE"),
                "`prepare`, `describe` or `auto`",
                |s| match s.to_ascii_lowercase().as_str() {
                    "prepare" => Some(StatementCache::Prepare),
                    "describe" => Some(StatementCache::Describe),
                    "auto" => Some(StatementCache::Auto),
                    _ => None,
                },
            )?
            .unwrap_or(StatementCache::Auto),
            api_keys: get("API_KEY")
                .map(|v| {
                    v.split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            supabase_key_set: get("SUPABASE_KEY").is_some(),
            max_body_bytes: opt(
                "MAX_BODY_BYTES",
                get("MAX_BODY_BYTES"),
                "a whole number of bytes from 1 to 1073741824 (1 GiB)",
                |s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1 << 30).contains(n))
                },
            )?
            .unwrap_or(1 << 20),
            shutdown_timeout: duration(&get, "SHUTDOWN_TIMEOUT", 10)?,
            log_level: opt(
                "LOG_LEVEL",
                get("LOG_LEVEL"),
                "`error`, `warn`, `info` or `debug`",
                Level::parse,
            )?
            .unwrap_or(Level::Info),
            log_format,
            header_timeout: duration(&get, "HTTP_HEADER_TIMEOUT", 10)?,
            idle_timeout: duration(&get, "HTTP_IDLE_TIMEOUT", 60)?,
            max_connections: count(&get, "MAX_CONNECTIONS", 10_000, 1)?,
            local_db_port: opt(
                "LOCAL_DB_PORT",
                get("LOCAL_DB_PORT"),
                "a port number from 1 to 65535",
                |s| s.parse().ok().filter(|p| *p > 0),
            )?
            .unwrap_or(55432),
        };
        if config.db_min_conns > config.db_max_conns {
            return Err(ConfigError {
                var: "DB_MIN_CONNS",
                value: config.db_min_conns.to_string(),
                expected: format!("at most DB_MAX_CONNS ({})", config.db_max_conns),
            });
        }
        Ok(config)
    }

    /// The effective configuration as `NAME=value` lines, secrets redacted.
    pub fn describe(&self) -> String {
        let keys = match self.api_keys.len() {
            0 => "unset".to_string(),
            n => format!("{n} key(s), redacted"),
        };
        let lines = [
            (
                "DATABASE_URL",
                self.database_url
                    .as_deref()
                    .map(redact_database_url)
                    .unwrap_or_else(|| "unset".into()),
            ),
            ("HOST", self.host.to_string()),
            ("PORT", self.port.to_string()),
            ("APP_ENV", self.app_env.clone()),
            ("WORKERS", self.workers.to_string()),
            ("DB_MAX_CONNS", self.db_max_conns.to_string()),
            ("DB_MIN_CONNS", self.db_min_conns.to_string()),
            (
                "DB_MAX_CONN_LIFETIME",
                go_duration(self.db_max_conn_lifetime),
            ),
            (
                "DB_MAX_CONN_IDLE_TIME",
                go_duration(self.db_max_conn_idle_time),
            ),
            ("DB_CONNECT_TIMEOUT", go_duration(self.db_connect_timeout)),
            ("DB_STATEMENT_CACHE", self.db_statement_cache.to_string()),
            ("API_KEY", keys),
            (
                "SUPABASE_KEY",
                if self.supabase_key_set {
                    "set, redacted (unused)"
                } else {
                    "unset"
                }
                .into(),
            ),
            ("MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            ("SHUTDOWN_TIMEOUT", go_duration(self.shutdown_timeout)),
            ("LOG_LEVEL", self.log_level.to_string()),
            ("LOG_FORMAT", self.log_format.to_string()),
            ("HTTP_HEADER_TIMEOUT", go_duration(self.header_timeout)),
            ("HTTP_IDLE_TIMEOUT", go_duration(self.idle_timeout)),
            ("MAX_CONNECTIONS", self.max_connections.to_string()),
            ("LOCAL_DB_PORT", self.local_db_port.to_string()),
        ];
        let mut out = String::new();
        for (k, v) in lines {
            out.push_str(k);
            out.push('=');
            out.push_str(&v);
            out.push('\n');
        }
        out
    }
}

/// CPUs this process may run on: honours the cgroup CPU quota and the
/// affinity mask, as `std::thread::available_parallelism` does.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn parse_with<T>(
    var: &'static str,
    value: &str,
    expected: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<T, ConfigError> {
    f(value.trim()).ok_or_else(|| ConfigError {
        var,
        value: value.to_string(),
        expected: expected.to_string(),
    })
}

fn opt<T>(
    var: &'static str,
    value: Option<String>,
    expected: &str,
    f: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ConfigError> {
    value.map(|v| parse_with(var, &v, expected, f)).transpose()
}

fn count(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: usize,
    min: usize,
) -> Result<usize, ConfigError> {
    let expected = format!("a whole number of at least {min}");
    Ok(opt(var, get(var), &expected, |s| {
        s.parse::<usize>().ok().filter(|n| *n >= min)
    })?
    .unwrap_or(default))
}

fn duration(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    Ok(opt(
        var,
        get(var),
        "a duration such as 90s, 30m or 1h30m",
        parse_go_duration,
    )?
    .unwrap_or(Duration::from_secs(default_secs)))
}

/// Parses a Go `time.ParseDuration` string: a sequence of decimal numbers,
/// each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), such as `1h30m`
/// or `1.5s`; a lone `0` is zero. Negative durations are refused.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * nanos_per;
        rest = tail;
    }
    // Go's limit is about 290 years; anything near it is a typo.
    if !total.is_finite() || total > 1e18 {
        return None;
    }
    Some(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way Go prints it (`1h0m0s` → here `1h`, `90s` → `1m30s`).
pub fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let millis = d.subsec_millis();
    if total == 0 && millis > 0 {
        return format!("{millis}ms");
    }
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Hides the password of a PostgreSQL URL (`scheme://user:password@host`) or
/// key=value string (`password=...`).
pub fn redact_database_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let after = &url[scheme_end + 3..];
        let authority_end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = &after[..authority_end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &after[at..]
                );
            }
        }
        // A password may also be given as a query parameter.
        return redact_query_password(url);
    }
    // key=value form; values may be single-quoted.
    let mut out = String::new();
    for (i, word) in split_conninfo_words(url).into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match word.split_once('=') {
            Some((k, _)) if k.trim().eq_ignore_ascii_case("password") => {
                out.push_str(k.trim());
                out.push_str("=***");
            }
            _ => out.push_str(&word),
        }
    }
    out
}

fn redact_query_password(url: &str) -> String {
    let Some(q) = url.find('?') else {
        return url.to_string();
    };
    let (base, query) = url.split_at(q + 1);
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}{}", parts.join("&"))
}

/// Splits a libpq key=value string into `key=value` words, keeping quoted
/// values (which may hold spaces) whole.
fn split_conninfo_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Reads a `.env` file: `KEY=value` lines, `#` comments, an optional
/// `export ` prefix, single- or double-quoted values. A missing file is empty.
pub fn read_dotenv(path: &Path) -> HashMap<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_dotenv(&text),
        Err(_) => HashMap::new(),
    }
}

pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let value = value.trim();
        let value = if let Some(inner) = quoted(value, '"') {
            inner.replace("\\n", "\n").replace("\\\"", "\"")
        } else if let Some(inner) = quoted(value, '\'') {
            inner.to_string()
        } else {
            // An unquoted value ends at ` #` (an inline comment).
            match value.find(" #") {
                Some(i) => value[..i].trim_end().to_string(),
                None => value.to_string(),
            }
        };
        vars.insert(key.to_string(), value);
    }
    vars
}

fn quoted(value: &str, q: char) -> Option<&str> {
    let inner = value.strip_prefix(q)?;
    let end = inner.rfind(q)?;
    Some(&inner[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!((c.db_max_conns, c.db_min_conns), (20, 5));
        assert_eq!(c.db_max_conn_lifetime, Duration::from_secs(3600));
        assert_eq!(c.db_max_conn_idle_time, Duration::from_secs(1800));
        assert_eq!(c.db_connect_timeout, Duration::from_secs(5));
        assert_eq!(c.db_statement_cache, StatementCache::Auto);
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(c.log_level, Level::Info);
        assert_eq!(c.log_format, Format::Text);
        assert!(c.api_keys.is_empty());
        assert!(c.workers >= 1);
    }

    #[test]
    fn go_service_env_loads_unchanged() {
        let env = parse_dotenv(
            "SUPABASE_DB_URL=postgresql://postgres:[PASSWORD]@db.ref.supabase.co:5432/postgres?sslmode=require\n\
             SUPABASE_KEY=your-supabase-anon-key\nPORT=3001\nGO_ENV=production\n",
        );
        let c = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.app_env, "production");
        assert_eq!(c.log_format, Format::Json);
        assert!(c.supabase_key_set);
        assert!(c
            .database_url
            .unwrap()
            .starts_with("postgresql://postgres:"));
    }

    #[test]
    fn database_url_wins_over_supabase() {
        let c = cfg(&[
            ("DATABASE_URL", "postgres://a@h/db"),
            ("SUPABASE_DB_URL", "postgres://b@h/db"),
        ])
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://a@h/db"));
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("90s"), Some(Duration::from_secs(90)));
        assert_eq!(d("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        for bad in ["", "10", "1x", "-5s", "s", "1..5s", "h1"] {
            assert_eq!(d(bad), None, "{bad}");
        }
        assert_eq!(go_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
    }

    #[test]
    fn bad_values_name_variable_value_and_expectation() {
        let e = cfg(&[("DB_CONNECT_TIMEOUT", "5 seconds")]).err().unwrap();
        assert_eq!(e.var, "DB_CONNECT_TIMEOUT");
        assert_eq!(
            e.to_string(),
            "invalid DB_CONNECT_TIMEOUT=\"5 seconds\": expected a duration such as 90s, 30m or 1h30m"
        );
        assert_eq!(cfg(&[("PORT", "70000")]).err().unwrap().var, "PORT");
        assert_eq!(cfg(&[("WORKERS", "0")]).err().unwrap().var, "WORKERS");
        assert_eq!(
            cfg(&[("LOG_LEVEL", "loud")]).err().unwrap().var,
            "LOG_LEVEL"
        );
        assert_eq!(
            cfg(&[("DB_STATEMENT_CACHE", "x")]).err().unwrap().var,
            "DB_STATEMENT_CACHE"
        );
        assert_eq!(
            cfg(&[("DB_MIN_CONNS", "30")]).err().unwrap().var,
            "DB_MIN_CONNS"
        );
        assert_eq!(
            cfg(&[("MAX_BODY_BYTES", "99999999999999999999")])
                .err()
                .unwrap()
                .var,
            "MAX_BODY_BYTES"
        );
    }

    #[test]
    fn api_keys_split_on_commas() {
        let c = cfg(&[("API_KEY", "k1, k2,,")]).unwrap();
        assert_eq!(c.api_keys, vec!["k1", "k2"]);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_database_url(
                "postgres://postgres.ref:p%40ss@host:6543/postgres?sslmode=require"
            ),
            "postgres://postgres.ref:***@host:6543/postgres?sslmode=require"
        );
        assert_eq!(
            redact_database_url("host=/tmp user=u password='a b' dbname=d"),
            "host=/tmp user=u password=*** dbname=d"
        );
        assert_eq!(
            redact_database_url("postgres://u@h/d?password=x"),
            "postgres://u@h/d?password=***"
        );
        let c = cfg(&[
            ("DATABASE_URL", "postgres://u:secret@h/d"),
            ("API_KEY", "topsecret"),
        ])
        .unwrap();
        let text = c.describe();
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn the_example_env_file_loads() {
        let env = parse_dotenv(include_str!("../.env.example"));
        let c = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.log_format, Format::Json);
    }

    #[test]
    fn dotenv_syntax() {
        let v = parse_dotenv(
            "# c\nexport A=1\nB=\"two words\"\nC='x#y'\nD=plain # note\n=bad\nnoequals\n",
        );
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "x#y");
        assert_eq!(v["D"], "plain");
        assert_eq!(v.len(), 4);
    }
}
