//! Connections to a gateway, with the saved token on every call.

use std::path::Path;

use anyhow::Context as _;
use switchboard_proto::client::{Authed, Bearer};
use switchboard_proto::pb::{
    account_service_client::AccountServiceClient, chat_service_client::ChatServiceClient,
    contact_service_client::ContactServiceClient, group_service_client::GroupServiceClient,
    topic_service_client::TopicServiceClient,
};
use tonic::transport::Channel;

/// A channel to `server`: over TLS for `https://` (trusting `ca` besides
/// the system's authorities), in plaintext for `http://`.
pub async fn connect(server: &str, ca: Option<&Path>) -> anyhow::Result<Channel> {
    let ca = switchboard_proto::client::read_ca(ca).map_err(anyhow::Error::msg)?;
    switchboard_proto::client::endpoint(server, ca.as_deref())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach {server}; is Switchboard running?"))
}

pub struct Clients {
    pub accounts: AccountServiceClient<Authed>,
    pub chat: ChatServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
    pub groups: GroupServiceClient<Authed>,
    pub topics: TopicServiceClient<Authed>,
}

impl Clients {
    pub fn new(channel: Channel, token: &str) -> anyhow::Result<Self> {
        let bearer =
            Bearer::new(token).context("the saved token is not valid metadata; log in again")?;
        Ok(Self {
            accounts: AccountServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            chat: ChatServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            contacts: ContactServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            groups: GroupServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            topics: TopicServiceClient::with_interceptor(channel, bearer),
        })
    }
}
