//! `memory` (IPA `GenericHardwareManager.get_memory`).
//!
//! * `total`: `MemTotal` of `/proc/meminfo` × 1024 (psutil's total).
//! * `physical_mb`: the sum of the SMBIOS type-17 memory devices in
//!   `/sys/firmware/dmi/tables/DMI`, which is where lshw's `core/memory`
//!   banks come from. Without a readable table, the memory blocks of
//!   `/sys/devices/system/memory` (hot-pluggable sections the kernel manages,
//!   a slight under-count of installed RAM); null when neither exists.

use ironic_hardware_guest::prelude::*;

use super::sysfs;

const MIB: u64 = 1024 * 1024;

pub(crate) fn get_memory() -> Result<Memory, ManagerError> {
    let total = match sysfs::read_opt("/proc/meminfo") {
        Some(text) => mem_total_bytes(&text),
        None => None,
    };
    if total.is_none() {
        log::log(
            log::Level::Warn,
            "/proc/meminfo has no MemTotal: memory total is null",
        );
    }
    let physical_mb = sysfs::read_bytes_opt("/sys/firmware/dmi/tables/DMI")
        .and_then(|table| smbios_memory_bytes(&table))
        .map(|bytes| bytes / MIB)
        .or_else(memory_blocks_mib);
    Ok(Memory {
        total,
        physical_mb,
        extra: None,
    })
}

/// `MemTotal:  16318460 kB` → bytes.
pub(crate) fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line
        .trim_start_matches("MemTotal:")
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// Total bytes of the installed memory devices (SMBIOS type 17) in a raw
/// structure table; `None` when the table holds no type-17 structure.
pub(crate) fn smbios_memory_bytes(table: &[u8]) -> Option<u64> {
    let mut total = 0u64;
    let mut seen = false;
    let mut at = 0usize;
    while at + 4 <= table.len() {
        let kind = table[at];
        let len = usize::from(table[at + 1]);
        if len < 4 || at + len > table.len() {
            break; // Malformed: stop rather than read garbage.
        }
        let body = &table[at..at + len];
        if kind == 17 {
            seen = true;
            total = total.saturating_add(memory_device_bytes(body));
        }
        if kind == 127 {
            break;
        }
        // Skip the string set: it ends with two NUL bytes.
        let mut next = at + len;
        while next + 1 < table.len() && !(table[next] == 0 && table[next + 1] == 0) {
            next += 1;
        }
        at = next + 2;
    }
    seen.then_some(total)
}

/// Size of one type-17 device in bytes (0 for an empty slot or unknown size).
fn memory_device_bytes(s: &[u8]) -> u64 {
    let word = |off: usize| {
        s.get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let Some(size) = word(0x0C) else {
        return 0;
    };
    match size {
        0 | 0xFFFF => 0,
        // SMBIOS 2.7+: the real size (MiB) is in the Extended Size dword.
        0x7FFF => s
            .get(0x1C..0x20)
            .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7FFF_FFFF) * MIB)
            .unwrap_or(0),
        // Bit 15 set: the value counts KiB, else MiB.
        s if s & 0x8000 != 0 => u64::from(s & 0x7FFF) * 1024,
        s => u64::from(s) * MIB,
    }
}

fn memory_blocks_mib() -> Option<u64> {
    const DIR: &str = "/sys/devices/system/memory";
    let block =
        u64::from_str_radix(&sysfs::read_opt(&format!("{DIR}/block_size_bytes"))?, 16).ok()?;
    let blocks = sysfs::list_opt(DIR).ok()??;
    let count = blocks
        .iter()
        .filter(|n| {
            n.strip_prefix("memory")
                .is_some_and(|d| d.parse::<u64>().is_ok())
        })
        .count() as u64;
    (count > 0).then(|| count * block / MIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(size: u16, extended: u32) -> Vec<u8> {
        let mut s = vec![0u8; 0x28];
        s[0] = 17;
        s[1] = 0x28;
        s[0x0C..0x0E].copy_from_slice(&size.to_le_bytes());
        s[0x1C..0x20].copy_from_slice(&extended.to_le_bytes());
        s.extend_from_slice(&[b'D', 0, 0]);
        s
    }

    #[test]
    fn sums_type_17_devices() {
        let mut table = Vec::new();
        table.extend(device(2048, 0));
        table.extend(device(0, 0)); // empty slot
        table.extend(device(0x7FFF, 65536)); // 64 GiB via extended size
        table.extend(device(0x8000 | 512, 0)); // 512 KiB
        table.extend_from_slice(&[127, 4, 0, 0, 0, 0]);
        assert_eq!(
            smbios_memory_bytes(&table),
            Some((2048 + 65536) * MIB + 512 * 1024)
        );
        assert_eq!(smbios_memory_bytes(&[127, 4, 0, 0, 0, 0]), None);
        assert_eq!(
            mem_total_bytes("MemTotal:        1998848 kB\nMemFree: 1 kB\n"),
            Some(1998848 * 1024)
        );
    }
}
