//! How tool arguments are read and described, for every MCP client:
//! numbers may come as a string of digits (the MCP Inspector's CLI sends
//! every `--tool-arg` as a string), and optional arguments are described
//! without `"type": [X, "null"]` arrays, which some clients cannot read: they
//! are simply left out of `required`.

use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// Deserializes an optional number given as a JSON number or as a string of
/// ASCII digits (`"60"`); anything else is an error naming the value and
/// what was expected.
pub fn number_or_digits<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + TryFrom<u64>,
    <T as FromStr>::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(u64),
        Text(String),
        Other(serde_json::Value),
    }
    let expected = "a whole number (or a string of digits)";
    match Option::<Given>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Given::Number(n)) => {
            T::try_from(n).map(Some).map_err(|_| serde::de::Error::custom(format!("invalid number {n}: too large")))
        }
        Some(Given::Text(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|e| serde::de::Error::custom(format!("invalid number {s:?}: {e}")))
        }
        Some(Given::Text(s)) => Err(serde::de::Error::custom(format!(
            "invalid value {}: expected {expected}",
            crate::job::id::quote_short(&s)
        ))),
        Some(Given::Other(v)) => Err(serde::de::Error::custom(format!("invalid value {v}: expected {expected}"))),
    }
}

/// A schemars transform for argument structs: every property typed
/// `[X, "null"]` becomes plain `X`, and a `null` default goes (it is optional
/// by not being `required`).
pub fn optional_without_null(schema: &mut schemars::Schema) {
    let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for property in properties.values_mut() {
        if let Some(object) = property.as_object_mut() {
            if object.get("default").is_some_and(|d| d.is_null()) {
                object.remove("default"); // absent means none; `null` is not a number
            }
        }
        let Some(types) = property.get_mut("type") else { continue };
        if let Some(list) = types.as_array() {
            let kept: Vec<_> = list.iter().filter(|t| *t != "null").cloned().collect();
            if kept.len() == 1 {
                *types = kept[0].clone();
            }
        }
        if let Some(choices) = property.get_mut("enum").and_then(|e| e.as_array_mut()) {
            choices.retain(|c| !c.is_null());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Args {
        #[serde(default, deserialize_with = "number_or_digits")]
        n: Option<u64>,
    }

    #[test]
    fn numbers_may_be_strings_of_digits() {
        let n = |json: &str| serde_json::from_str::<Args>(json).map(|a| a.n).map_err(|e| e.to_string());
        assert_eq!(n(r#"{"n": 60}"#), Ok(Some(60)));
        assert_eq!(n(r#"{"n": "60"}"#), Ok(Some(60)));
        assert_eq!(n(r#"{}"#), Ok(None));
        assert_eq!(n(r#"{"n": null}"#), Ok(None));
        let err = n(r#"{"n": "6o"}"#).unwrap_err();
        assert!(err.contains("invalid value \"6o\": expected a whole number (or a string of digits)"), "{err}");
        assert!(n(r#"{"n": -1}"#).unwrap_err().contains("invalid value -1: expected a whole number"));
    }
}
