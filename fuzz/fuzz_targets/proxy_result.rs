//! An HTTP integration's answer read as a Lambda proxy result (with wsgate's `"wsgate"`
//! directives) or as a plain answer.
//!
//! Input: 2 bytes of HTTP status (big-endian), then the response body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsgate_core::proxy::from_http;
use wsgate_core::query::valid_name;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes(*status);
    match from_http(status, body) {
        Ok(result) => {
            let _ = result.is_success();
            let _ = result.header("Sec-WebSocket-Protocol");
            if let Some(directives) = &result.directives {
                for name in directives.join.iter().chain(&directives.leave) {
                    assert!(valid_name(name), "accepted a bad group name {name:?}");
                }
                if let Some(user) = &directives.user {
                    assert!(valid_name(user), "accepted a bad user name {user:?}");
                }
            }
            if result.status != status {
                // Only a proxy result may change the status, and only to 100..=599.
                assert!(
                    (100..600).contains(&result.status),
                    "status {}",
                    result.status
                );
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
