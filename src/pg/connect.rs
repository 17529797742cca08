//! Opening one connection: the socket, TLS negotiation by `sslmode`
//! (`SSLRequest`), the startup message, authentication (trust, cleartext,
//! md5, SCRAM-SHA-256, and SCRAM-SHA-256-PLUS when TLS is on and the server
//! offers it), and the wait for the server's first `ReadyForQuery`. All of
//! it within the connect timeout.

use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use rustls::{ClientConfig, ClientConnection};

use super::config::{Host, PgConfig, SslMode};
use super::error::{db_error, Error, Result};
use super::tls;
use super::transport::Socket;

/// A connection that is authenticated and ready for queries.
pub struct Established {
    pub socket: Socket,
    pub tls: Option<ClientConnection>,
    /// Bytes received after the first `ReadyForQuery` (normally none).
    pub leftover: BytesMut,
    pub process_id: i32,
}

/// Connects within `timeout`.
pub fn connect(
    config: &PgConfig,
    tls_config: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Established> {
    let deadline = Instant::now() + timeout;
    match config.sslmode {
        // `allow`: plain first, TLS when the server refuses plain.
        SslMode::Allow => match attempt(config, None, deadline) {
            Err(Error::Db(e)) if e.code == "28000" => attempt(config, tls_config, deadline),
            other => other,
        },
        _ => attempt(config, tls_config, deadline),
    }
}

fn remaining(deadline: Instant) -> Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(Error::ConnectTimeout),
    }
}

fn timeout_err(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Error::ConnectTimeout,
        _ => Error::Io(e),
    }
}

fn open_socket(config: &PgConfig, deadline: Instant) -> Result<Socket> {
    match &config.host {
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{}", config.port));
            let s = may::os::unix::net::UnixStream::connect(&path).map_err(Error::Io)?;
            Ok(Socket::Unix(s))
        }
        Host::Tcp(host) => {
            let addrs = (host.as_str(), config.port)
                .to_socket_addrs()
                .map_err(|e| {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot resolve {host}: {e}"),
                    ))
                })?;
            let mut last = Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} resolved to no address"),
            ));
            for addr in addrs {
                match may::net::TcpStream::connect_timeout(&addr, remaining(deadline)?) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(Socket::Tcp(s));
                    }
                    Err(e) => last = timeout_err(e),
                }
            }
            Err(last)
        }
    }
}

/// Reads and writes whole messages before the stream is split.
enum Stream {
    Plain(Socket),
    Tls(Box<rustls::StreamOwned<ClientConnection, Socket>>),
}

impl Stream {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(b),
            Stream::Tls(s) => {
                s.write_all(b)?;
                s.flush()
            }
        }
    }
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(s) => s.read(b),
        }
    }
    fn socket(&self) -> &Socket {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

fn attempt(
    config: &PgConfig,
    tls_config: Option<&Arc<ClientConfig>>,
    deadline: Instant,
) -> Result<Established> {
    let mut socket = open_socket(config, deadline)?;
    let left = remaining(deadline)?;
    socket.set_timeouts(Some(left), Some(left))?;

    // libpq never negotiates TLS over a Unix socket.
    let want_tls = matches!(config.host, Host::Tcp(_)) && tls_config.is_some();
    let mut stream = if want_tls {
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        socket.write_all(&buf).map_err(timeout_err)?;
        let mut answer = [0u8; 1];
        socket.read_exact(&mut answer).map_err(timeout_err)?;
        match (answer[0], tls_config) {
            (b'S', Some(cfg)) => {
                let host = match &config.host {
                    Host::Tcp(h) => h.as_str(),
                    Host::Unix(_) => "localhost",
                };
                let mut conn = ClientConnection::new(cfg.clone(), tls::server_name(host)?)
                    .map_err(|e| Error::Tls(e.to_string()))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut socket).map_err(|e| match e.kind() {
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                            Error::ConnectTimeout
                        }
                        _ => Error::Tls(format!("handshake with {} failed: {e}", config.target())),
                    })?;
                }
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, socket)))
            }
            (b'N', _) if matches!(config.sslmode, SslMode::Prefer | SslMode::Allow) => {
                Stream::Plain(socket)
            }
            (b'N', _) => {
                return Err(Error::Tls(format!(
                    "the server at {} does not accept TLS, and sslmode={} requires it",
                    config.target(),
                    config.sslmode
                )))
            }
            (other, _) => {
                return Err(Error::Protocol(format!(
                    "unexpected answer {other:#x} to SSLRequest"
                )))
            }
        }
    } else {
        Stream::Plain(socket)
    };

    startup(config, &mut stream)?;
    let mut buf = BytesMut::with_capacity(8192);
    authenticate(config, &mut stream, &mut buf)?;
    let process_id = wait_ready(&mut stream, &mut buf)?;

    let (socket, tls) = match stream {
        Stream::Plain(s) => (s, None),
        Stream::Tls(s) => {
            let s = *s;
            (s.sock, Some(s.conn))
        }
    };
    Ok(Established {
        socket,
        tls,
        leftover: buf,
        process_id,
    })
}

