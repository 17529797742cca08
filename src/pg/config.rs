//! Connection settings in libpq's two forms: the URL
//! (`postgres://user:password@host:port/dbname?sslmode=require`) and the
//! `key=value` string. User, password and database name are
//! percent-decoded, so Supabase's pooler user `postgres.<project-ref>` and
//! passwords holding `@`, `:` or `/` work. An error names the part at fault
//! and never repeats the password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::error::Error;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain first; TLS if the server refuses plain.
    Allow,
    /// TLS if the server offers it, else plain (libpq's default).
    Prefer,
    /// TLS, certificate not checked (checked against `sslrootcert` when given, as libpq does).
    Require,
    /// TLS, certificate chain checked.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    /// A directory holding the server's socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    pub host: Host,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub application_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub options: Option<String>,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

impl PgConfig {
    /// Reads either form.
    pub fn parse(s: &str) -> Result<PgConfig, Error> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            parse_url(s)
        } else if s.contains('=') {
            parse_keyword_value(s)
        } else {
            Err(Error::Config(
                "expected a postgres:// or postgresql:// URL or key=value settings".into(),
            ))
        }
    }

    /// `host:port`, or the socket path, for messages (no secrets).
    pub fn target(&self) -> String {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Host::Tcp(h) => format!("{h}:{}", self.port),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), self.port),
        }
    }
}

#[derive(Default)]
struct Builder {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    application_name: Option<String>,
    connect_timeout: Option<String>,
    options: Option<String>,
}

impl Builder {
    fn set(&mut self, key: &str, value: String) -> Result<(), Error> {
        let slot = match key {
            "host" | "hostaddr" => &mut self.host,
            "port" => &mut self.port,
            "user" => &mut self.user,
            "password" => &mut self.password,
            "dbname" => &mut self.dbname,
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "application_name" => &mut self.application_name,
            "connect_timeout" => &mut self.connect_timeout,
            "options" => &mut self.options,
            // Accepted and not needed here.
            "fallback_application_name"
            | "target_session_attrs"
            | "keepalives"
            | "keepalives_idle"
            | "channel_binding"
            | "gssencmode" => return Ok(()),
            other => return Err(Error::Config(format!("unknown setting {other:?}"))),
        };
        *slot = Some(value);
        Ok(())
    }

    fn build(self) -> Result<PgConfig, Error> {
        let host = self
            .host
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        if host.contains(',') {
            return Err(Error::Config("more than one host is not supported".into()));
        }
        let port = match self.port.as_deref() {
            None | Some("") => 5432,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Error::Config(format!("port {p:?} is not a port number")))?,
        };
        let host = if host.starts_with('/') {
            Host::Unix(PathBuf::from(host))
        } else {
            Host::Tcp(host)
        };
        let sslmode = match self.sslmode.as_deref() {
            None => SslMode::Prefer,
            Some(m) => SslMode::parse(m).ok_or_else(|| {
                Error::Config(format!(
                    "sslmode {m:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            })?,
        };
        let connect_timeout = match self.connect_timeout.as_deref() {
            None | Some("") => None,
            Some(t) => {
                let secs: u64 = t.parse().map_err(|_| {
                    Error::Config(format!(
                        "connect_timeout {t:?} is not a whole number of seconds"
                    ))
                })?;
                // libpq: zero means wait forever, and less than 2 s counts as 2 s.
                (secs > 0).then(|| Duration::from_secs(secs.max(2)))
            }
        };
        let user = self
            .user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres".into());
        Ok(PgConfig {
            host,
            port,
            dbname: self
                .dbname
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| user.clone()),
            user,
            password: self.password,
            sslmode,
            sslrootcert: self.sslrootcert.map(PathBuf::from),
            application_name: self.application_name,
            connect_timeout,
            options: self.options,
        })
    }
}

fn parse_url(s: &str) -> Result<PgConfig, Error> {
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i + 1..]),
        None => (before_query, ""),
    };
    let mut b = Builder::default();
    let hostport = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            b.user = Some(decode(user, "user")?);
            if let Some(p) = password {
                // Never echo any of the password back.
                b.password = Some(percent_decode(p).ok_or_else(|| {
                    Error::Config("the password is not valid percent-encoding".into())
                })?);
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| Error::Config("unclosed [ in the host".into()))?;
        b.host = Some(h.to_string());
        if let Some(p) = after.strip_prefix(':') {
            b.port = Some(p.to_string());
        } else if !after.is_empty() {
            return Err(Error::Config(format!(
                "unexpected {after:?} after the host"
            )));
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => {
                b.host = Some(decode(h, "host")?);
                b.port = Some(p.to_string());
            }
            None => b.host = Some(decode(hostport, "host")?),
        }
    }
    if !path.is_empty() {
        b.dbname = Some(decode(path, "dbname")?);
    }
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = if k == "password" {
            percent_decode(v)
                .ok_or_else(|| Error::Config("the password is not valid percent-encoding".into()))?
        } else {
            decode(v, k)?
        };
        b.set(k, value)?;
    }
    b.build()
}

