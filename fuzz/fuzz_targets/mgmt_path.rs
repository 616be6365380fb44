//! What the management API reads from a request line: the `@connections` / `@groups` / `@users`
//! path, connection ids, query strings and group / user names.
//!
//! Input: the path (lossy UTF-8); the same text is also read as a connection id, a query string
//! and a name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate::mgmt::Target;
use wsgate_core::id::ConnectionId;
use wsgate_core::query;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    let _ = Target::parse(text, "dev");
    // A stage taken from the input too: everything before the first `/` after the leading ones.
    let stage = text
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let _ = Target::parse(text, stage);

    if let Ok(id) = ConnectionId::parse(text) {
        assert_eq!(
            id.as_str(),
            text,
            "a parsed id must print as it was written"
        );
        let _ = id.node();
        assert_eq!(ConnectionId::parse(&id.to_string()), Ok(id));
    }

    for (key, value) in query::pairs(text) {
        let _ = query::valid_name(&key);
        let _ = query::valid_name(&value);
        let _ = ConnectionId::parse(&value);
    }
    if query::valid_name(text) {
        assert!(!text.is_empty() && text.len() <= 128);
    }
});
