//! The production bus: a NATS client connection.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{HeaderMap, client::RequestErrorKind};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;

use super::{Bus, BusError, Headers, Incoming, Subscription};
use crate::subjects::Subject;

/// How to reach NATS.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsConfig {
    /// NATS server URL(s), comma-separated; tls:// for TLS.
    #[arg(
        id = "nats_url",
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// NATS user (with --nats-password).
    #[arg(id = "nats_user", long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// NATS password (with --nats-user).
    #[arg(
        id = "nats_password",
        long = "nats-password",
        env = "NATS_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// NATS credentials file (JWT + nkey).
    #[arg(id = "nats_creds", long = "nats-creds", env = "NATS_CREDS")]
    pub creds_file: Option<PathBuf>,
    /// Shown in the server's connection list (set by the binary per role).
    #[arg(skip)]
    pub client_name: String,
}

pub struct NatsBus {
    client: async_nats::Client,
    /// `nats at <urls>`, for errors and logs (never credentials).
    name: String,
}

/// `nats at host:port[,host:port]` for a NATS URL list, without credentials.
pub fn describe(urls: &str) -> String {
    let hosts: Vec<&str> = urls
        .split(',')
        .map(|url| {
            let url = url.trim();
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            rest.rsplit_once('@').map_or(rest, |(_, host)| host)
        })
        .collect();
    format!("nats at {}", hosts.join(","))
}

impl NatsBus {
    /// Connects, retrying until the server answers (NATS may start after us).
    pub async fn connect(config: &NatsConfig) -> anyhow::Result<Self> {
        let name = describe(&config.url);
        // The first Connected event is the initial connection, not a reconnect.
        let connected_before = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let named = name.clone();
        let mut options = async_nats::ConnectOptions::new()
            .name(&config.client_name)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            // Deliveries come in bursts; a deep client buffer keeps a gateway
            // from being marked a slow consumer by one burst.
            .subscription_capacity(65_536)
            .client_capacity(65_536)
            .event_callback(move |event| {
                let connected_before = connected_before.clone();
                let nats = named.clone();
                async move {
                    let metrics = crate::metrics::metrics();
                    match event {
                        async_nats::Event::Disconnected => {
                            tracing::warn!(%nats, "nats disconnected; reconnecting");
                        }
                        async_nats::Event::Connected => {
                            if connected_before.swap(true, std::sync::atomic::Ordering::Relaxed) {
                                metrics.nats_reconnects.inc();
                                tracing::info!(%nats, "nats reconnected");
                            } else {
                                tracing::info!(%nats, "nats connected");
                            }
                        }
                        async_nats::Event::SlowConsumer(sid) => {
                            metrics.nats_slow_consumers.inc();
                            tracing::warn!(%nats, sid, "nats slow consumer: messages dropped");
                        }
                        other => tracing::info!(%nats, event = %other, "nats event"),
                    }
                }
            });
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(creds) = &config.creds_file {
            options = options.credentials_file(creds).await?;
        }
        let urls: Vec<&str> = config.url.split(',').map(str::trim).collect();
        let client = options.connect(urls).await?;
        Ok(Self { client, name })
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

fn to_header_map(headers: Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(name.as_str(), value.as_str());
    }
    map
}

fn from_header_map(map: Option<&HeaderMap>) -> Headers {
    let Some(map) = map else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, values)| {
            values
                .first()
                .map(|v| (name.to_string(), v.as_str().to_owned()))
        })
        .collect()
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(
        &self,
        subject: &Subject,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), BusError> {
        let subject = subject.as_str().to_owned();
        let result = if headers.is_empty() {
            self.client.publish(subject, payload).await
        } else {
            self.client
                .publish_with_headers(subject, to_header_map(headers), payload)
                .await
        };
        result.map_err(|e| BusError::Failed(format!("{}: {e}", self.name)))
    }

    async fn request(
        &self,
        subject: &Subject,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, BusError> {
        let request = async_nats::Request::new()
            .payload(payload)
            .headers(to_header_map(headers))
            .timeout(Some(timeout));
        match self
            .client
            .send_request(subject.as_str().to_owned(), request)
            .await
        {
            Ok(message) => Ok(message.payload),
            Err(err) => Err(match err.kind() {
                RequestErrorKind::NoResponders => BusError::NoResponders(subject.to_string()),
                RequestErrorKind::TimedOut => BusError::TimedOut(subject.to_string()),
                _ => BusError::Failed(format!("{}: {err}", self.name)),
            }),
        }
    }

    async fn subscribe(
        &self,
        subject: &Subject,
        queue_group: Option<&str>,
    ) -> Result<Subscription, BusError> {
        let subject_name = subject.as_str().to_owned();
        let subscriber = match queue_group {
            Some(group) => {
                self.client
                    .queue_subscribe(subject_name, group.to_owned())
                    .await
            }
            None => self.client.subscribe(subject_name).await,
        }
        .map_err(|e| BusError::Failed(format!("{}: {e}", self.name)))?;
        Ok(Box::pin(subscriber.map(|message| {
            Incoming {
                subject: Subject::from_bus(message.subject.to_string()),
                reply: message
                    .reply
                    .map(|reply| Subject::from_bus(reply.to_string())),
                headers: from_header_map(message.headers.as_ref()),
                payload: message.payload,
            }
        })))
    }

    async fn flush(&self) -> Result<(), BusError> {
        self.client
            .flush()
            .await
            .map_err(|e| BusError::Failed(format!("{}: {e}", self.name)))
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_servers_not_the_credentials() {
        assert_eq!(
            describe("nats://user:pw@a.example:4222, tls://b.example:4443"),
            "nats at a.example:4222,b.example:4443"
        );
    }
}
