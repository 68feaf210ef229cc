//! A Redis Cluster of a test's own: `redis-server` processes with
//! `--cluster-enabled yes` on free ports, joined by `redis-cli --cluster
//! create`, so a test can SIGKILL a primary and watch its replica take over,
//! or move slots while traffic runs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{ChildProcess, find_program, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the cluster waits on a silent node before failing it over: short,
/// so a failover test takes seconds (production keeps Redis's 15 s default
/// or its own choice; docs/DEPLOY.md).
const NODE_TIMEOUT_MS: u32 = 1_000;

/// One node of the cluster.
pub struct ClusterNode {
    pub port: u16,
    bus_port: u16,
    dir: TempDir,
    process: ChildProcess,
}

impl ClusterNode {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let bus_port = free_port();
        let process = Self::spawn(port, bus_port, &dir);
        Self {
            port,
            bus_port,
            dir,
            process,
        }
    }

    fn spawn(port: u16, bus_port: u16, dir: &TempDir) -> ChildProcess {
        let mut command = Command::new(find_program("redis-server"));
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--cluster-port")
            .arg(bus_port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(dir.path())
            .arg("--cluster-enabled")
            .arg("yes")
            .arg("--cluster-config-file")
            .arg("nodes.conf")
            .arg("--cluster-node-timeout")
            .arg(NODE_TIMEOUT_MS.to_string())
            // The rest of the keyspace stays up while one primary is down.
            .arg("--cluster-require-full-coverage")
            .arg("no")
            // A new replica syncs at once (the default waits 5 s for others
            // to share the transfer); one that never synced may not fail over.
            .arg("--repl-diskless-sync-delay")
            .arg("0")
            .arg("--appendonly")
            .arg("yes")
            .arg("--appendfsync")
            .arg("everysec")
            .arg("--save")
            .arg("")
            .arg("--maxmemory-policy")
            .arg("noeviction");
        let mut process =
            ChildProcess::spawn("redis-server", command, &dir.path().join("redis.log"));
        process.wait_for_port(port, START_TIMEOUT);
        process
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A `redis-cli` command against this node; its output, or None if it failed.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        redis_cli(self.port, args)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new(find_program("redis-cli"))
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What `CLUSTER NODES` says of one node.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// How many slots it serves.
    pub slots: u32,
}

/// A cluster of `primaries` primaries with `replicas` replicas each.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
}

