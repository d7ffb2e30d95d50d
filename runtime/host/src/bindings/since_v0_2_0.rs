//! Host bindings of contract 0.2.0 (`wit/ironic-hardware-0.2.0`), the
//! latest: the capability implementations in `crate::capabilities` are
//! written against these, and dispatch speaks its types.

wasmtime::component::bindgen!({
    path: "../../wit/ironic-hardware-0.2.0",
    world: "hardware-manager",
    with: {
        "ironic:hardware/disks.disk": crate::capabilities::disks::DiskHandle,
    },
});
