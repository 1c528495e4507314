//! keyway's integration tests, in one binary (one link, tests of every file
//! sharing the threads): each module drives the real `keyway` binary
//! against real redis-servers (and nutcracker, Envoy) it starts on free
//! ports, and stops them even when a test fails.

mod common;

mod acked;
mod admin_page;
mod chaos;
mod cli;
mod data_path;
mod hardening;
mod hot_keys;
mod import;
mod layers;
mod operations;
mod placement_compat;
mod proxy;
mod reshard;
mod routing;
