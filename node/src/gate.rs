//! The catch-up gate: whether a region may sign new entries of its own log yet.
//!
//! A starting region (and above all a copy `spindel restore` made) may hold less of its own log
//! than its aggregators do; signing then would fork it. The gate stays closed until a pinned
//! aggregator's opening heads say how far the own log goes there and this node holds that
//! much, or, for a node that was not restored, until [`CATCH_UP_WAIT`] passed with no answer
//! (regions keep working while the aggregator is down). The sessions feed it
//! ([`Gate::own_log_at`], [`Gate::consider`]); the writer waits on it ([`Gate::ready`]) before
//! every own-log write.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use spindel_protocol::NodeId;
use tokio::sync::watch;

use crate::local::NodeError;
use crate::read::{ReadModel, Reads};

/// How long a starting region waits for an aggregator to tell it how far its own log goes
/// before it signs anything; then it publishes offline (regions keep working while the
/// aggregator is down), except a node `spindel restore` made, which waits until caught up.
pub const CATCH_UP_WAIT: Duration = Duration::from_secs(5);
/// How long a publish on a restored node that has not caught up waits before it gives up.
pub const RESTORED_PUBLISH_WAIT: Duration = Duration::from_secs(30);

/// Whether this node may sign new entries of its own log yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Waiting to learn from an aggregator whether it holds own entries beyond the head.
    Waiting,
    /// Caught up (or offline after [`CATCH_UP_WAIT`]): publishing goes on.
    Ready,
    /// A pinned aggregator refused this node's session because another copy of its key holds
    /// one there ([`Gate::other_copy`]): signing now would fork the log. Own-log writes fail
    /// until a later session of this node is accepted (the other copy is gone).
    OtherCopy,
}

/// What the gate knows.
#[derive(Debug, Default)]
struct Known {
    /// Pinned aggregators whose opening heads arrived.
    answered: BTreeSet<NodeId>,
    /// The furthest own-log head any of them holds.
    target: u64,
    /// [`CATCH_UP_WAIT`] has passed since the start.
    waited: bool,
}

