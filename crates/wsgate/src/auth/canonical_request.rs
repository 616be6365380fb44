//! The canonical request and string to sign of SigV4
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>), written the
//! way the AWS SDKs write them for `execute-api`, so that the gateway recomputes a signature
//! without the generic signer's work per request (a header map, a URI parsed again, the
//! signing key derived again).

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use wsgate_core::query;
use wsgate_core::sigv4::ALGORITHM;

/// Every byte but RFC 3986's unreserved characters (letters, digits, `-._~`) is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// In the path, `/` separates segments and stays.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// The header every signature covers, whether or not the client listed it: the signer writes
/// it from the time it signs at.
const X_AMZ_DATE: &str = "x-amz-date";

/// What a signature covers of one request.
pub(crate) struct CanonicalRequest<'a> {
    /// As sent, case kept.
    pub method: &'a str,
    /// As sent, percent-encoded already.
    pub path: &'a str,
    /// As sent, without the `?`.
    pub query: Option<&'a str>,
    /// The headers the client listed, lower-case, one entry per value, in the order listed and
    /// then received; a name listed twice is here twice.
    pub headers: &'a [(&'a str, &'a str)],
    /// The signing time as `X-Amz-Date` writes it; it stands for that header's value.
    pub date_time: &'a str,
    /// Lower-case hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    pub payload_hash: &'a str,
}

impl CanonicalRequest<'_> {
    /// The canonical request: method, URI, query, headers, signed header names and payload
    /// hash, one per line.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(256 + self.path.len() * 2);
        text.push_str(self.method);
        text.push('\n');
        // The path on the wire is percent-encoded already and is encoded once more: every
        // service but S3 signs it that way, so a connection id's `%3D` is signed as `%253D`.
        text.extend(utf8_percent_encode(&normalized_path(self.path), PATH));
        text.push('\n');
        push_query(&mut text, self.query.unwrap_or_default());
        text.push('\n');
        let mut names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        names.push(X_AMZ_DATE);
        names.sort_unstable();
        names.dedup();
        for name in &names {
            text.push_str(name);
            text.push(':');
            if *name == X_AMZ_DATE {
                text.push_str(self.date_time);
            } else {
                // Each value is trimmed on its own, then they are joined.
                let values = self.headers.iter().filter(|(n, _)| n == name);
                for (i, (_, value)) in values.enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    push_trimmed(&mut text, value);
                }
            }
            text.push('\n');
        }
        text.push('\n');
        for (i, name) in names.iter().enumerate() {
            if i > 0 {
                text.push(';');
            }
            text.push_str(name);
        }
        text.push('\n');
        text.push_str(self.payload_hash);
        text
    }

    /// The string to sign under `scope` (`date/region/service/aws4_request`).
    pub fn string_to_sign(&self, scope: &str) -> String {
        let hash = hex::encode(Sha256::digest(self.text().as_bytes()));
        format!("{ALGORITHM}\n{}\n{scope}\n{hash}", self.date_time)
    }
}

/// The path with its dot segments resolved and its empty segments dropped (RFC 3986 5.2.4), as
/// the SDKs sign it: `/a/./b//../c` is signed as `/a/c`.
fn normalized_path(path: &str) -> Cow<'_, str> {
    let path: Cow<'_, str> = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    if !path.contains('.') && !path.contains("//") {
        return path;
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            segment => kept.push(segment),
        }
    }
    let mut normalized = String::with_capacity(path.len());
    for segment in &kept {
        normalized.push('/');
        normalized.push_str(segment);
    }
    let ends_in_directory = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    if normalized.is_empty() || ends_in_directory {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

/// The query's pairs decoded as a form (`+` is a space), encoded again, and sorted by key and
/// then value; a key without `=` has an empty value.
fn push_query(text: &mut String, query: &str) {
    let mut pairs: Vec<(String, String)> = query::pairs(query)
        .iter()
        .map(|(key, value)| (encoded(key), encoded(value)))
        .collect();
    pairs.sort_unstable();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            text.push('&');
        }
        text.push_str(key);
        text.push('=');
        text.push_str(value);
    }
}

fn encoded(component: &str) -> String {
    utf8_percent_encode(component, COMPONENT).to_string()
}

/// A header value without its leading and trailing spaces, runs of spaces as one (other
/// whitespace is kept, as the SDKs keep it).
fn push_trimmed(text: &mut String, value: &str) {
    let mut last_was_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && last_was_space {
            continue;
        }
        last_was_space = c == ' ';
        text.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_dot_and_empty_segments() {
        for (path, normalized) in [
            ("", "/"),
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/./b//../c", "/a/c"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/../..", "/"),
            ("/a/.b/c.", "/a/.b/c."),
            ("*", "/*"),
        ] {
            assert_eq!(normalized_path(path), normalized, "{path}");
        }
    }

    #[test]
    fn queries_are_decoded_encoded_and_sorted() {
        let mut text = String::new();
        push_query(&mut text, "b=2&a=%7e+x&&a&b=1&c=%zz&d=%FF");
        assert_eq!(text, "a=&a=~%20x&b=1&b=2&c=%25zz&d=%EF%BF%BD");
    }

    #[test]
    fn header_values_lose_outer_spaces_and_runs_of_spaces() {
        let mut text = String::new();
        push_trimmed(&mut text, "  a   b\t \tc  ");
        assert_eq!(text, "a b\t \tc");
    }

    #[test]
    fn the_canonical_request_signs_x_amz_date_and_sorts_names() {
        let headers = [("x-b", "2 "), ("host", "h"), ("x-b", " 3  4 ")];
        let request = CanonicalRequest {
            method: "POST",
            path: "/dev/@connections/ab%3D",
            query: None,
            headers: &headers,
            date_time: "20240524T140215Z",
            payload_hash: "UNSIGNED-PAYLOAD",
        };
        assert_eq!(
            request.text(),
            "POST\n/dev/%40connections/ab%253D\n\nhost:h\nx-amz-date:20240524T140215Z\n\
             x-b:2,3 4\n\nhost;x-amz-date;x-b\nUNSIGNED-PAYLOAD"
        );
    }
}
