//! Manager host.
