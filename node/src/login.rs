//! Who may try a password, and when: the editor's defence against guessing that never lets a
//! stranger keep staff out (OWASP's "device cookies" pattern).
//!
//! - A browser where an account has logged in gets a **device cookie** ([`DeviceKey::issue`]):
//!   the account's name, when it was issued and a random nonce, with an HMAC-SHA256 tag made
//!   with a key derived from the node's secret (so it survives restarts and nobody can forge
//!   one). A login for that account from that browser is **trusted**: it has a small failure
//!   budget of its own ([`DEVICE_FAILURES_MAX`]) and is never slowed by what strangers did.
//!   Past its budget the device counts as untrusted until its failures are forgotten.
//! - Every other login is **untrusted** and slowed per account and per client address: the
//!   first [`FREE_FAILURES_PER_ACCOUNT`] (and [`FREE_FAILURES_PER_ADDRESS`]) failures cost
//!   nothing; after that each one makes the next try wait, starting at [`DELAY_FIRST`] and
//!   doubling up to [`DELAY_MAX`] (429 with `Retry-After`). A count with no failure for
//!   [`FORGET_AFTER`] is forgotten; a successful login clears the account's count and takes
//!   its own attempt back from the address.
//! - The **client address** is the connection's; only when the connection comes from a proxy
//!   named in `trusted_proxies` is it the last address in `X-Forwarded-For` that is not one of
//!   those proxies ([`client_address`]). IPv6 clients are counted by their /64.
//!
//! An attempt is counted before its password is checked, under one lock, so logins sent at
//! once cannot slip past the delays. No I/O and no clock here: `now` comes in.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use rand_core::CryptoRngCore;
use ring::hmac;

/// Failures of one account from untrusted clients that cost no waiting.
pub const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// Failures from one client address (a /64 for IPv6) that cost no waiting.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The wait after the first failure past the free ones; it doubles with each further one.
pub const DELAY_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between two tries.
pub const DELAY_MAX: Duration = Duration::from_secs(10 * 60);
/// A count with no new failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Failures a trusted device may make (within [`FORGET_AFTER`]) before it counts as untrusted.
pub const DEVICE_FAILURES_MAX: u32 = 5;
/// How long a device cookie is honoured after it was issued.
pub const DEVICE_COOKIE_MAX_AGE: Duration = Duration::from_secs(180 * 24 * 60 * 60);
/// Names, addresses and devices whose counts are kept at once (per map; the one whose last
/// failure is oldest is forgotten first). Existing accounts are counted apart and never
/// forgotten for room, so a flood of made-up names cannot wipe an account's count.
pub const COUNTED_KEYS_MAX: usize = 10_000;
/// The device cookie.
pub const DEVICE_COOKIE: &str = "spindel_enhet";
/// Label of the HMAC key derived from the node's secret.
const DEVICE_KEY_LABEL: &[u8] = b"spindel/editor-device-cookie/v1";

/// What one key has failed.
#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
}

impl Count {
    /// When the next try may come, given `free` failures that cost nothing.
    fn next_try(&self, free: u32) -> Instant {
        self.last + wait_after(self.failures, free)
    }
}

/// The wait after the `failures`-th failure, `free` of them costing nothing.
pub fn wait_after(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let doublings = (failures - free).min(30);
    DELAY_FIRST.saturating_mul(1u32 << doublings).min(DELAY_MAX)
}

/// Counts by key, bounded: a new key past [`COUNTED_KEYS_MAX`] forgets the stalest one.
#[derive(Debug)]
struct Counts<K> {
    map: HashMap<K, Count>,
    bounded: bool,
}

impl<K: std::hash::Hash + Eq + Clone> Counts<K> {
    fn new(bounded: bool) -> Self {
        Counts {
            map: HashMap::new(),
            bounded,
        }
    }

    /// The live count of `key` (a stale one is forgotten).
    fn get(&mut self, key: &K, now: Instant) -> Option<Count> {
        let c = *self.map.get(key)?;
        if now.saturating_duration_since(c.last) >= FORGET_AFTER {
            self.map.remove(key);
            return None;
        }
        Some(c)
    }

