//! `efibootmgr -v` as IPA reads it (`efi_utils.get_boot_records`): the
//! output is decoded as UTF-16 when it is (some versions print that), else
//! UTF-8; each `Boot####` line gives a record.

/// One `efibootmgr -v` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRecord {
    pub number: String,
    pub label: String,
    pub device_path: String,
}

/// The output as text: UTF-16 when it starts so (IPA tries UTF-16 first and
/// checks for `BootCurrent: `), else UTF-8 (lossy either way).
pub fn decode(output: &[u8]) -> String {
    if output.len() >= 2 && output.len().is_multiple_of(2) {
        let units: Vec<u16> = output
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let text = String::from_utf16_lossy(&units);
        let text = text.trim_start_matches('\u{feff}');
        if text.lines().any(|l| l.starts_with("BootCurrent: ")) {
            return text.to_string();
        }
    }
    String::from_utf8_lossy(output).into_owned()
}

/// Parses `efibootmgr -v` the way IPA's `_ENTRY_LABEL` regex does:
/// `Boot<hex>`, optional `*`, the label, then a device path starting with
/// one of the known node types.
pub fn parse_boot_records(text: &str) -> Vec<BootRecord> {
    const KINDS: &[&str] = &[
        "BBS(",
        "HD(",
        "FvFile(",
        "FvVol(",
        "PciRoot(",
        "VenMsg(",
        "VenHw(",
        "UsbClass(",
    ];
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Boot")?;
            let hex_len = rest.find(|c: char| !c.is_ascii_hexdigit())?;
            if hex_len == 0 {
                return None;
            }
            let number = rest[..hex_len].to_string();
            let rest = rest[hex_len..]
                .strip_prefix('*')
                .unwrap_or(&rest[hex_len..]);
            if !rest.starts_with(char::is_whitespace) {
                return None;
            }
            // The first device-path node preceded by whitespace.
            let at = rest
                .char_indices()
                .filter(|(i, _)| *i > 0 && rest[..*i].ends_with(char::is_whitespace))
                .find(|(i, _)| KINDS.iter().any(|k| rest[*i..].starts_with(k)))?
                .0;
            Some(BootRecord {
                number,
                label: rest[..at].trim().to_string(),
                device_path: rest[at..].trim_end().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_encodings() {
        let text = "BootCurrent: 0001\nBoot0000* ironic1\tHD(1,GPT,abc,0x800,0x100000)/File(\\EFI\\BOOT\\BOOTX64.EFI)\n\
            Boot0002  disabled entry VenHw(99e275e7-75a0-4b37-a2e6-c5385e6c00cb)\n";
        let r = parse_boot_records(text);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].number.as_str(), r[0].label.as_str()),
            ("0000", "ironic1")
        );
        assert!(r[0].device_path.starts_with("HD("));
        let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert_eq!(decode(&utf16), text);
        assert_eq!(decode(text.as_bytes()), text);
    }
}
