//! A throwaway PostgreSQL server for the store tests, started lazily once
//! per test process; [`database`] hands each test a fresh database on it.
//!
//! **Finding the server.** The binaries (`initdb`, `postgres`) are taken
//! from `BATON_TEST_POSTGRES_BIN` (a folder), else the first `PATH` entry
//! that has both, else the newest Debian-style `/usr/lib/postgresql/<major>/bin`.
//! Without them [`database`] prints `skipped: no PostgreSQL server binaries`
//! and returns `None`, so the Postgres variants of the tests pass vacuously —
//! unless `BATON_TEST_REQUIRE_POSTGRES` is set (CI sets it through
//! `.ci/run`), in which case they fail instead of skipping.
//!
//! **Starting fast.** nextest runs every test in its own process, so each
//! Postgres test pays for one server start: 0.2-0.5 s in all, test
//! included, cheap enough that sharing one server between processes (and
//! the bookkeeping of who stops it) is not worth it. `initdb` (~0.5 s on
//! tmpfs, ~1.5 s on disk) runs only once per machine and server version:
//! its cluster is kept as a template in `<scratch>/baton-pg-template-<version>` (built in a
//! staging folder and renamed into place, so concurrent processes never see
//! half of one). Each process copies the template (`cp -a`, ~28 MB with 1 MB
//! WAL segments) into its own folder `<scratch>/baton-pg-<pid>-<n>` and
//! starts `postgres` there on a free 127.0.0.1 port with durability off
//! (`fsync`, `synchronous_commit`, `full_page_writes`). The scratch folder is
//! `/dev/shm` when it has room: on tmpfs the copy and `CREATE DATABASE` are
//! about ten times faster than on this machine's disk. A test then runs
//! `CREATE DATABASE test_<n>` on the server; `cargo test`, which runs all
//! tests in one process, shares the one server between them.
//!
//! **Running as root.** Postgres refuses to run as root; when the effective
//! uid (from `/proc/self/status`) is 0, `initdb` and `postgres` run through
//! `runuser -u postgres --` (the Debian package's system user) and the
//! folders are chowned to that user.
//!
//! **Stopping.** Rust never drops statics, so no destructor can stop the
//! server. Instead `postgres` runs under a small `sh` watchdog whose stdin is
//! a pipe whose only writing end this test process holds (in a static, never
//! written to). However the process ends — returning, panicking, killed by
//! a signal or a nextest timeout — the kernel closes that end, the
//! watchdog's `read` sees end-of-file, and it stops the server (`SIGQUIT`,
//! immediate shutdown: nothing needs to be kept) and deletes the temp folder.
//! If the watchdog itself was killed (e.g. a whole process group killed),
//! the next start sweeps up: folders named `baton-pg-<pid>-*` whose test
//! process `<pid>` is gone get their server stopped and are deleted.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::OnceCell;

/// The system user that runs Postgres when the tests run as root.
const PG_USER: &str = "postgres";
/// The superuser `initdb` creates; it logs in without a password (`trust`).
const DB_USER: &str = "baton";
/// How long a starting server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `sh` script run as `sh -c WATCHDOG sh <dir> <postgres> <args>...`: starts
/// the server with its output in `<dir>/postgres.log`, stops it when stdin
/// reaches end-of-file (the test process is gone), and deletes `<dir>` once
/// the server has exited. If the server exits by itself (it could not start)
/// the log goes to stderr for the test to report.
const WATCHDOG: &str = r#"
dir=$1; shift
exec 3<&0
"$@" </dev/null >"$dir/postgres.log" 2>&1 3<&- &
pg=$!
{ read -r _ <&3; : >"$dir/stopping"; kill -QUIT "$pg" 2>/dev/null; } </dev/null &
watch=$!
exec 3<&-
wait "$pg"
status=$?
if [ ! -e "$dir/stopping" ]; then
    kill "$watch" 2>/dev/null
    cat "$dir/postgres.log" >&2
fi
rm -rf "$dir"
exit "$status"
"#;

