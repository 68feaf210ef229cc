//! The Switchboard load generator. Simulated clients use real gRPC
//! connections to the gateways, send on an open-loop schedule and check
//! every delivery; the same tool measures what the transport itself allows
//! on this machine at this moment, so results are also ratios.

pub mod client;
pub mod recorder;
pub mod report;
pub mod scenarios;
pub mod schedule;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use client::Origin;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard-loadgen",
    version,
    about = "Load and correctness for a running Switchboard."
)]
pub struct Cli {
    /// Gateway addresses (clients spread over them).
    #[arg(
        long,
        env = "SB_GATEWAYS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7300"
    )]
    pub gateways: Vec<String>,
    /// PEM file of a CA to trust for https:// gateways, besides the system's.
    #[arg(long, env = "SB_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Loopback source addresses to connect from (127.0.0.1 .. 127.0.0.N), for
    /// more connections than one address's ephemeral ports allow.
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
    /// Prefix of the users this run creates (default: a random one).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Server processes (`name=pid`) whose CPU time to report over the measured window.
    #[arg(long, global = true, value_delimiter = ',')]
    pub watch: Vec<String>,
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Many clients connect and subscribe at a given ramp, then idle.
    Idle {
        #[arg(long, default_value_t = 1_000)]
        clients: usize,
        /// Connections opened per second.
        #[arg(long, default_value_t = 1_000.0)]
        ramp: f64,
        /// How long to hold them before measuring, in seconds.
        #[arg(long, default_value_t = 5)]
        hold: u64,
        /// PID of the gateway process whose memory to measure.
        #[arg(long)]
        gateway_pid: Option<u32>,
    },
    /// One-to-one messages between pairs of users at a fixed rate.
    Direct {
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages per second, all pairs together.
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Unary `Send` calls (as browsers) or one `SendStream` call per sender (as native clients).
        #[arg(long, value_enum, default_value_t = scenarios::direct::SendVia::Unary)]
        send_via: scenarios::direct::SendVia,
        /// Meanwhile, one bad actor floods the server (compare with a run without).
        #[arg(long, value_enum, default_value_t = scenarios::flood::Flood::None)]
        flood: scenarios::flood::Flood,
        /// Parallel flooding tasks.
        #[arg(long, default_value_t = 32)]
        flooders: usize,
    },
    /// Group messages: each delivered to every online member.
    Group {
        #[arg(long, default_value_t = 1)]
        groups: usize,
        /// Members of each group.
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// Of which online (subscribed); the rest never connect.
        #[arg(long)]
        online: Option<usize>,
        /// Messages per second, all groups together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// Topic broadcasts: each a private copy to every bound contact.
    Topic {
        #[arg(long, default_value_t = 200)]
        contacts: usize,
        /// Broadcasts per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// 50-message History pages at random depths of one conversation of
    /// `depth` messages (seeded in the history store, which it needs).
    Pages {
        #[arg(long, default_value_t = 1_000_000)]
        depth: u64,
        /// Pages per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// The history store the gateways' routers use (PostgreSQL).
        #[arg(long, env = "SB_HISTORY_URL")]
        history_url: String,
    },
    /// Everyone disconnects, messages arrive meanwhile, everyone reconnects at once.
    Storm {
        #[arg(long, default_value_t = 1_000)]
        clients: usize,
    },
    /// The transport's own ceilings: raw NATS fan-out and the bare
    /// gateway -> NATS -> router -> NATS -> gateway pipeline (with and without Redis).
    Transport {
        #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats: String,
        #[arg(long, env = "REDIS_URL")]
        redis: Option<String>,
        #[arg(long, default_value_t = 5)]
        duration: u64,
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
    /// A short correctness run of every kind of traffic (CI): fails on any
    /// loss, gap, duplicate or error; speed is not judged.
    Smoke,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            report::fail(&format!("cannot start the runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            report::fail(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenario; Ok(false) when it saw a correctness problem.
pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    let ca = switchboard_proto::client::read_ca(cli.ca.as_deref()).map_err(anyhow::Error::msg)?;
    let origin = Origin {
        gateways: cli.gateways.clone(),
        ca,
        sources: (1..=cli.sources.max(1))
            .map(|i| IpAddr::from([127, 0, 0, i]))
            .collect(),
    };
    let prefix = cli
        .prefix
        .clone()
        .unwrap_or_else(|| format!("lg{}x", switchboard_shared::ids::random_token(5)));
    let secs = Duration::from_secs;
    let watch = scenarios::Watch::parse(&cli.watch)?;
    let reports = match cli.scenario {
        Scenario::Idle {
            clients,
            ramp,
            hold,
            gateway_pid,
        } => {
            vec![
                scenarios::idle::run(&origin, &prefix, clients, ramp, secs(hold), gateway_pid)
                    .await?,
            ]
        }
        Scenario::Direct {
            pairs,
            rate,
            duration,
            size,
            send_via,
            flood,
            flooders,
        } => {
            vec![
                scenarios::direct::run(
                    &origin,
                    &watch,
                    &prefix,
                    pairs,
                    rate,
                    secs(duration),
                    size,
                    send_via,
                    (flood, flooders),
                )
                .await?,
            ]
        }
        Scenario::Group {
            groups,
            members,
            online,
            rate,
            duration,
            size,
        } => {
            let online = online.unwrap_or(members);
            vec![
                scenarios::group::run(
                    &origin,
                    &watch,
                    &prefix,
                    groups,
                    members,
                    online,
                    rate,
                    secs(duration),
                    size,
                )
                .await?,
            ]
        }
        Scenario::Topic {
            contacts,
            rate,
            duration,
            size,
        } => {
            vec![
                scenarios::topic::run(
                    &origin,
                    &watch,
                    &prefix,
                    contacts,
                    rate,
                    secs(duration),
                    size,
                )
                .await?,
            ]
        }
        Scenario::Pages {
            depth,
            rate,
            duration,
            history_url,
        } => {
            vec![
                scenarios::pages::run(
                    &origin,
                    &watch,
                    &prefix,
                    depth,
                    rate,
                    secs(duration),
                    &history_url,
                )
                .await?,
            ]
        }
        Scenario::Storm { clients } => {
            vec![scenarios::storm::run(&origin, &prefix, clients).await?]
        }
        Scenario::Transport {
            nats,
            redis,
            duration,
            size,
        } => scenarios::transport::run(&nats, redis.as_deref(), secs(duration), size).await?,
        Scenario::Smoke => scenarios::smoke::run(&origin, &prefix).await?,
    };
    let mut clean = true;
    for report in &reports {
        clean &= report.clean();
        report::print(report, cli.json);
    }
    Ok(clean)
}
