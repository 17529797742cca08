//! The service's HTTP API: routes requests to handlers and answers unknown
//! paths and methods with the JSON errors of `shared/API.md`.

pub mod router;

use std::io::Write;

use crate::http::{self, DrainFlag, Request, Response};
use router::{Lookup, Params, Router};

type HandlerFn = fn(&Api, &Request<'_>, &Params<'_>, &mut Response<'_>);

/// The application: what every handler can reach.
pub struct Api {
    router: Router<HandlerFn>,
    #[allow(dead_code)] // read by /ready
    draining: DrainFlag,
}

impl Api {
    pub fn new(draining: DrainFlag) -> Api {
        let router = Router::new().route("GET", "/health", health as HandlerFn);
        Api { router, draining }
    }
}

impl http::Handler for Api {
    fn call(&self, req: &Request<'_>, res: &mut Response<'_>) {
        match self.router.lookup(req.method, req.path) {
            Lookup::Found(handler, params) => handler(self, req, &params, res),
            Lookup::MethodNotAllowed(allow) => {
                let message = format!("{} is not allowed here; allowed: {allow}", req.method);
                res.error(405, "method_not_allowed", &message, None);
                let _ = res.header("Allow", allow);
            }
            Lookup::NotFound => res.error(404, "not_found", "no such route", None),
        }
    }
}

/// `GET /health`: liveness. Never touches the database.
fn health(_: &Api, _: &Request<'_>, _: &Params<'_>, res: &mut Response<'_>) {
    let _ = res
        .body()
        .write_all(br#"{"status":"ok","service":"message-service"}"#);
}
