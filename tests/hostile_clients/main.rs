//! Hostile clients (issue 13) on both backends, over loopback with raw sockets where a well-behaved
//! client library would not send what a hostile one does: slow and idle connections, ambiguous
//! identity, dev-token abuse. Every wait is bounded, so a regression fails instead of hanging.

#[path = "../support/mod.rs"]
mod support;

mod dev_tokens;
mod fd_limit;
mod identity;
mod malformed;
mod memory;
mod raw;
mod slow_clients;
