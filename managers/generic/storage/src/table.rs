//! Partition tables as bytes: GPT (UEFI 2.10 §5.3: protective MBR, primary
//! header and entries at LBA 1-2, backup entries and header at the end of
//! the disk, CRC32s) and msdos (four primary entries in the MBR). What
//! `parted mklabel` / `mkpart` / `rm` and `sgdisk -F` do to a disk, done
//! through a [`BlockIo`], so the same code writes a real disk (through the
//! manager's `disks` capability) and a test's byte vector.

/// Sector-granular access to a whole disk.
pub trait BlockIo {
    /// Logical sector size in bytes.
    fn sector_size(&self) -> u64;
    /// Disk size in bytes.
    fn size(&self) -> u64;
    /// Reads `len` bytes at `offset` (both multiples of the sector size).
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String>;
    /// Writes `data` at `offset` (both multiples of the sector size).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String>;
}

/// The table type (`parted mklabel gpt|msdos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gpt,
    Msdos,
}

impl TableKind {
    pub fn parse(label: &str) -> Option<TableKind> {
        match label {
            "gpt" => Some(TableKind::Gpt),
            "msdos" | "dos" => Some(TableKind::Msdos),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Gpt => "gpt",
            TableKind::Msdos => "msdos",
        }
    }
}

/// What a partition holds, as far as the table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartType {
    /// `parted mkpart primary` without a file-system type.
    LinuxData,
    /// `sgdisk -t ef00`.
    Esp,
    /// `sgdisk -t ef02`.
    BiosBoot,
}

impl PartType {
    fn gpt_guid(self) -> &'static str {
        match self {
            PartType::LinuxData => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
            PartType::Esp => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            PartType::BiosBoot => "21686148-6449-6E6F-744E-656564454649",
        }
    }
    fn mbr_type(self) -> u8 {
        match self {
            PartType::LinuxData => 0x83,
            PartType::Esp => 0xef,
            PartType::BiosBoot => 0xef,
        }
    }
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based number.
    pub number: u32,
    /// First and last sector (inclusive).
    pub first: u64,
    pub last: u64,
    /// GPT type GUID (text, upper case) or msdos type byte as `0xNN`.
    pub type_id: String,
    /// GPT partition GUID (lower case) or `<signature>-<nn>`.
    pub part_uuid: String,
    /// GPT partition name.
    pub name: String,
    /// msdos boot flag.
    pub boot: bool,
    /// GPT: the raw entry (attributes and all), kept on rewrite.
    raw: Option<Vec<u8>>,
}

/// A partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    pub sector: u64,
    /// Disk size in sectors.
    pub disk_sectors: u64,
    /// GPT disk GUID bytes, or the msdos signature in the first four.
    id: [u8; 16],
    pub entries: Vec<Entry>,
}

