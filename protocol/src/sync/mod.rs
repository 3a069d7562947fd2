//! The sync protocol: wire messages, framing, and the sync session as a sans-IO state machine.
//!
//! A connection carries one sync stream. Both sides send [`Message::Hello`], then
//! [`Message::Heads`] (per-author heads; an aggregator adds the admitted authors). Each side then
//! sends exactly what the other lacks, in [`Message::Entries`] batches, each answered by one
//! [`Message::Ack`] after the receiver has made it durable. The stream stays open: every new
//! local entry is pushed at once. A new connection starts over with heads, so sync resumes from
//! any point against any aggregator.
//!
//! [`Session`] holds no I/O and reads no clock, and it decides every frame: the driver feeds it
//! messages, local events and the time, and carries out its [`Output`]s (send a message, load
//! entries from the store, apply received entries, read what the session asks for).
//!
//! - `message`: the wire [`Message`]s, [`SyncEntry`], [`QueryRequest`], [`ErrorCode`],
//!   [`PeerRole`] and the limits a peer is held to.
//! - `frame`: one message a frame ([`encode_frame`], [`decode_frame`], [`FrameError`]).
//! - `session`: [`Session`], [`SessionConfig`] and [`Output`]; what the session asks for after
//!   the heads, and its timers, in `session::decide`.

mod frame;
mod message;
mod session;
#[cfg(test)]
mod simulation;

pub use frame::*;
pub use message::*;
pub use session::*;
