//! `techpack serve` against pgbench on the same PostgreSQL database (issue 12): what the HTTP
//! layer costs on top of the SQL it runs, how much memory the server holds under load, and
//! what a large upload adds to it.
//!
//! `cargo bench -p techpack-cli --bench serve` needs a PostgreSQL server (the one of
//! `TECHPACK_TEST_DATABASE_URL`, else `DATABASE_URL`, else postgres://postgres@127.0.0.1:5432/postgres)
//! and `pgbench` (`PGBENCH`, else `pgbench` on the `PATH`). It creates a fresh, migrated
//! database with a random name (the tests' template), starts the real binary,
//! `techpack serve --workers 0`, on it with a JWT secret and local blobs in a temporary folder,
//! and in one run measures, at the same client concurrency (`TECHPACK_BENCH_CLIENTS`, default
//! 8; each run `TECHPACK_BENCH_SECS`, default 10, after a 2 s warm-up):
//!
//! 1. create-file: `pgbench -M prepared -c N -j 2` running `pgbench/create_file.sql`, then N
//!    HTTP clients sending `POST /api/v1/files`;
//! 2. latest-50-files, on the table the first step filled (the same rows for both):
//!    `pgbench/latest_files.sql`, then `GET /api/v1/files?limit=50`;
//! 3. the server's resident memory under that load (VmHWM, sampled VmRSS);
//! 4. an upload of `TECHPACK_BENCH_UPLOAD_BYTES` (default 1 GiB) to `POST /api/v1/files/upload`,
//!    streamed from a generator (never whole in the client), and the server's RSS growth
//!    (VmRSS before, VmHWM reset and read after). When the server refuses it, the refusal is
//!    printed and an upload at the limit it names is measured instead.
//!
//! Every HTTP request carries its own freshly signed HS256 token (one of four users), so token
//! checks are part of the API's cost. It prints the throughput, p50 and p99 of both sides, the
//! ratios and marks against the targets: API ≥ 0.7 × pgbench on both workloads, RSS under load
//! ≤ 100 MB, RSS growth of the upload < 50 MB (MB = 10^6 bytes). Targets are not asserted:
//! the figures are the result. A request that fails, or SQL out of step with the store, fails
//! the bench.
//!
//! On a small machine both sides are bound by CPU, so the bench also prints the CPU time per
//! operation by process (PostgreSQL, the server, the load generator, the rest) from /proc, and
//! warns when processes outside the bench (a build next to it) took more than 5 % of the CPU
//! during a run: such figures are not comparable. Autovacuum is off on the table and a
//! checkpoint precedes each run, so that neither lands in one side's run only; the reads get
//! an explicit VACUUM ANALYZE once create-file has filled the table.
//!
//! **Why the pgbench scripts are the store's SQL, and keeping them in step.** The baseline is
//! meant to be exactly the database work of one API call, so that the ratio is the cost of
//! everything else (HTTP, tokens, JSON, the pool): the scripts run the transaction start of
//! `PostgresStore::begin_with` (`set_config` of the role `techpack_app` and of the user's claims,
//! transaction-local, so row level security applies as it does for the API), then the INSERT of
//! `create_tech_file` or the query `sql::latest_files` builds without filters, with the same
//! columns, clauses and parameters (pgbench's prepared mode binds every `:variable` as sqlx
//! binds values; the JSON documents are parameters too, so both sides parse them per row), then
//! COMMIT. Before anything runs, [`check_scripts_match_store`] reads
//! `crates/store/src/postgres.rs` and `crates/store/src/sql.rs` (compiled in with
//! `include_str!`) and fails if the INSERT's column list, its ON CONFLICT / RETURNING clauses,
//! the `set_config` statement or the page query's pieces differ from the scripts: whoever
//! changes that SQL updates `pgbench/*.sql` to match. What pgbench cannot do the same way
//! (an id made in SQL rather than by `Uuid::now_v7`, the user chosen by `random()`) is said in
//! the scripts.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use techpack_store::test_support::TestDatabase;
use uuid::Uuid;

/// The store's SQL, compiled in so that the bench notices when it changes.
const STORE_POSTGRES: &str = include_str!("../../store/src/postgres.rs");
const STORE_SQL: &str = include_str!("../../store/src/sql.rs");
const CREATE_SCRIPT: &str = include_str!("pgbench/create_file.sql");
const LATEST_SCRIPT: &str = include_str!("pgbench/latest_files.sql");

/// Users the clients act for; the scripts derive the same ids from `random(1, :users)`.
const USERS: u32 = 4;
/// HS256 needs at least 32 characters (the server refuses shorter secrets).
const JWT_SECRET: &str = "techpack-bench-jwt-secret-0123456789abcdefghij";
const AUDIENCE: &str = "authenticated";

/// The row both sides create, as `POST /api/v1/files` takes it and pgbench binds it (`-D`).
const FILE_TYPE: &str = "base_view";
const VIEW_TYPE: &str = "front";
const STATUS: &str = "processing";
const AI_MODEL: &str = "gpt-4.1-mini";
const GENERATION_PROMPT: &str =
    "Analyse the front view of the product: category, colours, measurements, details.";
