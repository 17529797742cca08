//! Wiring only: read the configuration, start the server, wait for a
//! termination signal, drain, exit.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use message_service::api::Api;
use message_service::config::{Config, VARIABLES};
use message_service::http::{DrainFlag, Limits, Server, ServerConfig};
use message_service::signals::TerminationSignals;
use message_service::{log_error, log_info, logging};

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

    let draining = DrainFlag::new();
    let api = Arc::new(Api::new(draining.clone()));
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
        "message-service {VERSION} listening on {} with {} workers (max body {} B, \
         header timeout {:?}, idle timeout {:?}, max connections {}, log {}/{})",
        server.local_addr(),
        config.workers,
        config.max_body_bytes,
        config.header_timeout,
        config.idle_timeout,
        config.max_connections,
        config.log_level,
        config.log_format,
    );

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
