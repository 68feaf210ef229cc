//! Who receives what: from (audience, event) pairs and where people are
//! connected to one batch per gateway. Pure; no I/O.

use std::collections::{BTreeMap, HashMap};

use switchboard_proto::bus::{Delivery, DeliveryBatch};
use switchboard_proto::pb;
use switchboard_shared::ids::{GatewayId, GroupId, UserId};

/// Who an event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every connection of these users.
    Users(Vec<UserId>),
    /// Every connection of every member of the group; the gateways resolve
    /// members locally, so the router's cost does not grow with the group.
    Group(GroupId),
}

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub audience: Audience,
    pub event: pb::Event,
}

/// Where the audiences are connected.
#[derive(Debug, Default)]
pub struct Locations {
    pub users: HashMap<UserId, Vec<GatewayId>>,
    pub groups: HashMap<GroupId, Vec<GatewayId>>,
}

/// One batch per gateway holding at least one recipient, and none for
/// gateways holding none.
pub fn plan(
    outgoing: &[Outgoing],
    locations: &Locations,
    epoch: &str,
    accepted_at_ms: i64,
) -> BTreeMap<GatewayId, DeliveryBatch> {
    let mut batches: BTreeMap<GatewayId, DeliveryBatch> = BTreeMap::new();
    for item in outgoing {
        let delivery = |users: Vec<String>, group_id: String| Delivery {
            users,
            group_id,
            event: Some(item.event.clone()),
            epoch: epoch.to_owned(),
            accepted_at_ms,
        };
        match &item.audience {
            Audience::Users(users) => {
                let mut by_gateway: BTreeMap<&GatewayId, Vec<String>> = BTreeMap::new();
                for user in users {
                    for gateway in locations.users.get(user).into_iter().flatten() {
                        let on_gateway = by_gateway.entry(gateway).or_default();
                        if !on_gateway.contains(&user.to_string()) {
                            on_gateway.push(user.to_string());
                        }
                    }
                }
                for (gateway, users) in by_gateway {
                    batches
                        .entry(gateway.clone())
                        .or_default()
                        .deliveries
                        .push(delivery(users, String::new()));
                }
            }
            Audience::Group(group) => {
                for gateway in locations.groups.get(group).into_iter().flatten() {
                    batches
                        .entry(gateway.clone())
                        .or_default()
                        .deliveries
                        .push(delivery(Vec::new(), group.to_string()));
                }
            }
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn gw(s: &str) -> GatewayId {
        GatewayId::parse(s).unwrap()
    }
    fn event(text: &str) -> pb::Event {
        pb::Event {
            kind: Some(pb::event::Kind::Message(pb::Message {
                text: text.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn direct_messages_go_only_to_the_gateways_of_the_two_parties() {
        let mut locations = Locations::default();
        locations.users.insert(user("alice"), vec![gw("gw-a")]);
        locations
            .users
            .insert(user("bob"), vec![gw("gw-a"), gw("gw-b")]);
        locations.users.insert(user("carol"), vec![gw("gw-c")]);
        let outgoing = [Outgoing {
            audience: Audience::Users(vec![user("alice"), user("bob")]),
            event: event("hi"),
        }];
        let batches = plan(&outgoing, &locations, "e1", 5);
        assert_eq!(
            batches.keys().cloned().collect::<Vec<_>>(),
            vec![gw("gw-a"), gw("gw-b")]
        );
        assert_eq!(
            batches[&gw("gw-a")].deliveries[0].users,
            vec!["alice", "bob"]
        );
        assert_eq!(batches[&gw("gw-b")].deliveries[0].users, vec!["bob"]);
        assert_eq!(batches[&gw("gw-b")].deliveries[0].epoch, "e1");
    }

    #[test]
    fn offline_recipients_cost_nothing() {
        let locations = Locations::default();
        let outgoing = [Outgoing {
            audience: Audience::Users(vec![user("alice")]),
            event: event("hi"),
        }];
        assert!(plan(&outgoing, &locations, "e", 0).is_empty());
    }

    #[test]
    fn a_group_message_is_one_delivery_per_hosting_gateway() {
        let group = GroupId::parse("gabcdefgh").unwrap();
        let mut locations = Locations::default();
        locations
            .groups
            .insert(group.clone(), vec![gw("gw-a"), gw("gw-b")]);
        let outgoing = [
            Outgoing {
                audience: Audience::Group(group.clone()),
                event: event("one"),
            },
            Outgoing {
                audience: Audience::Group(group.clone()),
                event: event("two"),
            },
        ];
        let batches = plan(&outgoing, &locations, "e", 0);
        assert_eq!(batches.len(), 2);
        for batch in batches.values() {
            assert_eq!(batch.deliveries.len(), 2, "both events batched together");
            assert!(
                batch
                    .deliveries
                    .iter()
                    .all(|d| d.group_id == group.as_str())
            );
            assert!(batch.deliveries.iter().all(|d| d.users.is_empty()));
        }
    }
}
