//! Presence state in Redis (`sb:presence:*` keys). Presence is the only
//! writer; routers read through [`Directory`].
//!
//! Each script touches one hash slot (docs/ARCHITECTURE.md), so this runs on
//! one Redis and on a Redis Cluster alike: a gateway's own record (its
//! connections, its groups, its liveness) in the gateway's slot, a user's
//! connections in the user's, a group's gateways in the group's. Writes that
//! span them go in the order that leaves the gateway's record the last to
//! lose an entry, so whoever clears a gateway (its own resync, the reaper)
//! finds everything it must undo. The online count is a gauge kept beside
//! them (INCR/DECR after the user's slot says a user came or went).

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt, stream};
use redis::{Cmd, Script, Value};
use switchboard_shared::ids::{ConnectionId, GatewayId, GroupId, UserId};
use switchboard_shared::keys;
use switchboard_shared::redis_pool::{Connection, Pool};

use crate::directory::Directory;
use crate::registry::{ConnectionRecord, Opened, Registry, Transitions, transitions};
use crate::{PresenceError, PresenceResult};

/// How many users' entries a gateway's clearing removes at once.
const CLEAR_CONCURRENCY: usize = 32;

struct Scripts {
    open: Script,
    user_add: Script,
    user_remove: Script,
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

/// One command on `key` with `args`.
fn on_key(name: &str, key: String, args: &[&str]) -> Cmd {
    let mut c = redis::cmd(name);
    c.arg(key).arg(args);
    c
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
                user_add: Script::new(include_str!("scripts/user_add.lua")),
                user_remove: Script::new(include_str!("scripts/user_remove.lua")),
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

    /// Commands that may span slots (`Pool::query_all`); replies in order.
    async fn query_all(&self, commands: Vec<Cmd>) -> PresenceResult<Vec<Value>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.pool
            .query_all(commands)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Moves the online gauge by one.
    async fn count_online(&self, by: i64) -> PresenceResult<()> {
        let key = keys::presence_online_count();
        let command = if by > 0 {
            on_key("INCR", key, &[])
        } else {
            on_key("DECR", key, &[])
        };
        self.query_all(vec![command]).await?;
        Ok(())
    }

    /// Removes one connection from its user's entries; true if that was
    /// the user's last connection (the gauge is moved then).
    async fn remove_user_entry(&self, connection: &str, user: &UserId) -> PresenceResult<bool> {
        let mut conn = self.conn().await?;
        let last: bool = self
            .scripts
            .user_remove
            .key(keys::presence_user(user))
            .arg(connection)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if last {
            self.count_online(-1).await?;
        }
        Ok(last)
    }

    /// The gateway's group entries: added to the groups' sets after the
    /// gateway's record (or removed from them before it), so the record
    /// always lists every group set that names the gateway.
    async fn group_sets(
        &self,
        gateway: &GatewayId,
        groups: &[GroupId],
        add: bool,
    ) -> PresenceResult<()> {
        let name = if add { "SADD" } else { "SREM" };
        let commands = groups
            .iter()
            .map(|group| on_key(name, keys::presence_group(group), &[gateway.as_str()]))
            .collect();
        self.query_all(commands).await?;
        Ok(())
    }

    /// Removes the gateway's connections and group interest; with `forget`,
    /// the gateway itself too. The users' and groups' entries go first, the
    /// gateway's record last: a clearing cut short is finished by the next.
    async fn clear(&self, gateway: &GatewayId, forget: bool) -> PresenceResult<Vec<UserId>> {
        let (connections, groups): (Vec<(String, String)>, Vec<String>) = {
            let mut conn = self.conn().await?;
            redis::pipe()
                .cmd("HGETALL")
                .arg(keys::presence_gateway_connections(gateway))
                .cmd("SMEMBERS")
                .arg(keys::presence_gateway_groups(gateway))
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?
        };
        let connections = connections
            .into_iter()
            .map(|(connection, user)| {
                Ok((connection, UserId::parse(&user).map_err(|e| corrupt(e.0))?))
            })
            .collect::<PresenceResult<Vec<_>>>()?;
        let groups = groups
            .iter()
            .map(|g| GroupId::parse(g).map_err(|e| corrupt(e.0)))
            .collect::<PresenceResult<Vec<_>>>()?;

        let went_offline: Vec<UserId> = stream::iter(connections.clone())
            .map(|(connection, user)| async move {
                let last = self.remove_user_entry(&connection, &user).await?;
                Ok::<_, PresenceError>(last.then_some(user))
            })
            .buffer_unordered(CLEAR_CONCURRENCY)
            .try_filter_map(|offline| async move { Ok(offline) })
            .try_collect()
            .await?;
        self.group_sets(gateway, &groups, false).await?;

        let mut inv = self.scripts.clear_gateway.prepare_invoke();
        inv.key(keys::presence_gateway_known(gateway))
            .key(keys::presence_gateway_alive(gateway))
            .key(keys::presence_gateway_connections(gateway))
            .key(keys::presence_gateway_groups(gateway))
            .arg(if forget { "1" } else { "0" });
        for (connection, _) in &connections {
            inv.arg(connection);
        }
        let mut conn = self.conn().await?;
        let _: Value = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if forget {
            self.query_all(vec![on_key(
                "SREM",
                keys::presence_gateways(),
                &[gateway.as_str()],
            )])
            .await?;
        }
        Ok(went_offline)
    }
}

#[async_trait]
impl Directory for RedisPresence {
    async fn user_gateways(&self, users: &[UserId]) -> PresenceResult<Vec<Vec<GatewayId>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let commands = users
            .iter()
            .map(|user| on_key("HVALS", keys::presence_user(user), &[]))
            .collect();
        let rows: Vec<Vec<String>> =
            redis::from_redis_value(Value::Array(self.query_all(commands).await?))
                .map_err(corrupt)?;
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
        // The gateway's record first: if the user's entry then fails, the
        // gateway's clearing still finds the connection.
        let mut conn = self.conn().await?;
        let known: bool = self
            .scripts
            .open
            .key(keys::presence_gateway_known(gateway))
            .key(keys::presence_gateway_alive(gateway))
            .key(keys::presence_gateway_connections(gateway))
            .arg(connection.id.as_str())
            .arg(connection.user.as_str())
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if !known {
            self.query_all(vec![on_key(
                "SADD",
                keys::presence_gateways(),
                &[gateway.as_str()],
            )])
            .await?;
        }
        let came_online: bool = self
            .scripts
            .user_add
            .key(keys::presence_user(&connection.user))
            .arg(connection.id.as_str())
            .arg(format!("{gateway} {}", connection.device))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        if came_online {
            self.count_online(1).await?;
        }
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
        // The user's entry first, the gateway's record of it last.
        let went_offline = self.remove_user_entry(connection.as_str(), user).await?;
        self.query_all(vec![on_key(
            "HDEL",
            keys::presence_gateway_connections(gateway),
            &[connection.as_str()],
        )])
        .await?;
        Ok(went_offline)
    }

