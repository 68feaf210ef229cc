//! Presence state in Redis (`sb:presence:*` keys). Presence is the only
//! writer; routers read through [`Directory`].

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager as Connection;
use switchboard_shared::ids::{ConnectionId, GatewayId, GroupId, UserId};
use switchboard_shared::keys;
use switchboard_shared::redis_pool::Pool;

use crate::directory::Directory;
use crate::registry::{ConnectionRecord, Opened, Registry, Transitions, transitions};
use crate::{PresenceError, PresenceResult};

struct Scripts {
    open: Script,
    close: Script,
    interest: Script,
    heartbeat: Script,
    clear_gateway: Script,
    lead: Script,
}

pub struct RedisPresence {
    pool: Pool,
    scripts: Scripts,
}

fn corrupt(err: impl std::fmt::Display) -> PresenceError {
    PresenceError::Corrupt(err.to_string())
}

/// A user-hash value is `<gateway> <device>`.
fn gateway_of(entry: &str) -> PresenceResult<GatewayId> {
    let gateway = entry.split(' ').next().unwrap_or_default();
    GatewayId::parse(gateway).map_err(|e| corrupt(e.0))
}

impl RedisPresence {
    /// Redis did not answer: the error names which Redis.
    fn unavailable(&self, err: impl std::fmt::Display) -> PresenceError {
        PresenceError::Unavailable(format!("{}: {err}", self.pool.name()))
    }

    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            scripts: Scripts {
                open: Script::new(include_str!("scripts/open.lua")),
                close: Script::new(include_str!("scripts/close.lua")),
                interest: Script::new(include_str!("scripts/interest.lua")),
                heartbeat: Script::new(include_str!("scripts/heartbeat.lua")),
                clear_gateway: Script::new(include_str!("scripts/clear_gateway.lua")),
                lead: Script::new(include_str!("scripts/lead.lua")),
            },
        }
    }

    async fn conn(&self) -> PresenceResult<Connection> {
        Ok(self.pool.get())
    }

    /// Removes the gateway's connections and group interest; with `forget`,
    /// the gateway itself too.
    async fn clear(&self, gateway: &GatewayId, forget: bool) -> PresenceResult<Vec<UserId>> {
        let mut conn = self.conn().await?;
        let (connections, groups): (Vec<(String, String)>, Vec<String>) = redis::pipe()
            .cmd("HGETALL")
            .arg(keys::presence_gateway_connections(gateway))
            .cmd("SMEMBERS")
            .arg(keys::presence_gateway_groups(gateway))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let users = connections
            .iter()
            .map(|(_, user)| UserId::parse(user).map_err(|e| corrupt(e.0)))
            .collect::<PresenceResult<Vec<_>>>()?;
        let groups = groups
            .iter()
            .map(|g| GroupId::parse(g).map_err(|e| corrupt(e.0)))
            .collect::<PresenceResult<Vec<_>>>()?;

        let mut inv = self.scripts.clear_gateway.prepare_invoke();
        inv.key(keys::presence_gateways())
            .key(keys::presence_gateway_alive(gateway))
            .key(keys::presence_gateway_connections(gateway))
            .key(keys::presence_gateway_groups(gateway))
            .key(keys::presence_online_count());
        for user in &users {
            inv.key(keys::presence_user(user));
        }
        for group in &groups {
            inv.key(keys::presence_group(group));
        }
        inv.arg(gateway.as_str())
            .arg(users.len())
            .arg(groups.len())
            .arg(if forget { "1" } else { "0" });
        for (connection, _) in &connections {
            inv.arg(connection);
        }
        for user in &users {
            inv.arg(user.as_str());
        }
        let offline: Vec<String> = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        offline
            .iter()
            .map(|u| UserId::parse(u).map_err(|e| corrupt(e.0)))
            .collect()
    }
}

#[async_trait]
impl Directory for RedisPresence {
    async fn user_gateways(&self, users: &[UserId]) -> PresenceResult<Vec<Vec<GatewayId>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for user in users {
            pipe.cmd("HVALS").arg(keys::presence_user(user));
        }
        let rows: Vec<Vec<String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        rows.iter()
            .map(|entries| {
                let mut gateways = entries
                    .iter()
                    .map(|e| gateway_of(e))
                    .collect::<PresenceResult<Vec<_>>>()?;
                gateways.sort();
                gateways.dedup();
                Ok(gateways)
            })
            .collect()
    }

    async fn group_gateways(&self, group: &GroupId) -> PresenceResult<Vec<GatewayId>> {
        let mut conn = self.conn().await?;
        let gateways: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::presence_group(group))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        gateways
            .iter()
            .map(|g| GatewayId::parse(g).map_err(|e| corrupt(e.0)))
            .collect()
    }
}

