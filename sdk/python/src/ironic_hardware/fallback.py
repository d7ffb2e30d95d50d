"""The next manager's answer (``fallback``, IPA's ``super()`` /
``dispatch_to_managers``): the same inventory call on the managers after
this one in support order, the first that answers. Extend its answer
instead of rebuilding it::

    def get_system_vendor_info(self):
        vendor = fallback.get_system_vendor_info()
        return with_extra(vendor, firmware_channel="stable")

Raises `Unsupported` when no later manager answers (so, uncaught, this
manager's call is unsupported too). Needs ``fallback = true`` in the
manifest.
"""

import json

from ._bindings import call, wit


def _next(name, *args):
    return call(f"fallback {name}", getattr(wit().fallback, name), *args)


def get_cpus():
    return _next("get_cpus")


def get_memory():
    return _next("get_memory")


def list_block_devices():
    return _next("list_block_devices")


def list_network_interfaces():
    return _next("list_network_interfaces")


def get_bmc_address():
    return _next("get_bmc_address")


def get_bmc_v6address():
    return _next("get_bmc_v6address")


def get_bmc_mac():
    return _next("get_bmc_mac")


def get_system_vendor_info():
    return _next("get_system_vendor_info")


def get_boot_info():
    return _next("get_boot_info")


def get_os_install_device(node=None):
    text = None if node is None else json.dumps(node)
    return _next("get_os_install_device", text)
