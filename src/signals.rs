//! Waiting for SIGTERM and SIGINT without a signal handler: the signals are
//! blocked in every thread (the mask is inherited, so this must run before
//! any thread starts) and one thread takes them with `sigwait`. No code runs
//! in signal context, so shutdown can take locks and log like any code.

/// The termination signals, blocked in this thread and every thread it starts.
pub struct TerminationSignals {
    set: libc::sigset_t,
}

impl TerminationSignals {
    /// Blocks SIGTERM and SIGINT. Call first thing in `main`.
    pub fn block() -> std::io::Result<TerminationSignals> {
        // SAFETY: sigset_t is plain data; the calls only read and write it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(std::io::Error::from_raw_os_error(rc));
            }
            Ok(TerminationSignals { set })
        }
    }

    /// Blocks the calling thread until one of the signals arrives; returns its name.
    pub fn wait(&self) -> &'static str {
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` was initialised by `block`.
            let rc = unsafe { libc::sigwait(&self.set, &mut sig) };
            if rc == 0 {
                return match sig {
                    libc::SIGTERM => "SIGTERM",
                    libc::SIGINT => "SIGINT",
                    _ => continue,
                };
            }
        }
    }
}
