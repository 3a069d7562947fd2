//! The one-shot client: a query against a remote node over its own QUIC connection
//! (`spindel query --from`), as a member (`remote_query_as`) or with a throw-away key.

use spindel_protocol::SecretKey;
use spindel_protocol::checkpoint::{SignedCheckpoint, SignedCosignature};
use spindel_protocol::sync::{Message, QueryRequest};

use crate::transport::{FramedRecv, FramedSend, Limits, PeerAddr, Transport, TransportError};

/// A one-shot query against a remote node, with a throw-away key (a node that answers members
/// only refuses it: see [`remote_query_as`]).
pub async fn remote_query(
    peer: &PeerAddr,
    request: QueryRequest,
    limits: Limits,
) -> Result<String, RemoteQueryError> {
    let key = SecretKey::generate(&mut rand_core::OsRng);
    remote_query_as(&key, peer, request, limits).await
}

/// A one-shot query against a remote node, as the node whose key is `key`. The connection is
/// closed cleanly (code 0) and the endpoint drained before this returns, whatever the outcome,
/// so the remote node frees the connection at once instead of after its idle timeout.
pub async fn remote_query_as(
    key: &SecretKey,
    peer: &PeerAddr,
    request: QueryRequest,
    limits: Limits,
) -> Result<String, RemoteQueryError> {
    let transport = Transport::client(key, limits.clone())?;
    let answer = ask(&transport, peer, request, &limits).await;
    // Closes every connection with code 0 and waits until the close went out.
    transport.shutdown().await;
    match answer? {
        Some(Message::QueryResult { json }) => json.map_err(RemoteQueryError::Refused),
        Some(other) => Err(RemoteQueryError::Unexpected(other.name())),
        None => Err(RemoteQueryError::NoAnswer),
    }
}

/// `spindel audit --peer`: the checkpoints and cosignatures another region keeps, asked as
/// the node whose key is `key` (a member), over a connection of its own.
pub async fn audit_peer_as(
    key: &SecretKey,
    peer: &PeerAddr,
    limits: Limits,
) -> Result<(Vec<SignedCheckpoint>, Vec<SignedCosignature>), RemoteQueryError> {
    let transport = Transport::client(key, limits.clone())?;
    let answer = ask_message(&transport, peer, Message::AuditRequest, &limits).await;
    transport.shutdown().await;
    match answer? {
        Some(Message::AuditAnswer {
            checkpoints,
            cosignatures,
        }) => Ok((checkpoints, cosignatures)),
        Some(Message::Error { message, .. }) => Err(RemoteQueryError::Refused(message)),
        Some(other) => Err(RemoteQueryError::Unexpected(other.name())),
        None => Err(RemoteQueryError::NoAnswer),
    }
}

/// Sends one query on a connection of its own and reads the answer.
async fn ask(
    transport: &Transport,
    peer: &PeerAddr,
    request: QueryRequest,
    limits: &Limits,
) -> Result<Option<Message>, RemoteQueryError> {
    ask_message(transport, peer, Message::Query(request), limits).await
}

/// Sends one message on a connection of its own and reads the one answer.
async fn ask_message(
    transport: &Transport,
    peer: &PeerAddr,
    message: Message,
    limits: &Limits,
) -> Result<Option<Message>, RemoteQueryError> {
    let conn = transport.connect(peer).await?;
    let (send, recv) = conn.open_bi().await.map_err(TransportError::from)?;
    let mut send = FramedSend::new(send);
    let mut recv = FramedRecv::new(recv, limits.frame_bytes_max);
    send.send(&message).await?;
    send.finish();
    let answer = recv.recv().await?;
    conn.close(0u32.into(), b"done");
    Ok(answer)
}

/// Why a remote query got no records.
#[derive(Debug, thiserror::Error)]
pub enum RemoteQueryError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The node answered with an error (not a member, a bad query).
    #[error("{0}")]
    Refused(String),
    #[error("the peer answered with a {0} message")]
    Unexpected(&'static str),
    #[error("the peer closed the stream without an answer")]
    NoAnswer,
}
