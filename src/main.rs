//! Wiring only: read the configuration, start the server, wait for a
//! termination signal, drain, exit.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use message_service::api::Api;
use message_service::config::{Config, StatementCache, VARIABLES};
use message_service::http::{init_runtime, DrainFlag, Limits, Server, ServerConfig};
use message_service::pg::{PgConfig, Pool, PoolConfig, StatementMode};
use message_service::signals::TerminationSignals;
use message_service::store::Store;
use message_service::{devdb, log_error, log_info, log_warn, logging};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    // Before any thread starts, so that every thread inherits the mask.
    let signals = match TerminationSignals::block() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("message-service: cannot block termination signals: {e}");
            return ExitCode::FAILURE;
        }
    };

    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str);
    match command {
        Some("--help" | "-h" | "help") => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("message-service {VERSION}");
            return ExitCode::SUCCESS;
        }
        None | Some("serve" | "config") => {}
        Some(other) => {
            eprintln!("message-service: unknown argument {other:?}; see --help");
            return ExitCode::from(2);
        }
    }

    let config = match Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("message-service: {e}");
            return ExitCode::from(2);
        }
    };
    if command == Some("config") {
        print!("{}", config.describe());
        return ExitCode::SUCCESS;
    }

    logging::init(config.log_level, config.log_format);
    logging::install_panic_hook();

    // Before anything spawns a coroutine: the runtime is configured once.
    init_runtime(config.workers);

    // No URL: the run command's local database (see src/devdb.rs).
    let (url, local) = match config.database_url.clone() {
        Some(url) => (url, None),
        None => match devdb::start(std::path::Path::new(".data"), config.local_db_port) {
            Ok(db) => (db.url.clone(), Some(db)),
            Err(e) => {
                log_error!("{e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let pg = match PgConfig::parse(&url) {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("message-service: invalid DATABASE_URL: {e}");
            return ExitCode::from(2);
        }
    };
    let mode = match config.db_statement_cache {
        StatementCache::Prepare => StatementMode::Prepare,
        StatementCache::Describe => StatementMode::Describe,
        // Supabase's transaction pooler listens on 6543.
        StatementCache::Auto if pg.port == 6543 => StatementMode::Describe,
        StatementCache::Auto => StatementMode::Prepare,
    };
    let target = pg.target();
    let pool = match Pool::new(PoolConfig {
        pg,
        max_conns: config.db_max_conns,
        min_conns: config.db_min_conns,
        max_lifetime: config.db_max_conn_lifetime,
        max_idle: config.db_max_conn_idle_time,
        connect_timeout: config.db_connect_timeout,
        mode,
        query_timeout: message_service::pg::pool::DEFAULT_QUERY_TIMEOUT,
    }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("message-service: {e}");
            return ExitCode::from(2);
        }
    };
    if config.api_keys.is_empty() {
        log_warn!("API_KEY is not set: /api/* accepts requests without a key");
    }

    let draining = DrainFlag::new();
    let api = Arc::new(Api::new(
        draining.clone(),
        Store::new(pool.clone()),
        &config.api_keys,
    ));
    let server_config = ServerConfig {
        addr: SocketAddr::new(config.host, config.port),
        workers: config.workers,
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            body_timeout: config.header_timeout,
            max_connections: config.max_connections,
            ..Limits::default()
        },
    };
    let server = match Server::start(server_config, api, draining) {
        Ok(s) => s,
        Err(e) => {
            log_error!("cannot listen on {}:{}: {e}", config.host, config.port);
            return ExitCode::FAILURE;
        }
    };
    log_info!(
        "message-service {VERSION} listening on {} with {} workers (database {target}, \
         {} to {} connections, statements: {mode:?}; max body {} B, header timeout {:?}, \
         idle timeout {:?}, max connections {}, log {}/{})",
        server.local_addr(),
        config.workers,
        config.db_min_conns,
        config.db_max_conns,
        config.max_body_bytes,
        config.header_timeout,
        config.idle_timeout,
        config.max_connections,
        config.log_level,
        config.log_format,
    );

    if let Some(db) = &local {
        let port = server.local_addr().port();
        let key = config
            .api_keys
            .first()
            .map(|k| format!(" -H 'Authorization: Bearer {k}'"))
            .unwrap_or_default();
        println!(
            "\nLocal database ready (data in ./.data). Try:\n\n  curl -s -X POST http://127.0.0.1:{port}/api/v1/messages{key} \\\n    \
             -H 'Content-Type: application/json' \\\n    \
             -d '{{\"conversation_id\": \"{}\", \"content\": \"Olá, como posso ajudar?\", \"message_type\": \"outgoing\"}}'\n\n  \
             curl -s{key} http://127.0.0.1:{port}/api/v1/conversations/{}/messages\n",
            db.demo_conversation, db.demo_conversation
        );
    }

    let signal = signals.wait();
    log_info!(
        "{signal} received: draining {} connection(s) for up to {:?}",
        server.open_connections(),
        config.shutdown_timeout
    );
    if server.shutdown(config.shutdown_timeout) {
        log_info!("stopped cleanly");
    } else {
        log_error!("shutdown timeout reached; remaining connections were closed");
    }
    pool.close_all();
    drop(local);
    ExitCode::SUCCESS
}

fn help() -> String {
    let mut out = format!(
        "message-service {VERSION}: ingests and serves chat messages over PostgreSQL.\n\n\
         Usage:\n  message-service           serve (the default)\n  \
         message-service config    print the effective configuration, secrets redacted\n  \
         message-service --version\n  message-service --help\n\n\
         Configuration comes from the environment and from ./.env (the environment wins):\n"
    );
    for (name, default, meaning) in VARIABLES {
        out.push_str(&format!("  {name:<24} {default:<16} {meaning}\n"));
    }
    out
}
