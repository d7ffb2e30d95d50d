//! The generic hardware manager's storage logic that needs no host: what
//! software RAID configurations mean (IPA `hardware.py`
//! `validate_configuration`, `raid_utils.py`), partition tables read and
//! written as bytes, and `mdadm` output. The component
//! (`managers/generic`) does the I/O through its capabilities; keeping this
//! part free of them lets its tests run natively in `make test`.

// Tests may unwrap: a panic is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod efiboot;
pub mod mdadm;
pub mod raid;
pub mod table;