const CONFIDENCE_SCORE: f64 = 0.87;
/// About the size of a real analysis summary, so that a page of 50 is a realistic payload.
const ANALYSIS_DATA: &str = r##"{"category":"tops","view":"front","colors":[{"name":"red","hex":"#b3262e","lab":[39.1,57.2,32.4],"share":0.61},{"name":"white","hex":"#f4f2ee","lab":[95.6,0.2,2.1],"share":0.27},{"name":"navy","hex":"#1d2a44","lab":[17.3,2.9,-18.8],"share":0.12}],"measurements":{"chest_width_cm":52.5,"body_length_cm":71.0,"sleeve_length_cm":21.5,"hem_width_cm":50.0},"details":[{"name":"collar","box":[0.38,0.05,0.24,0.12]},{"name":"placket","box":[0.46,0.12,0.08,0.2]},{"name":"hem","box":[0.1,0.88,0.8,0.1]}],"reference":"category default"}"##;
const METADATA: &str = r#"{"source":"bench","photo_sha256":"5f0c7d5e3b0d4c4bb1e8f3a2c9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9","width":1200,"height":1600}"#;

/// Where the figures are compared.
const RATIO_TARGET: f64 = 0.7;
const RSS_TARGET_BYTES: u64 = 100_000_000;
const UPLOAD_GROWTH_TARGET_BYTES: u64 = 50_000_000;
/// Above this share of the busy time taken by processes outside the bench, a run says that its
/// figures are not reliable (on 2 cores a build next to it halves them).
const FOREIGN_CPU_WARNING: f64 = 0.05;

fn main() {
    // One process-wide TLS provider, as the binary installs it: two linked providers make some
    // TLS paths panic (reqwest builds a TLS configuration even for plain HTTP).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    check_scripts_match_store();
    let config = Config::from_env();
    let pgbench = std::env::var("PGBENCH").unwrap_or_else(|_| "pgbench".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    // Declared before the server, so it is dropped after it: the server is killed first.
    let database = runtime.block_on(TestDatabase::create());
    let dir = tempfile::tempdir().expect("a temporary folder");
    let server = ServerProcess::start(&database.url, dir.path());
    runtime.block_on(server.wait_ready());
    let api = Api::new(&server.base, config.clients, database.name());
    let pg = Pgbench {
        program: pgbench,
        url: database.url.clone(),
        database: database.name().to_owned(),
        clients: config.clients,
        logs: dir.path().join("pgbench-logs"),
    };
    eprintln!(
        "serve bench: {} clients, {} s per run, database {}, server pid {}",
        config.clients,
        config.secs,
        database.name(),
        server.pid()
    );

    // create-file, then latest-50 on the table create-file filled.
    let maintain = |statements: &[&str]| runtime.block_on(maintain(&database.url, statements));
    maintain(NO_AUTOVACUUM);
    let peak = RssPeak::start(server.pid());
    maintain(BEFORE_A_RUN);
    eprintln!("running pgbench create-file");
    let create_pg = pg.run(
        "create-file",
        &script_path("create_file.sql"),
        config.secs,
        server.pid(),
    );
    maintain(BEFORE_A_RUN);
    eprintln!("running API create-file");
    let create_api = runtime.block_on(api.run(Workload::CreateFile, config.secs, server.pid()));
    let rows = maintain(BEFORE_THE_READS).unwrap_or_default();
    eprintln!("running pgbench latest-50");
    let latest_pg = pg.run(
        "latest-50",
        &script_path("latest_files.sql"),
        config.secs,
        server.pid(),
    );
    maintain(BEFORE_A_RUN);
    eprintln!("running API latest-50");
    let latest_api = runtime.block_on(api.run(Workload::Latest50, config.secs, server.pid()));
    let pool = maintain(SERVER_CONNECTIONS).unwrap_or_default();
    let sampled_rss = peak.stop();
    let hwm_under_load = proc_status_bytes(server.pid(), "VmHWM").unwrap_or(0);
    let rss_under_load = hwm_under_load.max(sampled_rss);

    let upload = runtime.block_on(upload(&server, config.upload_bytes));

    print_report(&Report {
        config: &config,
        rows,
        pool,
        create: (&create_pg, &create_api),
        latest: (&latest_pg, &latest_api),
        rss_under_load,
        upload: &upload,
    });
    drop(api);
    drop(server);
    drop(database);
}

/// The knobs of one run, from the environment.
struct Config {
    clients: usize,
    secs: u64,
    upload_bytes: u64,
}

impl Config {
    fn from_env() -> Self {
        fn number(name: &str, default: u64) -> u64 {
            match std::env::var(name) {
                Ok(text) => text
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a whole number, not `{text}`")),
                Err(_) => default,
            }
        }
        let clients = number("TECHPACK_BENCH_CLIENTS", 8).max(2);
        Self {
            clients: usize::try_from(clients).expect("a client count"),
            secs: number("TECHPACK_BENCH_SECS", 10).max(1),
            upload_bytes: number("TECHPACK_BENCH_UPLOAD_BYTES", 1 << 30).max(64 * 1024),
        }
    }
}

const WARMUP: Duration = Duration::from_secs(2);

fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/pgbench")
        .join(name)
}

fn user_id(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8000-{n:012}")).expect("a user id")
}

fn product_id(n: u32) -> Uuid {
    Uuid::parse_str(&format!("00000000-0000-4000-8001-{n:012}")).expect("a product id")
}

// ---------------------------------------------------------------------------------------------
// The scripts against the store's source.

