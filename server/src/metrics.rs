//! Prometheus metrics over HTTP (`GET /metrics`), on a port of their own:
//! Switchboard's own (`switchboard_*`, shared/src/metrics.rs), which build
//! and role this is (`switchboard_build_info`), and the process's CPU,
//! memory and file descriptors under the names every Prometheus client
//! library uses (`process_*`), read from `/proc` at each scrape.

use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::routing::get;
use switchboard_shared::metrics::metrics;
use switchboard_shared::shutdown::Shutdown;
use tokio::net::TcpListener;

/// What `/proc` says of this process.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
    open_fds: u64,
    max_fds: u64,
}

fn sysconf(name: nix::unistd::SysconfVar) -> Option<u64> {
    nix::unistd::sysconf(name)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
}

/// Reads `/proc/self/stat` (fields after the command name, which may hold
/// spaces: `man 5 proc`), `/proc/stat`'s boot time, and `/proc/self/fd`.
fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Field n of the man page is fields[n - 3] here (pid and comm are gone).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = sysconf(nix::unistd::SysconfVar::CLK_TCK)? as f64;
    let page = sysconf(nix::unistd::SysconfVar::PAGE_SIZE)?;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()?
        .0;
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) as f64 / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page,
        start_time_seconds: boot as f64 + field(22)? as f64 / ticks,
        open_fds,
        max_fds,
    })
}

/// The build and process families, in the OpenMetrics text format.
fn process_families(role: &str) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str, sample: String| {
        let _ = write!(
            out,
            "# TYPE {name} {kind}\n# HELP {name} {help}\n{sample}\n"
        );
    };
    family(
        &mut out,
        "switchboard_build_info",
        "gauge",
        "Which build and role this process is (always 1).",
        format!(
            "switchboard_build_info{{version=\"{}\",role=\"{role}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    );
    let Some(stats) = process_stats() else {
        return out;
    };
    for (name, kind, help, value) in [
        (
            "process_cpu_seconds",
            "counter",
            "Total user and system CPU time spent in seconds.",
            format!("process_cpu_seconds_total {}", stats.cpu_seconds),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            format!("process_resident_memory_bytes {}", stats.resident_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            format!("process_virtual_memory_bytes {}", stats.virtual_bytes),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            format!("process_start_time_seconds {}", stats.start_time_seconds),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            format!("process_open_fds {}", stats.open_fds),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            format!("process_max_fds {}", stats.max_fds),
        ),
    ] {
        family(&mut out, name, kind, help, value);
    }
    out
}

/// Everything, as one OpenMetrics exposition (one `# EOF`, at the end).
fn exposition(role: &str) -> String {
    let mut text = metrics().encode();
    let body = text.strip_suffix("# EOF\n").map_or(0, str::len);
    text.truncate(body);
    text.push_str(&process_families(role));
    text.push_str("# EOF\n");
    text
}

/// Serves metrics at `listen` ("off" for none) until shutdown; `role` names
/// the process in `switchboard_build_info`.
pub async fn serve(listen: &str, role: &'static str, shutdown: Shutdown) -> anyhow::Result<()> {
    if listen == "off" {
        return Ok(());
    }
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| anyhow::anyhow!("--metrics-listen {listen:?}: {e}"))?;
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    let scrape = move || async move {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            exposition(role),
        )
    };
    let app = axum::Router::new().route("/metrics", get(scrape));
    shutdown.tracker.spawn(async move {
        let stopped = shutdown.token.clone();
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped.cancelled().await })
            .await
        {
            tracing::error!(%err, "metrics server stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself_from_proc() {
        let stats = process_stats().expect("/proc is readable here");
        assert!(stats.resident_bytes > 1_000_000, "{stats:?}");
        assert!(stats.virtual_bytes >= stats.resident_bytes, "{stats:?}");
        assert!(
            stats.open_fds >= 3 && stats.open_fds <= stats.max_fds,
            "{stats:?}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stats.start_time_seconds <= now + 1.0 && stats.start_time_seconds > now - 3_600.0,
            "{stats:?}"
        );
        // Burn some CPU: the counter moves.
        let before = stats.cpu_seconds;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut x = 0u64;
        while process_stats().unwrap().cpu_seconds <= before {
            assert!(std::time::Instant::now() < deadline, "CPU time never moved");
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(x) | 1);
            }
        }
    }

    #[test]
    fn one_exposition_with_the_build_and_the_process() {
        let text = exposition("gateway");
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(text.contains("switchboard_build_info{version=\""), "{text}");
        assert!(text.contains("role=\"gateway\"} 1\n"), "{text}");
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_open_fds "), "{text}");
    }
}
