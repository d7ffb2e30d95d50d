//! `image_info` as Ironic sends it (Ironic `drivers/modules/agent.py`
//! `AgentDeploy.write_image`) and the synchronous `prepare_image` validator
//! (IPA `standby.py` `_validate_image_info`).

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::error::ImageError;

/// Ironic's `image_info` dict. Unknown keys are kept in `extra` (Ironic adds
/// keys across releases; they must not break a deploy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageInfo {
    pub id: String,
    pub urls: Vec<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    /// Ironic `[agent]stream_raw_images`; IPA treats a missing key as false.
    pub stream_raw_images: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub image_server_auth_strategy: Option<String>,
    pub image_server_user: Option<String>,
    pub image_server_password: Option<String>,
    /// Base64 of a full `Authorization` header value.
    pub image_request_authorization: Option<String>,
    /// `{"http": url, "https": url}`.
    pub proxies: BTreeMap<String, String>,
    pub no_proxy: Option<String>,
    pub node_uuid: Option<String>,
    pub image_type: Option<String>,
    pub deploy_boot_mode: Option<String>,
    pub root_mb: Option<u64>,
    pub swap_mb: Option<u64>,
    pub ephemeral_mb: Option<u64>,
    pub ephemeral_format: Option<String>,
    pub preserve_ephemeral: Option<bool>,
    pub disk_label: Option<String>,
    pub configdrive: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn invalid(message: impl Into<String>) -> ImageError {
    ImageError::InvalidParams {
        message: message.into(),
    }
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

impl ImageInfo {
    /// Validates the raw JSON exactly like IPA's `_validate_image_info`, then
    /// deserializes it. `md5_allowed` is IPA's `md5_enabled` (Ironic's
    /// `agent_md5_checksum_enable`).
    ///
    /// Validation runs on the untyped value first so a wrong type yields the
    /// same `InvalidCommandParamsError` text as IPA instead of a serde message.
    pub fn from_value(value: &Value, md5_allowed: bool) -> Result<ImageInfo, ImageError> {
        validate(value, md5_allowed)?;
        let info: ImageInfo = serde_json::from_value(value.clone())
            .map_err(|e| invalid(format!("Image information is malformed: {e}")))?;
        info.check_id()?;
        Ok(info)
    }

    /// True when IPA would take the streaming path (`StandbyExtension.prepare_image`).
    pub fn streams(&self) -> bool {
        self.stream_raw_images && self.disk_format.as_deref() == Some("raw")
    }

    /// True for partition images (`image_type == "partition"`).
    pub fn is_partition_image(&self) -> bool {
        self.image_type.as_deref() == Some("partition")
    }

    /// `id` becomes a file name under the work dir: refuse anything that
    /// could escape it.
    pub(crate) fn check_id(&self) -> Result<(), ImageError> {
        let id = self.id.as_str();
        if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
            return Err(invalid(format!(
                "Image id {id:?} cannot be used as a file name"
            )));
        }
        Ok(())
    }
}

/// IPA's `_validate_image_info`.
pub fn validate(value: &Value, md5_allowed: bool) -> Result<(), ImageError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("image_info must be an object"))?;
    for key in ["id", "urls"] {
        if !obj.contains_key(key) {
            return Err(invalid(format!("Image is missing '{key}' field.")));
        }
    }
    match obj.get("urls") {
        Some(Value::Array(urls)) if !urls.is_empty() && urls.iter().all(Value::is_string) => {}
        _ => {
            return Err(invalid(
                "Image 'urls' must be a list with at least one element.",
            ))
        }
    }
    let nonempty_str = |key: &str| -> Result<Option<&str>, ImageError> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(format!(
                "Image '{key}' must be a non-empty string."
            ))),
        }
    };
    let checksum = nonempty_str("checksum")?;
    let algo = nonempty_str("os_hash_algo")?;
    let hash = nonempty_str("os_hash_value")?;
    if algo.is_some() != hash.is_some() {
        return Err(invalid(
            "Image 'os_hash_algo' and 'os_hash_value' must both be non-empty strings.",
        ));
    }
    let os_hash_ok = algo.is_some() && hash.is_some();
    let checksum_ok = checksum.is_some_and(|c| is_url(c) || c.len() > 32 || md5_allowed);
    if !os_hash_ok && !checksum_ok {
        return Err(invalid(
            "Image checksum is not a valid sha256/sha512 checksum, a checksum URL, or os_hash_algo/os_hash_value; \
             md5 checksums are disabled",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value, md5: bool) -> bool {
        validate(&v, md5).is_ok()
    }

    #[test]
    fn validator_matches_ipa() {
        let sha = "a".repeat(64);
        assert!(ok(
            json!({"id": "x", "urls": ["http://h/x"], "checksum": sha}),
            false
        ));
        assert!(!ok(json!({"urls": ["http://h/x"], "checksum": sha}), false));
        assert!(!ok(json!({"id": "x", "checksum": sha}), false));
        assert!(!ok(json!({"id": "x", "urls": [], "checksum": sha}), false));
        assert!(!ok(
            json!({"id": "x", "urls": "http://h/x", "checksum": sha}),
            false
        ));
        assert!(!ok(json!({"id": "x", "urls": ["u"], "checksum": ""}), true));
        assert!(!ok(
            json!({"id": "x", "urls": ["u"], "os_hash_algo": "sha256"}),
            true
        ));
        assert!(!ok(
            json!({"id": "x", "urls": ["u"], "os_hash_algo": "sha256", "os_hash_value": ""}),
            true
        ));
        assert!(ok(
            json!({"id": "x", "urls": ["u"], "os_hash_algo": "md5", "os_hash_value": "y"}),
            false
        ));
        // md5-length checksum only with md5 enabled; a URL always.
        let md5 = "b".repeat(32);
        assert!(!ok(
            json!({"id": "x", "urls": ["u"], "checksum": md5}),
            false
        ));
        assert!(ok(json!({"id": "x", "urls": ["u"], "checksum": md5}), true));
        assert!(ok(
            json!({"id": "x", "urls": ["u"], "checksum": "https://h/SHA256SUMS"}),
            false
        ));
        // No checksum at all.
        assert!(!ok(json!({"id": "x", "urls": ["u"]}), true));
    }

    #[test]
    fn deserializes_ironic_keys_and_keeps_extras() {
        let v = json!({
            "id": "img", "urls": ["http://h/img"], "disk_format": "raw", "container_format": null,
            "stream_raw_images": true, "os_hash_algo": "sha512", "os_hash_value": "c",
            "proxies": {"http": "http://p:3128"}, "no_proxy": "a,b", "node_uuid": "n",
            "kernel": "k", "root_gb": 10
        });
        let info = ImageInfo::from_value(&v, false).expect("valid");
        assert!(info.streams());
        assert_eq!(
            info.proxies.get("http").map(String::as_str),
            Some("http://p:3128")
        );
        assert_eq!(info.extra.get("kernel"), Some(&json!("k")));
        let bad = json!({"id": "../etc", "urls": ["u"], "checksum": "a".repeat(64)});
        assert!(matches!(
            ImageInfo::from_value(&bad, false),
            Err(ImageError::InvalidParams { .. })
        ));
    }
}
