//! Simulated clients: each a user with its own gRPC connection (its own TCP
//! connection, from one of several loopback source addresses), one
//! subscription, and a receive loop that checks every delivery.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use switchboard_proto::client::{Authed, Bearer};
use switchboard_proto::pb::{
    self, account_service_client::AccountServiceClient, chat_service_client::ChatServiceClient,
    contact_service_client::ContactServiceClient, event::Kind,
    group_service_client::GroupServiceClient, topic_service_client::TopicServiceClient,
};
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use crate::recorder::Recorder;

pub const PASSWORD: &str = "load generator password";

/// Where clients connect from: loopback source addresses in turn, so more
/// connections fit than one address's ephemeral ports allow.
#[derive(Clone)]
pub struct Origin {
    pub gateways: Vec<String>,
    /// A CA (PEM) trusted for https:// gateways, besides the system's.
    pub ca: Option<Vec<u8>>,
    pub sources: Vec<IpAddr>,
}

impl Origin {
    pub async fn connect(&self, index: usize) -> anyhow::Result<Channel> {
        let url = &self.gateways[index % self.gateways.len()];
        let mut endpoint = switchboard_proto::client::endpoint(url, self.ca.as_deref())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            // Small buffers per connection, as a phone or browser would have.
            .initial_stream_window_size(256 * 1024)
            .initial_connection_window_size(512 * 1024);
        if !self.sources.is_empty() {
            endpoint = endpoint.local_address(Some(self.sources[index % self.sources.len()]));
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("connect to {url}"))
    }
}

/// One logged-in simulated user.
#[derive(Clone)]
pub struct Client {
    pub index: usize,
    pub user: String,
    pub channel: Channel,
    bearer: Bearer,
}

/// Calls until answered, waiting as long as each refusal's
/// `google.rpc.RetryInfo` says (a few times at most).
async fn with_retry_hints<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    use tonic_types::StatusExt as _;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match call().await {
            Err(status) if attempts < 10 => {
                let Some(delay) = status.get_details_retry_info().and_then(|r| r.retry_delay)
                else {
                    return Err(status);
                };
                tokio::time::sleep(delay).await;
            }
            answer => return answer,
        }
    }
}

impl Client {
    pub fn chat(&self) -> ChatServiceClient<Authed> {
        ChatServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn groups(&self) -> GroupServiceClient<Authed> {
        GroupServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn topics(&self) -> TopicServiceClient<Authed> {
        TopicServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    pub fn contacts(&self) -> ContactServiceClient<Authed> {
        ContactServiceClient::with_interceptor(self.channel.clone(), self.bearer.clone())
    }

    /// Registers and logs in `user` through `channel`, as a well-behaved
    /// client does: a refusal that says when to try again (the server's
    /// password hashing is busy while hundreds of users sign in at once) is
    /// tried again then.
    pub async fn register(channel: Channel, index: usize, user: String) -> anyhow::Result<Self> {
        let accounts = AccountServiceClient::new(channel.clone());
        let registered = with_retry_hints(|| {
            let mut accounts = accounts.clone();
            let request = pb::RegisterRequest {
                user_id: user.clone(),
                password: PASSWORD.into(),
                display_name: String::new(),
            };
            async move { accounts.register(request).await }
        })
        .await;
        match registered {
            Ok(_) => {}
            Err(status) if status.code() == tonic::Code::AlreadyExists => {}
            Err(status) => anyhow::bail!("register {user}: {status}"),
        }
        let token = with_retry_hints(|| {
            let mut accounts = accounts.clone();
            let request = pb::LoginRequest {
                user_id: user.clone(),
                password: PASSWORD.into(),
                device_id: "loadgen".into(),
            };
            async move { accounts.login(request).await }
        })
        .await
        .with_context(|| format!("login {user}"))?
        .into_inner()
        .token;
        Ok(Self {
            index,
            user,
            channel,
            bearer: Bearer::new(&token)?,
        })
    }

    /// Opens the stream, reads up to SyncComplete, then checks every
    /// delivery in the background. Returns the task; dropping the returned
    /// handle's stream ends the subscription.
    pub async fn subscribe(
        &self,
        recorder: Arc<Recorder>,
        request: pb::SubscribeRequest,
    ) -> anyhow::Result<Subscription> {
        let mut stream = self
            .chat()
            .subscribe(request)
            .await
            .with_context(|| format!("subscribe {}", self.user))?
            .into_inner();
        let mut epoch = String::new();
        loop {
            let event = stream
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("{}: stream ended before sync", self.user))??;
            match event.kind {
                Some(Kind::Ready(ready)) => epoch = ready.epoch,
                Some(Kind::Message(message)) => recorder.replayed(self.index, &message),
                Some(Kind::Gap(gap)) => recorder.gap_notice(self.index, &gap),
                Some(Kind::Synced(synced)) => {
                    for head in &synced.heads {
                        recorder.start_at(self.index, &head.conversation_id, head.seq);
                    }
                    break;
                }
                _ => {}
            }
        }
        let (index, user) = (self.index, self.user.clone());
        let task = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                match event {
                    Ok(pb::Event {
                        kind: Some(Kind::Message(message)),
                    }) => recorder.delivered(index, &user, &message),
                    Ok(pb::Event {
                        kind: Some(Kind::Gap(gap)),
                    }) => recorder.gap_notice(index, &gap),
                    Ok(_) => {}
                    Err(status) => {
                        recorder.stream_error(&status);
                        return;
                    }
                }
            }
        });
        Ok(Subscription { task, epoch })
    }
}

