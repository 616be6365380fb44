//! Query strings: `a=1&b=x%20y&a=2` to ordered pairs, percent- and `+`-decoded.

/// The pairs of a query string, in order; repeated keys repeat.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// A group or user name: 1 to 128 bytes of URL-safe characters (`A–Z a–z 0–9 - _ . ~`) and
/// `@ : |`, which user ids from identity providers hold (`auth0|5f1c`, `alice@example.com`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@' | b':' | b'|')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            pairs("room=lobby&token=a%3Db&x&name=a+b&room=hall"),
            vec![
                ("room".to_owned(), "lobby".to_owned()),
                ("token".to_owned(), "a=b".to_owned()),
                ("x".to_owned(), String::new()),
                ("name".to_owned(), "a b".to_owned()),
                ("room".to_owned(), "hall".to_owned()),
            ]
        );
    }

    #[test]
    fn names_are_url_safe_and_bounded() {
        for good in [
            "lobby",
            "room-1",
            "a_b.c~d",
            "auth0|5f1c",
            "alice@example.com",
            "urn:x",
            &"x".repeat(128),
        ] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129), "a%20"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