#[async_trait]
impl Registry for RedisPresence {
    async fn open(
        &self,
        gateway: &GatewayId,
        connection: &ConnectionRecord,
        ttl_ms: u32,
    ) -> PresenceResult<Opened> {
        let mut conn = self.conn().await?;
        let (known, came_online): (bool, bool) = self
            .scripts
            .open
            .key(keys::presence_gateways())
            .key(keys::presence_gateway_alive(gateway))
            .key(keys::presence_gateway_connections(gateway))
            .key(keys::presence_user(&connection.user))
            .key(keys::presence_online_count())
            .arg(gateway.as_str())
            .arg(connection.id.as_str())
            .arg(connection.user.as_str())
            .arg(format!("{gateway} {}", connection.device))
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(Opened {
            gateway_known: known,
            came_online,
        })
    }

    async fn close(
        &self,
        gateway: &GatewayId,
        connection: &ConnectionId,
        user: &UserId,
    ) -> PresenceResult<bool> {
        let mut conn = self.conn().await?;
        self.scripts
            .close
            .key(keys::presence_gateway_connections(gateway))
            .key(keys::presence_user(user))
            .key(keys::presence_online_count())
            .arg(connection.as_str())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn interest(
        &self,
        gateway: &GatewayId,
        add: &[GroupId],
        remove: &[GroupId],
    ) -> PresenceResult<bool> {
        let mut conn = self.conn().await?;
        let mut inv = self.scripts.interest.prepare_invoke();
        inv.key(keys::presence_gateways())
            .key(keys::presence_gateway_groups(gateway));
        for group in add.iter().chain(remove) {
            inv.key(keys::presence_group(group));
        }
        inv.arg(gateway.as_str()).arg(add.len()).arg(remove.len());
        for group in add.iter().chain(remove) {
            inv.arg(group.as_str());
        }
        inv.invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn heartbeat(&self, gateway: &GatewayId, ttl_ms: u32) -> PresenceResult<bool> {
        let mut conn = self.conn().await?;
        self.scripts
            .heartbeat
            .key(keys::presence_gateways())
            .key(keys::presence_gateway_alive(gateway))
            .arg(gateway.as_str())
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    async fn replace(
        &self,
        gateway: &GatewayId,
        connections: &[ConnectionRecord],
        groups: &[GroupId],
        ttl_ms: u32,
    ) -> PresenceResult<Transitions> {
        let went_offline = self.clear(gateway, false).await?;
        let mut came_online = Vec::new();
        for connection in connections {
            if self.open(gateway, connection, ttl_ms).await?.came_online {
                came_online.push(connection.user.clone());
            }
        }
        // `open` registers the gateway even when it holds no connection.
        self.heartbeat_or_register(gateway, ttl_ms).await?;
        self.interest(gateway, groups, &[]).await?;
        Ok(transitions(went_offline, came_online))
    }

    async fn remove_gateway(&self, gateway: &GatewayId) -> PresenceResult<Vec<UserId>> {
        self.clear(gateway, true).await
    }

    async fn dead_gateways(&self) -> PresenceResult<Vec<GatewayId>> {
        let mut conn = self.conn().await?;
        let gateways: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys::presence_gateways())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        let gateways = gateways
            .iter()
            .map(|g| GatewayId::parse(g).map_err(|e| corrupt(e.0)))
            .collect::<PresenceResult<Vec<_>>>()?;
        if gateways.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for gateway in &gateways {
            pipe.cmd("EXISTS")
                .arg(keys::presence_gateway_alive(gateway));
        }
        let alive: Vec<bool> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(gateways
            .into_iter()
            .zip(alive)
            .filter_map(|(gateway, alive)| (!alive).then_some(gateway))
            .collect())
    }

    async fn online_users(&self) -> PresenceResult<i64> {
        let mut conn = self.conn().await?;
        let count: Option<i64> = redis::cmd("GET")
            .arg(keys::presence_online_count())
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(count.unwrap_or(0))
    }

    async fn lead(&self, instance: &str, ttl_ms: u32) -> PresenceResult<bool> {
        let mut conn = self.conn().await?;
        self.scripts
            .lead
            .key(keys::presence_reaper_lock())
            .arg(instance)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }
}

impl RedisPresence {
    async fn heartbeat_or_register(&self, gateway: &GatewayId, ttl_ms: u32) -> PresenceResult<()> {
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .atomic()
            .cmd("SADD")
            .arg(keys::presence_gateways())
            .arg(gateway.as_str())
            .ignore()
            .cmd("SET")
            .arg(keys::presence_gateway_alive(gateway))
            .arg("1")
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        Ok(())
    }
}