fn startup(config: &PgConfig, stream: &mut Stream) -> Result<()> {
    let mut params: Vec<(&str, &str)> = vec![
        ("user", &config.user),
        ("database", &config.dbname),
        ("client_encoding", "UTF8"),
        // now() into a `timestamp` column, and timestamps read back, are UTC.
        ("TimeZone", "UTC"),
    ];
    if let Some(app) = &config.application_name {
        params.push(("application_name", app));
    }
    if let Some(options) = &config.options {
        params.push(("options", options));
    }
    let mut buf = BytesMut::new();
    frontend::startup_message(params.iter().copied(), &mut buf)?;
    stream.write_all(&buf).map_err(timeout_err)
}

/// The next message, reading as needed.
fn next_message(stream: &mut Stream, buf: &mut BytesMut) -> Result<Message> {
    loop {
        if let Some(m) = Message::parse(buf).map_err(|e| Error::Protocol(e.to_string()))? {
            return Ok(m);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).map_err(timeout_err)?;
        if n == 0 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection during start-up",
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn auth_error(e: Error) -> Error {
    match e {
        // invalid_password; 28000 (no pg_hba.conf entry) stays a server
        // error, since `sslmode=allow` retries with TLS on it.
        Error::Db(db) if db.code == "28P01" => Error::Auth(db.message),
        other => other,
    }
}

fn password(config: &PgConfig) -> Result<&str> {
    config
        .password
        .as_deref()
        .ok_or_else(|| Error::Auth("the server asks for a password and none is set".into()))
}

fn authenticate(config: &PgConfig, stream: &mut Stream, buf: &mut BytesMut) -> Result<()> {
    let mut out = BytesMut::new();
    loop {
        match next_message(stream, buf)? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                out.clear();
                frontend::password_message(password(config)?.as_bytes(), &mut out)?;
                stream.write_all(&out).map_err(timeout_err)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = postgres_protocol::authentication::md5_hash(
                    config.user.as_bytes(),
                    password(config)?.as_bytes(),
                    body.salt(),
                );
                out.clear();
                frontend::password_message(hash.as_bytes(), &mut out)?;
                stream.write_all(&out).map_err(timeout_err)?;
            }
            Message::AuthenticationSasl(body) => {
                use fallible_iterator::FallibleIterator;
                let mut plain = false;
                let mut plus = false;
                let mut mechanisms = body.mechanisms();
                while let Some(m) = mechanisms.next().map_err(|e| Error::Protocol(e.to_string()))? {
                    plain |= m == sasl::SCRAM_SHA_256;
                    plus |= m == sasl::SCRAM_SHA_256_PLUS;
                }
                let end_point = match stream {
                    Stream::Tls(s) => s
                        .conn
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| tls::server_end_point(c)),
                    Stream::Plain(_) => None,
                };
                let (mechanism, binding) = match end_point {
                    Some(hash) if plus => (sasl::SCRAM_SHA_256_PLUS, ChannelBinding::tls_server_end_point(hash)),
                    _ if plain && matches!(stream, Stream::Tls(_)) => {
                        (sasl::SCRAM_SHA_256, ChannelBinding::unrequested())
                    }
                    _ if plain => (sasl::SCRAM_SHA_256, ChannelBinding::unsupported()),
                    _ => {
                        return Err(Error::Auth(
                            "the server offers no SASL mechanism this client supports".into(),
                        ))
                    }
                };
                let mut scram = ScramSha256::new(password(config)?.as_bytes(), binding);
                out.clear();
                frontend::sasl_initial_response(mechanism, scram.message(), &mut out)?;
                stream.write_all(&out).map_err(timeout_err)?;
                match next_message(stream, buf)? {
                    Message::AuthenticationSaslContinue(body) => {
                        scram.update(body.data()).map_err(|e| Error::Auth(e.to_string()))?;
                    }
                    Message::ErrorResponse(body) => return Err(auth_error(db_error(&mut body.fields()))),
                    _ => return Err(Error::Protocol("expected SASL continue".into())),
                }
                out.clear();
                frontend::sasl_response(scram.message(), &mut out)?;
                stream.write_all(&out).map_err(timeout_err)?;
                match next_message(stream, buf)? {
                    Message::AuthenticationSaslFinal(body) => {
                        scram.finish(body.data()).map_err(|e| {
                            Error::Auth(format!("the server's SCRAM signature is wrong: {e}"))
                        })?;
                    }
                    Message::ErrorResponse(body) => return Err(auth_error(db_error(&mut body.fields()))),
                    _ => return Err(Error::Protocol("expected SASL final".into())),
                }
            }
            Message::ErrorResponse(body) => return Err(auth_error(db_error(&mut body.fields()))),
            Message::NoticeResponse(_) => {}
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationSspi => {
                return Err(Error::Auth(
                    "the server asks for an authentication method this client does not support (GSS/SSPI/Kerberos)".into(),
                ))
            }
            _ => return Err(Error::Protocol("unexpected message during authentication".into())),
        }
    }
}

fn wait_ready(stream: &mut Stream, buf: &mut BytesMut) -> Result<i32> {
    let mut process_id = 0;
    loop {
        match next_message(stream, buf)? {
            Message::ReadyForQuery(_) => {
                // Queries set their own timeouts.
                let _ = stream.socket().set_timeouts(None, None);
                return Ok(process_id);
            }
            Message::BackendKeyData(k) => process_id = k.process_id(),
            Message::ParameterStatus(_) | Message::NoticeResponse(_) => {}
            Message::ErrorResponse(body) => return Err(db_error(&mut body.fields())),
            _ => {
                return Err(Error::Protocol(
                    "unexpected message after authentication".into(),
                ))
            }
        }
    }
}
