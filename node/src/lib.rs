//! spindel-node: a node's store, full-text index, queries and local operations, and the
//! running node around them. The map, with the one direction of calls, is in ARCHITECTURE.md.
//!
//! Below the store's door:
//! - [`store`]: sled trees, atomic apply of verified entries, purge, indexes.
//! - `payloads`: record contents in pack files that can erase a purged payload for good.
//! - `search`: the tantivy full-text index (Swedish and English stemming), derived data.
//! - `regions`: authors with their counts, and the one rule that finds a region.
//! - [`query`], `bank`: filters, facets, cursors, the record JSON shape; the national
//!   overview, a region's page, SROI; `proxybank`: the SROI proxy bank by outcome;
//!   `answers`: the answers to a record, a region's answers, who learns from whom.
//! - [`local`]: the data directory (config, key file 0600, store) and one write each: init,
//!   publish, import, delete, allow.
//! - `read`: the read model: every question the pages, the API, the sync and the CLI ask.
//! - `writer`: the one writer of a running node (an actor with a handle), which announces
//!   every change.
//! - [`backup`]: `spindel backup` and `spindel restore`.
//!
//! Above it (they ask the read model and the writer, never the store):
//! - [`server`]: the one place a running node is assembled and stopped, and `sync_once`;
//!   `runtime`: the writer, QUIC listener and dialers; `shared`: what its tasks hold; `gate`:
//!   the catch-up gate of the own log; `checkpoints`: an aggregator signs, a region audits.
//! - `session`: the connection driver (one sync session per stream); `dialer`: the link to
//!   each aggregator; `link`: why a link ended and when to try again; `client`: the one-shot
//!   query client; [`transport`]: QUIC with raw-key TLS and frames.
//! - [`control`]: the local control socket; `http`: the JSON API; `web`: the knowledge bank
//!   page; `editor`: Redaktionen; `templates` and `words`: the templates and the Swedish said
//!   from Rust; `params`: the one query-string parser; `metrics`: `/metrics`; `listener`:
//!   the accept loop of every HTTP listener, with its caps and deadlines.
//!
//! The surface is deliberate: eight public modules (the data directory, the store, queries,
//! backups, accounts, the control socket, the transport and the assembled node), and below
//! them the few items of private modules that the command, the tests and the benches use.

mod accept;
mod agenda;
mod answers;
mod audit_page;
pub mod backup;
mod bank;
mod calendar;
mod checkpoints;
mod client;
pub mod control;
mod dialer;
mod editor;
mod events;
mod export;
mod feeds;
mod forms;
mod fuzz;
mod gate;
mod http;
mod import_csv;
mod link;
mod listener;
pub mod local;
mod localtime;
mod login;
mod metrics;
mod network_page;
mod params;
mod payloads;
mod pipeline;
mod privacy;
mod proxybank;
mod proxybank_page;
pub mod query;
mod ratelimit;
mod read;
mod received;
mod regions;
mod runtime;
mod search;
pub mod server;
mod session;
mod shared;
mod staff;
pub mod store;
mod templates;
pub mod transport;
pub mod users;
mod web;
mod words;
mod writer;

// The rest of the crate's surface: what the command, the tests and the benches use of the
// private modules above.
pub use agenda::{AGENDA_PAGE_SIZE, FEED_EVENTS_MAX, FEED_PAST_DAYS};
pub use bank::SROI_FIGURES_SHOWN;
pub use client::{RemoteQueryError, audit_peer_as, remote_query, remote_query_as};
pub use export::{
    CSV_COLUMNS, EXPORT_CHUNK_RECORDS, ExportChunk, ExportFilter, ExportFormat, ExportLine,
    LineCheck, chunk as export_chunk, verify_line, write_lines,
};
pub use feeds::{EMBED_LIMIT_MAX, FEED_ENTRIES_MAX, check_origin as embed_origin};
pub use fuzz::query_string as fuzz_query_string;
pub use gate::Gate;
pub use import_csv::CSV_ROW_BYTES_MAX;
pub use link::REFUSED_BACKOFF_MIN_MS;
pub use listener::{HTTP_BODY_WINDOW, HTTP_HEADER_TIMEOUT, HTTP_IDLE_TIMEOUT};
pub use localtime::{from_stockholm_local, stockholm};
pub use read::{ReadError, ReadModel, Reads};
pub use received::Received;
pub use runtime::StartError;
pub use session::{SyncReport, sync_until_caught_up};
pub use shared::{PEER_CONNECTIONS_MAX, Shared};
pub use staff::{COMMAND_LINE, Staff};
pub use writer::{ImportJob, ImportProgress, Writer};
