//! Route selection expressions and templates (`gateway.route_selection_expression`, mock bodies)
//! evaluated against a client's message.
//!
//! Input: `EXPRESSION \0 MESSAGE` (both lossy UTF-8; no `\0` means an empty message).
//!
//! Besides "never panics", it checks what `select` promises:
//! - `$connect` / `$disconnect` are never chosen by a message;
//! - the chosen key is one of the configured keys, and with `$default` configured there is always
//!   a route;
//! - when the message parses as JSON, the streaming path extraction agrees with evaluating the
//!   expression on the fully parsed message.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use wsgate_core::route::{RouteKey, Selection, SelectionExpression, select};

fn keys(list: &[&str]) -> HashSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn with_default() -> &'static HashSet<String> {
    static KEYS: OnceLock<HashSet<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        keys(&[
            "$default",
            "$connect",
            "$disconnect",
            "sendmessage",
            "join",
            "chat/join",
            "42",
            "true",
            "",
        ])
    })
}

fn without_default() -> &'static HashSet<String> {
    static KEYS: OnceLock<HashSet<String>> = OnceLock::new();
    KEYS.get_or_init(|| keys(&["sendmessage", "join", "$connect", ""]))
}

/// What `select` should answer, computed the slow way: parse the whole message, evaluate.
fn expected(
    expr: &SelectionExpression,
    full: &Value,
    raw: &str,
    routes: &HashSet<String>,
) -> Selection {
    let default = || {
        if routes.contains(RouteKey::DEFAULT) {
            Selection::Route(RouteKey(RouteKey::DEFAULT.to_owned()))
        } else {
            Selection::NoRoute
        }
    };
    let key = expr.evaluate(full, raw);
    if key == RouteKey::CONNECT || key == RouteKey::DISCONNECT || !routes.contains(&key) {
        default()
    } else {
        Selection::Route(RouteKey(key))
    }
}

fn check_selection(
    expr: &SelectionExpression,
    message: &str,
    parsed: Option<&Value>,
    routes: &HashSet<String>,
) {
    let got = select(expr, message, routes);
    match &got {
        Selection::Route(key) => {
            assert!(
                routes.contains(key.as_str()),
                "chose an unconfigured key {key:?}"
            );
            assert!(
                key.as_str() != RouteKey::CONNECT && key.as_str() != RouteKey::DISCONNECT,
                "a message chose {key:?}"
            );
        }
        Selection::NoRoute => {
            assert!(
                !routes.contains(RouteKey::DEFAULT),
                "NoRoute although $default exists"
            );
        }
    }
    if let Some(full) = parsed {
        assert_eq!(
            got,
            expected(expr, full, message, routes),
            "streaming selection disagrees with full evaluation: expr {:?}, message {message:?}",
            expr.source()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (expr, message) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let expr = String::from_utf8_lossy(expr);
    let message = String::from_utf8_lossy(message);
    let parsed: Option<Value> = serde_json::from_str(&message).ok();
    let body = parsed.clone().unwrap_or(Value::Null);

    if let Ok(parsed_expr) = SelectionExpression::parse(&expr) {
        let _ = parsed_expr.source();
        let _ = parsed_expr.is_literal();
        let _ = parsed_expr.is_whole_body();
        let _ = parsed_expr.uses_context();
        let _ = parsed_expr.reads_body_paths();
        let _ = parsed_expr.evaluate(&body, &message);
        check_selection(&parsed_expr, &message, parsed.as_ref(), with_default());
        check_selection(&parsed_expr, &message, parsed.as_ref(), without_default());
    }
    if let Ok(template) = SelectionExpression::parse_template(&expr) {
        let _ = template.uses_context();
        let _ = template.evaluate(&body, &message);
        let _ = template.render(&body, &message, &|name: &str| {
            (name != "messageId").then(|| format!("<{name}>"))
        });
    }
});
