//! Recognizing a CloudFormation function in its long form (`{"Ref": "X"}`,
//! `{"Fn::GetAtt": ["X", "Arn"]}`), the only form left once `yaml.rs` has read a file.

use serde_json::Value;

/// `{"Ref": x}`, `{"Condition": x}` or `{"Fn::...": x}`: the function's name and argument.
pub(super) fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (name, arg) = map.iter().next()?;
    (name == "Ref" || name == "Condition" || name.starts_with("Fn::")).then_some((name, arg))
}
