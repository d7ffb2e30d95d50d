//! Native unit tests: hint parsing, each hint kind and operator, size
//! quirks, errors, skip lists.

use serde_json::{json, Value};

use super::*;

const GIB: u64 = 1 << 30;

/// An 8 GiB SATA SSD as the inventory describes it, with udev serials.
fn sata() -> HintDevice {
    HintDevice {
        name: "/dev/sda".into(),
        size: 8 * GIB,
        rotational: false,
        model: Some("SAMSUNG MZ7L3480HCHQ-00A07".into()),
        vendor: Some("ATA".into()),
        serial: vec![
            "S6LPNE0T612345".into(),
            "S6LPNE0T612345".into(),
            "SAMSUNG_MZ7L3480HCHQ-00A07_S6LPNE0T612345".into(),
        ],
        wwn: vec!["0x5002538f42612345".into(), "0x5002538f42612345".into()],
        wwn_with_extension: Some("0x5002538f42612345".into()),
        wwn_vendor_extension: Some("0x0000000000000001".into()),
        hctl: Some("0:0:0:0".into()),
        by_path: Some("/dev/disk/by-path/pci-0000:00:17.0-ata-1.0".into()),
        tran: Some("sata".into()),
    }
}

fn parse(hints: Value) -> DeviceHints {
    DeviceHints::parse(&hints)
        .expect("valid hints")
        .expect("non-empty hints")
}

fn matches(hints: Value, device: &HintDevice) -> bool {
    parse(hints).matches(device)
}

fn error(hints: Value) -> String {
    match DeviceHints::parse(&hints) {
        Err(ManagerError::InvalidArgument(why)) => why,
        other => panic!("expected invalid_argument for {hints}, got {other:?}"),
    }
}

#[test]
fn empty_hints_are_none() {
    for empty in [json!(null), json!({}), json!(""), json!(false)] {
        assert!(matches!(DeviceHints::parse(&empty), Ok(None)), "{empty}");
    }
}

#[test]
fn each_string_hint_compares_its_attribute() {
    let d = sata();
    // Case-insensitive, spaces allowed: both sides are normalised.
    assert!(matches(json!({"model": "samsung mz7l3480hchq-00a07"}), &d));
    assert!(!matches(json!({"model": "samsung"}), &d));
    assert!(matches(json!({"vendor": "ata"}), &d));
    assert!(matches(json!({"serial": "s6lpne0t612345"}), &d));
    // Any serial of the list: udev's long ID_SERIAL too.
    assert!(matches(
        json!({"serial": "SAMSUNG_MZ7L3480HCHQ-00A07_S6LPNE0T612345"}),
        &d
    ));
    assert!(matches(json!({"wwn": "0x5002538F42612345"}), &d));
    assert!(matches(
        json!({"wwn_with_extension": "0x5002538f42612345"}),
        &d
    ));
    assert!(matches(
        json!({"wwn_vendor_extension": "0x0000000000000001"}),
        &d
    ));
    assert!(matches(json!({"name": "/dev/sda"}), &d));
    // No /dev/ prefix is added (IPA compares the name verbatim).
    assert!(!matches(json!({"name": "sda"}), &d));
    assert!(matches(json!({"hctl": "0:0:0:0"}), &d));
    assert!(!matches(json!({"hctl": "0:0:1:0"}), &d));
    assert!(matches(
        json!({"by_path": "/dev/disk/by-path/pci-0000:00:17.0-ata-1.0"}),
        &d
    ));
    assert!(matches(json!({"tran": "SATA"}), &d));
    assert!(!matches(json!({"tran": "nvme"}), &d));
}

#[test]
fn every_hint_must_match() {
    let d = sata();
    assert!(matches(
        json!({"tran": "sata", "size": 8, "rotational": false}),
        &d
    ));
    assert!(!matches(json!({"tran": "sata", "size": 9}), &d));
}

#[test]
fn absent_or_blank_values_fail_the_hint() {
    let mut d = sata();
    d.model = None;
    d.vendor = Some("  ".into());
    d.serial.clear();
    assert!(!matches(json!({"model": "<in> a"}), &d));
    // IPA compares str(None) = "none" (`device_hints._extract_hint_operator_and_values`);
    // we let null fail like a blank value.
    assert!(!matches(json!({"model": "none"}), &d));
    assert!(!matches(json!({"model": "s!= x"}), &d));
    assert!(!matches(json!({"vendor": "s!= x"}), &d));
    assert!(!matches(json!({"serial": "s!= x"}), &d));
}