/// The gate, with the aggregators this node pinned (`--aggregator`): the only peers a region
/// syncs with, and whose relayed entries and admission lists it trusts.
#[derive(Debug)]
pub struct Gate {
    state: watch::Sender<CatchUp>,
    known: Mutex<Known>,
    pinned: Mutex<BTreeSet<NodeId>>,
    /// What each pinned aggregator that refused this node's session said about the other
    /// copy (while [`CatchUp::OtherCopy`]), and how far it said it holds this key's log.
    other_copy: Mutex<std::collections::BTreeMap<NodeId, (String, Option<u64>)>>,
    /// Pinned aggregators that took a session of this node since it started.
    confirmed: Mutex<BTreeSet<NodeId>>,
    /// What the last pinned aggregator that refused this node for good said (not admitted,
    /// rotated, another charter), until one takes a session of it: a restored node that no
    /// aggregator takes cannot catch up, and a write fails at once instead of waiting.
    refused: watch::Sender<Option<String>>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            state: watch::Sender::new(CatchUp::Ready),
            known: Mutex::new(Known::default()),
            pinned: Mutex::new(BTreeSet::new()),
            other_copy: Mutex::new(std::collections::BTreeMap::new()),
            confirmed: Mutex::new(BTreeSet::new()),
            refused: watch::Sender::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Gate {
    /// Records the aggregators this node dials (a region syncs with these only).
    pub fn pin(&self, ids: impl IntoIterator<Item = NodeId>) {
        lock(&self.pinned).extend(ids);
    }

    pub fn is_pinned(&self, id: &NodeId) -> bool {
        lock(&self.pinned).contains(id)
    }

    /// Closes the gate until the node has caught up (a starting region with aggregators, or a
    /// restored node).
    pub fn close(&self) {
        self.state.send_replace(CatchUp::Waiting);
    }

    pub fn is_waiting(&self) -> bool {
        *self.state.borrow() == CatchUp::Waiting
    }

    /// A pinned aggregator refused this node's session for good (`reason`, its words; not
    /// another copy: see [`Gate::refused_as_copy`]), or (`None`) took one.
    pub fn refused_for_good(&self, reason: Option<&str>) {
        self.refused.send_replace(reason.map(|r| {
            r.strip_prefix("peer closed: ")
                .unwrap_or(r)
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect()
        }));
    }

    /// Waits until own-log writes may go on.
    pub async fn ready(&self, node: &ReadModel) -> Result<(), NodeError> {
        let mut rx = self.state.subscribe();
        let restored = node.restored();
        let wait = if restored {
            RESTORED_PUBLISH_WAIT
        } else {
            // The offline fallback opens the gate after CATCH_UP_WAIT; this is a backstop.
            CATCH_UP_WAIT * 3
        };
        // A restored node that its aggregator refuses for good cannot catch up: said as soon
        // as the refusal is known, not after the wait.
        let mut refused_rx = self.refused.subscribe();
        let refused = async {
            if !restored {
                return std::future::pending().await;
            }
            let said = refused_rx
                .wait_for(Option::is_some)
                .await
                .map(|r| r.clone().unwrap_or_default());
            match said {
                Ok(said) => said,
                Err(_) => std::future::pending().await,
            }
        };
        let ready = tokio::time::timeout(wait, rx.wait_for(|c| *c != CatchUp::Waiting));
        tokio::select! {
            biased;
            r = ready => match r {
                Ok(Ok(c)) if *c == CatchUp::Ready => Ok(()),
                Ok(Ok(_)) => Err(NodeError::OtherCopy(self.other_copy().unwrap_or_default())),
                _ => Err(NodeError::CatchingUp {
                    waited_s: wait.as_secs(),
                    restored,
                }),
            },
            reason = refused => Err(NodeError::RestoredRefused(reason)),
        }
    }

    /// The pinned aggregator `aggregator` refused this node's session: another copy of its key
    /// holds one there (`reason`, the aggregator's words: where and since when). Own-log writes
    /// fail from now on, waiting ones included, until that aggregator takes a session of this
    /// node ([`Gate::session_accepted`]).
    pub fn refused_as_copy(&self, aggregator: NodeId, reason: &str) {
        // The aggregator's words reach `status` and the logs: no control characters (a
        // terminal escape), at most 300 characters.
        let reason: String = reason
            .strip_prefix("peer closed: ")
            .unwrap_or(reason)
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        let held = held_in(&reason);
        lock(&self.other_copy).insert(aggregator, (reason.clone(), held));
        if self.state.send_replace(CatchUp::OtherCopy) != CatchUp::OtherCopy {
            tracing::error!(
                aggregator = %aggregator.short(),
                reason = %reason,
                "the aggregator refused this node's session: another copy of this node's key is connected to it; this node signs nothing until the aggregator takes a session of its own"
            );
        }
    }

    /// What an aggregator said about another copy of this key, while this node refuses to
    /// sign because of it.
    pub fn other_copy(&self) -> Option<String> {
        if *self.state.borrow() != CatchUp::OtherCopy {
            return None;
        }
        lock(&self.other_copy)
            .values()
            .next()
            .map(|(r, _)| r.clone())
    }

    /// How far a refusing aggregator said it holds this key's log (the other copy's), while
    /// this node refuses to sign because of it.
    pub fn other_copy_held(&self) -> Option<u64> {
        if *self.state.borrow() != CatchUp::OtherCopy {
            return None;
        }
        lock(&self.other_copy)
            .values()
            .filter_map(|(_, h)| *h)
            .max()
    }

    /// A write now would be signed offline: this node dials aggregators and none of them has
    /// taken a session of it since it started (the gate opened after `CATCH_UP_WAIT`). A
    /// node once confirmed is the live copy; one that never was may be a stale second copy.
    pub fn offline(&self) -> bool {
        !lock(&self.pinned).is_empty() && lock(&self.confirmed).is_empty()
    }

    /// The pinned aggregator `aggregator` took a session of this node (its heads arrived).
    /// Once no aggregator refuses it for another copy, the node catches up with the
    /// aggregators' heads (the other copy may have signed meanwhile) and then signs again.
    pub fn session_accepted(&self, aggregator: NodeId) {
        lock(&self.confirmed).insert(aggregator);
        self.refused.send_replace(None);
        let none_left = {
            let mut map = lock(&self.other_copy);
            map.remove(&aggregator);
            map.is_empty()
        };
        if !none_left {
            return;
        }
        let lifted = self.state.send_if_modified(|c| {
            let was = *c == CatchUp::OtherCopy;
            if was {
                *c = CatchUp::Waiting;
            }
            was
        });
        if lifted {
            tracing::info!(aggregator = %aggregator.short(), "the aggregator took this node's session: the other copy of its key is gone; signing again once caught up");
        }
    }
}

/// The part of an aggregator's `OtherCopy` refusal that says how far it holds the key's log
/// (see `accept::refuse_other_copy`): "... holds this key's log to entry N".
pub const HELD_PHRASE: &str = "holds this key's log to entry ";

/// How far the aggregator said it holds the key's log, from its refusal (older aggregators
/// do not say).
pub fn held_in(reason: &str) -> Option<u64> {
    let (_, rest) = reason.split_once(HELD_PHRASE)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The address the other copy is connected from, from an aggregator's `OtherCopy` refusal.
pub fn other_copy_address(reason: &str) -> Option<&str> {
    let (_, rest) = reason.split_once("connected to the aggregator at ")?;
    rest.split([' ', ';', ',']).next().filter(|a| !a.is_empty())
}

/// The own entries (first, last) this copy holds that the network may lack: those after what
/// a pinned aggregator acknowledged (`acked`, learnt from a session of this run); when no
/// aggregator acknowledged anything yet, those from the first entry signed offline
/// (`offline_from`, kept on disk) or after what a refusing aggregator holds (`held`),
/// whichever starts first. `None`: nothing unsent, or nothing known.
pub fn not_sent(
    own_head: u64,
    acked: Option<u64>,
    offline_from: Option<u64>,
    held: Option<u64>,
) -> Option<(u64, u64)> {
    // Numbers from a peer or a file: a seq 0 is no entry, and no sum may wrap.
    let first = match acked {
        Some(a) => a.checked_add(1)?,
        None => [
            offline_from.filter(|f| *f > 0),
            held.and_then(|h| h.checked_add(1)),
        ]
        .into_iter()
        .flatten()
        .min()?,
    };
    (first <= own_head).then_some((first, own_head))
}

impl Gate {
    /// A pinned aggregator said (in its opening heads) how far this node's own log goes there.
    pub fn own_log_at(&self, node: &ReadModel, aggregator: NodeId, head: u64) {
        {
            let mut known = lock(&self.known);
            known.answered.insert(aggregator);
            known.target = known.target.max(head);
        }
        self.consider(node);
    }

    /// `CATCH_UP_WAIT` passed since the start.
    pub fn offline_wait_passed(&self, node: &ReadModel) {
        lock(&self.known).waited = true;
        self.consider(node);
    }

    /// Opens the gate when this node holds its own log as far as any aggregator that answered
    /// holds it, and either every pinned aggregator answered or `CATCH_UP_WAIT` passed. A
    /// node that knows an aggregator holds more never opens it: signing would fork the log. A
    /// restored node needs an answer; any other opens offline when nobody answered.
    pub fn consider(&self, node: &ReadModel) {
        if !self.is_waiting() {
            return;
        }
        let here = node.own_head().ok().flatten().map_or(0, |h| h.seq);
        let pinned = lock(&self.pinned).len();
        let (answered, target, waited) = {
            let known = lock(&self.known);
            (known.answered.len(), known.target, known.waited)
        };
        let restored = node.restored();
        let open = here >= target
            && ((answered > 0 && answered >= pinned) || (waited && (answered > 0 || !restored)));
        if !open {
            return;
        }
        // The restore marker goes first: a publish woken by the gate must find it gone.
        if restored && answered > 0 {
            match node.clear_restored() {
                Ok(()) => tracing::info!("the restored node has caught up with its aggregator"),
                Err(e) => tracing::error!(error = %e, "cannot remove the restore marker"),
            }
        }
        if self.state.send_replace(CatchUp::Ready) == CatchUp::Waiting {
            if answered > 0 {
                tracing::info!(
                    head = here,
                    aggregators = answered,
                    "caught up with the own log held at the aggregators; publishing"
                );
            } else {
                tracing::warn!(
                    waited_s = CATCH_UP_WAIT.as_secs(),
                    "no aggregator answered; publishing offline (entries go out when a link is up)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an aggregator acknowledged in this run decides; without it, the first entry
    /// signed offline or what a refusing aggregator holds, whichever starts first.
    #[test]
    fn not_sent_counts_from_what_an_aggregator_acknowledged() {
        assert_eq!(not_sent(43, Some(40), None, None), Some((41, 43)));
        assert_eq!(not_sent(43, Some(43), Some(41), None), None);
        // An aggregator that holds more than this node (a restored one): nothing unsent.
        assert_eq!(not_sent(43, Some(50), None, None), None);
        // Acknowledged in this run outweighs the marker from before.
        assert_eq!(not_sent(43, Some(42), Some(41), Some(45)), Some((43, 43)));
        assert_eq!(not_sent(43, None, Some(41), None), Some((41, 43)));
        assert_eq!(not_sent(43, None, None, Some(40)), Some((41, 43)));
        // The other copy signed past this one's offline entries: they still count.
        assert_eq!(not_sent(43, None, Some(41), Some(45)), Some((41, 43)));
        assert_eq!(not_sent(43, None, None, Some(45)), None);
        assert_eq!(not_sent(43, None, None, None), None);
        assert_eq!(not_sent(0, None, Some(1), None), None);
        // What an aggregator or the marker file says cannot wrap or start at entry 0.
        assert_eq!(not_sent(43, Some(u64::MAX), None, None), None);
        assert_eq!(not_sent(43, None, None, Some(u64::MAX)), None);
        assert_eq!(not_sent(43, None, Some(0), None), None);
    }

    #[test]
    fn a_refusal_names_the_address_and_how_far_the_aggregator_holds_the_log() {
        let reason = format!(
            "another copy of this node's key is connected to the aggregator at 192.0.2.10:53012 \
             since 2026-12-05T14:02:11.120Z; the aggregator {HELD_PHRASE}40"
        );
        assert_eq!(held_in(&reason), Some(40));
        assert_eq!(other_copy_address(&reason), Some("192.0.2.10:53012"));
        // An older aggregator does not say how far.
        assert_eq!(held_in("another copy ... since 2026"), None);
        assert_eq!(other_copy_address("something else"), None);
    }

    #[test]
    fn a_node_is_offline_until_a_pinned_aggregator_takes_its_session() {
        let gate = Gate::default();
        // No aggregator pinned: nothing is sent anywhere, so nothing is "offline".
        assert!(!gate.offline());
        let agg = NodeId([7; 32]);
        gate.pin([agg]);
        assert!(gate.offline());
        gate.refused_as_copy(
            agg,
            &format!("at 127.0.0.1:1 since x; the aggregator {HELD_PHRASE}3"),
        );
        assert!(gate.offline());
        assert_eq!(gate.other_copy_held(), Some(3));
        gate.session_accepted(agg);
        assert!(!gate.offline());
        assert_eq!(gate.other_copy_held(), None);
    }
}