fn decode(s: &str, what: &str) -> Result<String, Error> {
    percent_decode(s)
        .ok_or_else(|| Error::Config(format!("{what} {s:?} is not valid percent-encoding")))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_keyword_value(s: &str) -> Result<PgConfig, Error> {
    let mut b = Builder::default();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(Error::Config(format!("setting {key:?} has no value")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(Error::Config(format!("unterminated value of {key:?}")))
                        }
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(Error::Config(format!(
                            "unterminated quoted value of {key:?}"
                        )))
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        b.set(&key, value)?;
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supabase_urls() {
        let c = PgConfig::parse(
            "postgresql://postgres:s3cr%40t%3A%2F@db.abc.supabase.co:5432/postgres?sslmode=require",
        )
        .unwrap();
        assert_eq!(c.host, Host::Tcp("db.abc.supabase.co".into()));
        assert_eq!(c.port, 5432);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.password.as_deref(), Some("s3cr@t:/"));
        assert_eq!(c.sslmode, SslMode::Require);
        let c = PgConfig::parse(
            "postgres://postgres.abcref:pw@aws-0-us-east-1.pooler.supabase.com:6543/postgres",
        )
        .unwrap();
        assert_eq!(c.user, "postgres.abcref");
        assert_eq!(c.port, 6543);
        assert_eq!(c.sslmode, SslMode::Prefer);
    }

    #[test]
    fn url_details() {
        let c = PgConfig::parse("postgres://u@[::1]:6000/d?application_name=ms&connect_timeout=3&options=-c%20x%3Dy&sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.host, Host::Tcp("::1".into()));
        assert_eq!(c.port, 6000);
        assert_eq!(c.application_name.as_deref(), Some("ms"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.options.as_deref(), Some("-c x=y"));
        assert_eq!(c.sslrootcert, Some(PathBuf::from("/ca.pem")));
        let c = PgConfig::parse("postgresql://%2Fvar%2Frun%2Fpostgresql/db").unwrap();
        assert_eq!(c.host, Host::Unix("/var/run/postgresql".into()));
        assert_eq!(c.dbname, "db");
        let c = PgConfig::parse("postgres:///db?host=/tmp&port=5433").unwrap();
        assert_eq!(c.host, Host::Unix("/tmp".into()));
        assert_eq!(c.port, 5433);
    }

    #[test]
    fn keyword_value_form() {
        // A stray quote is an error, not a crash.
        assert!(PgConfig::parse("host=h password='a'b' dbname=d").is_err());
        let c = PgConfig::parse("host=/var/run/postgresql port=5433 user=app password='a \\'b' dbname=msgs sslmode=disable").unwrap();
        assert_eq!(c.host, Host::Unix("/var/run/postgresql".into()));
        assert_eq!(c.password.as_deref(), Some("a 'b"));
        assert_eq!(c.dbname, "msgs");
        assert_eq!(c.sslmode, SslMode::Disable);
    }

    #[test]
    fn errors_name_the_part_and_hide_the_password() {
        let e = PgConfig::parse("postgres://u:hunter2@h:notaport/d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port") && !e.contains("hunter2"), "{e}");
        let e = PgConfig::parse("postgres://u:hun%zzter2@h/d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("password") && !e.contains("hun"), "{e}");
        let e = PgConfig::parse("postgres://u:pw@h/d?sslmode=sometimes")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode"), "{e}");
        let e = PgConfig::parse("postgres://u:pw@h/d?bogus=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        assert!(PgConfig::parse("mysql://x").is_err());
        let dbg = format!("{:?}", PgConfig::parse("postgres://u:hunter2@h/d").unwrap());
        assert!(!dbg.contains("hunter2"));
    }
}
