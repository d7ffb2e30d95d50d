//! Host bindings of the `hardware-manager` world (synchronous).

wasmtime::component::bindgen!({
    path: "../../wit/ironic-hardware-0.1.0",
    world: "hardware-manager",
    with: {
        "ironic:hardware/disks.disk": crate::capabilities::disks::DiskHandle,
    },
});
