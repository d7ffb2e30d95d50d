//! The registry of every option IPA registers (IPA `config.py` `list_opts`,
//! `mdns.py`, oslo.log's `_options.py`), with its type, default and kernel
//! parameter. Keys not in this table are "unknown".

/// The type of an option, with oslo.config's validation rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptType {
    /// Free text.
    Str,
    /// Text that must be one of the listed choices.
    Choice(&'static [&'static str]),
    /// oslo Bool: `true/1/on/yes`, `false/0/off/no` (case-insensitive).
    Bool,
    /// Decimal integer with inclusive bounds.
    Int { min: Option<i64>, max: Option<i64> },
    /// TCP/UDP port 0-65535.
    Port,
    /// Floating point number.
    Float,
    /// Comma-separated list, items stripped.
    List,
    /// oslo Dict: `k1:v1,k2:v2`.
    Dict,
    /// `api_url`: `mdns` or `http(s)://...` (each comma-separated item).
    Url,
    /// `ntp_server`: an IP or `[A-Za-z0-9.:_-]+`, at most 253 characters.
    Host,
}

/// One known option.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    /// INI section (`DEFAULT`, `disk_utils`, ...).
    pub group: &'static str,
    /// Option name exactly as IPA spells it.
    pub name: &'static str,
    /// Value type.
    pub ty: OptType,
    /// Built-in default (raw text, parsed like any other source), if any.
    pub default: Option<&'static str>,
    /// Kernel command-line parameter that supplies the default, if any.
    pub kernel: Option<&'static str>,
    /// Value must never be printed (tokens, passwords).
    pub secret: bool,
}

const fn int(min: Option<i64>, max: Option<i64>) -> OptType {
    OptType::Int { min, max }
}
const N0: OptType = int(Some(0), None);
const N1: OptType = int(Some(1), None);
const ANY: OptType = int(None, None);

macro_rules! o {
    ($g:literal, $n:literal, $t:expr) => {
        o!($g, $n, $t, None, None)
    };
    ($g:literal, $n:literal, $t:expr, $d:expr) => {
        o!($g, $n, $t, $d, None)
    };
    ($g:literal, $n:literal, $t:expr, $d:expr, $k:expr) => {
        OptSpec {
            group: $g,
            name: $n,
            ty: $t,
            default: $d,
            kernel: $k,
            secret: false,
        }
    };
}

