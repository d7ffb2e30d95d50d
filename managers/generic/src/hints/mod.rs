//! Root device hints and disk skip lists: IPA's `device_hints` module and
//! `hardware.py` `GenericHardwareManager.list_block_devices_check_skip_list`.
//!
//! A hint set is a JSON object `{hint name: expression}`; a device matches
//! when it satisfies every hint. Parsing validates like
//! `parse_root_device_hints` (unknown names, types, positive integer sizes,
//! booleans) and rejects up front what would only blow up at match time in
//! IPA (a numeric operator with a non-numeric value, `<in>` on the size…).
//! Errors are `ManagerError::invalid_argument` naming the hint.
//!
//! The grammar and the matcher are pure ([`expr`]); [`device`] reads the
//! machine to describe disks and partitions the way IPA's
//! `list_block_devices(all_serial_and_wwn=True)` serialises them.

use std::collections::BTreeSet;

use ironic_hardware_guest::prelude::*;
use serde_json::{Map, Value};

mod device;
mod expr;

// `skipped_devices` is the erase steps' entry point (steps/skip.rs).
#[allow(unused_imports)]
pub(crate) use device::{disk_devices, log_skipped, skipped_devices};

use expr::{ExprError, Subject};

const GIB: f64 = (1u64 << 30) as f64;

/// IPA's `VALID_ROOT_DEVICE_HINTS`, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HintName {
    Size,
    Model,
    Wwn,
    Serial,
    Vendor,
    WwnWithExtension,
    WwnVendorExtension,
    Name,
    Rotational,
    Hctl,
    ByPath,
    Tran,
}

impl HintName {
    pub(crate) const ALL: [HintName; 12] = [
        HintName::Size,
        HintName::Model,
        HintName::Wwn,
        HintName::Serial,
        HintName::Vendor,
        HintName::WwnWithExtension,
        HintName::WwnVendorExtension,
        HintName::Name,
        HintName::Rotational,
        HintName::Hctl,
        HintName::ByPath,
        HintName::Tran,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HintName::Size => "size",
            HintName::Model => "model",
            HintName::Wwn => "wwn",
            HintName::Serial => "serial",
            HintName::Vendor => "vendor",
            HintName::WwnWithExtension => "wwn_with_extension",
            HintName::WwnVendorExtension => "wwn_vendor_extension",
            HintName::Name => "name",
            HintName::Rotational => "rotational",
            HintName::Hctl => "hctl",
            HintName::ByPath => "by_path",
            HintName::Tran => "tran",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<HintName> {
        HintName::ALL.into_iter().find(|h| h.as_str() == name)
    }
}

/// How one hint compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    /// A numeric spec over the device size in GiB (a float), e.g. `>= 100`;
    /// a bare number became `== N`.
    Size(String),
    /// A spec over the device value, both sides normalised (lowercased,
    /// URL-quoted); a bare value became `s== v`.
    Text(String),
    /// `rotational`.
    Bool(bool),
}

/// One parsed hint.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hint {
    pub name: HintName,
    pub matcher: Matcher,
}

/// A parsed hint set (root device hints or one skip-list entry).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeviceHints {
    pub hints: Vec<Hint>,
    /// The hints as given, for messages.
    pub source: Map<String, Value>,
}

/// A device as hints see it: the serialised `BlockDevice` with IPA's
/// `all_serial_and_wwn` lists (IPA `hardware.py` `list_all_block_devices`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HintDevice {
    /// `/dev/sda`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    pub rotational: bool,
    pub model: Option<String>,
    pub vendor: Option<String>,
    /// lsblk's serial and the udev short and long serials: any may match.
    pub serial: Vec<String>,
    /// lsblk's WWN and udev's `ID_WWN`: any may match.
    pub wwn: Vec<String>,
    pub wwn_with_extension: Option<String>,
    pub wwn_vendor_extension: Option<String>,
    pub hctl: Option<String>,
    pub by_path: Option<String>,
    pub tran: Option<String>,
}

