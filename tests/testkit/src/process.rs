//! Child processes that are killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Test ports come from below the kernel's ephemeral range (32768-60999 on
/// Linux), so no outbound connection's source port can take one between the
/// moment it is chosen and the moment a server binds it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port nobody listens on, reserved for this test process until it exits.
///
/// The server that will use it binds it later, so "bind :0, read the port,
/// let it go" is not enough when tests run in parallel processes: another
/// test could be handed the same port meanwhile. Each port taken here is
/// also locked (an advisory lock on a file named after it, held until this
/// process exits, released by the kernel even on a crash), and other tests
/// skip locked ports.
pub fn free_port() -> u16 {
    static HELD: std::sync::OnceLock<parking_lot::Mutex<Vec<std::fs::File>>> =
        std::sync::OnceLock::new();
    let dir = std::env::temp_dir().join("switchboard-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    let span = u32::from(PORTS.end - PORTS.start);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..span {
        let port = PORTS.start + u16::try_from((seed.wrapping_add(attempt)) % span).unwrap_or(0);
        let Ok(lock) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        if lock.try_lock().is_err() || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        HELD.get_or_init(Default::default).lock().push(lock);
        return port;
    }
    panic!("no free port in {PORTS:?}")
}

/// Finds a program on PATH or in the sbin directories Debian installs servers to.
pub fn find_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed (apt-get install {name})"))
}

/// A running child; SIGKILLed on drop.
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with its output appended to `log` (a restart keeps
    /// the previous run's lines).
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let err = out.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal without waiting.
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGSTOP, returning once every thread has stopped: one thread takes
    /// the signal and then stops the others, and on a busy machine the
    /// others run on meanwhile (a router so took up a request after `kill
    /// -STOP` had returned, and CI failed). Panics after 10 s.
    pub fn stop(&self) {
        self.signal(Signal::SIGSTOP);
        let Some(pid) = self.pid() else { return };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 10 s of SIGSTOP",
                self.name
            );
            std::thread::park_timeout(Duration::from_millis(2));
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit. Returns the exit
    /// status, or None if it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                self.kill();
                return None;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        None
    }

    /// Waits until something accepts TCP connections on `port`, or panics
    /// with the log if the process died or the deadline passed.
    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if !self.is_running() {
                panic!(
                    "{} exited before listening on {port}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not listen on {port} in time:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether every thread of `pid` is stopped (state `T` or `t` in its stat
/// line).
pub fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "T" || state == "t")
        })
    })
}