#[test]
fn string_operators() {
    let d = sata();
    assert!(matches(
        json!({"model": "s== Samsung MZ7L3480HCHQ-00A07"}),
        &d
    ));
    assert!(matches(json!({"model": "s!= intel"}), &d));
    assert!(matches(json!({"model": "s< t"}), &d));
    assert!(matches(
        json!({"model": "s<= samsung%20mz7l3480hchq-00a07"}),
        &d
    ));
    assert!(matches(json!({"model": "s> a"}), &d));
    assert!(!matches(json!({"model": "s>= z"}), &d));
    assert!(matches(json!({"model": "<in> MZ7L3480"}), &d));
    // Values may contain spaces after <in>.
    assert!(matches(json!({"model": "<in> samsung mz7"}), &d));
    assert!(!matches(json!({"model": "<in> intel"}), &d));
    assert!(matches(
        json!({"serial": "<or> abc <or> S6LPNE0T612345"}),
        &d
    ));
    assert!(matches(json!({"hctl": "<or> 1:0:0:0 <or> 0:0:0:0"}), &d));
    assert!(!matches(json!({"serial": "<or> abc <or> def"}), &d));
    // No space needed after the operator.
    assert!(matches(json!({"tran": "s==sata"}), &d));
}

#[test]
fn numeric_operators_on_string_hints() {
    let mut d = sata();
    d.hctl = Some("5".into());
    assert!(matches(json!({"hctl": ">= 4"}), &d));
    assert!(!matches(json!({"hctl": "< 4"}), &d));
    // A non-numeric device value does not match a numeric comparison.
    assert!(!matches(json!({"serial": ">= 4"}), &d));
    // A non-numeric hint value is refused up front.
    let why = error(json!({"model": ">= big"}));
    assert!(
        why.contains("\"model\"") && why.contains("not a number"),
        "{why}"
    );
}

#[test]
fn size_is_in_gib_with_ipa_quirks() {
    let d = sata(); // exactly 8 GiB
    assert!(matches(json!({"size": 8}), &d));
    assert!(matches(json!({"size": "8"}), &d));
    assert!(matches(json!({"size": " 8 "}), &d));
    assert!(!matches(json!({"size": 9}), &d));
    assert!(matches(json!({"size": ">= 8"}), &d));
    assert!(matches(json!({"size": ">=4"}), &d));
    assert!(matches(json!({"size": "> 7"}), &d));
    assert!(matches(json!({"size": "< 9"}), &d));
    assert!(matches(json!({"size": "<= 8"}), &d));
    assert!(matches(json!({"size": "!= 9"}), &d));
    assert!(matches(json!({"size": "== 8"}), &d));
    // Legacy `=` is `>=`.
    assert!(matches(json!({"size": "= 4"}), &d));
    assert!(!matches(json!({"size": "= 16"}), &d));
    // A bare number is exact equality: 8.5 GiB is not 8.
    let mut odd = sata();
    odd.size = 8 * GIB + GIB / 2;
    assert!(!matches(json!({"size": 8}), &odd));
    assert!(matches(json!({"size": "> 8"}), &odd));
    // `<or>` validates but compares a float with strings: never matches.
    assert!(!matches(json!({"size": "<or> 8 <or> 16"}), &d));
    assert!(!matches(json!({"size": "s== 8"}), &d));
}

#[test]
fn size_errors() {
    for bad in [
        json!(8.0),
        json!("8.5"),
        json!("big"),
        json!(">= 1.5"),
        json!(true),
        json!(null),
        json!("<range-in> [ 1 2 ]"),
    ] {
        let why = error(json!({"size": bad}));
        assert!(
            why.contains("\"size\"") && why.contains("integer"),
            "{bad}: {why}"
        );
    }
    for bad in [json!(0), json!("-4"), json!("> 0")] {
        let why = error(json!({"size": bad}));
        assert!(why.contains("positive"), "{bad}: {why}");
    }
    for bad in ["<in> 8", "s> 8", "<all-in> 8"] {
        let why = error(json!({"size": bad}));
        assert!(why.contains("operator"), "{bad}: {why}");
    }
    assert!(error(json!({"size": "  "})).contains("empty"));
}

