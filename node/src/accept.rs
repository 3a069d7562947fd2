//! The accepting side of QUIC: a connection this node accepted (a region at its aggregator, or
//! a query client). Who the peer is decides what it gets: a member's sync sessions (each driven
//! by [`crate::session`]), answers to queries for members only, and a one-line refusal for a
//! second live copy of a key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spindel_protocol::NodeId;
use spindel_protocol::sync::{
    ErrorCode, Lifetime, Message, PeerRole, PeerStanding, QueryRequest, Session, SessionConfig,
};

use crate::link::PeerStatus;
use crate::local::NodeError;
use crate::query::Query;
use crate::read::Reads;
use crate::session::{CLOSE_GRACE, SessionCtx, drive_session, my_role, now};
use crate::shared::Shared;
use crate::transport::{FramedRecv, FramedSend};

/// The answer to a query from a key that is neither an admitted region nor a pinned
/// aggregator (nor the node itself).
pub const NOT_A_MEMBER: &str = "this node answers queries from member nodes only (admitted regions and their \
     aggregators); ask as one: spindel query --from PEER --data-dir DIR";

/// Handles one accepted connection: a sync session, or query streams.
pub async fn serve_connection(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    peer: NodeId,
    limits: crate::transport::Limits,
) {
    let peer_key = format!("in:{}:{}", peer, conn.remote_address());
    let first_frame_within = Duration::from_millis(limits.first_frame_timeout_ms);
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => break,
        };
        let mut send = FramedSend::new(send);
        let mut recv = FramedRecv::new(recv, limits.frame_bytes_max);
        // The first frame arrives whole within the deadline, or the connection is closed.
        let first = match tokio::time::timeout(first_frame_within, recv.recv()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer.short(), error = %e, "bad first frame");
                conn.close(ErrorCode::Protocol.code().into(), b"bad frame");
                break;
            }
            Err(_) => {
                tracing::info!(peer = %peer.short(), "closed a connection whose first frame did not arrive in time");
                conn.close(ErrorCode::Protocol.code().into(), b"first frame too slow");
                break;
            }
        };
        match first {
            Message::AuditRequest => {
                // A region's checkpoints and cosignatures, for another region's audit: for
                // members only, like records.
                let member = is_member(&shared, peer).await;
                let answer = if member {
                    match shared.read(|n| n.audit_evidence()).await {
                        Ok((checkpoints, cosignatures)) => Message::AuditAnswer {
                            checkpoints,
                            cosignatures,
                        },
                        Err(e) => Message::Error {
                            code: ErrorCode::Internal,
                            message: format!("cannot read the checkpoints: {e}"),
                        },
                    }
                } else {
                    tracing::info!(peer = %peer.short(), "refused an audit request from a key that is not a member");
                    Message::Error {
                        code: ErrorCode::NotAdmitted,
                        message: NOT_A_MEMBER.to_string(),
                    }
                };
                let _ = tokio::time::timeout(first_frame_within, send.send(&answer)).await;
                send.finish();
                if !member {
                    let _ = tokio::time::timeout(first_frame_within, conn.closed()).await;
                    conn.close(ErrorCode::NotAdmitted.code().into(), b"not a member");
                    break;
                }
            }
            Message::Query(request) => {
                // Records hold personal data (researcher contacts): only member nodes ask.
                let member = is_member(&shared, peer).await;
                // The wire carries the answer or its error as text (`QueryResult`).
                let json = if member {
                    answer_query(&shared, request)
                        .await
                        .map_err(|e| e.to_string())
                } else {
                    tracing::info!(peer = %peer.short(), "refused a query from a key that is not a member");
                    Err(NOT_A_MEMBER.to_string())
                };
                if !member {
                    // One refusal per connection: a key that is not a member gets its answer
                    // and the connection ends, so asking again costs it a new handshake (and
                    // counts against the connection limits).
                    let _ = tokio::time::timeout(
                        first_frame_within,
                        send.send(&Message::QueryResult { json }),
                    )
                    .await;
                    send.finish();
                    let _ = tokio::time::timeout(first_frame_within, conn.closed()).await;
                    conn.close(ErrorCode::NotAdmitted.code().into(), b"not a member");
                    break;
                }
                // An answer the asker does not read is dropped after the deadline.
                let _ = tokio::time::timeout(
                    first_frame_within,
                    send.send(&Message::QueryResult { json }),
                )
                .await;
                send.finish();
            }
            hello @ Message::Hello { .. } => {
                let role = my_role(&shared.node);
                // Subscribe before reading the heads: a head announced in between would
                // otherwise be missed by this session for as long as it lives.
                let heads_rx = shared.subscribe_heads();
                // Likewise for admissions: a change after this sends the list again.
                let admissions_rx = shared.writer.events().subscribe_admissions();
                let admissions_at = *admissions_rx.borrow();
                let setup = shared
                    .blocking(move |n| {
                        // A frozen region still gets its session: it learns of its fork
                        // (the proof) there; ingest refuses its entries as frozen.
                        let admitted = n.admits_session(&peer)?;
                        // Only the regions it admits: one no longer admitted is not relayed.
                        let heads = n
                            .relay_heads()?
                            .into_iter()
                            .map(|(a, h)| (a, h.seq))
                            .collect();
                        let mirror = !admitted && n.is_mirror(&peer)?;
                        let rotated = !admitted && n.handed_over(&peer);
                        Ok((admitted, mirror, rotated, heads, n.admission_list()?))
                    })
                    .await;
                let Ok((admitted, mirror, rotated, heads, list)) = setup else {
                    break;
                };
                shared.pass_held_session().await;
                // An aggregator syncs with the regions it admitted. A region syncs only with
                // the aggregators it pinned: any other key that dials it gets neither entries
                // in nor its log out (it is refused before heads are sent).
                let pinned = shared.gate.is_pinned(&peer);
                let (peer_admitted, announce) = match role {
                    PeerRole::Aggregator => (admitted, list),
                    _ => (pinned, Vec::new()),
                };
                // An aggregator allowed to mirror this one (decision 0040): no signer, no name.
                let mirror = mirror && role == PeerRole::Aggregator;
                // One live signer per key: an aggregator takes one sync session per admitted
                // region; another from the same key (a second running copy) is refused, and
                // the live one goes on.
                let signer = if role == PeerRole::Aggregator && peer_admitted {
                    let claimed = match shared.claim_signer(peer, &conn) {
                        Err(live) => shared.claim_signer_from(peer, &conn, live).await,
                        ok => ok,
                    };
                    match claimed {
                        Ok(slot) => Some(slot),
                        Err(live) => {
                            refuse_other_copy(&shared, &conn, send, peer, &live).await;
                            break;
                        }
                    }
                } else {
                    None
                };
                let name = announce
                    .iter()
                    .find(|(id, _)| *id == peer)
                    .and_then(|(_, n)| n.clone());
                let mut session = Session::new(SessionConfig {
                    me: shared.node.node_id(),
                    peer,
                    role,
                    name: shared.node.config().name.clone(),
                    heads,
                    standing: if peer_admitted {
                        PeerStanding::Member
                    } else if mirror {
                        // An aggregator allowed to mirror this one (decision 0040).
                        PeerStanding::Mirror
                    } else if rotated && role == PeerRole::Aggregator {
                        // A key that handed its region over: told so, so its node switches.
                        PeerStanding::Rotated
                    } else {
                        PeerStanding::Stranger
                    },
                    admitted: announce,
                    admissions_generation: admissions_at,
                    charter: shared.node.charter_id(),
                    lifetime: Lifetime::Live,
                    now: now(),
                });
                let refused = session.handle(hello).err();
                if let Some(e) = &refused {
                    // Logged here once; the session only sends the refusal.
                    tracing::warn!(peer = %peer, address = %conn.remote_address(), error = %e, "refused a sync session");
                } else if mirror {
                    tracing::info!(peer = %peer.short(), address = %conn.remote_address(), "mirror aggregator linked");
                } else if role == PeerRole::Aggregator {
                    tracing::info!(peer = %peer.short(), name = name.as_deref().unwrap_or("-"), address = %conn.remote_address(), "region linked");
                }
                // An aggregator shows each region once (one session per key), and keeps it
                // when the session ends; a region shows the sessions it serves while they last.
                let peer_key = if role == PeerRole::Aggregator {
                    format!("in:{peer}")
                } else {
                    peer_key.clone()
                };
                if refused.is_none() {
                    shared.add_peer(
                        peer_key.clone(),
                        PeerStatus {
                            node_id: peer.to_hex(),
                            name: name.clone(),
                            last_seen_ms: Some(crate::shared::now_ms()),
                            address: conn.remote_address().to_string(),
                            role: if mirror {
                                "mirror".into()
                            } else if role == PeerRole::Aggregator {
                                "region".into()
                            } else {
                                "incoming".into()
                            },
                            connected: true,
                            lag: 0,
                            last_error: None,
                            retry_in_ms: None,
                            own_acked: None,
                            own_not_sent: None,
                        },
                    );
                }
                // The session takes only the region's own entries from the region
                // (`Session::expected_author`) and trusts a pinned aggregator.
                let ctx = SessionCtx {
                    shared: shared.clone(),
                    conn: conn.clone(),
                    peer,
                    peer_key: peer_key.clone(),
                    admissions: (role == PeerRole::Aggregator).then_some(admissions_rx),
                };
                let began = Instant::now();
                let r = drive_session(ctx, send, recv, session, heads_rx).await;
                shared.metrics.session_ended(began.elapsed());
                if refused.is_some() {
                    break;
                }
                // A normal end: code 0 from either side (caught up, shutting down), also when a
                // stream read saw it first.
                let why = r
                    .as_ref()
                    .err()
                    .filter(|e| !e.is_normal_end() && !closed_normally(&conn))
                    .map(ToString::to_string);
                if mirror {
                    tracing::info!(peer = %peer.short(), address = %conn.remote_address(), reason = why.as_deref().unwrap_or("-"), "mirror aggregator unlinked");
                    shared.remove_peer(&peer_key);
                } else if role == PeerRole::Aggregator {
                    match &why {
                        Some(e) => {
                            tracing::info!(peer = %peer.short(), name = name.as_deref().unwrap_or("-"), address = %conn.remote_address(), reason = %e, "region unlinked")
                        }
                        None => {
                            tracing::info!(peer = %peer.short(), name = name.as_deref().unwrap_or("-"), address = %conn.remote_address(), "region unlinked")
                        }
                    }
                    // Unless a new session of the key has taken this one's place.
                    let address = conn.remote_address().to_string();
                    shared.set_peer(&peer_key, |p| {
                        if p.address == address {
                            p.connected = false;
                            p.lag = 0;
                            p.last_seen_ms = Some(crate::shared::now_ms());
                            p.last_error = why.clone();
                        }
                    });
                } else {
                    if let Some(e) = &why {
                        tracing::info!(peer = %peer.short(), error = %e, "sync session ended");
                    }
                    shared.remove_peer(&peer_key);
                }
                drop(signer);
                break;
            }
            other => {
                tracing::debug!(peer = %peer.short(), message = other.name(), "unexpected first message");
                conn.close(
                    ErrorCode::Protocol.code().into(),
                    b"unexpected first message",
                );
                break;
            }
        }
    }
}

