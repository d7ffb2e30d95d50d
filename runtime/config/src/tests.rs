use super::*;
use std::fs;

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

struct Fx {
    dir: tempfile::TempDir,
}

impl Fx {
    fn new() -> Fx {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("root/proc")).expect("mkdir");
        Fx { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    fn cmdline(&self, text: &str) {
        fs::write(self.root().join("proc/cmdline"), text).expect("write");
    }
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, text).expect("write");
        p
    }
    fn load(&self, cli: &[&str]) -> Result<Config, ConfigError> {
        let opts = LoadOptions {
            hardware_root: self.root(),
            cli: CliLayer::parse(args(cli))?,
            ..Default::default()
        };
        load(&opts)
    }
}

#[test]
fn defaults_have_default_source() {
    let fx = Fx::new();
    let c = fx.load(&[]).expect("load");
    assert_eq!(c.int("listen_port"), Some(9999));
    assert_eq!(
        c.get("DEFAULT", "listen_port").map(|e| &e.source),
        Some(&Source::Default)
    );
    assert_eq!(c.str("tls_min_version").as_deref(), Some("1.2"));
    assert!(c.bool("enable_auto_tls"));
    assert!(c.bool("guard-special-filesystems"));
    assert_eq!(
        c.list_in("container", "run_options"),
        vec!["--rm", "--network=host"]
    );
    assert_eq!(c.str("api_url"), None);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn kernel_params_map_to_options() {
    let fx = Fx::new();
    fx.cmdline(
        "BOOT_IMAGE=/vmlinuz ro ipa-api-url=http://127.0.0.1:6385 ipa-ip-lookup-timeout=3 \
         ipa-insecure=1 ipa-guard-special-filesystems=false BOOTIF=01-52-54-00-AB-CD-EF \
         ipa-inspection-collectors=default,logs ipa-lookup-timeout=5 ipa-lookup-timeout=7 ipa-use-mdns=yes quiet\n",
    );
    let c = fx.load(&[]).expect("load");
    assert_eq!(c.api_urls(), vec!["http://127.0.0.1:6385"]);
    assert_eq!(
        c.int("ip_lookup_sleep"),
        Some(3),
        "ipa-ip-lookup-timeout feeds ip_lookup_sleep"
    );
    assert!(c.bool("insecure"));
    assert!(!c.bool("guard-special-filesystems"));
    assert_eq!(c.int("lookup_timeout"), Some(7), "later duplicates win");
    assert!(c.bool_in("mdns", "use_mdns"));
    assert_eq!(c.bootif(), Some("01-52-54-00-AB-CD-EF"));
    assert_eq!(
        normalize_bootif("01-52-54-00-AB-CD-EF"),
        "52:54:00:ab:cd:ef"
    );
    match &c.get("DEFAULT", "api_url").expect("set").source {
        Source::Kernel { param, .. } => assert_eq!(param, "ipa-api-url"),
        other => panic!("unexpected source {other:?}"),
    }
}

#[test]
fn unknown_kernel_param_warns() {
    let fx = Fx::new();
    fx.cmdline("ipa-standalone=1 ipa-debug=1 ipa-inspection-benchmarks=cpu");
    let c = fx.load(&[]).expect("load");
    let msgs: Vec<String> = c.warnings().iter().map(|w| w.message.clone()).collect();
    assert_eq!(
        msgs,
        vec!["unknown parameter ipa-standalone (ignored)".to_string()]
    );
}

#[test]
fn bad_kernel_value_stops_startup() {
    let fx = Fx::new();
    fx.cmdline("ipa-listen-port=99999");
    let err = fx.load(&[]).expect_err("invalid");
    let root = fx.root();
    assert_eq!(
        err.to_string(),
        format!(
            "kernel command line ({}/proc/cmdline) ipa-listen-port: invalid value for [DEFAULT]listen_port: \"99999\" (port must be between 0 and 65535)",
            root.display()
        )
    );
}

#[test]
fn files_beat_kernel_and_flags_follow_command_line_order() {
    let fx = Fx::new();
    fx.cmdline("ipa-api-url=http://kernel:6385 ipa-agent-token=kerneltoken");
    let f = fx.file(
        "a.conf",
        "[DEFAULT]\napi_url = http://file:6385\nagent_token = filetoken\n",
    );
    let fs_ = f.to_str().expect("utf8");
    let c = fx
        .load(&["--config-file", fs_, "--agent_token", "flagtoken"])
        .expect("load");
    assert_eq!(c.api_urls(), vec!["http://file:6385"]);
    assert_eq!(
        c.str("agent_token").as_deref(),
        Some("flagtoken"),
        "flag after the file wins"
    );
    let c = fx
        .load(&["--agent_token", "flagtoken", "--config-file", fs_])
        .expect("load");
    assert_eq!(
        c.str("agent_token").as_deref(),
        Some("filetoken"),
        "file after the flag wins"
    );
    assert_eq!(
        c.get("DEFAULT", "agent_token").map(|e| &e.source),
        Some(&Source::File {
            path: f.clone(),
            line: 3
        })
    );
}

#[test]
fn config_dirs_are_sorted_and_later_wins() {
    let fx = Fx::new();
    fx.file("d1/20-b.conf", "[DEFAULT]\nlisten_port = 2\n");
    fx.file(
        "d1/10-a.conf",
        "[DEFAULT]\nlisten_port = 1\nlookup_timeout = 5\n",
    );
    fx.file("d1/ignored.txt", "[DEFAULT]\nlisten_port = 9\n");
    fx.file("d2/x.conf", "[DEFAULT]\nlookup_timeout = 6\n");
    let d1 = fx.dir.path().join("d1");
    let d2 = fx.dir.path().join("d2");
    let c = fx
        .load(&[
            "--config-dir",
            d1.to_str().expect("utf8"),
            "--config-dir",
            d2.to_str().expect("utf8"),
        ])
        .expect("load");
    assert_eq!(c.int("listen_port"), Some(2));
    assert_eq!(c.int("lookup_timeout"), Some(6));
    assert_eq!(c.files_read().len(), 3);
}

#[test]
fn default_files_count_first_so_flags_beat_them() {
    let fx = Fx::new();
    let f = fx.file("home.conf", "[DEFAULT]\nlisten_port = 7\ndebug = true\n");
    let opts = LoadOptions {
        hardware_root: fx.root(),
        cli: CliLayer::parse(args(&["--listen_port=8"])).expect("cli"),
        default_config_files: vec![fx.dir.path().join("missing.conf"), f],
        ..Default::default()
    };
    let c = load(&opts).expect("load");
    assert_eq!(c.int("listen_port"), Some(8));
    assert!(c.bool("debug"));
}

#[test]
fn unknown_keys_and_sections_warn_with_file_and_line() {
    let fx = Fx::new();
    let f = fx.file(
        "a.conf",
        "[DEFAULT]\napi_urll = http://x\n[nosuch]\na = 1\nb = 2\n[ssl]\ncert_file = /c.pem\n",
    );
    let c = fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .expect("load");
    let got: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    let p = f.display();
    assert_eq!(
        got,
        vec![
            format!("{p}:2: unknown option [DEFAULT]api_urll (ignored)"),
            format!("{p}:4: unknown section [nosuch] (ignored)"),
            format!("{p}:7: [ssl]cert_file is deprecated, use [DEFAULT]tls_cert_file"),
        ]
    );
    assert_eq!(c.str("tls_cert_file").as_deref(), Some("/c.pem"));
}

#[test]
fn invalid_file_value_names_file_line_key_value() {
    let fx = Fx::new();
    let f = fx.file("bad.conf", "[DEFAULT]\n\ninsecure = maybe\n");
    let err = fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .expect_err("bad");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: invalid value for [DEFAULT]insecure: \"maybe\" (expected one of true/false, 1/0, on/off, yes/no)",
            f.display()
        )
    );
    let f = fx.file("bad2.conf", "[DEFAULT]\ntls_min_version = 1.1\n");
    let err = fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .expect_err("bad");
    assert!(
        err.to_string().ends_with(
            ":2: invalid value for [DEFAULT]tls_min_version: \"1.1\" (must be one of: 1.2, 1.3)"
        ),
        "{err}"
    );
    let f = fx.file("bad3.conf", "[DEFAULT]\napi_url = ftp://x\n");
    assert!(fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .is_err());
    let f = fx.file("bad4.conf", "[DEFAULT]\ninject_files_priority = 100\n");
    let err = fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .expect_err("bad");
    assert!(err.to_string().contains("(must be at most 99)"), "{err}");
}

