//! Rate limits per client address: a token bucket each, in a bounded map. Used where a
//! script could harvest what a person reads one page at a time: a researcher's e-mail and
//! phone ([`contacts`]). No I/O and no clock here: `now` comes in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A bucket of `burst` tokens that refills one token every `refill`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub burst: u32,
    pub refill: Duration,
}

/// Pages or answers with a researcher's contact details that one client address (a /64 for
/// IPv6) may fetch at once before it is slowed.
pub const CONTACT_BURST: u32 = 30;
/// Then one more every this long (10 a minute).
pub const CONTACT_REFILL: Duration = Duration::from_secs(6);
/// Client addresses whose buckets are kept at once; past it a full bucket is dropped first,
/// then the one used longest ago.
pub const CLIENTS_MAX: usize = 10_000;

/// The rate of [`contacts`]: a person reading is never slowed (30 in a row, then one every 6 s
/// is far more than one reads); a script fetching hundreds a minute gets 429.
pub const CONTACTS: Rate = Rate {
    burst: CONTACT_BURST,
    refill: CONTACT_REFILL,
};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets per client address.
#[derive(Debug)]
pub struct Limiter {
    rate: Rate,
    buckets: HashMap<IpAddr, Bucket>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let per_token = self.rate.refill.as_secs_f64().max(f64::MIN_POSITIVE);
        let gained = now.saturating_duration_since(b.at).as_secs_f64() / per_token;
        (b.tokens + gained).min(f64::from(self.rate.burst))
    }

    /// Takes a token for `client` (already keyed: see [`crate::login::address_key`]).
    /// `Err(wait)`: none left; the next comes in `wait`.
    pub fn take(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.buckets.contains_key(&client) && self.buckets.len() >= CLIENTS_MAX {
            self.make_room(now);
        }
        let full = Bucket {
            tokens: f64::from(self.rate.burst),
            at: now,
        };
        let b = self.buckets.get(&client).copied().unwrap_or(full);
        let tokens = self.refilled(b, now);
        if tokens < 1.0 {
            let missing = 1.0 - tokens;
            let wait = self
                .rate
                .refill
                .mul_f64(missing)
                .max(Duration::from_millis(1));
            self.buckets.insert(client, Bucket { tokens, at: now });
            return Err(wait);
        }
        self.buckets.insert(
            client,
            Bucket {
                tokens: tokens - 1.0,
                at: now,
            },
        );
        Ok(())
    }

    /// Drops every bucket that has refilled (it is the same as none), else the stalest.
    fn make_room(&mut self, now: Instant) {
        let burst = f64::from(self.rate.burst);
        let full: Vec<IpAddr> = self
            .buckets
            .iter()
            .filter(|(_, b)| self.refilled(**b, now) >= burst)
            .map(|(k, _)| *k)
            .collect();
        if full.is_empty() {
            if let Some(k) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| *k)
            {
                self.buckets.remove(&k);
            }
        } else {
            for k in full {
                self.buckets.remove(&k);
            }
        }
    }

    /// Client addresses with a bucket.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }
}

/// The limiter for contact details.
pub fn contacts() -> Limiter {
    Limiter::new(CONTACTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader gets CONTACT_BURST at once and then one per CONTACT_REFILL; a script asking
    /// hundreds a minute is refused after the burst; another address is not.
    #[test]
    fn a_script_is_refused_after_the_burst_and_a_reader_never() {
        let mut l = contacts();
        let t = Instant::now();
        let a: IpAddr = [127, 0, 0, 5].into();
        for i in 0..CONTACT_BURST {
            assert!(l.take(a, t).is_ok(), "{i}");
        }
        let wait = l.take(a, t).unwrap_err();
        assert!(wait <= CONTACT_REFILL && wait > Duration::ZERO, "{wait:?}");
        assert!(l.take([127, 0, 0, 6].into(), t).is_ok());
        assert!(l.take(a, t + CONTACT_REFILL).is_ok(), "refilled one");
        assert!(l.take(a, t + CONTACT_REFILL).is_err());
        // 300 in a minute from one address: 30 + 10 served.
        let mut l = contacts();
        let served = (0..300)
            .filter(|i| l.take(a, t + Duration::from_millis(200 * i)).is_ok())
            .count();
        assert!((39..=41).contains(&served), "{served}");
        // A reader opening one every 10 seconds for an hour is never refused.
        let mut l = contacts();
        assert!((0..360).all(|i| l.take(a, t + Duration::from_secs(10 * i)).is_ok()));
    }

    #[test]
    fn the_map_is_bounded() {
        let mut l = contacts();
        let t = Instant::now();
        for i in 0..(CLIENTS_MAX as u32 + 100) {
            let _ = l.take(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(l.len() <= CLIENTS_MAX);
    }
}