/// The peer closed the connection with code 0 (`Done`): a normal end, not a failure.
/// A member may ask queries and for the audit's evidence: a pinned aggregator, an admitted
/// or known region, the node itself.
async fn is_member(shared: &Shared, peer: NodeId) -> bool {
    let pinned = shared.gate.is_pinned(&peer);
    shared
        .blocking(move |n| Ok(pinned || n.is_member(&peer)?))
        .await
        .unwrap_or(false)
}

pub(crate) fn closed_normally(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(c))
            if c.error_code.into_inner() == u64::from(ErrorCode::Done.code())
    )
}

/// Refuses a sync session of `peer` because `live`, another session of the same key, holds
/// its place: the message names the live one's address and since when; the first refusal
/// while it lives is logged (the rest at debug), every one is counted in `/metrics`.
pub(crate) async fn refuse_other_copy(
    shared: &Shared,
    conn: &quinn::Connection,
    mut send: FramedSend,
    peer: NodeId,
    live: &crate::shared::Signer,
) {
    let since = spindel_protocol::time::rfc3339_ms(live.since_ms);
    // How far this key's log goes here (the live copy's): the refused copy compares it
    // with its own head to say which entries the network lacks.
    let held = shared.node.head(&peer).ok().flatten().map_or(0, |h| h.seq);
    let message = format!(
        "another copy of this node's key is connected to the aggregator at {} since {since}; \
         the aggregator {}{held}",
        live.address,
        crate::gate::HELD_PHRASE,
    );
    shared
        .metrics
        .sessions_refused_other_copy
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if live.refused == 0 {
        tracing::warn!(peer = %peer, address = %conn.remote_address(), live_address = %live.address, since = %since, "refused a sync session: this key already has a live session here (two running copies of one node would fork its log); the first keeps it");
    } else {
        tracing::debug!(peer = %peer.short(), address = %conn.remote_address(), "refused another sync session of a key with a live session");
    }
    let error = Message::Error {
        code: ErrorCode::OtherCopy,
        message: message.clone(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, send.send(&error)).await;
    send.finish();
    // Let the peer read the frame; it closes on reading it.
    let _ = tokio::time::timeout(CLOSE_GRACE, conn.closed()).await;
    conn.close(ErrorCode::OtherCopy.code().into(), b"other copy");
}

/// Why a member's query got no records (said to it in the answer's error text).
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryAnswerError {
    #[error(transparent)]
    Kind(#[from] spindel_protocol::record::ParseKindError),
    #[error(transparent)]
    Node(#[from] NodeError),
}

pub(crate) async fn answer_query(
    shared: &Arc<Shared>,
    request: QueryRequest,
) -> Result<String, QueryAnswerError> {
    let query = Query::from_request(&request)?;
    Ok(shared
        .blocking(move |n| {
            let mut page = n.query(&query)?;
            // An answer is a list: no contact fields in bulk.
            crate::privacy::leave_out_contacts(&mut page);
            Ok(serde_json::to_string(&page)?)
        })
        .await?)
}