/// Every option, in documentation order. `listen_host`'s default is decided at
/// load time (`::` with IPv6, else `0.0.0.0`), so it has none here.
pub static OPTIONS: &[OptSpec] = &[
    // [DEFAULT] agent options (IPA `config.py` `cli_opts`)
    o!(
        "DEFAULT",
        "api_url",
        OptType::Url,
        None,
        Some("ipa-api-url")
    ),
    o!(
        "DEFAULT",
        "global_request_id",
        OptType::Str,
        None,
        Some("ipa-global-request-id")
    ),
    o!(
        "DEFAULT",
        "listen_host",
        OptType::Str,
        None,
        Some("ipa-listen-host")
    ),
    o!(
        "DEFAULT",
        "listen_port",
        OptType::Port,
        Some("9999"),
        Some("ipa-listen-port")
    ),
    o!("DEFAULT", "listen_tls", OptType::Bool, Some("false")),
    o!("DEFAULT", "tls_cert_file", OptType::Str),
    o!("DEFAULT", "tls_key_file", OptType::Str),
    o!("DEFAULT", "enable_auto_tls", OptType::Bool, Some("true")),
    o!("DEFAULT", "auto_tls_allowed_clock_skew", N0, Some("3600")),
    o!(
        "DEFAULT",
        "tls_min_version",
        OptType::Choice(&["1.2", "1.3"]),
        Some("1.2"),
        Some("ipa-tls-min-version")
    ),
    o!(
        "DEFAULT",
        "tls_cipher_suites",
        OptType::Str,
        None,
        Some("ipa-tls-cipher-suites")
    ),
    o!(
        "DEFAULT",
        "tls_certificate_curve",
        OptType::Choice(&["p256", "p384", "p521"]),
        Some("p384"),
        Some("ipa-tls-certificate-curve")
    ),
    o!(
        "DEFAULT",
        "advertise_host",
        OptType::Str,
        None,
        Some("ipa-advertise-host")
    ),
    o!(
        "DEFAULT",
        "advertise_port",
        OptType::Port,
        Some("9999"),
        Some("ipa-advertise-port")
    ),
    o!(
        "DEFAULT",
        "advertise_protocol",
        OptType::Choice(&["http", "https"]),
        Some("http"),
        Some("ipa-advertise-protocol")
    ),
    o!(
        "DEFAULT",
        "ip_lookup_attempts",
        N1,
        Some("6"),
        Some("ipa-ip-lookup-attempts")
    ),
    o!(
        "DEFAULT",
        "ip_lookup_sleep",
        N0,
        Some("10"),
        Some("ipa-ip-lookup-timeout")
    ),
    o!(
        "DEFAULT",
        "network_interface",
        OptType::Str,
        None,
        Some("ipa-network-interface")
    ),
    o!(
        "DEFAULT",
        "lookup_timeout",
        N0,
        Some("600"),
        Some("ipa-lookup-timeout")
    ),
    o!(
        "DEFAULT",
        "lookup_interval",
        N0,
        Some("1"),
        Some("ipa-lookup-interval")
    ),
    o!(
        "DEFAULT",
        "lldp_timeout",
        OptType::Float,
        Some("30.0"),
        Some("ipa-lldp-timeout")
    ),
    o!(
        "DEFAULT",
        "collect_lldp",
        OptType::Bool,
        Some("false"),
        Some("ipa-collect-lldp")
    ),
    o!(
        "DEFAULT",
        "inspection_callback_url",
        OptType::Str,
        None,
        Some("ipa-inspection-callback-url")
    ),
    o!(
        "DEFAULT",
        "inspection_collectors",
        OptType::Str,
        None,
        Some("ipa-inspection-collectors")
    ),
    o!(
        "DEFAULT",
        "inspection_dhcp_wait_timeout",
        N0,
        Some("60"),
        Some("ipa-inspection-dhcp-wait-timeout")
    ),
    o!(
        "DEFAULT",
        "inspection_dhcp_all_interfaces",
        OptType::Bool,
        Some("false"),
        Some("ipa-inspection-dhcp-all-interfaces")
    ),
    o!(
        "DEFAULT",
        "hardware_initialization_delay",
        N0,
        Some("0"),
        Some("ipa-hardware-initialization-delay")
    ),
    o!(
        "DEFAULT",
        "disk_wait_attempts",
        N0,
        Some("10"),
        Some("ipa-disk-wait-attempts")
    ),
    o!(
        "DEFAULT",
        "disk_wait_delay",
        N0,
        Some("3"),
        Some("ipa-disk-wait-delay")
    ),
    o!(
        "DEFAULT",
        "insecure",
        OptType::Bool,
        Some("false"),
        Some("ipa-insecure")
    ),
    o!("DEFAULT", "cafile", OptType::Str),
    o!("DEFAULT", "certfile", OptType::Str),
    o!("DEFAULT", "keyfile", OptType::Str),
    o!(
        "DEFAULT",
        "introspection_daemon",
        OptType::Bool,
        Some("false")
    ),
    o!(
        "DEFAULT",
        "introspection_daemon_post_interval",
        ANY,
        Some("300")
    ),
    o!(
        "DEFAULT",
        "ntp_server",
        OptType::Host,
        None,
        Some("ipa-ntp-server")
    ),
    o!(
        "DEFAULT",
        "fail_if_clock_not_set",
        OptType::Bool,
        Some("false")
    ),
    OptSpec {
        group: "DEFAULT",
        name: "agent_token",
        ty: OptType::Str,
        default: None,
        kernel: Some("ipa-agent-token"),
        secret: true,
    },
    o!("DEFAULT", "image_server_user", OptType::Str),
    OptSpec {
        group: "DEFAULT",
        name: "image_server_password",
        ty: OptType::Str,
        default: None,
        kernel: None,
        secret: true,
    },
    o!(
        "DEFAULT",
        "image_server_auth_strategy",
        OptType::Str,
        Some("noauth")
    ),
    o!(
        "DEFAULT",
        "image_download_connection_timeout",
        N1,
        Some("60"),
        Some("ipa-image-download-connection-timeout")
    ),
    o!(
        "DEFAULT",
        "image_download_connection_retries",
        N0,
        Some("9"),
        Some("ipa-image-download-connection-retries")
    ),
    o!(
        "DEFAULT",
        "image_download_connection_retry_interval",
        N0,
        Some("10"),
        Some("ipa-image-download-connection-retry-interval")
    ),
    o!(
        "DEFAULT",
        "image_download_max_duration",
        N0,
        Some("0"),
        Some("ipa-image-download-max-duration")
    ),
    o!(
        "DEFAULT",
        "ironic_api_version",
        OptType::Str,
        None,
        Some("ipa-ironic-api-version")
    ),
    o!(
        "DEFAULT",
        "enable_vlan_interfaces",
        OptType::Str,
        Some(""),
        Some("ipa-enable-vlan-interfaces")
    ),
    o!(
        "DEFAULT",
        "ignore_bootloader_failure",
        OptType::Bool,
        None,
        Some("ipa-ignore-bootloader-failure")
    ),
    o!(
        "DEFAULT",
        "inject_files_priority",
        int(Some(0), Some(99)),
        Some("0"),
        Some("ipa-inject-files-priority")
    ),
    o!(
        "DEFAULT",
        "guard-special-filesystems",
        OptType::Bool,
        Some("true"),
        Some("ipa-guard-special-filesystems")
    ),
    o!("DEFAULT", "md5_enabled", OptType::Bool, Some("true")),
    o!(
        "DEFAULT",
        "http_request_timeout",
        N1,
        Some("30"),
        Some("ipa-http-request-timeout")
    ),
    o!(
        "DEFAULT",
        "config_drive_rebuild",
        OptType::Bool,
        Some("false")
    ),
    o!(
        "DEFAULT",
        "disable_deep_image_inspection",
        OptType::Bool,
        Some("false")
    ),
    o!(
        "DEFAULT",
        "permitted_image_formats",
        OptType::List,
        Some("raw,gpt,qcow2")
    ),
    // Not an IPA option: hardware-manager components fetched at start-up,
    // each `URL#sha256=<hex>[&name=<stem>]` (comma-separated).
    o!(
        "DEFAULT",
        "manager_urls",
        OptType::List,
        Some(""),
        Some("ipa-manager-urls")
    ),
    o!(
        "DEFAULT",
        "disable_bootc_deploy",
        OptType::Bool,
        Some("false")
    ),
    o!(
        "DEFAULT",
        "enable_bios_bootloader_install",
        OptType::Bool,
        Some("false")
    ),
    // [DEFAULT] oslo.log (`oslo_log/_options.py`)
    o!("DEFAULT", "debug", OptType::Bool, Some("false")),
    o!("DEFAULT", "log_config_append", OptType::Str),
    o!(
        "DEFAULT",
        "log_date_format",
        OptType::Str,
        Some("%Y-%m-%d %H:%M:%S")
    ),
    o!("DEFAULT", "log_file", OptType::Str),
    o!("DEFAULT", "log_dir", OptType::Str),
    o!("DEFAULT", "watch_log_file", OptType::Bool, Some("false")),
    o!("DEFAULT", "use_syslog", OptType::Bool, Some("false")),
    o!("DEFAULT", "use_journal", OptType::Bool, Some("false")),
    o!(
        "DEFAULT",
        "syslog_log_facility",
        OptType::Str,
        Some("LOG_USER")
    ),
    o!("DEFAULT", "use_json", OptType::Bool, Some("false")),
    o!("DEFAULT", "use_stderr", OptType::Bool, Some("false")),
    o!("DEFAULT", "log_color", OptType::Bool, Some("false")),
    o!("DEFAULT", "log_rotate_interval", ANY, Some("1")),
    o!(
        "DEFAULT",
        "log_rotate_interval_type",
        OptType::Choice(&[
            "Seconds", "Minutes", "Hours", "Days", "Weekday", "Midnight", "seconds", "minutes",
            "hours", "days", "weekday", "midnight"
        ]),
        Some("days")
    ),
    o!("DEFAULT", "max_logfile_count", ANY, Some("30")),
    o!("DEFAULT", "max_logfile_size_mb", ANY, Some("200")),
    o!(
        "DEFAULT",
        "log_rotation_type",
        OptType::Choice(&["interval", "size", "none"]),
        Some("none")
    ),
    o!("DEFAULT", "logging_context_format_string", OptType::Str),
    o!("DEFAULT", "logging_default_format_string", OptType::Str),
    o!("DEFAULT", "logging_debug_format_suffix", OptType::Str),
    o!("DEFAULT", "logging_exception_prefix", OptType::Str),
    o!("DEFAULT", "logging_user_identity_format", OptType::Str),
    o!("DEFAULT", "default_log_levels", OptType::List),
    o!("DEFAULT", "publish_errors", OptType::Bool, Some("false")),
    o!("DEFAULT", "instance_format", OptType::Str),
    o!("DEFAULT", "instance_uuid_format", OptType::Str),
    o!("DEFAULT", "rate_limit_interval", ANY, Some("0")),
    o!("DEFAULT", "rate_limit_burst", ANY, Some("0")),
    o!(
        "DEFAULT",
        "rate_limit_except_level",
        OptType::Str,
        Some("CRITICAL")
    ),
    o!(
        "DEFAULT",
        "fatal_deprecations",
        OptType::Bool,
        Some("false")
    ),
    // [disk_utils] (IPA `config.py` `disk_utils_opts`)
    o!("disk_utils", "efi_system_partition_size", ANY, Some("550")),
    o!("disk_utils", "bios_boot_partition_size", ANY, Some("1")),
    o!("disk_utils", "dd_block_size", OptType::Str, Some("1M")),
    o!("disk_utils", "partition_detection_attempts", N1, Some("3")),
    o!("disk_utils", "partprobe_attempts", ANY, Some("10")),
    o!(
        "disk_utils",
        "image_convert_memory_limit",
        ANY,
        Some("2048")
    ),
    o!("disk_utils", "image_convert_attempts", ANY, Some("3")),
    // [disk_partitioner] (IPA `config.py` `disk_part_opts`)
    o!("disk_partitioner", "check_device_interval", ANY, Some("1")),
    o!(
        "disk_partitioner",
        "check_device_max_retries",
        ANY,
        Some("20")
    ),
    // [metrics], [metrics_statsd] (IPA `metrics_lib/metrics_utils.py` `metrics_opts`,
    // `metrics_lib/metrics_statsd.py` `statsd_opts`)
    o!(
        "metrics",
        "backend",
        OptType::Choice(&["noop", "statsd", "collector"]),
        Some("noop")
    ),
    o!("metrics", "prepend_host", OptType::Bool, Some("false")),
    o!(
        "metrics",
        "prepend_host_reverse",
        OptType::Bool,
        Some("true")
    ),
    o!("metrics", "global_prefix", OptType::Str),
    o!(
        "metrics_statsd",
        "statsd_host",
        OptType::Str,
        Some("localhost")
    ),
    o!("metrics_statsd", "statsd_port", OptType::Port, Some("8125")),
    // [container] (IPA `config.py` `container_opts`)
    o!(
        "container",
        "allow_arbitrary_containers",
        OptType::Bool,
        Some("false")
    ),
    o!("container", "allowed_containers", OptType::List, Some("")),
    o!(
        "container",
        "container_steps_file",
        OptType::Str,
        Some("/etc/ironic-python-agent.d/mysteps.yaml")
    ),
    o!(
        "container",
        "runner",
        OptType::Choice(&["podman", "docker"]),
        Some("podman")
    ),
    o!("container", "pull_options", OptType::List, Some("")),
    o!(
        "container",
        "run_options",
        OptType::List,
        Some("--rm,--network=host")
    ),
    // [mdns] (IPA `mdns.py` `opts`)
    o!(
        "mdns",
        "use_mdns",
        OptType::Bool,
        Some("false"),
        Some("ipa-use-mdns")
    ),
    o!(
        "mdns",
        "allowed_overrides",
        OptType::List,
        Some("inspection_callback_url,ntp_server")
    ),
    o!("mdns", "lookup_attempts", N1, Some("3")),
    o!("mdns", "params", OptType::Dict, Some("")),
    o!("mdns", "interfaces", OptType::List),
];

/// Sections an IPA config file may contain (`ssl` only for its deprecated aliases).
pub const SECTIONS: &[&str] = &[
    "DEFAULT",
    "disk_utils",
    "disk_partitioner",
    "metrics",
    "metrics_statsd",
    "container",
    "mdns",
    "ssl",
];

/// Deprecated `[ssl]` aliases: (old name, new `[DEFAULT]` name).
pub const SSL_ALIASES: &[(&str, &str)] =
    &[("cert_file", "tls_cert_file"), ("key_file", "tls_key_file")];

/// Looks an option up; `-` and `_` are interchangeable in the name, as oslo
/// accepts both spellings for `guard-special-filesystems`.
pub fn find(group: &str, name: &str) -> Option<&'static OptSpec> {
    let norm = |s: &str| s.replace('-', "_");
    let wanted = norm(name);
    OPTIONS
        .iter()
        .find(|o| o.group == group && norm(o.name) == wanted)
}
