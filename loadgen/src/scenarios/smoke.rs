//! A short run of every kind of traffic, for CI: correctness only.

use std::time::Duration;

use crate::client::Origin;
use crate::report::Report;

pub async fn run(origin: &Origin, prefix: &str) -> anyhow::Result<Vec<Report>> {
    let seconds = Duration::from_secs(1);
    let watch = super::Watch::default();
    Ok(vec![
        super::direct::run(
            origin,
            &watch,
            &format!("{prefix}d"),
            5,
            50.0,
            seconds,
            200,
            super::direct::SendVia::Unary,
            (super::flood::Flood::None, 0),
        )
        .await?,
        super::direct::run(
            origin,
            &watch,
            &format!("{prefix}ds"),
            5,
            50.0,
            seconds,
            200,
            super::direct::SendVia::Stream,
            (super::flood::Flood::None, 0),
        )
        .await?,
        super::group::run(
            origin,
            &watch,
            &format!("{prefix}g"),
            2,
            10,
            6,
            20.0,
            seconds,
            200,
        )
        .await?,
        super::topic::run(origin, &watch, &format!("{prefix}t"), 8, 5.0, seconds, 200).await?,
        super::storm::run(origin, &format!("{prefix}s"), 30).await?,
    ])
}
