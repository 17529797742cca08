//! Benchmark (not a test): SELECT by primary key through the pool from many
//! coroutines, reporting transactions per second like pgbench does.
//! Usage: cargo bench --bench pg_pool -- URL [SECONDS] [COROUTINES] [MAX_CONNS] [ROWS]
//! bench/pg.sh runs it beside pgbench on the same cluster.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use message_service::pg::{oid, Param, PgConfig, Pool, PoolConfig, Statement, StatementMode};

static SELECT: Statement = Statement {
    sql: "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    param_types: &[oid::INT4],
};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let url = args
        .first()
        .expect("usage: pg_pool URL [SECONDS] [COROUTINES] [MAX_CONNS] [ROWS]");
    let arg = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let seconds = arg(1, 10);
    let coroutines = arg(2, 64);
    let max_conns = arg(3, 20) as usize;
    let rows = arg(4, 1_000_000);

    message_service::http::init_runtime(2);
    let pool = Pool::new(PoolConfig {
        pg: PgConfig::parse(url).expect("database URL"),
        max_conns,
        min_conns: max_conns,
        max_lifetime: Duration::from_secs(3600),
        max_idle: Duration::from_secs(3600),
        connect_timeout: Duration::from_secs(5),
        mode: StatementMode::Prepare,
        query_timeout: Duration::from_secs(30),
    })
    .expect("pool");
    // Warm up: connections open and statements prepared.
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.status().open < max_conns && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }

    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..coroutines)
        .map(|i| {
            let (pool, done, count, errors) =
                (pool.clone(), done.clone(), count.clone(), errors.clone());
            may::go!(move || {
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (i + 1);
                let mut local = 0;
                while !done.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let aid = (x % rows) as i32 + 1;
                    match pool.query(&SELECT, &[Param::Int4(aid)]) {
                        Ok(r) if r.len() == 1 => local += 1,
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                count.fetch_add(local, Ordering::Relaxed);
            })
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    done.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    println!(
        "message-service pool: {coroutines} coroutines, {max_conns} connections: {:.0} tps ({n} queries, {} errors, {elapsed:.1} s)",
        n as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
}
