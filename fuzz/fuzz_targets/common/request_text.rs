//! The readable request text of the `mgmt_request` and `sigv4_header` targets:
//!
//! ```text
//! METHOD URI\n
//! Name: value\n          (any number of header lines; bytes, not necessarily UTF-8)
//! \n
//! BODY                   (bytes)
//! ```
//!
//! Spaces, tabs and `\r` around each part are dropped, so seeds may use CRLF.

/// One input, split into its parts (nothing checked yet: `builder` hands them to `http`).
pub struct RequestText<'a> {
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    pub body: &'a [u8],
}

impl<'a> RequestText<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let (head, body) = split_once(data, b"\n\n");
        let mut lines = head.split(|&b| b == b'\n');
        let (method, uri) = split_once(trim(lines.next().unwrap_or_default()), b" ");
        let headers = lines
            .map(|line| {
                let (name, value) = split_once(line, b":");
                (trim(name), trim(value))
            })
            .collect();
        Self {
            method: trim(method),
            uri: trim(uri),
            headers,
            body,
        }
    }

    /// An `http` request builder with the method, URI and headers; its `body` call fails for
    /// what `http` refuses.
    pub fn builder(&self) -> http::request::Builder {
        let builder = http::Request::builder().method(self.method).uri(self.uri);
        self.headers.iter().fold(builder, |builder, (name, value)| {
            builder.header(*name, *value)
        })
    }
}

fn split_once<'a>(data: &'a [u8], separator: &[u8]) -> (&'a [u8], &'a [u8]) {
    match data.windows(separator.len()).position(|w| w == separator) {
        Some(at) => (&data[..at], &data[at + separator.len()..]),
        None => (data, &[]),
    }
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = bytes {
        bytes = rest;
    }
    bytes
}
