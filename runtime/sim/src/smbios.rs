//! A minimal SMBIOS 3.x structure table, as the kernel exposes it in
//! `/sys/firmware/dmi/tables/DMI`: BIOS (type 0), system (type 1), one
//! physical memory array (type 16), one memory device (type 17) per module
//! slot, and the end-of-table marker (type 127). lshw (and so IPA's
//! `physical_mb`) sums the type-17 sizes.

use crate::description::{DmiDescription, MemoryDescription};

/// One structure: formatted area plus its string set.
struct Structure {
    kind: u8,
    handle: u16,
    /// Formatted area after the 4-byte header.
    body: Vec<u8>,
    strings: Vec<String>,
}

impl Structure {
    fn new(kind: u8, handle: u16) -> Self {
        Structure {
            kind,
            handle,
            body: Vec::new(),
            strings: Vec::new(),
        }
    }
    fn byte(&mut self, v: u8) -> &mut Self {
        self.body.push(v);
        self
    }
    fn word(&mut self, v: u16) -> &mut Self {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn dword(&mut self, v: u32) -> &mut Self {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn qword(&mut self, v: u64) -> &mut Self {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A string field: its 1-based index in the string set, 0 for none.
    fn string(&mut self, s: &str) -> &mut Self {
        if s.is_empty() {
            return self.byte(0);
        }
        self.strings.push(s.replace('\0', ""));
        let index = u8::try_from(self.strings.len()).unwrap_or(0);
        self.byte(index)
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind);
        out.push(u8::try_from(4 + self.body.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.handle.to_le_bytes());
        out.extend_from_slice(&self.body);
        if self.strings.is_empty() {
            out.extend_from_slice(&[0, 0]);
        } else {
            for s in &self.strings {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            out.push(0);
        }
    }
}

/// The table bytes.
pub(crate) fn table(dmi: &DmiDescription, memory: &MemoryDescription) -> Vec<u8> {
    let mut structures = Vec::new();

    let mut bios = Structure::new(0, 0x0000);
    bios.string(&dmi.bios_vendor)
        .string(&dmi.bios_version)
        .word(0xF000) // starting address segment
        .string(&dmi.bios_date)
        .byte(0xFF) // ROM size: see extended
        .qword(0x0000_0000_0000_0080 | 0x0800 | 0x1_0000) // characteristics: PCI, PnP-ish, boot from CD
        .byte(0x01)
        .byte(0x0C)
        .byte(1) // system BIOS major/minor
        .byte(0)
        .byte(0xFF) // EC firmware: none
        .byte(0xFF)
        .word(0x0020); // extended ROM size: 32 MiB
    structures.push(bios);

    let mut system = Structure::new(1, 0x0100);
    system
        .string(&dmi.manufacturer)
        .string(&dmi.product)
        .string("") // version
        .string(&dmi.serial)
        .qword(0x1122_3344_5566_7788) // UUID (16 bytes)
        .qword(0x99aa_bbcc_ddee_ff00)
        .byte(0x06) // wake-up type: power switch
        .string(dmi.sku.as_deref().unwrap_or(""))
        .string(""); // family
    structures.push(system);

    let total_mib: u64 = memory.modules_mib.iter().sum();
    let mut array = Structure::new(16, 0x1000);
    array
        .byte(0x03) // location: system board
        .byte(0x03) // use: system memory
        .byte(0x06) // error correction: multi-bit ECC
        .dword(0x8000_0000) // maximum capacity: see extended
        .word(0xFFFE) // no error information
        .word(u16::try_from(memory.modules_mib.len()).unwrap_or(u16::MAX))
        .qword(total_mib.saturating_mul(1024 * 1024).max(1 << 40)); // extended maximum capacity, bytes
    structures.push(array);

    for (i, &mib) in memory.modules_mib.iter().enumerate() {
        let handle = 0x1100u16.saturating_add(u16::try_from(i).unwrap_or(0xEE));
        // Size in MiB when it fits in 15 bits, else 0x7FFF and the
        // extended-size dword (SMBIOS 2.7+). 0 = empty slot.
        let (size, extended) = if mib < 0x7FFF {
            (u16::try_from(mib).unwrap_or(0), 0u32)
        } else {
            (0x7FFF, u32::try_from(mib).unwrap_or(0x7FFF_FFFF))
        };
        let installed = mib > 0;
        let serial = format!("{:08X}", 0x3A00_0000u32 + i as u32);
        let mut dev = Structure::new(17, handle);
        dev.word(0x1000) // physical memory array handle
            .word(0xFFFE) // no error information
            .word(if installed { 72 } else { 0xFFFF }) // total width
            .word(if installed { 64 } else { 0xFFFF }) // data width
            .word(size)
            .byte(0x09) // form factor: DIMM
            .byte(0)
            .string(&format!("DIMM {i}"))
            .string(&format!("BANK {i}"))
            .byte(if installed { 0x1A } else { 0x02 }) // DDR4 / unknown
            .word(if installed { 0x0080 } else { 0x0004 }) // synchronous / unknown
            .word(if installed { 3200 } else { 0 })
            .string(if installed { "Samsung" } else { "" })
            .string(if installed { &serial } else { "" })
            .string("")
            .string(if installed { "M393A2K43DB3-CWE" } else { "" })
            .byte(if installed { 2 } else { 0 }) // attributes: rank
            .dword(extended)
            .word(if installed { 3200 } else { 0 }) // configured speed
            .word(1200)
            .word(1200)
            .word(1200); // voltages, mV
        structures.push(dev);
    }

    structures.push(Structure::new(127, 0xFEFF));

    let mut out = Vec::new();
    for s in &structures {
        s.encode(&mut out);
    }
    out
}
