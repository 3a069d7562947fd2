//! spindel-node: a node's store, full-text index, queries and local operations.
//!
//! - [`store`]: sled trees, atomic apply of verified entries, purge, indexes.
//! - [`payloads`]: record contents in pack files that can erase a purged payload for good.
//! - [`search`]: the tantivy full-text index (Swedish and English stemming), derived data.
//! - [`query`]: filters, newest-first ordering, cursors; the JSON shape of a record.
//! - [`local`]: the data directory (config, key file 0600, store) and init / publish /
//!   import / delete / status.
//! - [`runtime`], [`transport`], [`control`]: the running node, QUIC, the local control socket.
//! - [`metrics`]: `/metrics` in Prometheus text format and the counters behind it.
//! - [`http`]: the JSON API; [`web`]: the knowledge bank page; [`bank`]: what the page computes
//!   beyond a query (facets live in [`query`]): the national overview, a region's page, SROI.
//! - [`backup`]: `spindel backup` and `spindel restore` (a node's logs in one verified file).
//! - [`demo`]: `spindel demo`.

pub mod backup;
pub mod bank;
pub mod client;
pub mod control;
mod dialer;
pub mod fuzz;
pub mod http;
pub mod link;
pub mod local;
pub mod metrics;
pub mod params;
pub mod payloads;
pub mod query;
pub mod read;
pub mod runtime;
pub mod search;
pub mod store;
pub mod transport;
pub mod web;