const GPT_ENTRIES: u64 = 128;
const GPT_ENTRY_SIZE: u64 = 128;
const GPT_HEADER_SIZE: usize = 92;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// GUID bytes (mixed endian on disk) → text.
pub fn guid_text(b: &[u8]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        le32(b, 0),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Text GUID → on-disk bytes.
fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    let mut b = raw;
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// Random bytes → a version 4 GUID's on-disk bytes.
fn random_guid(mut random: [u8; 16]) -> [u8; 16] {
    random[7] = (random[7] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    random
}

impl Table {
    /// An empty table (`parted mklabel`); `random` seeds the disk GUID or
    /// signature.
    pub fn new(kind: TableKind, sector: u64, disk_sectors: u64, random: [u8; 16]) -> Table {
        Table {
            kind,
            sector,
            disk_sectors,
            id: random_guid(random),
            entries: Vec::new(),
        }
    }

    /// Sectors the GPT entry array takes.
    fn entry_sectors(&self) -> u64 {
        (GPT_ENTRIES * GPT_ENTRY_SIZE).div_ceil(self.sector)
    }

    /// First sector a partition may use.
    pub fn first_usable(&self) -> u64 {
        match self.kind {
            TableKind::Gpt => 2 + self.entry_sectors(),
            TableKind::Msdos => 1,
        }
    }

    /// Last sector a partition may use.
    pub fn last_usable(&self) -> u64 {
        match self.kind {
            TableKind::Gpt => self.disk_sectors - 2 - self.entry_sectors(),
            TableKind::Msdos => self.disk_sectors - 1,
        }
    }

    /// `sgdisk -F`: the first free sector, aligned to 1 MiB (sgdisk's
    /// default alignment); `None` when the disk is full.
    pub fn first_free(&self) -> Option<u64> {
        let align = ((1u64 << 20) / self.sector).max(1);
        let mut candidate = self.first_usable().div_ceil(align) * align;
        let mut sorted: Vec<&Entry> = self.entries.iter().collect();
        sorted.sort_by_key(|e| e.first);
        for e in sorted {
            if candidate < e.first {
                break;
            }
            if candidate <= e.last {
                candidate = (e.last + 1).div_ceil(align) * align;
            }
        }
        (candidate <= self.last_usable()).then_some(candidate)
    }

    /// The disk's signature as lsblk shows PARTUUIDs on msdos tables.
    fn signature(&self) -> u32 {
        le32(&self.id, 0)
    }

    /// Adds a partition over sectors `first..=last` with the lowest free
    /// number (`parted mkpart`, `sgdisk -n 0:…`); returns its number.
    pub fn add(
        &mut self,
        first: u64,
        last: u64,
        kind: PartType,
        name: &str,
        random: [u8; 16],
    ) -> Result<u32, String> {
        if first < self.first_usable() || last > self.last_usable() || last < first {
            return Err(format!(
                "sectors {first}-{last} are outside the usable {}-{}",
                self.first_usable(),
                self.last_usable()
            ));
        }
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| first <= e.last && e.first <= last)
        {
            return Err(format!(
                "sectors {first}-{last} overlap partition {} ({}-{})",
                e.number, e.first, e.last
            ));
        }
        let max = match self.kind {
            TableKind::Gpt => GPT_ENTRIES as u32,
            TableKind::Msdos => 4,
        };
        let number = (1..=max)
            .find(|n| self.entries.iter().all(|e| e.number != *n))
            .ok_or_else(|| format!("no free entry in the {} table", self.kind.as_str()))?;
        if self.kind == TableKind::Msdos && u32::try_from(last + 1).is_err() {
            return Err("an msdos table cannot address past 2 TiB".into());
        }
        let part_uuid = match self.kind {
            TableKind::Gpt => guid_text(&random_guid(random)).to_ascii_lowercase(),
            TableKind::Msdos => format!("{:08x}-{number:02x}", self.signature()),
        };
        self.entries.push(Entry {
            number,
            first,
            last,
            type_id: match self.kind {
                TableKind::Gpt => kind.gpt_guid().to_string(),
                TableKind::Msdos => format!("0x{:02x}", kind.mbr_type()),
            },
            part_uuid,
            name: name.to_string(),
            boot: false,
            raw: None,
        });
        self.entries.sort_by_key(|e| e.number);
        Ok(number)
    }

    /// Removes partition `number` (`parted rm`).
    pub fn remove(&mut self, number: u32) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.number != number);
        before != self.entries.len()
    }

    /// Reads the disk's table: GPT when the primary header is valid, else
    /// msdos when the MBR has the signature and is not protective; `None`
    /// when there is no table.
    pub fn read(io: &dyn BlockIo) -> Result<Option<Table>, String> {
        let sector = io.sector_size();
        let disk_sectors = io.size() / sector;
        let lba0 = io.read(0, sector as usize)?;
        let lba1 = io.read(sector, sector as usize)?;
        if lba1.get(..8) == Some(b"EFI PART") {
            let entries_lba = le64(&lba1, 72);
            let count = u64::from(le32(&lba1, 80)).min(GPT_ENTRIES * 8);
            let size = u64::from(le32(&lba1, 84));
            if !(128..=4096).contains(&size) {
                return Err(format!("GPT entry size {size} is not supported"));
            }
            let bytes = (count * size).div_ceil(sector) * sector;
            let raw = io.read(entries_lba * sector, bytes as usize)?;
            let mut id = [0u8; 16];
            id.copy_from_slice(&lba1[56..72]);
            let mut entries = Vec::new();
            for n in 0..count {
                let e = &raw[(n * size) as usize..((n + 1) * size) as usize];
                if e[..16].iter().all(|b| *b == 0) {
                    continue;
                }
                let name: Vec<u16> = e[56..128]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|c| *c != 0)
                    .collect();
                entries.push(Entry {
                    number: n as u32 + 1,
                    first: le64(e, 32),
                    last: le64(e, 40),
                    type_id: guid_text(&e[..16]),
                    part_uuid: guid_text(&e[16..32]).to_ascii_lowercase(),
                    name: String::from_utf16_lossy(&name),
                    boot: false,
                    raw: Some(e[..GPT_ENTRY_SIZE as usize].to_vec()),
                });
            }
            return Ok(Some(Table {
                kind: TableKind::Gpt,
                sector,
                disk_sectors,
                id,
                entries,
            }));
        }
        if lba0.get(510..512) != Some(&[0x55, 0xAA])
            || (0..4).any(|i| lba0[446 + i * 16 + 4] == 0xEE)
        {
            return Ok(None);
        }
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&lba0[440..444]);
        let sig = le32(&lba0, 440);
        let mut entries = Vec::new();
        for i in 0..4 {
            let e = &lba0[446 + i * 16..462 + i * 16];
            let (start, len) = (u64::from(le32(e, 8)), u64::from(le32(e, 12)));
            if e[4] == 0 || len == 0 {
                continue;
            }
            entries.push(Entry {
                number: i as u32 + 1,
                first: start,
                last: start + len - 1,
                type_id: format!("0x{:02x}", e[4]),
                part_uuid: format!("{sig:08x}-{:02x}", i + 1),
                name: String::new(),
                boot: e[0] == 0x80,
                raw: None,
            });
        }
        Ok(Some(Table {
            kind: TableKind::Msdos,
            sector,
            disk_sectors,
            id,
            entries,
        }))
    }

    /// Writes the table. msdos keeps the boot code (first 440 bytes) of the
    /// MBR already on the disk; GPT writes the protective MBR, both headers
    /// and both entry arrays.
    pub fn write(&self, io: &mut dyn BlockIo) -> Result<(), String> {
        let s = self.sector as usize;
        match self.kind {
            TableKind::Msdos => {
                let mut mbr = io.read(0, s)?;
                mbr[440..444].copy_from_slice(&self.id[..4]);
                mbr[444] = 0;
                mbr[445] = 0;
                mbr[446..510].fill(0);
                for e in &self.entries {
                    let at = 446 + (e.number as usize - 1) * 16;
                    let kind =
                        u8::from_str_radix(e.type_id.trim_start_matches("0x"), 16).unwrap_or(0x83);
                    let start = u32::try_from(e.first).map_err(|_| "msdos start past 2 TiB")?;
                    let len =
                        u32::try_from(e.last - e.first + 1).map_err(|_| "msdos size past 2 TiB")?;
                    mbr[at] = if e.boot { 0x80 } else { 0 };
                    mbr[at + 1..at + 4].copy_from_slice(&[0xfe, 0xff, 0xff]);
                    mbr[at + 4] = kind;
                    mbr[at + 5..at + 8].copy_from_slice(&[0xfe, 0xff, 0xff]);
                    mbr[at + 8..at + 12].copy_from_slice(&start.to_le_bytes());
                    mbr[at + 12..at + 16].copy_from_slice(&len.to_le_bytes());
                }
                mbr[510] = 0x55;
                mbr[511] = 0xAA;
                io.write(0, &mbr)
            }
            TableKind::Gpt => {
                let last = self.disk_sectors - 1;
                let mut pmbr = vec![0u8; s];
                pmbr[446 + 1..446 + 4].copy_from_slice(&[0x00, 0x02, 0x00]);
                pmbr[446 + 4] = 0xEE;
                pmbr[446 + 5..446 + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
                pmbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
                let len = u32::try_from(last).unwrap_or(u32::MAX);
                pmbr[446 + 12..446 + 16].copy_from_slice(&len.to_le_bytes());
                pmbr[510] = 0x55;
                pmbr[511] = 0xAA;
                let entry_bytes = (self.entry_sectors() * self.sector) as usize;
                let mut entries = vec![0u8; entry_bytes];
                for e in &self.entries {
                    let at = (u64::from(e.number - 1) * GPT_ENTRY_SIZE) as usize;
                    let slot = &mut entries[at..at + GPT_ENTRY_SIZE as usize];
                    if let Some(raw) = &e.raw {
                        slot.copy_from_slice(raw);
                    } else {
                        slot[..16].copy_from_slice(&guid_bytes(&e.type_id));
                        slot[16..32].copy_from_slice(&guid_bytes(&e.part_uuid));
                        for (i, u) in e.name.encode_utf16().take(36).enumerate() {
                            slot[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
                        }
                    }
                    slot[32..40].copy_from_slice(&e.first.to_le_bytes());
                    slot[40..48].copy_from_slice(&e.last.to_le_bytes());
                }
                let entries_crc =
                    crc32fast::hash(&entries[..(GPT_ENTRIES * GPT_ENTRY_SIZE) as usize]);
                let backup_entries = last - self.entry_sectors();
                let header = |current: u64, backup: u64, entries_lba: u64| {
                    let mut h = vec![0u8; s];
                    h[..8].copy_from_slice(b"EFI PART");
                    h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
                    h[12..16].copy_from_slice(&(GPT_HEADER_SIZE as u32).to_le_bytes());
                    h[24..32].copy_from_slice(&current.to_le_bytes());
                    h[32..40].copy_from_slice(&backup.to_le_bytes());
                    h[40..48].copy_from_slice(&self.first_usable().to_le_bytes());
                    h[48..56].copy_from_slice(&self.last_usable().to_le_bytes());
                    h[56..72].copy_from_slice(&self.id);
                    h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
                    h[80..84].copy_from_slice(&(GPT_ENTRIES as u32).to_le_bytes());
                    h[84..88].copy_from_slice(&(GPT_ENTRY_SIZE as u32).to_le_bytes());
                    h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
                    let crc = crc32fast::hash(&h[..GPT_HEADER_SIZE]);
                    h[16..20].copy_from_slice(&crc.to_le_bytes());
                    h
                };
                io.write(0, &pmbr)?;
                io.write(self.sector, &header(1, last, 2))?;
                io.write(2 * self.sector, &entries)?;
                io.write(backup_entries * self.sector, &entries)?;
                io.write(last * self.sector, &header(last, 1, backup_entries))
            }
        }
    }

    /// The partition with `number`.
    pub fn get(&self, number: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.number == number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub struct MemDisk {
        pub bytes: Vec<u8>,
        pub sector: u64,
    }

    impl BlockIo for MemDisk {
        fn sector_size(&self) -> u64 {
            self.sector
        }
        fn size(&self) -> u64 {
            self.bytes.len() as u64
        }
        fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
            assert_eq!(offset % self.sector, 0);
            assert_eq!(len as u64 % self.sector, 0);
            Ok(self.bytes[offset as usize..offset as usize + len].to_vec())
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
            assert_eq!(offset % self.sector, 0);
            self.bytes[offset as usize..offset as usize + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

    fn seed(n: u8) -> [u8; 16] {
        [n; 16]
    }

    #[test]
    fn gpt_round_trip_with_sgdisk_first_free() {
        for sector in [512u64, 4096] {
            let mut disk = MemDisk {
                bytes: vec![0; 64 << 20],
                sector,
            };
            let sectors = disk.size() / sector;
            let mut t = Table::new(TableKind::Gpt, sector, sectors, seed(1));
            let mib = (1 << 20) / sector;
            assert_eq!(t.first_free(), Some(mib));
            let n = t
                .add(
                    8 * mib,
                    40 * mib - 1,
                    PartType::LinuxData,
                    "primary",
                    seed(2),
                )
                .unwrap();
            assert_eq!(n, 1);
            // sgdisk -F now points at the gap before it.
            assert_eq!(t.first_free(), Some(mib));
            let esp = t
                .add(mib, 5 * mib - 1, PartType::Esp, "uefi-holder-0", seed(3))
                .unwrap();
            assert_eq!(esp, 2);
            assert_eq!(t.first_free(), Some(5 * mib));
            assert!(t
                .add(30 * mib, 50 * mib, PartType::LinuxData, "x", seed(4))
                .is_err());
            t.write(&mut disk).unwrap();
            let back = Table::read(&disk).unwrap().unwrap();
            assert_eq!(back.kind, TableKind::Gpt);
            assert_eq!(back.entries.len(), 2);
            assert_eq!(
                back.get(2).unwrap().type_id,
                "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
            );
            assert_eq!(back.get(2).unwrap().name, "uefi-holder-0");
            assert_eq!(back.get(1).unwrap().part_uuid, t.get(1).unwrap().part_uuid);
            // Backup header at the last sector.
            let last = disk.bytes.len() - sector as usize;
            assert_eq!(&disk.bytes[last..last + 8], b"EFI PART");
            // Removing and rewriting keeps the other entry byte for byte.
            let mut again = back.clone();
            assert!(again.remove(2));
            again.write(&mut disk).unwrap();
            let after = Table::read(&disk).unwrap().unwrap();
            assert_eq!(after.entries, vec![back.get(1).unwrap().clone()]);
        }
    }

    #[test]
    fn msdos_keeps_boot_code_and_names_partuuids() {
        let mut disk = MemDisk {
            bytes: vec![0; 16 << 20],
            sector: 512,
        };
        disk.bytes[..440].fill(0xAB);
        let mut t = Table::new(TableKind::Msdos, 512, 32768, seed(7));
        assert_eq!(t.first_free(), Some(2048));
        t.add(2048, 20479, PartType::LinuxData, "", seed(0))
            .unwrap();
        t.write(&mut disk).unwrap();
        assert_eq!(disk.bytes[439], 0xAB, "boot code kept");
        let back = Table::read(&disk).unwrap().unwrap();
        assert_eq!(back.kind, TableKind::Msdos);
        let e = back.get(1).unwrap();
        assert_eq!((e.first, e.last, e.type_id.as_str()), (2048, 20479, "0x83"));
        assert_eq!(e.part_uuid, format!("{:08x}-01", back.signature()));
        assert_eq!(back.first_free(), Some(20480));
        let empty = MemDisk {
            bytes: vec![0; 1 << 20],
            sector: 512,
        };
        assert!(Table::read(&empty).unwrap().is_none());
    }

    #[test]
    fn guids_round_trip() {
        let text = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
        assert_eq!(guid_text(&guid_bytes(text)), text);
        let g = random_guid([0xff; 16]);
        assert_eq!(guid_text(&g).as_bytes()[14], b'4');
    }
}
