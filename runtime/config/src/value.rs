//! Typed option values and oslo.config's parsing rules.

use std::fmt;

use crate::options::{OptSpec, OptType};

/// A parsed option value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (also choices, URLs, hosts).
    Str(String),
    /// Boolean.
    Bool(bool),
    /// Integer (also ports).
    Int(i64),
    /// Float.
    Float(f64),
    /// List of strings.
    List(Vec<String>),
    /// Dict of strings, in the order given.
    Dict(Vec<(String, String)>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::List(l) => f.write_str(&l.join(",")),
            Value::Dict(d) => {
                let items: Vec<String> = d.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                f.write_str(&items.join(","))
            }
        }
    }
}

/// oslo.config's Bool rule.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err("expected one of true/false, 1/0, on/off, yes/no".into()),
    }
}

/// `ipa-debug`'s lenient rule (anything unrecognised is false).
pub fn parse_lenient_bool(raw: &str) -> bool {
    matches!(
        raw.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Parses `raw` as the option's type; the error explains what was expected.
pub fn parse(spec: &OptSpec, raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    match spec.ty {
        OptType::Str => Ok(Value::Str(raw.to_string())),
        OptType::Choice(choices) => {
            if choices.contains(&text) {
                Ok(Value::Str(text.to_string()))
            } else {
                Err(format!("must be one of: {}", choices.join(", ")))
            }
        }
        OptType::Bool => parse_bool(text).map(Value::Bool),
        OptType::Int { min, max } => {
            let n: i64 = text.parse().map_err(|_| "not an integer".to_string())?;
            if let Some(min) = min.filter(|m| n < *m) {
                return Err(format!("must be at least {min}"));
            }
            if let Some(max) = max.filter(|m| n > *m) {
                return Err(format!("must be at most {max}"));
            }
            Ok(Value::Int(n))
        }
        OptType::Port => match text.parse::<i64>() {
            Ok(n) if (0..=65535).contains(&n) => Ok(Value::Int(n)),
            Ok(_) => Err("port must be between 0 and 65535".into()),
            Err(_) => Err("not an integer".into()),
        },
        OptType::Float => text
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| "not a number".into()),
        OptType::List => Ok(Value::List(split_list(raw))),
        OptType::Dict => {
            let mut out = Vec::new();
            for item in split_list(raw) {
                let (k, v) = item
                    .split_once(':')
                    .ok_or_else(|| format!("dict item {item:?} lacks ':'"))?;
                out.push((
                    k.trim().to_string(),
                    v.trim().trim_matches(['"', '\'']).to_string(),
                ));
            }
            Ok(Value::Dict(out))
        }
        OptType::Url => {
            // oslo's regex `^(mdns|http(s?)://.+)` applies to the whole value.
            let ok = text.starts_with("mdns")
                || text.strip_prefix("http://").is_some_and(|r| !r.is_empty())
                || text.strip_prefix("https://").is_some_and(|r| !r.is_empty());
            if ok {
                Ok(Value::Str(text.to_string()))
            } else {
                Err("must be 'mdns' or start with http:// or https://".into())
            }
        }
        OptType::Host => {
            let ok = !text.is_empty()
                && text.len() <= 253
                && (text.parse::<std::net::IpAddr>().is_ok()
                    || text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".:_-".contains(c)));
            if ok {
                Ok(Value::Str(text.to_string()))
            } else {
                Err("must be an IP address or a host name".into())
            }
        }
    }
}
