//! Wall-clock formats of the contract: epoch milliseconds, the CLF `requestTime` of events and
//! the ISO-8601 timestamps of `GetConnection`.

use time::OffsetDateTime;
use time::macros::format_description;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).unwrap_or(0)
}

fn at(ms: u64) -> OffsetDateTime {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `20/Jan/2024:11:55:08 +0000`, the format of `requestContext.requestTime`.
pub fn clf(ms: u64) -> String {
    let format =
        format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    at(ms).format(&format).unwrap_or_default()
}

/// `2024-05-24T14:02:09.114Z`, the format of `connectedAt` in `GetConnection`.
pub fn iso8601(ms: u64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at(ms).format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_aws_captures() {
        // 1716559329114 is 24 May 2024 14:02:09.114 UTC.
        assert_eq!(clf(1_716_559_329_114), "24/May/2024:14:02:09 +0000");
        assert_eq!(iso8601(1_716_559_329_114), "2024-05-24T14:02:09.114Z");
        assert_eq!(clf(1_705_751_708_000), "20/Jan/2024:11:55:08 +0000");
        assert_eq!(clf(0), "01/Jan/1970:00:00:00 +0000");
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ms() > 1_704_067_200_000);
    }
}
