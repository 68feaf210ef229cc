//! The presence contract, on Redis (a redis-server of the test's own), on a
//! Redis Cluster (three primaries, a replica each) and in memory: who is
//! online where, group interest, heartbeats, reaping.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchboard_presence::memory::MemoryPresence;
use switchboard_presence::redis::RedisPresence;
use switchboard_presence::registry::{ConnectionRecord, Transitions};
use switchboard_presence::{Directory, Registry};
use switchboard_shared::ids::{ConnectionId, DeviceId, GatewayId, GroupId, UserId};
use switchboard_shared::redis_pool::{self, RedisConfig};
use switchboard_testkit::{RedisCluster, RedisServer, eventually};

trait Both: Registry + Directory {}
impl<T: Registry + Directory> Both for T {}

async fn on_each<F, Fut>(case: F)
where
    F: Fn(Arc<dyn Both>) -> Fut,
    Fut: Future<Output = ()>,
{
    let redis = RedisServer::start();
    let cluster = RedisCluster::start(3, 1);
    for (url, is_cluster) in [(redis.url(), false), (cluster.url(), true)] {
        let pool = redis_pool::connect(&RedisConfig::new(url)).await.unwrap();
        assert_eq!(pool.is_cluster(), is_cluster);
        case(Arc::new(RedisPresence::new(pool))).await;
    }
    case(Arc::new(MemoryPresence::new())).await;
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn connection(name: &str) -> ConnectionRecord {
    ConnectionRecord {
        id: ConnectionId::generate(),
        user: user(name),
        device: DeviceId::parse("laptop").unwrap(),
    }
}

fn gateway(name: &str) -> GatewayId {
    GatewayId::for_boot(name).unwrap()
}

#[tokio::test]
async fn users_go_online_with_their_first_connection_and_offline_with_their_last() {
    on_each(|presence| async move {
        let (a, b) = (gateway("a"), gateway("b"));
        let laptop = connection("alice");
        let phone = connection("alice");
        let opened = presence.open(&a, &laptop, 10_000).await.unwrap();
        assert!(opened.came_online);
        assert!(!opened.gateway_known, "a gateway's first connection");
        let second = presence.open(&b, &phone, 10_000).await.unwrap();
        assert!(!second.came_online, "already online");
        let mut located = presence
            .user_gateways(&[user("alice"), user("bob")])
            .await
            .unwrap();
        located[0].sort();
        let mut expected = vec![a.clone(), b.clone()];
        expected.sort();
        assert_eq!(located, vec![expected, vec![]]);
        assert_eq!(presence.online_users().await.unwrap(), 1);
        assert!(!presence.close(&a, &laptop.id, &laptop.user).await.unwrap());
        assert!(
            presence.close(&b, &phone.id, &phone.user).await.unwrap(),
            "the last one"
        );
        assert_eq!(presence.online(&[user("alice")]).await.unwrap(), [false]);
        assert_eq!(presence.online_users().await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn groups_are_routed_to_the_gateways_that_host_members() {
    on_each(|presence| async move {
        let (a, b) = (gateway("a"), gateway("b"));
        let group = GroupId::generate();
        presence.heartbeat(&a, 10_000).await.unwrap();
        presence.replace(&a, &[], &[], 10_000).await.unwrap();
        assert!(
            presence
                .interest(&a, std::slice::from_ref(&group), &[])
                .await
                .unwrap()
        );
        presence
            .interest(&b, std::slice::from_ref(&group), &[])
            .await
            .unwrap();
        let hosting: HashSet<GatewayId> = presence
            .group_gateways(&group)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(hosting, HashSet::from([a.clone(), b.clone()]));
        presence
            .interest(&a, &[], std::slice::from_ref(&group))
            .await
            .unwrap();
        assert_eq!(
            presence.group_gateways(&group).await.unwrap(),
            std::slice::from_ref(&b)
        );
    })
    .await;
}

#[tokio::test]
async fn a_gateway_that_stops_heartbeating_is_reaped_with_its_users() {
    on_each(|presence| async move {
        let (dead, live) = (gateway("dead"), gateway("live"));
        let group = GroupId::generate();
        let alice = connection("alice");
        let bob = connection("bob");
        presence.open(&dead, &alice, 50).await.unwrap();
        presence
            .interest(&dead, std::slice::from_ref(&group), &[])
            .await
            .unwrap();
        presence.open(&live, &bob, 60_000).await.unwrap();
        let reaped = eventually(Duration::from_secs(5), "the lease to run out", || {
            let presence = presence.clone();
            async move {
                let dead = presence.dead_gateways().await.unwrap();
                (!dead.is_empty()).then_some(dead)
            }
        })
        .await;
        assert_eq!(reaped, std::slice::from_ref(&dead));
        assert_eq!(
            presence.remove_gateway(&dead).await.unwrap(),
            [user("alice")]
        );
        assert!(presence.group_gateways(&group).await.unwrap().is_empty());
        assert_eq!(
            presence
                .online(&[user("alice"), user("bob")])
                .await
                .unwrap(),
            [false, true]
        );
        // Forgotten: its next heartbeat asks for a resync.
        assert!(!presence.heartbeat(&dead, 60_000).await.unwrap());
        assert!(presence.heartbeat(&live, 60_000).await.unwrap());
        assert!(presence.lead("me", 1_000).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn a_resync_replaces_a_gateways_state() {
    on_each(|presence| async move {
        let gw = gateway("gw");
        let (stale, kept) = (connection("stale"), connection("kept"));
        presence.open(&gw, &stale, 60_000).await.unwrap();
        presence.open(&gw, &kept, 60_000).await.unwrap();
        let fresh = connection("fresh");
        let group = GroupId::generate();
        let transitions = presence
            .replace(
                &gw,
                &[kept.clone(), fresh.clone()],
                std::slice::from_ref(&group),
                60_000,
            )
            .await
            .unwrap();
        assert_eq!(
            transitions,
            Transitions {
                online: vec![user("fresh")],
                offline: vec![user("stale")],
            }
        );
        assert_eq!(
            presence.group_gateways(&group).await.unwrap(),
            std::slice::from_ref(&gw)
        );
        assert_eq!(presence.online_users().await.unwrap(), 2);
    })
    .await;
}