/// The running server of this process.
struct Server {
    /// Its TCP port on 127.0.0.1.
    port: u16,
    /// The writing end of the watchdog's stdin: held (never written) until
    /// the process exits, which is what stops the server.
    _lifeline: Mutex<ChildStdin>,
}

/// This process's server: `None` without server binaries, `Err` if it could
/// not be started (every test then fails with the same message).
static SERVER: OnceCell<Option<Result<Server, String>>> = OnceCell::const_new();

/// Numbers this process's test databases.
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(1);

/// A new, empty database on this process's throwaway server, as a
/// `postgres://baton@127.0.0.1:PORT/test_<n>` URL; `None` (after printing a
/// "skipped" line) when no PostgreSQL server binaries are installed.
///
/// # Panics
///
/// If the server cannot be started or the database created, or if the
/// binaries are missing while `BATON_TEST_REQUIRE_POSTGRES` is set.
pub async fn database() -> Option<String> {
    let server = SERVER.get_or_init(|| async { start().await }).await;
    let server = match server {
        None => {
            assert!(
                std::env::var_os("BATON_TEST_REQUIRE_POSTGRES").is_none(),
                "no PostgreSQL server binaries (initdb, postgres) found, and \
                 BATON_TEST_REQUIRE_POSTGRES is set: install PostgreSQL \
                 (apt-get install postgresql) or set BATON_TEST_POSTGRES_BIN"
            );
            eprintln!(
                "skipped: no PostgreSQL server binaries (initdb, postgres) found \
                 on PATH, in /usr/lib/postgresql/*/bin or in BATON_TEST_POSTGRES_BIN"
            );
            return None;
        }
        Some(Err(error)) => panic!("{error}"),
        Some(Ok(server)) => server,
    };
    let name = format!("test_{}", NEXT_DATABASE.fetch_add(1, Ordering::Relaxed));
    let mut admin = PgConnection::connect(&server.url("postgres"))
        .await
        .unwrap_or_else(|error| panic!("connect to the test PostgreSQL server: {error}"));
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|error| panic!("CREATE DATABASE {name}: {error}"));
    admin.close().await.ok();
    Some(server.url(&name))
}

impl Server {
    /// The URL of one of its databases.
    fn url(&self, database: &str) -> String {
        format!("postgres://{DB_USER}@127.0.0.1:{}/{database}", self.port)
    }
}

/// Finds the binaries and starts the server (`None`: no binaries).
async fn start() -> Option<Result<Server, String>> {
    let bin = bin_dir()?;
    Some(start_with(&bin).await)
}

