//! Bounds and value parsers the sections share: the longest duration any setting takes, API
//! Gateway's largest `@connections` payload, and durations written as text (`"10m"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest duration any setting takes.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest `@connections` payload API Gateway accepts, in bytes.
pub const AWS_MAX_POST_BYTES: usize = 131_072;

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{e} in {text:?} (use e.g. \"10m\", \"29s\", \"500ms\")"
        ))
    })
}

pub(super) fn de_opt_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}
