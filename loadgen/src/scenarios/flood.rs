//! Abuse alongside ordinary traffic: while a scenario measures its users, one
//! bad actor floods the server, and the report says what the flood did and
//! how much of it was refused. What it did to everyone else is the
//! scenario's own latency, compared with a run without the flood.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::json;
use switchboard_proto::pb;

use crate::client::{Client, Origin};

/// What the bad actor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flood {
    /// Nothing: the control run.
    None,
    /// Wrong-password logins against one account, from every source address.
    Login,
    /// History pages of 500, as fast as answered, by one user.
    History,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
}

/// A running flood; [`Running::stop`] ends it and says what it did.
pub struct Running {
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    kind: Flood,
    workers: usize,
}

impl Running {
    pub async fn stop(self) -> serde_json::Value {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        json!({
            "kind": format!("{:?}", self.kind).to_lowercase(),
            "workers": self.workers,
            "requests": self.counts.requests.load(Ordering::Relaxed),
            "refused": self.counts.refused.load(Ordering::Relaxed),
            "errors": self.counts.errors.load(Ordering::Relaxed),
        })
    }
}

/// Starts `workers` flooding tasks. `victim` is an existing account (login
/// floods guess its password); `flooder` a logged-in user who pages
/// `conversation` (history floods).
pub async fn start(
    kind: Flood,
    workers: usize,
    origin: &Origin,
    victim: &str,
    flooder: &Client,
    conversation: &str,
) -> anyhow::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut tasks = Vec::new();
    for worker in 0..if kind == Flood::None { 0 } else { workers } {
        let (stop, counts) = (stop.clone(), counts.clone());
        match kind {
            Flood::None => {}
            Flood::Login => {
                let mut accounts = pb::account_service_client::AccountServiceClient::new(
                    origin.connect(worker).await?,
                );
                let victim = victim.to_owned();
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        counts.requests.fetch_add(1, Ordering::Relaxed);
                        let guess = accounts
                            .login(pb::LoginRequest {
                                user_id: victim.clone(),
                                password: format!("guess number {worker}"),
                                device_id: String::new(),
                            })
                            .await;
                        tally(&counts, guess.err());
                    }
                }));
            }
            Flood::History => {
                let (flooder, conversation) = (flooder.clone(), conversation.to_owned());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        counts.requests.fetch_add(1, Ordering::Relaxed);
                        let page = flooder
                            .chat()
                            .history(pb::HistoryRequest {
                                conversation_id: conversation.clone(),
                                limit: 500,
                                ..Default::default()
                            })
                            .await;
                        tally(&counts, page.err());
                    }
                }));
            }
        }
    }
    Ok(Running {
        stop,
        counts,
        tasks,
        kind,
        workers,
    })
}

fn tally(counts: &Counts, refusal: Option<tonic::Status>) {
    match refusal.map(|s| s.code()) {
        None | Some(tonic::Code::Unauthenticated) => {}
        Some(tonic::Code::ResourceExhausted) => {
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
        Some(_) => {
            counts.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