impl RedisCluster {
    /// Starts and joins the nodes; returns once every node sees all 16384
    /// slots served and the cluster state is ok.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        assert!(
            primaries >= 3,
            "redis-cli --cluster create needs 3 primaries"
        );
        let nodes: Vec<ClusterNode> = (0..primaries * (1 + replicas))
            .map(|_| ClusterNode::start())
            .collect();
        let addresses: Vec<String> = nodes.iter().map(ClusterNode::address).collect();
        let output = Command::new(find_program("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes")
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_healthy(primaries, START_TIMEOUT);
        cluster
    }

    /// Every node's URL, comma-separated, as `REDIS_URL` takes a cluster.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(ClusterNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The cluster as a running node sees it.
    pub fn view(&self) -> Vec<NodeView> {
        let text = self
            .nodes
            .iter()
            .filter_map(|n| n.cli(&["cluster", "nodes"]))
            .find(|t| !t.trim().is_empty())
            .expect("no cluster node answers CLUSTER NODES");
        parse_nodes(&text)
    }

    /// The ports of the nodes serving slots now.
    pub fn primary_ports(&self) -> Vec<u16> {
        self.view()
            .into_iter()
            .filter(|n| n.primary && !n.failed && n.slots > 0)
            .map(|n| n.port)
            .collect()
    }

    /// The port of the primary serving `key`'s slot now.
    pub fn primary_for(&self, key: &str) -> u16 {
        let slot: u32 = self
            .nodes
            .iter()
            .find_map(|n| n.cli(&["cluster", "keyslot", key]))
            .and_then(|s| s.trim().parse().ok())
            .expect("CLUSTER KEYSLOT");
        let text = self
            .nodes
            .iter()
            .find_map(|n| n.cli(&["cluster", "nodes"]))
            .expect("CLUSTER NODES");
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                if range.starts_with('[') {
                    continue;
                }
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(start), Ok(end)) = (start.parse::<u32>(), end.parse::<u32>())
                    && (start..=end).contains(&slot)
                {
                    return port_of(fields[1]);
                }
            }
        }
        panic!("no primary serves slot {slot} of {key}")
    }

    pub fn node(&mut self, port: u16) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on {port}"))
    }

    /// SIGKILL the node on `port`: no shutdown, no final fsync.
    pub fn kill(&mut self, port: u16) {
        self.node(port).process.kill();
    }

    /// Starts the node on `port` again with its data and cluster config (it
    /// rejoins, as a replica if another took its slots meanwhile).
    pub fn restart(&mut self, port: u16) {
        let node = self.node(port);
        node.process.kill();
        node.process = ClusterNode::spawn(node.port, node.bus_port, &node.dir);
    }

    /// Waits until `primaries` primaries serve all 16384 slots, the
    /// running nodes say the cluster is ok, and every running replica has
    /// synced with its primary (a replica that never did cannot take over).
    pub fn wait_until_healthy(&self, primaries: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let states: Vec<Option<String>> = self
                .nodes
                .iter()
                .map(|n| n.cli(&["cluster", "info"]))
                .collect();
            let ok = states.iter().flatten().all(|info| {
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            let view = self.view();
            let serving = view
                .iter()
                .filter(|n| n.primary && !n.failed && n.slots > 0)
                .count();
            let synced = view.iter().filter(|n| !n.primary && !n.failed).all(|n| {
                redis_cli(n.port, &["info", "replication"])
                    .is_some_and(|info| info.contains("master_link_status:up"))
            });
            if ok && synced && serving == primaries && states.iter().any(Option::is_some) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "redis cluster not healthy after {timeout:?}: {serving} primaries serving; {:?}",
                    self.view()
                );
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    /// Commands each serving primary has processed (INFO stats), by port.
    pub fn commands_by_primary(&self) -> BTreeMap<u16, u64> {
        self.primary_ports()
            .into_iter()
            .map(|port| {
                let info = redis_cli(port, &["info", "stats"]).unwrap_or_default();
                let count = info
                    .lines()
                    .find_map(|l| l.strip_prefix("total_commands_processed:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                (port, count)
            })
            .collect()
    }

    /// Moves `slots` slots from the primary on `from` to the one on `to`
    /// with `redis-cli --cluster reshard` (keys migrate while clients run).
    pub fn reshard(&self, from: u16, to: u16, slots: u32) {
        let view = self.view();
        let id = |port: u16| {
            view.iter()
                .find(|n| n.port == port)
                .map(|n| n.id.clone())
                .unwrap_or_else(|| panic!("no node on {port}"))
        };
        let output = Command::new(find_program("redis-cli"))
            .arg("--cluster")
            .arg("reshard")
            .arg(format!("127.0.0.1:{from}"))
            .arg("--cluster-from")
            .arg(id(from))
            .arg("--cluster-to")
            .arg(id(to))
            .arg("--cluster-slots")
            .arg(slots.to_string())
            .arg("--cluster-yes")
            .arg("--cluster-pipeline")
            .arg("100")
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "reshard failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn port_of(address: &str) -> u16 {
    // `127.0.0.1:7000@17000[,hostname]`
    address
        .split(['@', ','])
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

fn parse_nodes(text: &str) -> Vec<NodeView> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let slots = fields[8..]
                .iter()
                .filter(|r| !r.starts_with('['))
                .map(|range| {
                    let (start, end) = range.split_once('-').unwrap_or((range, range));
                    match (start.parse::<u32>(), end.parse::<u32>()) {
                        (Ok(s), Ok(e)) => e - s + 1,
                        _ => 0,
                    }
                })
                .sum();
            Some(NodeView {
                id: fields[0].to_owned(),
                port: port_of(fields[1]),
                primary: fields[2].contains("master"),
                failed: fields[2].contains("fail") && !fields[2].contains("fail?"),
                slots,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_read() {
        let text = "\
07c3 127.0.0.1:30004@31004 slave e7d1 0 1426238317239 4 connected
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 7000 [93-<-292f]
292f 127.0.0.1:30002@31002 master,fail - 1426238316232 1426238315228 2 disconnected
";
        let nodes = parse_nodes(text);
        assert_eq!(nodes.len(), 3);
        assert!(!nodes[0].primary);
        assert_eq!(
            (nodes[1].port, nodes[1].slots, nodes[1].primary),
            (30001, 5462, true)
        );
        assert!(nodes[2].failed);
    }
}