/// Fails when the pgbench scripts no longer run the SQL the store runs (see the module's doc).
fn check_scripts_match_store() {
    let out_of_step = |what: &str| -> ! {
        panic!(
            "{what}: the store's SQL changed, so crates/cli/benches/pgbench/*.sql no longer run what the API runs; update them to match (see the doc comment of crates/cli/benches/serve.rs)"
        )
    };

    // begin_with: role and claims, transaction-local.
    let set_config = "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), set_config('request.jwt.claim.sub', $3, true)";
    if !unescaped(STORE_POSTGRES).contains(set_config)
        || !STORE_POSTGRES.contains("const APP_ROLE: &str = \"techpack_app\";")
        || !STORE_POSTGRES.contains(r#"serde_json::json!({ "sub": id, "role": "authenticated" })"#)
    {
        out_of_step("PostgresStore::begin_with's set_config of the role and claims");
    }
    let script_set_config = "SELECT set_config('role', 'techpack_app', true), set_config('request.jwt.claims', '{\"role\":\"authenticated\",\"sub\":\"";
    for (name, script) in [
        ("create_file.sql", CREATE_SCRIPT),
        ("latest_files.sql", LATEST_SCRIPT),
    ] {
        let script = normalized(script);
        let begin = script.find("BEGIN;").unwrap_or_else(|| out_of_step(name));
        let rest = &script[begin..];
        if !rest.starts_with(&format!("BEGIN; {script_set_config}"))
            || !rest.contains("set_config('request.jwt.claim.sub', ")
            || !rest.trim_end().ends_with("COMMIT;")
        {
            out_of_step(&format!("{name}: the transaction start of begin_with"));
        }
    }

    // create_tech_file's INSERT: the columns, and everything after VALUES (…).
    let store = unescaped(STORE_POSTGRES);
    let start = store
        .find("INSERT INTO public.tech_files AS t (id, lineage_id,")
        .unwrap_or_else(|| out_of_step("create_tech_file's INSERT"));
    let end = start
        + store[start..]
            .find("RETURNING to_jsonb(t)::text")
            .unwrap_or_else(|| out_of_step("create_tech_file's RETURNING"))
        + "RETURNING to_jsonb(t)::text".len();
    let store_insert = normalized(&store[start..end]);
    let script = normalized(CREATE_SCRIPT);
    let script_start = script
        .find("INSERT INTO public.tech_files AS t (")
        .unwrap_or_else(|| out_of_step("create_file.sql's INSERT"));
    let script_end = script_start
        + script[script_start..]
            .find(';')
            .unwrap_or_else(|| out_of_step("create_file.sql's INSERT"));
    let script_insert = &script[script_start..script_end];
    let columns = |insert: &str| -> String {
        let open = insert.find('(').expect("a column list");
        let close = open + insert[open..].find(')').expect("a column list");
        insert[open + 1..close].to_owned()
    };
    if columns(&store_insert) != columns(script_insert) {
        out_of_step(&format!(
            "create_tech_file inserts ({}), create_file.sql ({})",
            columns(&store_insert),
            columns(script_insert)
        ));
    }
    let tail = |insert: &str| -> String {
        insert[insert.find(" ON CONFLICT").unwrap_or(insert.len())..].to_owned()
    };
    if tail(&store_insert).is_empty() || tail(&store_insert) != tail(script_insert) {
        out_of_step(&format!(
            "create_tech_file ends `{}`, create_file.sql `{}`",
            tail(&store_insert),
            tail(script_insert)
        ));
    }
    // 23 parameters, the first for both id and lineage_id.
    if !store_insert.contains("VALUES ($1, $1, $2,") || !store_insert.contains("$23)") {
        out_of_step("create_tech_file's VALUES");
    }

    // sql::latest_files without filters, on PostgreSQL.
    for piece in [
        r#""SELECT to_jsonb({alias})::text AS doc FROM {} AS {alias}""#,
        r#"Table::Files => "public.tech_files""#,
        r#"Dialect::Postgres => self.push(&format!("{alias}.is_latest"))"#,
        r#"q.select_docs(Table::Files, "t")"#,
        r#"q.push(" AND t.status <> 'archived'");"#,
        r#"q.push(" ORDER BY t.created_at DESC, t.id DESC LIMIT ")"#,
        ".bind(Bind::Int(i64::from(page_size) + 1));",
    ] {
        if !STORE_SQL.contains(piece) {
            out_of_step(&format!("sql::latest_files no longer has `{piece}`"));
        }
    }
    let page_query = "SELECT to_jsonb(t)::text AS doc FROM public.tech_files AS t WHERE t.is_latest AND t.status <> 'archived' ORDER BY t.created_at DESC, t.id DESC LIMIT :limit;";
    let latest = normalized(LATEST_SCRIPT);
    if !latest.contains(page_query) || !latest.contains("\\set limit 51") {
        out_of_step("latest_files.sql is not sql::latest_files's page of 50 (+1)");
    }
}

/// Rust source with its string continuations (`\` + newline + indentation) joined.
fn unescaped(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut lines = source.split('\n').peekable();
    while let Some(line) = lines.next() {
        if let Some(continued) = line.strip_suffix('\\') {
            out.push_str(continued);
            if let Some(next) = lines.peek_mut() {
                *next = next.trim_start();
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// SQL without `--` comment lines, with every run of whitespace one space.
fn normalized(sql: &str) -> String {
    sql.lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
}

// ---------------------------------------------------------------------------------------------
// The server.

/// `techpack serve` as a child process, killed when dropped (also on a panic).
struct ServerProcess {
    child: Child,
    base: String,
    log: PathBuf,
}

impl ServerProcess {
    fn start(database_url: &str, dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let blobs = dir.join("blobs");
        let spool = dir.join("tmp");
        fs::create_dir_all(&blobs).expect("the blob folder");
        fs::create_dir_all(&spool).expect("the spool folder");
        let log = dir.join("server.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_techpack"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--workers", "0"])
            // Nothing of the caller's settings (a techpack.toml, TECHPACK_* variables) leaks in.
            .env_clear()
            .current_dir(dir)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TMPDIR", &spool)
            .env("DATABASE_URL", database_url)
            .env("TECHPACK_DATA_DIR", dir.join("data"))
            .env(
                "TECHPACK_STORAGE_URL",
                format!("file://{}", blobs.display()),
            )
            .env("TECHPACK_JWT_SECRET", JWT_SECRET)
            // Above the upload, so that both the body limit and the blob store's limit behind
            // it let the 1 GiB upload through.
            .env("TECHPACK_SERVER_MAX_BODY_BYTES", (4u64 << 30).to_string())
            .env("TECHPACK_MAX_BLOB_BYTES", (4u64 << 30).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("the server's log file"));
        // The server's own default (JSON request logs at info) unless the caller asks for another.
        if let Some(filter) = std::env::var_os("TECHPACK_LOG") {
            command.env("TECHPACK_LOG", filter);
        }
        let child = command.spawn().expect("start techpack serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            if Instant::now() > deadline || !Path::new(&format!("/proc/{}", self.pid())).exists() {
                panic!(
                    "techpack serve did not become ready; its log:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| {
        line.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Sets the process's VmHWM back to its current RSS (clear_refs 5, Linux 4.0+), so a later
/// VmHWM is the peak of what happened since. Returns whether the kernel took it.
fn reset_peak(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// The highest VmRSS seen while it runs, sampled every 20 ms: a second opinion on VmHWM, and
/// the figure where VmHWM cannot be reset.
struct RssPeak {
    running: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl RssPeak {
    fn start(pid: u32) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = 0;
            while flag.load(Ordering::Relaxed) {
                peak = peak.max(proc_status_bytes(pid, "VmRSS").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        Self { running, sampler }
    }

    fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        self.sampler.join().unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// The two sides.

/// Throughput, latencies and CPU of one run.
struct Run {
    per_sec: f64,
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU time per transaction or request: where the difference goes on a small machine.
    cpu: CpuPerOp,
}

impl Run {
    fn from_latencies(mut micros: Vec<u64>, per_sec: f64, cpu: CpuUsed) -> Self {
        micros.sort_unstable();
        let at = |p: f64| -> f64 {
            if micros.is_empty() {
                return f64::NAN;
            }
            let rank = ((p * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            micros[rank - 1] as f64 / 1000.0
        };
        let count = micros.len() as u64;
        Self {
            per_sec,
            count,
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            cpu: cpu.per_op(count),
        }
    }
}

/// CPU time in clock ticks (/proc reports USER_HZ, 100 per second): the whole machine's busy
/// time and each process's, so that a run can say where its CPU went and whether anything else
/// on the machine (a build, say) took part of it.
#[derive(Debug, Clone, Default)]
struct CpuTicks {
    machine: u64,
    /// pid → (command name, utime + stime, command line; empty for a kernel thread).
    processes: HashMap<u32, (String, u64, String)>,
}

impl CpuTicks {
    fn now() -> Self {
        let machine = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let fields: Vec<u64> = stat
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|n| n.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal: all but idle and iowait.
                let all: u64 = fields.iter().take(8).sum();
                Some(all - fields.get(3).copied()? - fields.get(4).copied()?)
            })
            .unwrap_or(0);
        let processes = fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| {
                        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
                        // A backend's command line names its database (its process title).
                        let cmdline = fs::read(entry.path().join("cmdline"))
                            .map(|line| String::from_utf8_lossy(&line).into_owned())
                            .unwrap_or_default();
                        Some((pid, (comm.trim().to_owned(), process_ticks(pid)?, cmdline)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { machine, processes }
    }

    /// What was used since `before`, by whom. PostgreSQL is every process named `postgres`
    /// that still runs (pgbench's backends end with it, so on its side only the machine's
    /// total holds them) but the backends of other databases; a process that started during
    /// the run counts whole. Kernel threads are left to the machine's total.
    fn since(&self, before: &Self, server: u32, database: &str) -> CpuUsed {
        let mut used = CpuUsed {
            machine: self.machine.saturating_sub(before.machine),
            ..CpuUsed::default()
        };
        let me = std::process::id();
        for (pid, (comm, ticks, cmdline)) in &self.processes {
            let earlier = before
                .processes
                .get(pid)
                .filter(|(then, _, _)| then == comm)
                .map_or(0, |(_, ticks, _)| *ticks);
            let delta = ticks.saturating_sub(earlier);
            if *pid == server {
                used.server += delta;
            } else if *pid == me || comm == "pgbench" {
                used.client += delta;
            } else if comm == "postgres" {
                // Backends are titled `postgres: … USER DATABASE HOST(PORT) STATE`.
                let backend_of_another = cmdline.contains("127.0.0.1(")
                    || cmdline.contains("[local]")
                    || cmdline.contains("::1(");
                if backend_of_another && !cmdline.contains(database) {
                    used.foreign += delta;
                } else {
                    used.postgres += delta;
                }
            } else if !cmdline.is_empty() {
                used.foreign += delta;
            }
        }
        used
    }
}

/// Ticks used during one run.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUsed {
    machine: u64,
    server: u64,
    /// The load: this process (the HTTP clients) or pgbench.
    client: u64,
    postgres: u64,
    /// Processes that are not part of the bench.
    foreign: u64,
}

impl CpuUsed {
    fn per_op(self, count: u64) -> CpuPerOp {
        let ms = |ticks: u64| ticks as f64 * 10.0 / count.max(1) as f64;
        CpuPerOp {
            machine: ms(self.machine),
            server: ms(self.server),
            client: ms(self.client),
            postgres: ms(self.postgres),
            foreign_share: self.foreign as f64 / self.machine.max(1) as f64,
        }
    }
}

/// Milliseconds of CPU per transaction or request, and the share of the machine's busy time
/// that other processes took.
#[derive(Debug, Clone, Copy, Default)]
struct CpuPerOp {
    machine: f64,
    server: f64,
    client: f64,
    postgres: f64,
    foreign_share: f64,
}

/// utime + stime of /proc/PID/stat (fields 14 and 15, after the command's parenthesis).
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// pgbench against the bench's database.
struct Pgbench {
    program: String,
    url: String,
    /// The database's name, to tell its backends from other databases' in the CPU figures.
    database: String,
    clients: usize,
    logs: PathBuf,
}

impl Pgbench {
    /// A warm-up run, then the measured one with per-transaction logs for the percentiles.
    /// Its CPU is measured from 1 s after the start to 1 s before the end, while its
    /// backends live (they end with pgbench), over the transactions that ended in between.
    fn run(&self, name: &str, script: &Path, secs: u64, server: u32) -> Run {
        finish(name, self.command(script, WARMUP.as_secs(), None).output());
        let logs = self.logs.join(name);
        fs::create_dir_all(&logs).expect("a pgbench log folder");
        let mut command = self.command(script, secs, Some(&logs));
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("running {} ({error}): set PGBENCH", self.program));
        let window = (secs >= 3).then(|| {
            std::thread::sleep(Duration::from_secs(1));
            let (from, before) = (epoch_micros(), CpuTicks::now());
            std::thread::sleep(Duration::from_secs(secs - 2));
            let (to, after) = (epoch_micros(), CpuTicks::now());
            (from, to, after.since(&before, server, &self.database))
        });
        let output = finish(name, child.wait_with_output());
        let tps = output
            .lines()
            .find_map(|line| line.strip_prefix("tps = "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|tps| tps.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{output}"));
        let failed = output
            .lines()
            .find_map(|line| line.strip_prefix("number of failed transactions: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert_eq!(failed, 0, "pgbench {name}: failed transactions:\n{output}");
        // Per-transaction log lines: client transaction_no latency_us script_no epoch_s us.
        let mut micros = Vec::new();
        let mut in_window = 0u64;
        for entry in fs::read_dir(&logs).expect("pgbench's logs") {
            let text = fs::read_to_string(entry.expect("a log file").path()).expect("a log");
            for line in text.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let Some(latency) = fields.get(2).and_then(|n| n.parse::<u64>().ok()) else {
                    continue;
                };
                micros.push(latency);
                let ended = fields
                    .get(4)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1_000_000
                    + fields
                        .get(5)
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                if let Some((from, to, _)) = window
                    && (from..to).contains(&ended)
                {
                    in_window += 1;
                }
            }
        }
        let count = micros.len() as u64;
        let mut run = Run::from_latencies(micros, tps, CpuUsed::default());
        run.cpu = match window {
            Some((_, _, used)) => used.per_op(in_window),
            None => CpuUsed::default().per_op(count),
        };
        run
    }

    fn command(&self, script: &Path, secs: u64, logs: Option<&Path>) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(["--no-vacuum", "--protocol=prepared"])
            .arg(format!("--file={}", script.display()))
            .arg(format!("--client={}", self.clients))
            .arg("--jobs=2")
            .arg(format!("--time={secs}"))
            .args(["-D", &format!("users={USERS}")])
            .args(["-D", &format!("file_type={FILE_TYPE}")])
            .args(["-D", &format!("view_type={VIEW_TYPE}")])
            .args(["-D", &format!("status={STATUS}")])
            .args(["-D", &format!("ai_model={AI_MODEL}")])
            .args(["-D", &format!("generation_prompt={GENERATION_PROMPT}")])
            .args(["-D", &format!("confidence_score={CONFIDENCE_SCORE}")])
            .args(["-D", &format!("analysis_data={ANALYSIS_DATA}")])
            .args(["-D", &format!("metadata={METADATA}")]);
        if let Some(logs) = logs {
            command
                .arg("--log")
                .arg(format!("--log-prefix={}", logs.join("tx").display()));
        }
        // pgbench prints a few lines: the pipes never fill before it ends.
        command
            .arg(&self.url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

/// pgbench's output, or a panic with it when pgbench failed.
fn finish(name: &str, output: std::io::Result<std::process::Output>) -> String {
    let output = output.unwrap_or_else(|error| panic!("pgbench {name}: {error}: set PGBENCH"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "pgbench {name} failed:\n{text}");
    text
}

fn epoch_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_micros() as u64)
        .unwrap_or_default()
}

/// Runs maintenance statements on the bench's database, outside any measured run, and
/// returns the value of the last one when it is a count.
async fn maintain(url: &str, statements: &[&str]) -> Option<i64> {
    use sqlx::{Connection as _, Row as _};
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the bench database");
    let mut last = None;
    for &statement in statements {
        // The simple protocol: VACUUM and CHECKPOINT are not for prepared statements.
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .fetch_optional(&mut conn)
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
        last = row.and_then(|row| row.try_get::<i64, _>(0).ok());
    }
    conn.close().await.ok();
    last
}

/// Background work that would land in one run and not the other is done between runs: no
/// autovacuum on the table (the reads get an explicit VACUUM ANALYZE once the table is
/// filled), and a checkpoint before each run so that none falls due in the middle of one.
const NO_AUTOVACUUM: &[&str] = &[
    "ALTER TABLE public.tech_files SET (autovacuum_enabled = false, toast.autovacuum_enabled = false)",
];
const BEFORE_A_RUN: &[&str] = &["CHECKPOINT"];
/// The planner's statistics and visibility map of the filled table, then how many rows the
/// reads page through.
const BEFORE_THE_READS: &[&str] = &[
    "VACUUM (ANALYZE) public.tech_files",
    "CHECKPOINT",
    "SELECT count(*) FROM public.tech_files",
];

/// The server's pooled connections to the bench's database (pgbench names itself).
const SERVER_CONNECTIONS: &[&str] = &[
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
     AND pid <> pg_backend_pid() AND application_name <> 'pgbench'",
];

#[derive(Debug, Clone, Copy)]
enum Workload {
    CreateFile,
    Latest50,
}

/// Claims as Supabase issues them; `sub` is the acting user.
#[derive(Serialize)]
struct Claims {
    sub: String,
    aud: &'static str,
    role: &'static str,
    iat: u64,
    exp: u64,
}

/// HTTP clients against the server, each request with a token signed for it.
struct Api {
    client: reqwest::Client,
    base: String,
    clients: usize,
    /// The database's name, to tell its backends from other databases' in the CPU figures.
    database: String,
    key: Arc<EncodingKey>,
    /// The JSON body of `POST /api/v1/files`, one per user (the product is the user's).
    bodies: Arc<BTreeMap<u32, Bytes>>,
}

impl Api {
    fn new(base: &str, clients: usize, database: &str) -> Self {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(clients)
            .build()
            .expect("an HTTP client");
        let analysis: serde_json::Value =
            serde_json::from_str(ANALYSIS_DATA).expect("the analysis is JSON");
        let metadata: serde_json::Value =
            serde_json::from_str(METADATA).expect("the metadata is JSON");
        let bodies = (1..=USERS)
            .map(|n| {
                let body = serde_json::json!({
                    "product": product_id(n),
                    "file_type": FILE_TYPE,
                    "view_type": VIEW_TYPE,
                    "status": STATUS,
                    "analysis_data": analysis,
                    "metadata": metadata,
                    "ai_model": AI_MODEL,
                    "generation_prompt": GENERATION_PROMPT,
                    "confidence_score": CONFIDENCE_SCORE,
                });
                (n, Bytes::from(serde_json::to_vec(&body).expect("a body")))
            })
            .collect();
        Self {
            client,
            base: base.to_owned(),
            clients,
            database: database.to_owned(),
            key: Arc::new(EncodingKey::from_secret(JWT_SECRET.as_bytes())),
            bodies: Arc::new(bodies),
        }
    }

    /// A warm-up, then `secs` seconds of `clients` loops sending `workload` back to back.
    async fn run(&self, workload: Workload, secs: u64, server: u32) -> Run {
        self.load(workload, WARMUP, server).await;
        self.load(workload, Duration::from_secs(secs), server).await
    }

    async fn load(&self, workload: Workload, duration: Duration, server: u32) -> Run {
        let before = CpuTicks::now();
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::with_capacity(self.clients);
        for task in 0..self.clients {
            let client = self.client.clone();
            let key = self.key.clone();
            let bodies = self.bodies.clone();
            let create = format!("{}/api/v1/files", self.base);
            let latest = format!("{}/api/v1/files?limit=50", self.base);
            tasks.push(tokio::spawn(async move {
                let mut random = fastrand::Rng::with_seed(task as u64 + 1);
                let mut micros = Vec::with_capacity(65_536);
                while Instant::now() < deadline {
                    let user = random.u32(1..=USERS);
                    let token = sign(&key, user);
                    let sent = Instant::now();
                    let (request, expected) = match workload {
                        Workload::CreateFile => (
                            client
                                .post(&create)
                                .header(reqwest::header::CONTENT_TYPE, "application/json")
                                .body(bodies[&user].clone()),
                            reqwest::StatusCode::CREATED,
                        ),
                        Workload::Latest50 => (client.get(&latest), reqwest::StatusCode::OK),
                    };
                    let response = request
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap_or_else(|error| panic!("{workload:?}: {error}"));
                    let status = response.status();
                    let body = response
                        .bytes()
                        .await
                        .unwrap_or_else(|error| panic!("{workload:?}: reading the body: {error}"));
                    assert_eq!(
                        status,
                        expected,
                        "{workload:?}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    micros.push(sent.elapsed().as_micros() as u64);
                    // Full pages, or the reads would be cheaper than pgbench's 51 rows.
                    if micros.len() == 1 && matches!(workload, Workload::Latest50) {
                        let page: serde_json::Value =
                            serde_json::from_slice(&body).expect("a page of files");
                        let files = page["files"].as_array().map_or(0, Vec::len);
                        assert_eq!(files, 50, "a page of 50 files");
                    }
                }
                micros
            }));
        }
        let mut micros = Vec::new();
        for task in tasks {
            micros.extend(task.await.expect("a client task"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = CpuTicks::now().since(&before, server, &self.database);
        let per_sec = micros.len() as f64 / elapsed;
        Run::from_latencies(micros, per_sec, cpu)
    }
}

/// A fresh HS256 token for user `n`, valid for an hour.
fn sign(key: &EncodingKey, n: u32) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default();
    let claims = Claims {
        sub: user_id(n).to_string(),
        aud: AUDIENCE,
        role: "authenticated",
        iat: now,
        exp: now + 3600,
    };
    jsonwebtoken::encode(&Header::default(), &claims, key).expect("a signed token")
}

// ---------------------------------------------------------------------------------------------
// The upload.

/// What one upload did to the server.
struct Upload {
    bytes: u64,
    /// `201`, another status with its error code, or how the connection failed.
    outcome: String,
    accepted: bool,
    rss_before: u64,
    peak: u64,
    secs: f64,
    /// The limit a refusal named, if any.
    limit: Option<u64>,
    /// When the upload is refused: the largest one the server takes, measured the same way.
    largest_accepted: Option<Box<Upload>>,
}

impl Upload {
    fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.rss_before)
    }
}

async fn upload(server: &ServerProcess, bytes: u64) -> Upload {
    let mut first = upload_once(server, bytes).await;
    if !first.accepted
        && let Some(limit) = first.limit.filter(|&limit| limit < bytes)
    {
        first.largest_accepted = Some(Box::new(upload_once(server, limit).await));
    }
    first
}

async fn upload_once(server: &ServerProcess, bytes: u64) -> Upload {
    let pid = server.pid();
    // A new client: a refused upload may leave its connection unusable.
    let client = reqwest::Client::new();
    let key = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = proc_status_bytes(pid, "VmRSS").unwrap_or(0);
    let reset = reset_peak(pid);
    let sampler = RssPeak::start(pid);
    let started = Instant::now();
    let result = client
        .post(format!(
            "{}/api/v1/files/upload?product={}&file_type=base_view&view_type=upload",
            server.base,
            product_id(1)
        ))
        .bearer_auth(sign(&key, 1))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, bytes.to_string())
        .body(reqwest::Body::wrap_stream(png_stream(bytes)))
        .send()
        .await;
    let (outcome, accepted, limit) = match result {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let error: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let message = error["error"]["message"].as_str().unwrap_or_default();
            let code = error["error"]["code"].as_str().unwrap_or_default();
            // "… larger than the limit of N bytes"
            let limit = message
                .split("limit of ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok());
            let outcome = if status.is_success() {
                format!("{}", status.as_u16())
            } else {
                format!("{} {code}: {message}", status.as_u16())
            };
            (outcome, status == reqwest::StatusCode::CREATED, limit)
        }
        // The server answers a refusal before reading the body and closes the connection,
        // which the client may see as a failed send: the server's log has the status.
        Err(error) => {
            let logged = last_upload_status(&server.log);
            let outcome = match logged {
                Some(status) => format!(
                    "{status} (from the server's log; the client saw the connection close while sending: {error})"
                ),
                None => format!("connection failed: {error}"),
            };
            // The only limit below max_body_bytes on this route is the blob store's.
            let limit = (logged == Some(413)).then_some(4u64 << 30);
            (outcome, false, limit)
        }
    };
    let secs = started.elapsed().as_secs_f64();
    // The process's memory comes back slowly, if at all: the peak is what counts.
    let sampled = sampler.stop();
    let hwm = if reset {
        proc_status_bytes(pid, "VmHWM").unwrap_or(0)
    } else {
        0
    };
    Upload {
        bytes,
        outcome,
        accepted,
        rss_before,
        peak: hwm.max(sampled),
        secs,
        limit,
        largest_accepted: None,
    }
}

/// The status of the last upload in the server's JSON request log.
fn last_upload_status(log: &Path) -> Option<u16> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        if entry["span"]["route"] != "/api/v1/files/upload" {
            return None;
        }
        u16::try_from(entry["fields"]["status"].as_u64()?).ok()
    })
}

/// `total` bytes of a PNG (its signature and header, then zeros) in 256 KiB chunks made from
/// one buffer: the client never holds more than a chunk.
fn png_stream(
    total: u64,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    const CHUNK: usize = 256 * 1024;
    let mut first = vec![0u8; CHUNK];
    let header: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x10\0\0\0\x10\0\x08\x06\0\0\0";
    first[..header.len()].copy_from_slice(header);
    let first = Bytes::from(first);
    let zeros = Bytes::from(vec![0u8; CHUNK]);
    futures::stream::unfold(0u64, move |sent| {
        let first = first.clone();
        let zeros = zeros.clone();
        async move {
            if sent >= total {
                return None;
            }
            let size = usize::try_from((total - sent).min(CHUNK as u64)).expect("a chunk size");
            let chunk = if sent == 0 { first } else { zeros }.slice(..size);
            Some((Ok(chunk), sent + size as u64))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The report.

struct Report<'a> {
    config: &'a Config,
    rows: i64,
    /// The server's connections to the database after the runs.
    pool: i64,
    create: (&'a Run, &'a Run),
    latest: (&'a Run, &'a Run),
    rss_under_load: u64,
    upload: &'a Upload,
}

fn mark(pass: bool) -> &'static str {
    if pass { "PASS" } else { "BELOW TARGET" }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn print_report(report: &Report) {
    let mut out = String::new();
    let line = |out: &mut String, text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(
        &mut out,
        format!(
            "\ntechpack serve vs pgbench, same PostgreSQL database: {} clients (pgbench -c {} -j 2 -M prepared), {} s per run after a {} s warm-up, {} cores",
            report.config.clients,
            report.config.clients,
            report.config.secs,
            WARMUP.as_secs(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    );
    line(
        &mut out,
        format!(
            "{:<16} {:>12} {:>8} {:>8} | {:>10} {:>8} {:>8} | {:>6}  {}",
            "workload",
            "pgbench tps",
            "p50 ms",
            "p99 ms",
            "API req/s",
            "p50 ms",
            "p99 ms",
            "ratio",
            "target ≥ 0.70"
        ),
    );
    for (name, (pg, api)) in [
        ("create-file", report.create),
        ("latest-50-files", report.latest),
    ] {
        let ratio = api.per_sec / pg.per_sec;
        line(
            &mut out,
            format!(
                "{name:<16} {:>12.0} {:>8.2} {:>8.2} | {:>10.0} {:>8.2} {:>8.2} | {:>6.2}  {}",
                pg.per_sec,
                pg.p50_ms,
                pg.p99_ms,
                api.per_sec,
                api.p50_ms,
                api.p99_ms,
                ratio,
                mark(ratio >= RATIO_TARGET)
            ),
        );
    }
    line(
        &mut out,
        "CPU per operation, ms of the machine's busy time (\"rest\": the kernel's network stack, other processes):".into(),
    );
    let mut foreign = Vec::new();
    for (name, (pg, api)) in [
        ("create-file", report.create),
        ("latest-50-files", report.latest),
    ] {
        line(
            &mut out,
            format!(
                "  {name:<16} pgbench {:.2} = PostgreSQL {:.2} + pgbench {:.2} + rest {:.2} | API {:.2} = PostgreSQL {:.2} + server {:.2} + HTTP clients {:.2} + rest {:.2}",
                pg.cpu.machine,
                pg.cpu.postgres,
                pg.cpu.client,
                (pg.cpu.machine - pg.cpu.postgres - pg.cpu.client - pg.cpu.server).max(0.0),
                api.cpu.machine,
                api.cpu.postgres,
                api.cpu.server,
                api.cpu.client,
                (api.cpu.machine - api.cpu.postgres - api.cpu.server - api.cpu.client).max(0.0)
            ),
        );
        for (side, run) in [("pgbench", pg), ("API", api)] {
            if run.cpu.foreign_share > FOREIGN_CPU_WARNING {
                foreign.push(format!(
                    "{name} {side} {:.0}%",
                    run.cpu.foreign_share * 100.0
                ));
            }
        }
    }
    if !foreign.is_empty() {
        line(
            &mut out,
            format!(
                "  WARNING: other processes on this machine took part of the CPU ({}): the figures are not reliable; run again on a quiet machine",
                foreign.join(", ")
            ),
        );
    }
    line(
        &mut out,
        format!(
            "  (transactions / requests counted: create-file {} / {}, latest-50 {} / {}; rows in tech_files during the reads: {}; database connections: pgbench {}, the server's pool {})",
            report.create.0.count,
            report.create.1.count,
            report.latest.0.count,
            report.latest.1.count,
            report.rows,
            report.config.clients,
            report.pool
        ),
    );
    line(
        &mut out,
        format!(
            "server RSS peak under load (VmHWM): {}  target ≤ {}  {}",
            mb(report.rss_under_load),
            mb(RSS_TARGET_BYTES),
            mark(report.rss_under_load <= RSS_TARGET_BYTES)
        ),
    );
    let upload = report.upload;
    let describe = |upload: &Upload| {
        format!(
            "{:.2} GiB → {} in {:.1} s; server RSS {} before, peak {} (growth {})",
            upload.bytes as f64 / f64::from(1u32 << 30),
            upload.outcome,
            upload.secs,
            mb(upload.rss_before),
            mb(upload.peak),
            mb(upload.growth())
        )
    };
    if upload.accepted {
        line(
            &mut out,
            format!(
                "upload {}  target growth < {}  {}",
                describe(upload),
                mb(UPLOAD_GROWTH_TARGET_BYTES),
                mark(upload.growth() < UPLOAD_GROWTH_TARGET_BYTES)
            ),
        );
    } else {
        line(
            &mut out,
            format!(
                "upload {}  NOT ACCEPTED: the route refuses it (target not measurable)",
                describe(upload)
            ),
        );
        if let Some(largest) = &upload.largest_accepted {
            line(
                &mut out,
                format!(
                    "upload at the server's limit: {}  target growth < {}  {}",
                    describe(largest),
                    mb(UPLOAD_GROWTH_TARGET_BYTES),
                    mark(largest.accepted && largest.growth() < UPLOAD_GROWTH_TARGET_BYTES)
                ),
            );
        }
    }
    print!("{out}");
    std::io::stdout().flush().ok();
}
