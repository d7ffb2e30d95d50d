//! Host bindings of contract 0.3.0 (`wit/ironic-hardware-0.3.0`), the
//! latest: the capability implementations in `crate::capabilities` are
//! written against these, and dispatch speaks its types.
//!
//! Every import is async (a host call that waits, on a program, a disk or a
//! sleep, yields instead of blocking a thread, so the call's deadline can
//! end it) and trappable (a host call that runs past the deadline ends the
//! whole call, as a timeout).

wasmtime::component::bindgen!({
    path: "../../wit/ironic-hardware-0.3.0",
    world: "hardware-manager",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "ironic:hardware/disks.disk": crate::capabilities::disks::DiskHandle,
    },
});