    async fn interest(
        &self,
        gateway: &GatewayId,
        add: &[GroupId],
        remove: &[GroupId],
    ) -> PresenceResult<bool> {
        self.group_sets(gateway, remove, false).await?;
        let mut conn = self.conn().await?;
        let mut inv = self.scripts.interest.prepare_invoke();
        inv.key(keys::presence_gateway_known(gateway))
            .key(keys::presence_gateway_groups(gateway))
            .arg(add.len());
        for group in add.iter().chain(remove) {
            inv.arg(group.as_str());
        }
        let known: bool = inv
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))?;
        self.group_sets(gateway, add, true).await?;
        Ok(known)
    }

    async fn heartbeat(&self, gateway: &GatewayId, ttl_ms: u32) -> PresenceResult<bool> {
        let mut conn = self.conn().await?;
        self.scripts
            .heartbeat
            .key(keys::presence_gateway_known(gateway))
            .key(keys::presence_gateway_alive(gateway))
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
        let commands = gateways
            .iter()
            .map(|gateway| on_key("EXISTS", keys::presence_gateway_alive(gateway), &[]))
            .collect();
        let alive: Vec<bool> =
            redis::from_redis_value(Value::Array(self.query_all(commands).await?))
                .map_err(corrupt)?;
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
        let ttl = ttl_ms.to_string();
        self.query_all(vec![
            on_key("SET", keys::presence_gateway_known(gateway), &["1"]),
            on_key(
                "SET",
                keys::presence_gateway_alive(gateway),
                &["1", "PX", &ttl],
            ),
        ])
        .await?;
        self.query_all(vec![on_key(
            "SADD",
            keys::presence_gateways(),
            &[gateway.as_str()],
        )])
        .await?;
        Ok(())
    }
}
