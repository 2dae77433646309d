//! faultline's targets: what the runner sends operations to.
//!
//! This crate holds the bundled reference systems as node state machines with no I/O
//! ([`systems`]), the process runtime that runs one node as an HTTP server with peer links,
//! a fault layer and durable storage ([`runtime`]), and the local cluster that starts, watches
//! and stops a set of node processes ([`cluster`]). A reference system never imports the
//! runtime; the runtime drives any system through the [`systems::Node`] trait.
//!
//! # Brief overview
//!
//! - [`systems::quorum::QuorumNode`]: a Dynamo-style store (N/R/W, consistent hashing, LWW or
//!   vector clocks, read repair, sloppy quorums, ABD mode).
//! - [`runtime::run_node`]: serves one node (`faultline node`).
//! - [`cluster::Cluster`]: starts a cluster of node processes and stops every one of them on
//!   drop, Ctrl-C or panic.
//! - [`etcd`]: real etcd, as a URL target (`etcd://`) or a local cluster (`local:etcd`).
//! - [`postgres`]: real PostgreSQL, a server faultline starts (`local:postgres`) or a URL.
//! - [`mariadb`]: real MariaDB, a server faultline starts (`local:mariadb`) or a URL.
//! - [`proxy::Proxy`]: a TCP proxy with delay, loss, bandwidth, reset and blackhole toxics.
//! - [`sim::SimCluster`]: a bundled system in the simulator, on virtual time (`--runtime sim`).
//! - [`target::Target`]: what `--target` names, parsed and checked, and what it can do.

pub mod client;
pub mod cluster;
pub mod etcd;
pub mod exec;
mod leftovers;
pub mod maelstrom;
pub mod mariadb;
mod piped;
pub mod postgres;
pub mod proxy;
pub mod runtime;
mod server;
pub mod sim;
pub mod ssh;
pub mod target;

/// The bundled reference systems (the `faultline-systems` crate), re-exported.
pub use faultline_systems as systems;
