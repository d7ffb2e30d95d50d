"""Inventory records, built with keyword arguments and defaults for every
optional field, and ``extra``: keys added to a record in the inventory
Ironic stores (as IPA's hardware manager plugins add keys)."""

import json

from ._bindings import wit


def _extra(value):
    if value is None:
        return None
    if isinstance(value, str):
        json.loads(value)  # must already be JSON text
        return value
    if not isinstance(value, dict):
        raise TypeError(f"extra must be a dict (a JSON object), got {type(value).__name__}")
    return json.dumps(value)


def cpu(model_name, *, frequency="", count=0, architecture="", flags=(), socket_count=0,
        extra=None):
    """``frequency`` in MHz as lscpu prints it; ``count`` logical CPUs."""
    return wit().types.Cpu(
        model_name=model_name, frequency=frequency, count=count,
        architecture=architecture, flags=list(flags), socket_count=socket_count,
        extra=_extra(extra),
    )


def memory(*, total=None, physical_mb=None, extra=None):
    """``total`` bytes of kernel-visible RAM; ``physical_mb`` MiB installed."""
    return wit().types.Memory(total=total, physical_mb=physical_mb, extra=_extra(extra))


def block_device(name, size, *, model=None, rotational=False, wwn=None, serial=None,
                 vendor=None, wwn_with_extension=None, wwn_vendor_extension=None,
                 hctl=None, by_path=None, logical_sectors=512, physical_sectors=512,
                 tran=None, extra=None):
    """``name`` a device path (``/dev/sda``), ``size`` in bytes."""
    return wit().types.BlockDevice(
        name=name, model=model, size=size, rotational=rotational, wwn=wwn,
        serial=serial, vendor=vendor, wwn_with_extension=wwn_with_extension,
        wwn_vendor_extension=wwn_vendor_extension, hctl=hctl, by_path=by_path,
        logical_sectors=logical_sectors, physical_sectors=physical_sectors,
        tran=tran, extra=_extra(extra),
    )


def network_interface(name, mac_address, *, ipv4_address=None, ipv6_address=None,
                      has_carrier=False, lldp=None, vendor=None, product=None,
                      client_id=None, biosdevname=None, speed_mbps=None,
                      pci_address=None, driver=None, extra=None):
    """``lldp``: ``[(tlv_type, hex_value)]`` or ``None``."""
    t = wit().types
    tlvs = None if lldp is None else [t.LldpTlv(tlv_type=k, value=v) for k, v in lldp]
    return t.NetworkInterface(
        name=name, mac_address=mac_address, ipv4_address=ipv4_address,
        ipv6_address=ipv6_address, has_carrier=has_carrier, lldp=tlvs, vendor=vendor,
        product=product, client_id=client_id, biosdevname=biosdevname,
        speed_mbps=speed_mbps, pci_address=pci_address, driver=driver,
        extra=_extra(extra),
    )


def system_firmware(*, vendor="", version="", build_date=""):
    return wit().types.SystemFirmware(vendor=vendor, version=version, build_date=build_date)


def system_vendor(*, product_name="", serial_number="", manufacturer="", firmware=None,
                  extra=None):
    return wit().types.SystemVendor(
        product_name=product_name, serial_number=serial_number,
        manufacturer=manufacturer, firmware=firmware or system_firmware(),
        extra=_extra(extra),
    )


def boot_info(current_boot_mode, *, pxe_interface=None, extra=None):
    """``current_boot_mode``: ``uefi`` or ``bios``."""
    return wit().types.BootInfo(
        current_boot_mode=current_boot_mode, pxe_interface=pxe_interface,
        extra=_extra(extra),
    )


def with_extra(record, **keys):
    """``record`` with ``keys`` added to its ``extra`` (keys it already has
    in ``extra`` are replaced; the record's own fields are never replaced
    in the inventory)."""
    current = json.loads(record.extra) if record.extra else {}
    current.update(keys)
    record.extra = json.dumps(current)
    return record