#[test]
fn syntax_errors_and_missing_files_stop_startup() {
    let fx = Fx::new();
    let f = fx.file("syn.conf", "[DEFAULT\n");
    let err = fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .expect_err("bad");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1: section header without closing ']': \"[DEFAULT\"",
            f.display()
        )
    );
    let err = fx
        .load(&["--config-file", "/nonexistent/x.conf"])
        .expect_err("missing");
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/x.conf"),
        "{err}"
    );
}

#[test]
fn secrets_are_masked_in_errors_and_render() {
    let fx = Fx::new();
    let c = fx
        .load(&["--agent_token", "s3cret-token-value"])
        .expect("load");
    let text = render(&c);
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("agent_token = ***    # command line --agent_token"),
        "{text}"
    );
    assert!(text.contains("listen_port = 9999    # default"), "{text}");
    assert!(text.contains("api_url = <unset>"), "{text}");
}

#[test]
fn cli_bool_flags_and_split() {
    let (layer, rest) = CliLayer::split_args(args(&[
        "--hardware-root",
        "/x",
        "--insecure",
        "--noenable_auto_tls",
        "-d",
        "--listen-port",
        "1234",
        "--nodebug",
        "inventory",
        "--",
        "--insecure",
    ]))
    .expect("split");
    assert_eq!(
        rest,
        args(&["--hardware-root", "/x", "inventory", "--", "--insecure"])
    );
    let names: Vec<(&str, &str)> = layer
        .items
        .iter()
        .filter_map(|i| match i {
            CliItem::Set { name, raw, .. } => Some((*name, raw.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("insecure", "true"),
            ("enable_auto_tls", "false"),
            ("debug", "true"),
            ("listen_port", "1234"),
            ("debug", "false")
        ]
    );
    assert!(
        matches!(CliLayer::parse(args(&["--bogus"])), Err(ConfigError::UnknownFlag(f)) if f == "--bogus")
    );
    assert!(matches!(
        CliLayer::parse(args(&["--api_url"])),
        Err(ConfigError::MissingValue(_))
    ));
}

#[test]
fn env_rules_follow_oslo() {
    let fx = Fx::new();
    let f = fx.file("a.conf", "[DEFAULT]\nlookup_timeout = 5\n");
    let fstr = f.to_str().expect("utf8");
    let env = vec![
        ("OS_DEFAULT__LOOKUP_TIMEOUT".to_string(), "9".to_string()),
        ("OS_DEFAULT__LISTEN_PORT".to_string(), "1".to_string()),
        ("OS_MDNS__USE_MDNS".to_string(), "true".to_string()),
    ];
    let opts = LoadOptions {
        hardware_root: fx.root(),
        cli: CliLayer::parse(args(&[
            "--config-file",
            fstr,
            "--lookup_timeout",
            "7",
            "--listen_port",
            "2",
        ]))
        .expect("cli"),
        env,
        ..Default::default()
    };
    let c = load(&opts).expect("load");
    assert_eq!(
        c.int("lookup_timeout"),
        Some(9),
        "env beats file (and the flag, since a file set it)"
    );
    assert_eq!(
        c.int("listen_port"),
        Some(2),
        "flag beats env when no file sets it"
    );
    assert!(c.bool_in("mdns", "use_mdns"));
}

#[test]
fn ipa_debug_overrides_everything() {
    let fx = Fx::new();
    fx.cmdline("ipa-debug=1");
    let c = fx.load(&["--nodebug"]).expect("load");
    assert!(c.bool("debug"));
    assert_eq!(
        c.get("DEFAULT", "debug").map(|e| &e.source),
        Some(&Source::KernelOverride {
            param: "ipa-debug".into()
        })
    );
    fx.cmdline("ipa-debug=nonsense");
    assert!(
        !fx.load(&["--debug"]).expect("load").bool("debug"),
        "lenient: unknown text is false"
    );
}

#[test]
fn ironic_runtime_layer() {
    let fx = Fx::new();
    let mut c = fx.load(&[]).expect("load");
    let changed = c.apply_ironic(&serde_json::json!({
        "heartbeat_timeout": 300,
        "agent_token": "x",
        "tls_min_version": "1.3",
        "tls_cipher_suites": null,
        "agent_md5_checksum_enable": false,
        "permitted_image_formats": ["raw", "gpt", "qcow2", "iso"],
        "enable_bios_bootloader_install": false,
        "agent_containers": {"runner": "docker", "bogus": 1, "allowed_containers": []},
    }));
    assert_eq!(c.str("tls_min_version").as_deref(), Some("1.3"));
    assert_eq!(
        c.get("DEFAULT", "tls_min_version").map(|e| &e.source),
        Some(&Source::Ironic {
            key: "tls_min_version".into()
        })
    );
    assert!(!c.bool("md5_enabled"));
    assert_eq!(
        c.list_in("DEFAULT", "permitted_image_formats"),
        vec!["raw", "gpt", "qcow2", "iso"]
    );
    assert_eq!(
        c.get("container", "runner")
            .map(|e| e.value.to_string())
            .as_deref(),
        Some("docker")
    );
    assert_eq!(
        c.get("DEFAULT", "enable_bios_bootloader_install")
            .map(|e| &e.source),
        Some(&Source::Default)
    );
    assert_eq!(
        changed,
        vec![
            "[container]runner",
            "[container]allowed_containers",
            "[DEFAULT]permitted_image_formats",
            "[DEFAULT]md5_enabled",
            "[DEFAULT]tls_min_version"
        ]
    );
}

#[test]
fn every_documented_key_is_known() {
    let fx = Fx::new();
    let mut text = String::new();
    let mut group = "";
    for spec in OPTIONS {
        if spec.group != group {
            group = spec.group;
            text.push_str(&format!("[{group}]\n"));
        }
        let sample = match spec.ty {
            OptType::Bool => "true".to_string(),
            OptType::Int { min, .. } => min.unwrap_or(0).clamp(1, 99).to_string(),
            OptType::Port => "1".into(),
            OptType::Float => "1.5".into(),
            OptType::Choice(c) => c[0].into(),
            OptType::Url => "http://127.0.0.1:6385".into(),
            OptType::Host => "127.0.0.1".into(),
            OptType::Dict => "a:b".into(),
            OptType::Str | OptType::List => "x".into(),
        };
        text.push_str(&format!("{} = {sample}\n", spec.name));
    }
    let f = fx.file("all.conf", &text);
    let c = fx
        .load(&["--config-file", f.to_str().expect("utf8")])
        .expect("load");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    for spec in OPTIONS {
        assert!(
            matches!(
                c.get(spec.group, spec.name).map(|e| &e.source),
                Some(Source::File { .. })
            ),
            "{}",
            spec.name
        );
    }
}