impl HintDevice {
    pub(crate) fn from_block_device(device: &BlockDevice) -> HintDevice {
        HintDevice {
            name: device.name.clone(),
            size: device.size,
            rotational: device.rotational,
            model: device.model.clone(),
            vendor: device.vendor.clone(),
            serial: device.serial.iter().cloned().collect(),
            wwn: device.wwn.iter().cloned().collect(),
            wwn_with_extension: device.wwn_with_extension.clone(),
            wwn_vendor_extension: device.wwn_vendor_extension.clone(),
            hctl: device.hctl.clone(),
            by_path: device.by_path.clone(),
            tran: device.tran.clone(),
        }
    }

    /// The non-blank string values of a string hint's attribute.
    fn texts(&self, name: HintName) -> Vec<&str> {
        fn one(v: &Option<String>) -> Vec<&str> {
            v.as_deref().into_iter().collect()
        }
        let values = match name {
            HintName::Name => vec![self.name.as_str()],
            HintName::Model => one(&self.model),
            HintName::Vendor => one(&self.vendor),
            HintName::Serial => self.serial.iter().map(String::as_str).collect(),
            HintName::Wwn => self.wwn.iter().map(String::as_str).collect(),
            HintName::WwnWithExtension => one(&self.wwn_with_extension),
            HintName::WwnVendorExtension => one(&self.wwn_vendor_extension),
            HintName::Hctl => one(&self.hctl),
            HintName::ByPath => one(&self.by_path),
            HintName::Tran => one(&self.tran),
            HintName::Size | HintName::Rotational => Vec::new(),
        };
        values
            .into_iter()
            .filter(|v| !v.trim().is_empty())
            .collect()
    }
}

/// Python truthiness of a JSON value (`x or y`, `if not x`).
pub(crate) fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// A JSON value as Python's `str()` renders it, for the size and boolean
/// hints, which IPA stringifies before parsing.
fn py_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        other => other.to_string(),
    }
}

fn invalid(name: &str, why: impl std::fmt::Display) -> ManagerError {
    ManagerError::invalid_argument(format!("root device hint \"{name}\" {why}"))
}

impl DeviceHints {
    /// Parse a hint set. `Ok(None)` when there are no hints (a falsy value
    /// such as `null` or `{}`, as IPA's `if not root_device`).
    pub(crate) fn parse(value: &Value) -> Result<Option<DeviceHints>, ManagerError> {
        if !truthy(Some(value)) {
            return Ok(None);
        }
        let Value::Object(source) = value else {
            return Err(ManagerError::invalid_argument(format!(
                "root device hints must be a JSON object, got {value}"
            )));
        };
        let unknown: Vec<&str> = source
            .keys()
            .map(String::as_str)
            .filter(|k| HintName::parse(k).is_none())
            .collect();
        if !unknown.is_empty() {
            let valid: Vec<&str> = HintName::ALL.iter().map(|h| h.as_str()).collect();
            return Err(ManagerError::invalid_argument(format!(
                "the hints \"{}\" are invalid. Valid hints are: \"{}\"",
                unknown.join(", "),
                valid.join(", ")
            )));
        }
        let mut hints = Vec::with_capacity(source.len());
        for (key, expression) in source {
            let name = HintName::parse(key).ok_or_else(|| invalid(key, "is unknown"))?;
            let matcher = match name {
                HintName::Size => Matcher::Size(parse_size(key, expression)?),
                HintName::Rotational => Matcher::Bool(parse_bool(key, expression)?),
                _ => Matcher::Text(parse_text(key, expression)?),
            };
            hints.push(Hint { name, matcher });
        }
        Ok(Some(DeviceHints {
            hints,
            source: source.clone(),
        }))
    }

