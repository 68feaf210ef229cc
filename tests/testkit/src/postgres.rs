//! A PostgreSQL server of a test's own: `initdb` into a temporary directory
//! and `postgres` on a free port, durable commits on (the settings the
//! history store relies on). Run as the `postgres` user when the test runs
//! as root (PostgreSQL refuses to run as root).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{ChildProcess, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Debian puts PostgreSQL's server programs.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .filter(|bin| bin.join("postgres").is_file())
        .unwrap_or_else(|| panic!("PostgreSQL is not installed (apt-get install postgresql)"))
}

/// The `postgres` user's ids when we are root (PostgreSQL refuses to run as
/// root), else None: run as ourselves.
fn run_as() -> Option<(nix::unistd::Uid, nix::unistd::Gid)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("running as root needs the `postgres` user (apt-get install postgresql)");
    Some((user.uid, user.gid))
}

/// The program, in a process group of its own (so a kill takes the
/// postmaster and its backends at once), as `postgres` when we are root.
fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.process_group(0);
    if let Some((uid, gid)) = run_as() {
        command.uid(uid.as_raw()).gid(gid.as_raw());
    }
    command
}

pub struct PostgresServer {
    pub port: u16,
    dir: TempDir,
    process: Option<ChildProcess>,
}

impl PostgresServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some((uid, gid)) = run_as() {
            nix::unistd::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the data directory to postgres");
        }
        let status = command(&bin_dir().join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let mut server = Self {
            port: free_port(),
            dir,
            process: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = command(&bin_dir().join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                "-c",
                "max_connections=100",
                "-c",
                "shared_buffers=32MB",
            ]);
        let mut process =
            ChildProcess::spawn("postgres", command, &self.dir.path().join("postgres.log"));
        process.wait_for_port(self.port, START_TIMEOUT);
        // It listens before it serves (startup, crash recovery): wait until
        // it accepts sessions.
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let ready = Command::new(bin_dir().join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                break;
            }
            assert!(
                process.is_running() && std::time::Instant::now() < deadline,
                "postgres did not become ready:\n{}",
                process.log()
            );
            std::thread::park_timeout(Duration::from_millis(20));
        }
        self.process = Some(process);
    }

    /// A connection string for the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// SIGKILL to the server and every backend: no shutdown, no checkpoint.
    pub fn kill(&mut self) {
        if let Some(process) = &self.process
            && let Some(pid) = process.pid()
        {
            // Backends outlive a killed postmaster for a moment, holding its
            // shared memory (a new postmaster would refuse to start): the
            // process group takes them all at once.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
        let _ = std::fs::remove_file(self.dir.path().join("data").join("postmaster.pid"));
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".s.PGSQL.") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Starts it again on the same port and data (crash recovery runs first).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}
