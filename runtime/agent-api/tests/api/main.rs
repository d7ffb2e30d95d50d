//! In-process tests of the agent API against fake hardware managers.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod commands;
mod common;
mod image;
mod lifecycle;
mod replay;
mod routes;
