//! Options IPA documents that this agent accepts (same names, types and
//! kernel parameters, so an IPA configuration loads unchanged) but does not
//! act on. Each is named once at start-up ("accepted but not supported by
//! this agent: ...") and marked in `ironic-agent config`, so that nobody
//! believes a setting works because IPA's documentation says it does.
//!
//! `runtime/config/tests/option_walk.rs` walks the whole option table: an
//! option must be read by the agent's code or be listed here, never both.

/// `(group, option, why)`.
pub static UNSUPPORTED: &[(&str, &str, &str)] = &[
    // [DEFAULT]
    (
        "DEFAULT",
        "tls_cipher_suites",
        "rustls offers a fixed set of modern suites",
    ),
    (
        "DEFAULT",
        "introspection_daemon",
        "inspection runs once at start-up",
    ),
    (
        "DEFAULT",
        "introspection_daemon_post_interval",
        "inspection runs once at start-up",
    ),
    (
        "DEFAULT",
        "image_server_user",
        "image credentials come from Ironic's image_info",
    ),
    (
        "DEFAULT",
        "image_server_password",
        "image credentials come from Ironic's image_info",
    ),
    (
        "DEFAULT",
        "image_server_auth_strategy",
        "image credentials come from Ironic's image_info",
    ),
    (
        "DEFAULT",
        "config_drive_rebuild",
        "an existing config drive partition is always reused",
    ),
    (
        "DEFAULT",
        "disable_deep_image_inspection",
        "image safety checks always run",
    ),
    (
        "DEFAULT",
        "disable_bootc_deploy",
        "bootc deployment is not implemented",
    ),
    (
        "DEFAULT",
        "guard-special-filesystems",
        "the generic manager's erase always guards special file systems",
    ),
    (
        "mdns",
        "params",
        "used when registering a service; the agent only looks Ironic up",
    ),
    // oslo.log: the agent logs through tracing to stderr (and the logs
    // collector); `debug`, `use_json`, `log_file` and `log_dir` are honoured.
    ("DEFAULT", "log_config_append", OSLO_LOG),
    ("DEFAULT", "log_date_format", OSLO_LOG),
    ("DEFAULT", "watch_log_file", OSLO_LOG),
    ("DEFAULT", "use_syslog", OSLO_LOG),
    ("DEFAULT", "use_journal", OSLO_LOG),
    ("DEFAULT", "syslog_log_facility", OSLO_LOG),
    ("DEFAULT", "use_stderr", OSLO_LOG),
    ("DEFAULT", "log_color", OSLO_LOG),
    ("DEFAULT", "log_rotate_interval", OSLO_LOG),
    ("DEFAULT", "log_rotate_interval_type", OSLO_LOG),
    ("DEFAULT", "max_logfile_count", OSLO_LOG),
    ("DEFAULT", "max_logfile_size_mb", OSLO_LOG),
    ("DEFAULT", "log_rotation_type", OSLO_LOG),
    ("DEFAULT", "logging_context_format_string", OSLO_LOG),
    ("DEFAULT", "logging_default_format_string", OSLO_LOG),
    ("DEFAULT", "logging_debug_format_suffix", OSLO_LOG),
    ("DEFAULT", "logging_exception_prefix", OSLO_LOG),
    ("DEFAULT", "logging_user_identity_format", OSLO_LOG),
    ("DEFAULT", "default_log_levels", OSLO_LOG),
    ("DEFAULT", "publish_errors", OSLO_LOG),
    ("DEFAULT", "instance_format", OSLO_LOG),
    ("DEFAULT", "instance_uuid_format", OSLO_LOG),
    ("DEFAULT", "rate_limit_interval", OSLO_LOG),
    ("DEFAULT", "rate_limit_burst", OSLO_LOG),
    ("DEFAULT", "rate_limit_except_level", OSLO_LOG),
    ("DEFAULT", "fatal_deprecations", OSLO_LOG),
    // [disk_utils], [disk_partitioner]: the image pipeline uses IPA's
    // defaults for these.
    ("disk_utils", "dd_block_size", IPA_DEFAULT),
    ("disk_utils", "partition_detection_attempts", IPA_DEFAULT),
    ("disk_utils", "partprobe_attempts", IPA_DEFAULT),
    ("disk_partitioner", "check_device_interval", IPA_DEFAULT),
    ("disk_partitioner", "check_device_max_retries", IPA_DEFAULT),
    // [metrics], [metrics_statsd]: no metrics are emitted.
    ("metrics", "backend", METRICS),
    ("metrics", "prepend_host", METRICS),
    ("metrics", "prepend_host_reverse", METRICS),
    ("metrics", "global_prefix", METRICS),
    ("metrics_statsd", "statsd_host", METRICS),
    ("metrics_statsd", "statsd_port", METRICS),
    // [container]: container-based steps are not implemented.
    ("container", "allow_arbitrary_containers", CONTAINERS),
    ("container", "allowed_containers", CONTAINERS),
    ("container", "container_steps_file", CONTAINERS),
    ("container", "runner", CONTAINERS),
    ("container", "pull_options", CONTAINERS),
    ("container", "run_options", CONTAINERS),
];

const OSLO_LOG: &str = "oslo.log setting; the agent logs through tracing";
const IPA_DEFAULT: &str = "the agent uses IPA's default";
const METRICS: &str = "the agent emits no metrics";
const CONTAINERS: &str = "container steps are not implemented";

/// Why `[group]name` is not supported, or `None` when it is honoured.
pub fn unsupported(group: &str, name: &str) -> Option<&'static str> {
    let norm = |s: &str| s.replace('-', "_");
    UNSUPPORTED
        .iter()
        .find(|(g, n, _)| *g == group && norm(n) == norm(name))
        .map(|(_, _, why)| *why)
}