    /// The device satisfies every hint.
    pub(crate) fn matches(&self, device: &HintDevice) -> bool {
        self.hints.iter().all(|hint| hint.matches(device))
    }

    /// The hints as JSON text, for messages.
    pub(crate) fn describe(&self) -> String {
        Value::Object(self.source.clone()).to_string()
    }
}

impl Hint {
    /// A spec that cannot be evaluated on this device (e.g. `>= 5` on a
    /// non-numeric serial) does not match: IPA skips such values in
    /// serial/wwn lists and raises for scalar attributes; here both mean
    /// "not this device".
    pub(crate) fn matches(&self, device: &HintDevice) -> bool {
        match &self.matcher {
            Matcher::Bool(want) => device.rotational == *want,
            Matcher::Size(spec) => {
                let gib = device.size as f64 / GIB;
                expr::spec_match(Subject::Number(gib), spec).unwrap_or(false)
            }
            // A blank value fails the hint (IPA `find_devices_by_hints`); so does an
            // absent one, which IPA would compare as the text "none".
            Matcher::Text(spec) => device.texts(self.name).into_iter().any(|value| {
                expr::normalise(value)
                    .ok()
                    .is_some_and(|v| expr::spec_match(Subject::Text(&v), spec).unwrap_or(false))
            }),
        }
    }
}

fn describe_expr_error(err: ExprError) -> &'static str {
    match err {
        ExprError::Empty => "expression is empty",
        ExprError::Syntax => "expression cannot be parsed (an operator needs a value)",
    }
}

/// `size`: every value after the operator must be an integer > 0 (GiB); a
/// bare number means `==` (exact GiB equality). JSON floats (`100.0`) are
/// rejected, as `int("100.0")` fails in Python.
fn parse_size(name: &str, expression: &Value) -> Result<String, ManagerError> {
    let text = py_str(expression).trim().to_lowercase();
    let (op, values) = expr::extract(&text).map_err(|e| invalid(name, describe_expr_error(e)))?;
    for value in &values {
        match expr::py_int_positive(value) {
            None => {
                return Err(invalid(
                    name,
                    format!("is not an integer value. Current value: {expression}"),
                ))
            }
            Some(false) => {
                return Err(invalid(
                    name,
                    format!("should be a positive integer. Current value: {expression}"),
                ))
            }
            Some(true) => {}
        }
    }
    if op.is_empty() {
        return Ok(format!("== {text}"));
    }
    // `<or>` passes IPA's validation but compares the float size with
    // strings, so it never matches; `s==`/`s!=` likewise compare a float
    // with a string. Everything else would raise TypeError in IPA.
    let usable =
        expr::NUMERIC_OPS.contains(&op.as_str()) || matches!(op.as_str(), expr::OR | "s==" | "s!=");
    if !usable {
        return Err(invalid(
            name,
            format!("cannot use the operator {op} on a size (use ==, !=, <, <=, >, >=)"),
        ));
    }
    Ok(text)
}

/// `rotational`: a JSON boolean or oslo's `bool_from_string(strict=True)`.
fn parse_bool(name: &str, expression: &Value) -> Result<bool, ManagerError> {
    if let Value::Bool(b) = expression {
        return Ok(*b);
    }
    match py_str(expression).trim().to_lowercase().as_str() {
        "1" | "t" | "true" | "on" | "y" | "yes" => Ok(true),
        "0" | "f" | "false" | "off" | "n" | "no" => Ok(false),
        _ => Err(invalid(
            name,
            format!("is not a Boolean value. Current value: {expression}"),
        )),
    }
}

