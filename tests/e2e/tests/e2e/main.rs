//! End-to-end tests. Every test starts its own deployment: real
//! nats-server and redis-server processes on free ports, and the real
//! switchboard binary as two gateways, two routers and presence, or as one
//! standalone process. Clients are real gRPC clients. Tests wait on events,
//! never on sleeps.

#![allow(clippy::unwrap_used)]

mod harness;

mod accounts;
mod admin;
mod bad_input;
mod cli;
mod groups;
mod hardening;
mod load;
mod messaging;
mod operations;
mod presence;
mod push;
mod reactions;
mod resilience;
mod search;
mod tls;
mod topics;
mod trace;
mod webhooks;