/// Starts a server from the binaries in `bin`, retrying with another port if
/// the one picked was taken in the meantime.
async fn start_with(bin: &Path) -> Result<Server, String> {
    let root = is_root();
    let tmp = scratch_dir(root);
    sweep_stale(&tmp);
    let template = template(bin, &tmp, root)?;
    let mut last_error = String::new();
    for attempt in 0..3 {
        let dir = tmp.join(format!("baton-pg-{}-{attempt}", std::process::id()));
        // A leftover of an earlier process with this pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|error| format!("create {}: {error}", dir.display()))?;
        if root {
            run(Command::new("chown").arg(PG_USER).arg(&dir))?;
        }
        let data = dir.join("data");
        run(Command::new("cp").arg("-a").arg(&template).arg(&data))?;
        match launch(bin, &dir, &data, root).await {
            Ok(server) => return Ok(server),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Starts `postgres` on `data` under the watchdog and waits until it
/// accepts connections.
async fn launch(bin: &Path, dir: &Path, data: &Path, root: bool) -> Result<Server, String> {
    let port = free_port()?;
    let mut command = as_pg_user(root, "sh");
    command
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(dir)
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(data)
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| format!("start the PostgreSQL watchdog: {error}"))?;
    let lifeline = child.stdin.take().ok_or("the watchdog has no stdin")?;
    let url = format!("postgres://{DB_USER}@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut log = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut log);
            }
            return Err(format!(
                "the test PostgreSQL server ({}) exited with {status}:\n{log}",
                bin.display()
            ));
        }
        match PgConnection::connect(&url).await {
            Ok(conn) => {
                conn.close().await.ok();
                return Ok(Server {
                    port,
                    _lifeline: Mutex::new(lifeline),
                });
            }
            Err(error) if Instant::now() > deadline => {
                // Dropping the lifeline stops the server.
                drop(lifeline);
                let _ = child.wait();
                return Err(format!(
                    "the test PostgreSQL server did not accept connections within \
                     {START_TIMEOUT:?}: {error}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The initdb'd cluster every server of this server version starts from,
/// created on first use.
fn template(bin: &Path, tmp: &Path, root: bool) -> Result<PathBuf, String> {
    let version = run(Command::new(bin.join("postgres")).arg("--version"))?;
    let version: String = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .last()
        .unwrap_or("unknown")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let template = tmp.join(format!("baton-pg-template-{version}"));
    if template.join("global/pg_control").is_file() {
        return Ok(template);
    }
    // initdb creates the staging folder itself (as the user it runs as).
    let staging = tmp.join(format!("baton-pg-{}-staging", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    run(as_pg_user(root, bin.join("initdb"))
        .arg("-D")
        .arg(&staging)
        .args(["--auth=trust", "-U", DB_USER, "--no-sync"])
        .args(["--encoding=UTF8", "--locale=C", "--wal-segsize=1"]))?;
    if std::fs::rename(&staging, &template).is_err() {
        // Another process was quicker (or a broken template is in the way).
        let _ = std::fs::remove_dir_all(&staging);
        if !template.join("global/pg_control").is_file() {
            let _ = std::fs::remove_dir_all(&template);
            return Err(format!(
                "could not create the PostgreSQL template {}: run the tests again",
                template.display()
            ));
        }
    }
    Ok(template)
}

/// Stops and deletes what earlier test processes left behind when their
/// watchdog could not: `baton-pg-<pid>-*` folders whose process is gone.
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("baton-pg-")) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue; // the template
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let pid_file = entry.path().join("data/postmaster.pid");
        if let Some(server) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{server}/comm")).unwrap_or_default();
            if comm.trim() == "postgres" {
                let _ = Command::new("kill")
                    .args(["-QUIT", &server.to_string()])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// Where the template and the servers' folders go: `/dev/shm` (tmpfs: a
/// copy there takes a tenth of the time it takes on disk) when it is
/// writable and has room (Docker's default is only 64 MB), else `/tmp` as
/// root (the `postgres` user must reach it), else `$TMPDIR`.
fn scratch_dir(root: bool) -> PathBuf {
    /// Each server takes ~30 MB, the template as much; leave plenty spare.
    const SHM_NEEDED_KB: u64 = 512 * 1024;
    let shm = Path::new("/dev/shm");
    let writable =
        std::fs::metadata(shm).is_ok_and(|meta| meta.is_dir() && !meta.permissions().readonly());
    // `df -Pk`: a header, then "fs blocks used available capacity mount".
    let available_kb = || {
        let output = Command::new("df").arg("-Pk").arg(shm).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.lines()
            .nth(1)?
            .split_whitespace()
            .nth(3)?
            .parse::<u64>()
            .ok()
    };
    if writable && available_kb().is_some_and(|kb| kb >= SHM_NEEDED_KB) {
        shm.to_path_buf()
    } else if root {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    }
}

/// The folder holding `initdb` and `postgres`, if any.
fn bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("BATON_TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(dir)).filter(|dir| has_both(dir));
    }
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|dir| has_both(dir))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs with effective uid 0.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem.
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// `program`, run as the `postgres` user when we are root.
fn as_pg_user(root: bool, program: impl AsRef<std::ffi::OsStr>) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", PG_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs a set-up command to completion; an error unless it succeeded.
fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("run {command:?}: {error}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| format!("find a free port: {error}"))
}