#[test]
fn rotational_accepts_booleans_and_strings() {
    let ssd = sata();
    let mut hdd = sata();
    hdd.rotational = true;
    for yes in [
        json!(true),
        json!("true"),
        json!("Yes"),
        json!("1"),
        json!(1),
        json!("on"),
    ] {
        assert!(matches(json!({"rotational": yes}), &hdd), "{yes}");
        assert!(!matches(json!({"rotational": yes}), &ssd), "{yes}");
    }
    for no in [
        json!(false),
        json!("f"),
        json!("NO"),
        json!(0),
        json!("off"),
    ] {
        assert!(matches(json!({"rotational": no}), &ssd), "{no}");
    }
    for bad in [json!("maybe"), json!(2), json!(null), json!(1.0)] {
        let why = error(json!({"rotational": bad}));
        assert!(
            why.contains("\"rotational\"") && why.contains("Boolean"),
            "{why}"
        );
    }
}

#[test]
fn invalid_hints_are_named() {
    let why = error(json!({"colour": "red", "size": 8}));
    assert!(
        why.contains("\"colour\"") && why.contains("Valid hints are"),
        "{why}"
    );
    // String hints must be JSON strings.
    let why = error(json!({"serial": 12345}));
    assert!(
        why.contains("\"serial\"") && why.contains("not a string"),
        "{why}"
    );
    let why = error(json!({"model": "   "}));
    assert!(why.contains("\"model\"") && why.contains("empty"), "{why}");
    let why = error(json!({"model": "s=="}));
    assert!(
        why.contains("\"model\"") && why.contains("cannot be parsed"),
        "{why}"
    );
    let why = error(json!({"model": "<all-in> a b"}));
    assert!(why.contains("<all-in>"), "{why}");
    let why = error(json!(["name"]));
    assert!(why.contains("JSON object"), "{why}");
}

#[test]
fn root_hints_prefer_instance_info() {
    let node = json!({
        "instance_info": {"root_device": {"name": "/dev/sdb"}},
        "properties": {"root_device": {"name": "/dev/sda"}}
    });
    let hints = root_device_hints(&node).expect("valid").expect("present");
    assert_eq!(hints.source.get("name"), Some(&json!("/dev/sdb")));
    let node = json!({
        "instance_info": {"root_device": null},
        "properties": {"root_device": {"name": "/dev/sda"}}
    });
    let hints = root_device_hints(&node).expect("valid").expect("present");
    assert_eq!(hints.source.get("name"), Some(&json!("/dev/sda")));
    assert!(matches!(
        root_device_hints(&json!({"properties": {}})),
        Ok(None)
    ));
    assert!(matches!(root_device_hints(&json!({})), Ok(None)));
}

#[test]
fn skip_lists() {
    let node = json!({"properties": {"skip_block_devices": [
        {"name": "/dev/sda"},
        {"volume_name": "large", "name": "/dev/sdb"},
        {"serial": "<in> zfl"}
    ]}});
    let skip = SkipList::from_node(&node).expect("valid skip list");
    assert_eq!(skip.volume_names, ["large"]);
    assert_eq!(skip.device_hints.len(), 2);

    let mut sdb = sata();
    sdb.name = "/dev/sdb".into();
    sdb.serial = vec!["ZFL1ABCD".into()];
    let mut part = sata();
    part.name = "/dev/sda1".into();
    part.serial.clear();
    let mut other = sata();
    other.name = "/dev/sdc".into();
    let skipped = skip.skipped_names(&[sata(), part, sdb, other]);
    // A name hint for a disk does not exclude its partitions; the
    // volume_name entry's extra `name` key is ignored, as in IPA.
    assert_eq!(
        skipped.into_iter().collect::<Vec<_>>(),
        ["/dev/sda", "/dev/sdb"]
    );

    assert_eq!(
        SkipList::from_node(&json!({"properties": {}})).expect("no skip list"),
        SkipList::default()
    );
    for (bad, needle) in [
        (json!({"name": "/dev/sda"}), "list"),
        (json!([{}]), "[0]: empty"),
        (json!(["sda"]), "[0]: must be an object"),
        (
            json!([{"name": "/dev/sda"}, {"size": "big"}]),
            "[1]: root device hint \"size\"",
        ),
        (json!([{"volume_name": 5}]), "volume_name must be a string"),
    ] {
        match SkipList::from_node(&json!({"properties": {"skip_block_devices": bad}})) {
            Err(ManagerError::InvalidArgument(why)) => assert!(why.contains(needle), "{why}"),
            other => panic!("expected an error for {bad}, got {other:?}"),
        }
    }
}
