//! `cpu` (IPA `GenericHardwareManager.get_cpus`): the values lscpu prints, read
//! from the files lscpu reads (`/proc/cpuinfo`, `/sys/devices/system/cpu`).

use std::collections::BTreeSet;

use ironic_hardware_guest::prelude::*;

use super::sysfs;

const CPU_DIR: &str = "/sys/devices/system/cpu";

pub(crate) fn get_cpus() -> Result<Cpu, ManagerError> {
    let cpuinfo = sysfs::read_required("/proc/cpuinfo")?;
    let blocks = parse_cpuinfo(&cpuinfo);
    let first = blocks.first();
    let field = |key: &str| -> Option<String> {
        first.and_then(|b| b.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    };

    let cpu_dirs = cpu_dirs()?;

    // lscpu "CPU max MHz": the highest cpufreq maximum (kHz) over all CPUs,
    // printed with 4 decimals; without cpufreq (most VMs) "CPU MHz" from
    // /proc/cpuinfo.
    let max_khz = cpu_dirs
        .iter()
        .filter_map(|n| sysfs::read_opt(&format!("{CPU_DIR}/cpu{n}/cpufreq/cpuinfo_max_freq")))
        .filter_map(|v| v.parse::<u64>().ok())
        .max();
    let frequency = match max_khz {
        Some(khz) => format_mhz(khz as f64 / 1000.0),
        None => field("cpu MHz")
            .and_then(|v| v.parse::<f64>().ok())
            .map(format_mhz)
            .unwrap_or_default(),
    };

    // lscpu "CPU(s)": the present CPUs.
    let count = sysfs::read_opt(&format!("{CPU_DIR}/present"))
        .and_then(|list| count_cpu_list(&list))
        .unwrap_or_else(|| u32::try_from(blocks.len()).unwrap_or(u32::MAX));

    // lscpu "Socket(s)": distinct physical package ids.
    let mut packages: BTreeSet<String> = cpu_dirs
        .iter()
        .filter_map(|n| sysfs::read_opt(&format!("{CPU_DIR}/cpu{n}/topology/physical_package_id")))
        .filter(|id| id != "-1")
        .collect();
    if packages.is_empty() {
        packages = blocks
            .iter()
            .filter_map(|b| {
                b.iter()
                    .find(|(k, _)| k == "physical id")
                    .map(|(_, v)| v.clone())
            })
            .collect();
    }

    // x86 lists `flags`, arm64 `Features`.
    let flags = field("flags")
        .or_else(|| field("Features"))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();

    Ok(Cpu {
        model_name: field("model name").unwrap_or_default(),
        frequency,
        count,
        architecture: architecture(first.map(Vec::as_slice).unwrap_or(&[])),
        flags,
        socket_count: u32::try_from(packages.len()).unwrap_or(u32::MAX),
        extra: None,
    })
}

/// Numbers N of the `cpuN` directories.
fn cpu_dirs() -> Result<Vec<u32>, ManagerError> {
    let mut numbers: Vec<u32> = sysfs::list_opt(CPU_DIR)?
        .unwrap_or_default()
        .iter()
        .filter_map(|name| name.strip_prefix("cpu")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// `uname -m` (lscpu's Architecture): the `kernel.arch` sysctl, else derived
/// from the CPU description.
fn architecture(first_block: &[(String, String)]) -> String {
    if let Some(arch) = sysfs::read_opt("/proc/sys/kernel/arch") {
        return arch;
    }
    let get = |key: &str| {
        first_block
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if let Some(flags) = get("flags") {
        return if flags.split_whitespace().any(|f| f == "lm") {
            "x86_64"
        } else {
            "i686"
        }
        .to_string();
    }
    if get("CPU architecture") == Some("8") {
        return "aarch64".to_string();
    }
    if let Some(isa) = get("isa") {
        if isa.starts_with("rv64") {
            return "riscv64".to_string();
        }
    }
    String::new()
}

/// `/proc/cpuinfo` as blocks (one per logical CPU) of `(key, value)`, split
/// at the first `:`, both trimmed.
pub(crate) fn parse_cpuinfo(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut current = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// Number of CPUs in a kernel CPU list (`0-3,8-11`, `0`).
pub(crate) fn count_cpu_list(list: &str) -> Option<u32> {
    let mut count = 0u32;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        count += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

/// lscpu prints MHz with four decimals.
pub(crate) fn format_mhz(mhz: f64) -> String {
    format!("{mhz:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_frequency() {
        assert_eq!(count_cpu_list("0-3\n"), Some(4));
        assert_eq!(count_cpu_list("0-3,8-11"), Some(8));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(format_mhz(4_800_000.0 / 1000.0), "4800.0000");
        let blocks = parse_cpuinfo("processor\t: 0\nmodel name\t: X: Y\n\nprocessor\t: 1\n");
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0][1], ("model name".to_string(), "X: Y".to_string()));
    }
}