    fn add(&mut self, key: K, now: Instant) {
        let live = self.get(&key, now);
        if live.is_none() && self.bounded && self.map.len() >= COUNTED_KEYS_MAX {
            let stalest = self
                .map
                .iter()
                .min_by_key(|(_, c)| c.last)
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.map.remove(&k);
            }
        }
        let failures = live.map_or(0, |c| c.failures).saturating_add(1);
        self.map.insert(
            key,
            Count {
                failures,
                last: now,
            },
        );
    }

    /// Takes back one failure (a login that succeeded).
    fn take_back(&mut self, key: &K) {
        if let Some(c) = self.map.get_mut(key) {
            c.failures = c.failures.saturating_sub(1);
            if c.failures == 0 {
                self.map.remove(key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// Who is logging in, as far as the guard is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A browser holding a valid device cookie for the account (its nonce).
    Device([u8; 16]),
    /// Anyone else, by address.
    Untrusted(IpAddr),
}

/// An attempt let through and counted in advance; give it back with [`LoginGuard::succeeded`].
#[derive(Debug, Clone)]
pub struct Attempt {
    account: String,
    known: bool,
    counted: Counted,
}

#[derive(Debug, Clone, Copy)]
enum Counted {
    Device([u8; 16]),
    Untrusted(IpAddr),
}

/// The counts of failed logins (see the module docs).
#[derive(Debug)]
pub struct LoginGuard {
    /// Untrusted failures of existing accounts (at most [`crate::users::USERS_MAX`]).
    accounts: Counts<String>,
    /// Untrusted failures of names no account has (bounded).
    unknown: Counts<String>,
    addresses: Counts<IpAddr>,
    devices: Counts<[u8; 16]>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        LoginGuard {
            accounts: Counts::new(false),
            unknown: Counts::new(true),
            addresses: Counts::new(true),
            devices: Counts::new(true),
        }
    }
}

impl LoginGuard {
    /// May `client` try a password for `account` now? `known`: an account of that name exists
    /// (it changes only where it is counted, never what the client sees). `Err(wait)`: not
    /// before `wait` has passed. `Ok`: the attempt is counted as a failure already; a success
    /// takes it back.
    pub fn attempt(
        &mut self,
        account: &str,
        known: bool,
        client: Client,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let attempt = |counted| Attempt {
            account: account.to_string(),
            known,
            counted,
        };
        if let Client::Device(nonce) = client {
            let spent = self.devices.get(&nonce, now).map_or(0, |c| c.failures);
            if spent < DEVICE_FAILURES_MAX {
                self.devices.add(nonce, now);
                return Ok(attempt(Counted::Device(nonce)));
            }
        }
        // Untrusted (or a device past its budget): by account and by address.
        let address = match client {
            Client::Untrusted(ip) => address_key(ip),
            // A device past its budget is slowed by its account only: its address is unknown
            // here and the device itself is what failed.
            Client::Device(_) => IpAddr::from(Ipv6Addr::UNSPECIFIED),
        };
        let names = if known {
            &mut self.accounts
        } else {
            &mut self.unknown
        };
        let by_account = names
            .get(&account.to_string(), now)
            .map(|c| c.next_try(FREE_FAILURES_PER_ACCOUNT));
        let by_address = match client {
            Client::Untrusted(_) => self
                .addresses
                .get(&address, now)
                .map(|c| c.next_try(FREE_FAILURES_PER_ADDRESS)),
            Client::Device(_) => None,
        };
        if let Some(next) = by_account.into_iter().chain(by_address).max()
            && next > now
        {
            return Err(next - now);
        }
        names.add(account.to_string(), now);
        if let Client::Untrusted(_) = client {
            self.addresses.add(address, now);
        }
        Ok(attempt(Counted::Untrusted(address)))
    }

    /// The attempt's password was right: the account's count is cleared (and the device's),
    /// and the attempt is taken back from the address.
    pub fn succeeded(&mut self, attempt: &Attempt) {
        match attempt.counted {
            Counted::Device(nonce) => {
                self.devices.map.remove(&nonce);
            }
            Counted::Untrusted(address) => {
                self.addresses.take_back(&address);
            }
        }
        if attempt.known {
            self.accounts.map.remove(&attempt.account);
        } else {
            self.unknown.map.remove(&attempt.account);
        }
    }

    /// An admin gave the account a new password, or removed it: its count ends.
    pub fn reset(&mut self, account: &str) {
        self.accounts.map.remove(account);
        self.unknown.map.remove(account);
    }

    /// How many keys are counted (for `/metrics` and tests).
    #[cfg(test)]
    pub fn counted_keys(&self) -> usize {
        self.accounts.len() + self.unknown.len() + self.addresses.len() + self.devices.len()
    }
}

/// The key a client address is counted by: IPv4 as it is, IPv6 by its /64 (one host usually
/// holds a whole /64), IPv4-mapped IPv6 as IPv4.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The client's address: the connection's, unless the connection comes from one of
/// `trusted_proxies`; then the last address in `X-Forwarded-For` (all such headers, in order)
/// that is not a trusted proxy. A value that is not an address stops the walk there: the
/// connection's address is used (nothing a client wrote is taken on trust).
pub fn client_address(peer: SocketAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let direct = peer.ip().to_canonical();
    if !trusted_proxies.contains(&direct) {
        return direct;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            return direct;
        };
        let ip = ip.to_canonical();
        if !trusted_proxies.contains(&ip) {
            return ip;
        }
    }
    direct
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The key that signs and checks device cookies.
#[derive(Debug)]
pub struct DeviceKey(hmac::Key);

impl DeviceKey {
    /// Derived from the node's secret (one-way, domain-separated), so cookies outlive a
    /// restart and only this node can make them.
    pub fn derive(secret: &[u8]) -> DeviceKey {
        let prf = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let key = zeroize::Zeroizing::new(hmac::sign(&prf, DEVICE_KEY_LABEL).as_ref().to_vec());
        DeviceKey(hmac::Key::new(hmac::HMAC_SHA256, &key))
    }

    fn tag(&self, account: &str, issued_s: u64, nonce: &[u8; 16]) -> String {
        let msg = format!("{account}:{issued_s}:{}", hex::encode(nonce));
        hex::encode(&hmac::sign(&self.0, msg.as_bytes()).as_ref()[..16])
    }

    /// A new device cookie's value for `account` (`name:issued:nonce:tag`).
    pub fn issue(&self, account: &str, now_s: u64, rng: &mut impl CryptoRngCore) -> String {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        format!(
            "{account}:{now_s}:{}:{}",
            hex::encode(nonce),
            self.tag(account, now_s, &nonce)
        )
    }

    /// The nonce of a device cookie that this node issued for `account` and that is not too
    /// old; `None` for anything else.
    pub fn check(&self, value: &str, account: &str, now_s: u64) -> Option<[u8; 16]> {
        if value.len() > 200 {
            return None;
        }
        let mut parts = value.rsplitn(4, ':');
        let (tag, nonce, issued, name) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let issued: u64 = issued.parse().ok()?;
        let mut n = [0u8; 16];
        hex::decode_to_slice(nonce, &mut n).ok()?;
        let expected = self.tag(name, issued, &n);
        let fresh = now_s.saturating_sub(issued) < DEVICE_COOKIE_MAX_AGE.as_secs();
        (name == account && fresh && same(tag, &expected)).then_some(n)
    }
}

/// Equal without telling how much of it was (a token compared with what a client sent).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Guesses from untrusted clients are slowed per account whatever their addresses, in
    /// growing steps up to DELAY_MAX; the account holder's trusted device gets in meanwhile.
    #[test]
    fn untrusted_guesses_slow_down_and_a_trusted_device_is_never_held() {
        let mut g = LoginGuard::default();
        let t0 = Instant::now();
        let mut t = t0;
        let mut tried = 0u32;
        let mut last_wait = Duration::ZERO;
        // An attacker from a new address each time, retrying as soon as allowed, for an hour.
        while t < t0 + Duration::from_secs(3600) {
            let from = Client::Untrusted(IpAddr::from([10, 0, (tried / 250) as u8, tried as u8]));
            match g.attempt("anna", true, from, t) {
                Ok(_) => tried += 1,
                Err(wait) => {
                    assert!(wait <= DELAY_MAX && wait >= last_wait.min(DELAY_MAX) / 2);
                    last_wait = wait;
                    t += wait;
                }
            }
        }
        // 5 free, 2+4+...+512 s for 9 more, then one per 10 minutes.
        assert!((15..=20).contains(&tried), "{tried} guesses in an hour");
        let nonce = [7u8; 16];
        assert!(g.attempt("anna", true, Client::Device(nonce), t).is_ok());
        // The device has its own small budget.
        for _ in 1..DEVICE_FAILURES_MAX {
            assert!(g.attempt("anna", true, Client::Device(nonce), t).is_ok());
        }
        // Past its budget the device is slowed like anyone else: the account's wait applies
        // (the attacker's wait has just run out at `t`, so one more gets through).
        let _ = g.attempt("anna", true, Client::Device(nonce), t);
        assert!(
            g.attempt("anna", true, Client::Device(nonce), t).is_err(),
            "a device past its budget counts as untrusted"
        );
    }

    /// One address guessing many names is slowed after FREE_FAILURES_PER_ADDRESS; another
    /// address is not; a success takes its attempt back, so staff behind one address never
    /// slow each other by logging in.
    #[test]
    fn an_address_is_slowed_and_successes_take_their_attempt_back() {
        let mut g = LoginGuard::default();
        let t = Instant::now();
        let a = Client::Untrusted(ip("127.0.0.5"));
        for i in 0..FREE_FAILURES_PER_ADDRESS {
            assert!(g.attempt(&format!("u{i}"), false, a, t).is_ok(), "{i}");
        }
        let wait = g.attempt("anna", true, a, t).unwrap_err();
        assert_eq!(wait, DELAY_FIRST);
        assert!(
            g.attempt("anna", true, Client::Untrusted(ip("127.0.0.6")), t)
                .is_ok()
        );
        let mut g = LoginGuard::default();
        for i in 0..(FREE_FAILURES_PER_ADDRESS * 3) {
            let at = t + Duration::from_millis(u64::from(i));
            let ok = g.attempt("anna", true, a, at).unwrap();
            g.succeeded(&ok);
        }
        assert_eq!(g.counted_keys(), 0);
        // Forgotten after FORGET_AFTER.
        for _ in 0..FREE_FAILURES_PER_ACCOUNT + 1 {
            let _ = g.attempt("bo", true, a, t);
        }
        assert!(
            g.attempt("bo", true, a, t + Duration::from_secs(1))
                .is_err()
        );
        assert!(g.attempt("bo", true, a, t + FORGET_AFTER).is_ok());
    }

    /// A flood of made-up names cannot push an existing account's count out.
    #[test]
    fn made_up_names_never_evict_an_account() {
        let mut g = LoginGuard::default();
        let t = Instant::now();
        let far = |i: usize| {
            Client::Untrusted(IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
        };
        for i in 0..FREE_FAILURES_PER_ACCOUNT as usize {
            g.attempt("anna", true, far(i), t).unwrap();
        }
        for i in 0..(COUNTED_KEYS_MAX + 10) {
            let _ = g.attempt(&format!("x{i}"), false, far(i + 100), t);
        }
        assert!(g.unknown.len() <= COUNTED_KEYS_MAX && g.addresses.len() <= COUNTED_KEYS_MAX);
        assert!(
            g.attempt("anna", true, far(999_999), t).is_err(),
            "the account's count was wiped"
        );
        g.reset("anna");
        assert!(g.attempt("anna", true, far(999_998), t).is_ok());
    }

    #[test]
    fn waits_double_up_to_the_maximum() {
        assert_eq!(wait_after(4, 5), Duration::ZERO);
        assert_eq!(wait_after(5, 5), DELAY_FIRST);
        assert_eq!(wait_after(6, 5), DELAY_FIRST * 2);
        assert_eq!(wait_after(40, 5), DELAY_MAX);
        assert_eq!(wait_after(u32::MAX, 5), DELAY_MAX);
    }

    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        let proxy = ip("127.0.0.1");
        let peer = SocketAddr::new(proxy, 4000);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("3.3.3.3"));
        assert_eq!(client_address(peer, &h, &[]), proxy, "no proxy is trusted");
        assert_eq!(client_address(peer, &h, &[proxy]), ip("3.3.3.3"));
        assert_eq!(
            client_address(peer, &h, &[proxy, ip("3.3.3.3")]),
            ip("2.2.2.2"),
            "the last address no trusted proxy added"
        );
        let stranger = SocketAddr::new(ip("9.9.9.9"), 1);
        assert_eq!(client_address(stranger, &h, &[proxy]), ip("9.9.9.9"));
        let mut bad = HeaderMap::new();
        bad.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, nonsense"),
        );
        assert_eq!(client_address(peer, &bad, &[proxy]), proxy);
        let mut port = HeaderMap::new();
        port.insert(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::1]:443"),
        );
        assert_eq!(client_address(peer, &port, &[proxy]), ip("2001:db8::1"));
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn device_cookies_are_bound_to_their_account_and_age() {
        let key = DeviceKey::derive(&[1u8; 32]);
        let v = key.issue("anna", 1_000, &mut rand_core::OsRng);
        assert!(key.check(&v, "anna", 1_001).is_some());
        assert!(key.check(&v, "bo", 1_001).is_none(), "another account");
        assert!(
            key.check(&v, "anna", 1_000 + DEVICE_COOKIE_MAX_AGE.as_secs())
                .is_none(),
            "too old"
        );
        let other = DeviceKey::derive(&[2u8; 32]);
        assert!(other.check(&v, "anna", 1_001).is_none(), "another node's");
        let forged = v.replace("anna:1000", "anna:1001");
        assert!(key.check(&forged, "anna", 1_002).is_none());
        assert!(key.check("anna:1:zz:zz", "anna", 2).is_none());
        assert!(key.check(&"a".repeat(300), "anna", 2).is_none());
    }
}
