//! Values read back as text: the short form a warning quotes (`!GetAtt Fn.Arn`), text cut at a
//! limit ([`Capped`], [`text_at_most`]), scalars, seconds and megabytes. Nothing here writes out
//! more than its limit: fuzzing found documents whose text, written out whole, grows without
//! bound.

use std::time::Duration;

use serde_json::Value;

use super::intrinsic::intrinsic;

/// The longest short form a warning quotes (or an unresolved value holds); a longer one is cut
/// there and ends in `…`.
pub(super) const MAX_SHORT_FORM_BYTES: usize = 1024;

/// A value in the short form a template author would write, for warnings: `!Ref Table`,
/// `!GetAtt Fn.Arn`. Cut at [`MAX_SHORT_FORM_BYTES`]: a value naming a whole document is not
/// written out into a warning (found by fuzzing).
pub(super) fn short_form(value: &Value) -> String {
    cut_at_short_form(|out| write_short_form(value, out))
}

/// What `write` writes, cut at [`MAX_SHORT_FORM_BYTES`] and then ending in `…`.
pub(super) fn cut_at_short_form(write: impl FnOnce(&mut Capped) -> std::fmt::Result) -> String {
    let mut out = Capped::new(MAX_SHORT_FORM_BYTES);
    if write(&mut out).is_err() {
        out.text.push('…');
    }
    out.text
}

fn write_short_form(value: &Value, out: &mut Capped) -> std::fmt::Result {
    use std::fmt::Write as _;
    let list = |items: &[Value], separator: &str, out: &mut Capped| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.write_str(separator)?;
            }
            write_short_form(item, out)?;
        }
        Ok(())
    };
    match intrinsic(value) {
        Some(("Ref", Value::String(id))) => write!(out, "!Ref {id}"),
        Some(("Fn::GetAtt", Value::Array(parts))) => {
            out.write_str("!GetAtt ")?;
            list(parts, ".", out)
        }
        Some((name, arg)) => {
            let tag = name.strip_prefix("Fn::").unwrap_or(name);
            write!(out, "!{tag} ")?;
            write_short_form(arg, out)
        }
        None => match value {
            Value::String(s) => out.write_str(s),
            Value::Array(items) => {
                out.write_str("[")?;
                list(items, ", ", out)?;
                out.write_str("]")
            }
            other => write!(out, "{other}"),
        },
    }
}

/// Text written up to a limit: what passes it is cut at the limit (on a character boundary) and
/// the write fails, which stops whatever was writing.
pub(super) struct Capped {
    text: String,
    limit: usize,
}

impl Capped {
    fn new(limit: usize) -> Self {
        Self {
            text: String::new(),
            limit,
        }
    }
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = self.limit.saturating_sub(self.text.len());
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        let mut cut = room;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&s[..cut]);
        Err(std::fmt::Error)
    }
}

/// A value as the text an environment variable or a joined string would hold (a list's items
/// joined by commas, a mapping as JSON), unless it passes `limit` bytes: then `None`, after
/// writing no more than about `limit` bytes (a variable naming a whole document is not written
/// out just to be refused).
pub(super) fn text_at_most(value: &Value, limit: usize) -> Option<String> {
    match value {
        Value::String(s) => (s.len() <= limit).then(|| s.clone()),
        Value::Null => Some(String::new()),
        Value::Array(items) => {
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&text_at_most(item, limit.checked_sub(out.len())?)?);
            }
            (out.len() <= limit).then_some(out)
        }
        other => {
            // A mapping is written as JSON, escaped character by character: one sure to pass the
            // limit is refused without writing it (a variable naming a whole document).
            if text_bytes_past(other, limit) {
                return None;
            }
            let mut capped = Capped::new(limit);
            std::fmt::Write::write_fmt(&mut capped, format_args!("{other}")).ok()?;
            Some(capped.text)
        }
    }
}

/// Whether the strings and keys in `value` alone take more than `limit` bytes (so that any text of
/// it does too), counting no further than that.
fn text_bytes_past(value: &Value, limit: usize) -> bool {
    fn count(value: &Value, total: &mut usize, limit: usize) {
        match value {
            Value::String(s) => *total = total.saturating_add(s.len()),
            Value::Array(items) => {
                for item in items {
                    if *total > limit {
                        return;
                    }
                    count(item, total, limit);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    if *total > limit {
                        return;
                    }
                    *total = total.saturating_add(key.len());
                    count(item, total, limit);
                }
            }
            _ => {}
        }
    }
    let mut total = 0;
    count(value, &mut total, limit);
    total > limit
}

/// A scalar as text; `None` for null, sequences and mappings.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number of seconds (a number or a numeric string).
pub(super) fn seconds(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    // `try_`: a huge number (1e20) does not fit a Duration (found by fuzzing).
    (secs.is_finite() && secs > 0.0)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
}

/// A whole number of megabytes.
pub(super) fn megabytes(value: &Value) -> Option<u32> {
    match value {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|mb| *mb > 0)
}

pub(super) fn prefixed(context: &str, notes: Vec<String>, warnings: &mut Vec<String>) {
    warnings.extend(notes.into_iter().map(|n| format!("{context}: {n}")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_most_is_the_text_within_the_limit_and_none_past_it() {
        let values = [
            (serde_json::json!("abc"), "abc"),
            (serde_json::json!(null), ""),
            (serde_json::json!(42), "42"),
            (serde_json::json!(true), "true"),
            (serde_json::json!(["a", 1, ["b", null]]), "a,1,b,"),
            (
                serde_json::json!({"k": ["v", {"n": 1.5}], "s": "x\"y"}),
                r#"{"k":["v",{"n":1.5}],"s":"x\"y"}"#,
            ),
        ];
        for (value, text) in values {
            assert!(!text_bytes_past(&value, text.len()), "{value}");
            assert_eq!(text_at_most(&value, text.len()).as_deref(), Some(text));
            assert_eq!(text_at_most(&value, usize::MAX).as_deref(), Some(text));
            if !text.is_empty() {
                assert_eq!(text_at_most(&value, text.len() - 1), None, "{value}");
            }
        }
    }

    #[test]
    fn short_forms_are_cut_at_a_kilobyte() {
        assert_eq!(
            short_form(&serde_json::json!({"Fn::GetAtt": ["T", "Arn"]})),
            "!GetAtt T.Arn"
        );
        assert_eq!(
            short_form(&serde_json::json!({"Fn::If": ["C", {"Ref": "A"}, [1, {"k": "v"}]]})),
            r#"!If [C, !Ref A, [1, {"k":"v"}]]"#
        );
        for long in [
            serde_json::json!({"Fn::Join": ["", ["x".repeat(5000)]]}),
            serde_json::json!({"Fn::Base64": {"k": "é".repeat(3000)}}),
            serde_json::json!(["é".repeat(3000)]),
        ] {
            let text = short_form(&long);
            assert!(text.ends_with('…'), "{text}");
            assert!(
                text.len() <= MAX_SHORT_FORM_BYTES + '…'.len_utf8(),
                "{}",
                text.len()
            );
        }
    }
}
