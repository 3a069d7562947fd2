//! spindel-node: a node's store, full-text index, queries and local operations, and the
//! running node around them. The map, with the one direction of calls, is in ARCHITECTURE.md.
//!
//! Below the store's door:
//! - [`store`]: sled trees, atomic apply of verified entries, purge, indexes.
//! - [`payloads`]: record contents in pack files that can erase a purged payload for good.
//! - [`search`]: the tantivy full-text index (Swedish and English stemming), derived data.
//! - [`regions`]: authors with their counts, and the one rule that finds a region.
//! - [`query`], [`bank`]: filters, facets, cursors, the record JSON shape; the national
//!   overview, a region's page, SROI.
//! - [`local`]: the data directory (config, key file 0600, store) and one write each: init,
//!   publish, import, delete, allow.
//! - [`read`]: the read model: every question the pages, the API, the sync and the CLI ask.
//! - [`writer`]: the one writer of a running node (an actor with a handle), which announces
//!   every change.
//! - [`backup`]: `spindel backup` and `spindel restore`.
//!
//! Above it (they ask the read model and the writer, never the store):
//! - [`runtime`]: starts and stops a running node; [`shared`]: what its tasks hold; [`gate`]:
//!   the catch-up gate of the own log.
//! - [`session`]: the connection driver (one sync session per stream); [`dialer`]: the link to
//!   each aggregator; [`link`]: why a link ended and when to try again; [`client`]: the
//!   one-shot query client; [`transport`]: QUIC with raw-key TLS and frames.
//! - [`control`]: the local control socket; [`http`]: the JSON API; [`web`]: the knowledge
//!   bank page; [`params`]: the one query-string parser; [`metrics`]: `/metrics`;
//!   [`listener`]: the accept loop of every HTTP listener, with its caps and deadlines.

pub mod backup;
pub mod bank;
pub mod client;
pub mod control;
pub mod dialer;
pub mod editor;
pub mod forms;
pub mod fuzz;
pub mod gate;
pub mod http;
pub mod import_csv;
pub mod link;
pub mod listener;
pub mod local;
pub mod localtime;
pub mod login;
pub mod metrics;
pub mod params;
pub mod payloads;
pub mod privacy;
pub mod query;
pub mod ratelimit;
pub mod read;
pub mod regions;
pub mod runtime;
pub mod search;
pub mod server;
pub mod session;
pub mod shared;
pub mod staff;
pub mod store;
pub mod templates;
pub mod transport;
pub mod users;
pub mod web;
pub mod words;
pub mod writer;
