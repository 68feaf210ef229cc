//! Every bus subject Switchboard uses, built here and nowhere else. The
//! catalogue with who publishes and who subscribes is in
//! docs/ARCHITECTURE.md; the tests below pin each string.

use std::fmt;

use crate::ids::GatewayId;

/// A bus subject. Only this module and the bus implementations (for reply
/// inboxes) construct one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A reply subject handed over by the bus itself (request inboxes).
    pub(crate) fn from_bus(raw: String) -> Self {
        Self(raw)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Queue group shared by all routers: each request goes to exactly one.
pub const ROUTER_QUEUE: &str = "router";
/// Queue group shared by all presence instances.
pub const PRESENCE_QUEUE: &str = "presence";

/// gateway -> router requests (every client action).
pub fn router_rpc() -> Subject {
    Subject("sb.router.rpc".into())
}

/// gateway -> routers (queue group): topic messages that reached their contact.
pub fn router_delivered() -> Subject {
    Subject("sb.router.delivered".into())
}

/// router/presence -> one gateway: deliveries for connections it holds.
pub fn gateway_deliver(gateway: &GatewayId) -> Subject {
    Subject(format!("sb.gw.{gateway}.deliver"))
}

/// gateway -> presence requests (connections, group interest, heartbeats).
pub fn presence_rpc() -> Subject {
    Subject("sb.presence.rpc".into())
}

/// presence -> routers (queue group): a user came online or went offline.
/// The router, which owns contact lists, tells the user's contacts.
pub fn presence_changed() -> Subject {
    Subject("sb.presence.changed".into())
}

/// router -> every gateway and router: a session logged out.
pub fn session_revoked() -> Subject {
    Subject("sb.ctl.session.revoked".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_pinned() {
        let gw = GatewayId::parse("gw-0-abc123").unwrap();
        assert_eq!(router_rpc().as_str(), "sb.router.rpc");
        assert_eq!(router_delivered().as_str(), "sb.router.delivered");
        assert_eq!(gateway_deliver(&gw).as_str(), "sb.gw.gw-0-abc123.deliver");
        assert_eq!(presence_rpc().as_str(), "sb.presence.rpc");
        assert_eq!(presence_changed().as_str(), "sb.presence.changed");
        assert_eq!(session_revoked().as_str(), "sb.ctl.session.revoked");
    }
}
