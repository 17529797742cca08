//! may_minihttp 0.1.11 answering `GET /health` with the same JSON body as
//! message-service, configured the same way (workers, unpinned), so that
//! bench/health.sh compares the two HTTP cores and nothing else.
//! Usage: minihttp-hello ADDR WORKERS

use std::io;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        if req.path() == "/health" {
            rsp.header("Content-Type: application/json");
            rsp.body(r#"{"status":"ok","service":"message-service"}"#);
        } else {
            rsp.status_code(404, "Not Found");
        }
        Ok(())
    }
}

struct Factory;

impl HttpServiceFactory for Factory {
    type Service = Hello;
    fn new_service(&self, _id: usize) -> Hello {
        Hello
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3101".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    may::config().set_workers(workers);
    may::config().set_worker_pin(false);
    let server = Factory.start(addr.as_str()).expect("bind");
    let _ = server.join();
}
