//! The service's HTTP API (`shared/API.md`): routes, authentication, and the
//! translation of every failure into its JSON error. Handlers validate what
//! the client sent (`validate`), call the store, and write JSON (`json`).

pub mod auth;
pub mod error;
pub mod json;
pub mod messages;
pub mod router;
pub mod validate;

use std::io::Write;
use std::time::Duration;

use crate::http::{self, DrainFlag, Request, Response};
use crate::store::Store;
use error::ApiError;
use router::{Lookup, Params, Router};

/// How long `/ready` waits for the database's answer.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

type HandlerFn = fn(&Api, &Request<'_>, &Params<'_>, &mut Response<'_>) -> Result<(), ApiError>;

/// A route's handler, and whether it needs an API key.
#[derive(Clone, Copy)]
struct Route {
    handler: HandlerFn,
    protected: bool,
}

/// The application: what every handler can reach.
pub struct Api {
    router: Router<Route>,
    draining: DrainFlag,
    store: Store,
    keys: auth::Keys,
}

impl Api {
    pub fn new(draining: DrainFlag, store: Store, api_keys: &[String]) -> Api {
        let open = |handler| Route {
            handler,
            protected: false,
        };
        let key = |handler| Route {
            handler,
            protected: true,
        };
        let router = Router::new()
            .route("GET", "/health", open(health))
            .route("GET", "/ready", open(ready))
            .route("POST", "/api/v1/messages", key(messages::create))
            .route(
                "POST",
                "/api/v1/messages/batch",
                key(messages::create_batch),
            )
            .route("GET", "/api/v1/messages/{id}", key(messages::get))
            .route("PATCH", "/api/v1/messages/{id}", key(messages::update))
            .route(
                "GET",
                "/api/v1/conversations/{conversation_id}/messages",
                key(messages::list),
            );
        Api {
            router,
            draining,
            store,
            keys: auth::Keys::new(api_keys),
        }
    }
}

impl http::Handler for Api {
    fn call(&self, req: &Request<'_>, res: &mut Response<'_>) {
        let outcome = match self.router.lookup(req.method, req.path) {
            Lookup::Found(route, params) => {
                if route.protected && !self.keys.allows(req) {
                    Err(ApiError::new(
                        401,
                        "unauthorized",
                        "a valid API key is required (Authorization: Bearer <key> or apikey: <key>)",
                    ))
                } else {
                    (route.handler)(self, req, &params, res)
                }
            }
            Lookup::MethodNotAllowed(allow) => {
                let message = format!("{} is not allowed here; allowed: {allow}", req.method);
                res.error(405, "method_not_allowed", &message, None);
                let _ = res.header("Allow", allow);
                Ok(())
            }
            Lookup::NotFound => Err(ApiError::not_found("no such route")),
        };
        if let Err(e) = outcome {
            e.write(res);
        }
    }
}

/// `GET /health`: liveness. Never touches the database.
fn health(
    _: &Api,
    _: &Request<'_>,
    _: &Params<'_>,
    res: &mut Response<'_>,
) -> Result<(), ApiError> {
    let _ = res
        .body()
        .write_all(br#"{"status":"ok","service":"message-service"}"#);
    Ok(())
}

/// `GET /ready`: a pooled round trip within a second; `503` once shutdown begins.
fn ready(
    api: &Api,
    _: &Request<'_>,
    _: &Params<'_>,
    res: &mut Response<'_>,
) -> Result<(), ApiError> {
    let reason = if api.draining.is_draining() {
        Some("shutting down".to_string())
    } else {
        api.store.ping(READY_TIMEOUT).err().map(|e| {
            crate::log_warn!("readiness check failed: {e}");
            "the database did not answer in time".to_string()
        })
    };
    match reason {
        None => {
            let _ = res.body().write_all(br#"{"status":"ready"}"#);
        }
        Some(reason) => {
            res.set_status(503);
            let _ = res.header("Retry-After", error::RETRY_AFTER_SECS);
            let _ = serde_json::to_writer(
                &mut res.body(),
                &serde_json::json!({"status": "unavailable", "reason": reason}),
            );
        }
    }
    Ok(())
}