/// String hints: must be JSON strings; normalised, then given `s==` when
/// they carry no operator.
fn parse_text(name: &str, expression: &Value) -> Result<String, ManagerError> {
    let Value::String(raw) = expression else {
        return Err(invalid(
            name,
            format!("is not a string value. Hint expression: {expression}"),
        ));
    };
    let normalised = expr::normalise(raw).map_err(|e| invalid(name, describe_expr_error(e)))?;
    let tokens = expr::tokens(&normalised)
        .ok_or_else(|| invalid(name, describe_expr_error(ExprError::Syntax)))?;
    if tokens.len() <= 1 {
        return Ok(format!("s== {normalised}"));
    }
    let op = tokens[0].as_str();
    let first = tokens.get(1).map(String::as_str).unwrap_or_default();
    if expr::NUMERIC_OPS.contains(&op) && expr::py_float(first).is_none() {
        return Err(invalid(
            name,
            format!(
                "compares numbers with {op} but {first:?} is not a number \
                 (string comparisons are s==, s!=, s<, s<=, s>, s>=)"
            ),
        ));
    }
    if op == expr::ALL_IN || op == expr::RANGE_IN {
        // IPA accepts these but its URL quoting folds the values into one
        // token, so they can never match (or raise while matching).
        return Err(invalid(
            name,
            format!("cannot use the operator {op} on a string hint"),
        ));
    }
    Ok(normalised)
}

/// The root device hints of a node: `instance_info.root_device`, else
/// `properties.root_device` (the first non-empty one, IPA `get_os_install_device`).
pub(crate) fn root_device_hints(node: &Value) -> Result<Option<DeviceHints>, ManagerError> {
    let instance = node.get("instance_info").and_then(|i| i.get("root_device"));
    let properties = node.get("properties").and_then(|p| p.get("root_device"));
    let chosen = if truthy(instance) {
        instance
    } else {
        properties
    };
    match chosen {
        Some(value) => DeviceHints::parse(value),
        None => Ok(None),
    }
}

/// `properties.skip_block_devices` (IPA `get_skip_list_from_node_for_disks` and
/// `get_skip_list_from_node_for_raids`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SkipList {
    /// Entries without `volume_name`: devices matching any are skipped.
    pub device_hints: Vec<DeviceHints>,
    /// Software RAID volumes to keep, by array name (`crate::raid::md::fates`
    /// decides what that means for each array).
    pub volume_names: Vec<String>,
}

impl SkipList {
    /// Parse the node's skip list; an absent or empty list is empty.
    pub(crate) fn from_node(node: &Value) -> Result<SkipList, ManagerError> {
        let raw = node
            .get("properties")
            .and_then(|p| p.get("skip_block_devices"));
        if !truthy(raw) {
            return Ok(SkipList::default());
        }
        let Some(Value::Array(entries)) = raw else {
            return Err(ManagerError::invalid_argument(
                "properties.skip_block_devices must be a list of objects",
            ));
        };
        let mut list = SkipList::default();
        for (i, entry) in entries.iter().enumerate() {
            let at = |why: String| {
                ManagerError::invalid_argument(format!("properties.skip_block_devices[{i}]: {why}"))
            };
            let Value::Object(map) = entry else {
                return Err(at(format!("must be an object, got {entry}")));
            };
            if let Some(volume) = map.get("volume_name") {
                // A RAID entry: IPA ignores any other key in it.
                let name = volume
                    .as_str()
                    .ok_or_else(|| at(format!("volume_name must be a string, got {volume}")))?;
                list.volume_names.push(name.to_string());
                continue;
            }
            match DeviceHints::parse(entry) {
                Ok(Some(hints)) => list.device_hints.push(hints),
                // IPA crashes on an empty entry; refuse it explicitly.
                Ok(None) => return Err(at("empty entry".to_string())),
                Err(ManagerError::InvalidArgument(why)) => return Err(at(why)),
                Err(other) => return Err(other),
            }
        }
        Ok(list)
    }

    /// The names of `devices` matched by a device-hint entry.
    pub(crate) fn skipped_names(&self, devices: &[HintDevice]) -> BTreeSet<String> {
        devices
            .iter()
            .filter(|d| self.device_hints.iter().any(|h| h.matches(d)))
            .map(|d| d.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
