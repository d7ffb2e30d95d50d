//! `mdadm` output as IPA reads it.

/// The array name from `mdadm --detail` or `--examine` output (IPA
/// `raid_utils.get_volume_name_of_raid_device`): the `Name :` line's value
/// without the `<host>:` prefix and without any trailing comment such as
/// `(local to host …)`.
pub fn volume_name(output: &str) -> Option<String> {
    let line = output.lines().find(|l| l.contains("Name"))?;
    let parts: Vec<&str> = line.split(':').collect();
    let candidate = match parts.len() {
        3 => parts[2],
        2 => parts[1],
        _ => return None,
    };
    let name = candidate.split_whitespace().next()?;
    Some(name.to_string())
}

/// The `UUID :` value of `mdadm --detail` (IPA `_get_md_uuid`; the first
/// line, the device itself, is skipped).
pub fn uuid(detail: &str) -> Option<String> {
    detail.lines().skip(1).find_map(|l| {
        let (key, value) = l.split_once(" : ")?;
        (key.trim() == "UUID").then(|| value.trim().to_string())
    })
}

/// `/dev/…` devices named in `mdadm --detail` after its first line (IPA
/// `raid_utils._get_actual_component_devices`).
pub fn component_devices(detail: &str) -> Vec<String> {
    detail
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split_whitespace()
                .filter(|w| {
                    w.strip_prefix("/dev/").is_some_and(|rest| {
                        !rest.is_empty()
                            && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                })
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `mdadm --examine` failed because the device is no member.
pub fn no_superblock(stderr: &str) -> bool {
    stderr.contains("No md superblock detected")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DETAIL: &str = "/dev/md0:\n           Version : 1.2\n        Raid Level : raid1\n\
              Name : ironic:root  (local to host ironic)\n              UUID : 1d7b8d7e:0b1c2d3e:4f5a6b7c:8d9e0f1a\n\
            Events : 17\n\n    Number   Major   Minor   RaidDevice State\n\
       0       8        1        0      active sync   /dev/sda1\n\
       1       8       17        1      active sync   /dev/sdb1\n";

    #[test]
    fn detail_fields() {
        assert_eq!(volume_name(DETAIL).as_deref(), Some("root"));
        assert_eq!(volume_name("  Name : esp\n").as_deref(), Some("esp"));
        assert_eq!(volume_name("nothing"), None);
        assert_eq!(
            uuid(DETAIL).as_deref(),
            Some("1d7b8d7e:0b1c2d3e:4f5a6b7c:8d9e0f1a")
        );
        assert_eq!(component_devices(DETAIL), ["/dev/sda1", "/dev/sdb1"]);
        assert!(no_superblock(
            "mdadm: No md superblock detected on /dev/sda."
        ));
    }
}