/// Sends over one `SendStream` call, as a native client would: requests go
/// out as they come, and the gateway answers each, in order.
#[derive(Clone)]
pub struct StreamSender {
    inner: Arc<StreamSenderInner>,
}

type Answer = tokio::sync::oneshot::Sender<Result<pb::SendResponse, String>>;

struct StreamSenderInner {
    requests: futures::channel::mpsc::UnboundedSender<pb::SendRequest>,
    /// The callers waiting for an answer, in the order their requests went;
    /// `None` once the call has ended.
    waiting: Arc<parking_lot::Mutex<Option<std::collections::VecDeque<Answer>>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for StreamSenderInner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl StreamSender {
    pub async fn open(client: &Client) -> anyhow::Result<Self> {
        let (requests, outgoing) = futures::channel::mpsc::unbounded();
        let mut results = client
            .chat()
            .send_stream(outgoing)
            .await
            .with_context(|| format!("send stream of {}", client.user))?
            .into_inner();
        let waiting = Arc::new(parking_lot::Mutex::new(Some(std::collections::VecDeque::<
            Answer,
        >::new())));
        let reader = tokio::spawn({
            let waiting = waiting.clone();
            async move {
                while let Some(item) = results.next().await {
                    let Ok(result) = item else { break };
                    let answer = match result.outcome {
                        Some(pb::send_result::Outcome::Sent(sent)) => Ok(sent),
                        Some(pb::send_result::Outcome::Failed(failed)) => Err(format!(
                            "{}: {}",
                            tonic::Code::from(failed.code),
                            failed.message
                        )),
                        None => Err("an empty answer".into()),
                    };
                    if let Some(waiter) = waiting.lock().as_mut().and_then(|w| w.pop_front()) {
                        let _ = waiter.send(answer);
                    }
                }
                // The call ended: whoever still waits will not hear back.
                *waiting.lock() = None;
            }
        });
        Ok(Self {
            inner: Arc::new(StreamSenderInner {
                requests,
                waiting,
                reader,
            }),
        })
    }

    pub async fn send(&self, request: pb::SendRequest) -> Result<pb::SendResponse, String> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        {
            let mut waiting = self.inner.waiting.lock();
            let Some(waiting) = waiting.as_mut() else {
                return Err("the send stream has ended".to_owned());
            };
            self.inner
                .requests
                .unbounded_send(request)
                .map_err(|_| "the send stream has ended".to_owned())?;
            waiting.push_back(answer);
        }
        answered
            .await
            .map_err(|_| "the send stream ended before answering".to_owned())?
    }
}

pub struct Subscription {
    task: tokio::task::JoinHandle<()>,
    pub epoch: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How registered clients connect.
#[derive(Debug, Clone, Copy)]
pub enum Connections {
    /// Each its own TCP connection, as a real client (to subscribe).
    Own,
    /// This many connections shared by all: for members that never come
    /// online, more of them than a process may hold open files.
    Shared(usize),
}

/// Registers `count` users named `<prefix><i>`, `parallel` at a time.
pub async fn register_many(
    origin: &Origin,
    prefix: &str,
    range: std::ops::Range<usize>,
    parallel: usize,
    connections: Connections,
) -> anyhow::Result<Vec<Client>> {
    let shared = match connections {
        Connections::Own => Vec::new(),
        Connections::Shared(count) => {
            let mut channels = Vec::with_capacity(count);
            for i in 0..count.max(1) {
                channels.push(origin.connect(i).await?);
            }
            channels
        }
    };
    let permits = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(range.len());
    for index in range {
        let permits = permits.clone();
        let origin = origin.clone();
        let user = format!("{prefix}{index}");
        let channel = (!shared.is_empty()).then(|| shared[index % shared.len()].clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let channel = match channel {
                Some(channel) => channel,
                None => origin.connect(index).await?,
            };
            Client::register(channel, index, user).await
        }));
    }
    let mut clients = Vec::with_capacity(tasks.len());
    for task in tasks {
        clients.push(task.await??);
    }
    Ok(clients)
}
