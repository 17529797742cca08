//! The byte stream under a connection: TCP or a Unix socket, plain or TLS,
//! split into a read half and a write half so that one coroutine can wait
//! for answers while others write new queries (pipelining). With TLS both
//! halves share the rustls session, locked only while records are sealed or
//! opened, never while a socket call blocks.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rustls::ClientConnection;

/// A coroutine-aware socket.
pub enum Socket {
    Tcp(may::net::TcpStream),
    Unix(may::os::unix::net::UnixStream),
}

impl Socket {
    pub fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
        })
    }

    pub fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
            Socket::Unix(s) => {
                s.set_read_timeout(read)?;
                s.set_write_timeout(write)
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = match self {
            Socket::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Socket::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            Socket::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes read from the socket in one call.
const READ_CHUNK: usize = 16 * 1024;

pub struct ReadHalf {
    sock: Socket,
    tls: Option<Arc<Mutex<ClientConnection>>>,
    raw: Vec<u8>,
}

pub struct WriteHalf {
    sock: Socket,
    tls: Option<Arc<Mutex<ClientConnection>>>,
    sealed: Vec<u8>,
}

/// Splits a connected stream (TLS handshake already done when `tls` is set).
pub fn split(sock: Socket, tls: Option<ClientConnection>) -> io::Result<(ReadHalf, WriteHalf)> {
    let write_sock = sock.try_clone()?;
    let tls = tls.map(|t| Arc::new(Mutex::new(t)));
    Ok((
        ReadHalf {
            sock,
            tls: tls.clone(),
            raw: vec![0; READ_CHUNK],
        },
        WriteHalf {
            sock: write_sock,
            tls,
            sealed: Vec::new(),
        },
    ))
}

fn lock(tls: &Mutex<ClientConnection>) -> std::sync::MutexGuard<'_, ClientConnection> {
    match tls.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl ReadHalf {
    /// Appends what arrives to `buf`; `Ok(0)` at end of stream.
    pub fn read_into(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            let n = self.sock.read(&mut self.raw)?;
            buf.extend_from_slice(&self.raw[..n]);
            return Ok(n);
        };
        loop {
            // Plaintext already opened?
            {
                let mut t = lock(tls);
                let mut plain = [0u8; 4096];
                match t.reader().read(&mut plain) {
                    Ok(0) => return Ok(0),
                    Ok(n) => {
                        buf.extend_from_slice(&plain[..n]);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            let n = self.sock.read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            let mut t = lock(tls);
            let mut input = &self.raw[..n];
            while !input.is_empty() {
                t.read_tls(&mut input)?;
                t.process_new_packets().map_err(tls_err)?;
            }
        }
    }

    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match &self.sock {
            Socket::Tcp(s) => s.set_read_timeout(t),
            Socket::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub fn shutdown(&self) {
        self.sock.shutdown();
    }
}

impl WriteHalf {
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(tls) = &self.tls else {
            return self.sock.write_all(data);
        };
        {
            let mut t = lock(tls);
            t.writer().write_all(data)?;
            while t.wants_write() {
                t.write_tls(&mut self.sealed)?;
            }
        }
        let result = self.sock.write_all(&self.sealed);
        self.sealed.clear();
        result
    }

    pub fn shutdown(&self) {
        self.sock.shutdown();
    }
}
