//! The staff of a running region: accounts ([`crate::users`]), sessions, the login guard
//! ([`crate::login`]) and the audit of failed logins, in one place that the editor and the
//! control channel share. So `spindel user reset-password` on a running node lifts the lock
//! and ends the account's sessions at once, as the editor's accounts page does.
//!
//! Sessions live in memory: a random token in a cookie, ended when idle for
//! [`SESSION_IDLE`], after [`SESSION_MAX_AGE`], at logout, when the account's password changes
//! or the account goes. One account holds at most [`SESSIONS_PER_ACCOUNT`] (its oldest ends
//! first), so no account can push the others out of [`SESSIONS_MAX`].
//!
//! Failed logins go to the audit trail aggregated: one line per account (or, for names no
//! account has, per client address) per [`FAILURE_WINDOW`], with the count and the addresses,
//! written when the window closes (checked every [`FAILURE_FLUSH_EVERY`]) or the node stops.
//! A stranger's guesses cannot push real events out of view.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::login::{Attempt, Client, DeviceKey, LoginGuard};
use crate::users::{AuditEntry, Password, StaffRole, UserError, UserInfo, Users, audit};

/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, used or not.
pub const SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at once; the oldest ends when one more starts.
pub const SESSIONS_MAX: usize = 1000;
/// Sessions one account holds at once (a laptop, a phone, a second browser...); its oldest
/// ends when it starts one more.
pub const SESSIONS_PER_ACCOUNT: usize = 5;
/// Password checks (argon2id, ~19 MiB each) running at once; more logins wait.
pub const LOGIN_CHECKS_MAX: usize = 2;
/// Failed logins of one account (or one address) in this window make one audit line.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How often closed windows are written.
pub const FAILURE_FLUSH_EVERY: Duration = Duration::from_secs(60);
/// Windows open at once; past it, failures go to one window for all the rest.
pub const FAILURE_WINDOWS_MAX: usize = 1000;
/// Addresses named in one window's line (more are counted, not named).
pub const FAILURE_ADDRESSES_NAMED: usize = 8;
/// Who did it, in the audit trail, when the command line changed an account.
pub const COMMAND_LINE: &str = crate::words::accounts::COMMAND_LINE;
/// The audit trail's name for failed logins with names no account has.
pub const UNKNOWN_ACCOUNT: &str = crate::words::accounts::UNKNOWN_ACCOUNT;
/// The sessions, so they outlive a restart (hashes of the tokens, 0600).
pub const SESSIONS_FILE: &str = "sessions.json";
/// Largest sessions file read.
pub const SESSIONS_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// How long a form's text is kept for its account after its session ended.
pub const DRAFT_KEEP: Duration = Duration::from_secs(24 * 60 * 60);
/// Ended sessions remembered (to know whose form a late submit is).
pub const ENDED_SESSIONS_MAX: usize = 1000;

/// A logged-in staff member.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: StaffRole,
    /// When the account's password was set at login: a new password (or a new account under
    /// the same name) ends the session.
    password_set_ms: u64,
    /// The password was a one-time one: only `/konto` is open.
    pub must_change: bool,
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
    /// The same two instants on the wall clock, for the sessions file.
    started_ms: u64,
    last_seen_ms: u64,
}

/// A session as `DIR/sessions.json` keeps it: the SHA-256 of its token, never the token.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSession {
    token_sha256: String,
    user: String,
    role: StaffRole,
    password_set_ms: u64,
    must_change: bool,
    csrf: String,
    started_ms: u64,
    last_seen_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsFile {
    sessions: Vec<StoredSession>,
}

/// What a person typed into a form when their session had ended: brought back, filled in,
/// after they log in again (`/utkast`).
#[derive(Debug, Clone)]
pub struct Draft {
    /// The form's address (`/ny/{kind}` or `/post/{id}/andra`).
    pub path: String,
    pub fields: HashMap<String, String>,
    saved: Instant,
}

/// What a failed login is counted under in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailKey {
    Account(String),
    Address(IpAddr),
    /// Past [`FAILURE_WINDOWS_MAX`].
    Rest,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    first_ms: u64,
    last_ms: u64,
    count: u64,
    addresses: BTreeSet<IpAddr>,
    more_addresses: bool,
}

impl Window {
    fn entry(&self, key: &FailKey) -> AuditEntry {
        let user = match key {
            FailKey::Account(a) => a.as_str(),
            FailKey::Address(_) | FailKey::Rest => UNKNOWN_ACCOUNT,
        };
        let mut e = AuditEntry::new(user, "login_failed", self.first_ms);
        let mut addresses: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        if self.more_addresses {
            addresses.push("…".into());
        }
        e.address = Some(addresses.join(", "));
        e.count = Some(self.count);
        e.until_ms = Some(self.last_ms);
        e
    }
}

/// Failed logins not yet written, by key.
#[derive(Debug, Default)]
struct FailureLog {
    windows: HashMap<FailKey, Window>,
}

impl FailureLog {
    /// Counts a failure; returns a window it closed, to be written.
    fn failed(
        &mut self,
        key: FailKey,
        address: IpAddr,
        now: Instant,
        now_ms: u64,
    ) -> Option<AuditEntry> {
        let key = if self.windows.contains_key(&key) || self.windows.len() < FAILURE_WINDOWS_MAX {
            key
        } else {
            FailKey::Rest
        };
        let mut closed = None;
        if let Some(w) = self.windows.get(&key)
            && now.saturating_duration_since(w.opened) >= FAILURE_WINDOW
        {
            closed = self.windows.remove(&key).map(|w| w.entry(&key));
        }
        let w = self.windows.entry(key).or_insert_with(|| Window {
            opened: now,
            first_ms: now_ms,
            last_ms: now_ms,
            count: 0,
            addresses: BTreeSet::new(),
            more_addresses: false,
        });
        w.count += 1;
        w.last_ms = now_ms;
        if w.addresses.len() < FAILURE_ADDRESSES_NAMED {
            w.addresses.insert(address);
        } else if !w.addresses.contains(&address) {
            w.more_addresses = true;
        }
        closed
    }

    /// Takes the windows that have closed by `now` (all of them when `all`).
    fn take(&mut self, now: Instant, all: bool) -> Vec<AuditEntry> {
        let closed: Vec<FailKey> = self
            .windows
            .iter()
            .filter(|(_, w)| all || now.saturating_duration_since(w.opened) >= FAILURE_WINDOW)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<AuditEntry> = closed
            .into_iter()
            .filter_map(|k| self.windows.remove(&k).map(|w| w.entry(&k)))
            .collect();
        out.sort_by_key(|e| e.time_ms);
        out
    }

    /// The windows still open, as they would be written now.
    fn open(&self) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = self.windows.iter().map(|(k, w)| w.entry(k)).collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.last_seen()));
        out
    }
}

impl AuditEntry {
    fn last_seen(&self) -> u64 {
        self.until_ms.unwrap_or(self.time_ms)
    }
}

/// How a login ended.
#[derive(Debug)]
pub enum LoginOutcome {
    /// In: the session token; a new device cookie's value for this browser.
    In {
        session: String,
        account: UserInfo,
        device_cookie: String,
    },
    /// Wrong name or password.
    Wrong,
    /// Tried too soon after failures: not before this long.
    Wait(Duration),
    /// The accounts file could not be read.
    Failed(UserError),
}

/// The staff side of a running node (see the module docs).
#[derive(Debug)]
pub struct Staff {
    dir: PathBuf,
    users: Users,
    /// Live sessions by the SHA-256 of their token.
    sessions: Mutex<HashMap<String, Session>>,
    /// Whether the sessions are kept in `DIR/sessions.json` (a running node), and whether
    /// the file is behind (a session's last use).
    persist: bool,
    sessions_dirty: std::sync::atomic::AtomicBool,
    /// Sessions that ended by time, by token hash: whose a late form is.
    ended: Mutex<HashMap<String, (String, Instant)>>,
    /// One form's text per account, kept while its holder logs in again.
    drafts: Mutex<HashMap<String, Draft>>,
    guard: Mutex<LoginGuard>,
    failures: Mutex<FailureLog>,
    device_key: DeviceKey,
    /// Password checks running at once ([`LOGIN_CHECKS_MAX`]).
    checks: tokio::sync::Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a session token is kept: its SHA-256 in hex (the file and the map never hold a token).
fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// 32 random bytes in hex: a session or CSRF token.
pub fn token() -> String {
    let mut b = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn now_s() -> u64 {
    crate::local::now_ms() / 1000
}

impl Staff {
    /// The staff of the node in `dir`, device cookies signed with a key derived from `secret`.
    pub fn new(dir: &Path, secret: &[u8]) -> Staff {
        let staff = Staff::with(dir, secret, true);
        staff.load_sessions();
        staff
    }

    fn with(dir: &Path, secret: &[u8], persist: bool) -> Staff {
        Staff {
            dir: dir.to_path_buf(),
            users: Users::new(dir),
            sessions: Mutex::new(HashMap::new()),
            persist,
            sessions_dirty: Default::default(),
            ended: Mutex::new(HashMap::new()),
            drafts: Mutex::new(HashMap::new()),
            guard: Mutex::new(LoginGuard::default()),
            failures: Mutex::new(FailureLog::default()),
            device_key: DeviceKey::derive(secret),
            checks: tokio::sync::Semaphore::new(LOGIN_CHECKS_MAX),
        }
    }

    /// The staff of a node that does not run (`spindel user ...` on its directory): account
    /// changes only; no login is checked here, so the device key is a random one.
    pub fn offline(dir: &Path) -> Staff {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        rand_core::OsRng.fill_bytes(secret.as_mut_slice());
        Staff::with(dir, secret.as_slice(), false)
    }

    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Appends to the audit trail; a failure is logged (the action itself stands).
    pub fn note(&self, entry: &AuditEntry) {
        if let Err(e) = audit(&self.dir, entry) {
            tracing::error!(error = %e, "cannot write the editor's audit trail");
        }
    }

    fn note_by(&self, by: &str, action: &str, detail: &str) {
        let mut e = AuditEntry::new(by, action, crate::local::now_ms());
        e.detail = Some(detail.to_string());
        self.note(&e);
    }

    /// The live session of `token` as of `now` (its idle time refreshed). A session whose
    /// account was removed, or got a new password, ends; a changed role is followed.
    pub fn session_at(&self, token: &str, now: Instant) -> Option<Session> {
        let key = token_hash(token);
        let mut sessions = lock(&self.sessions);
        let timed_out = sessions.get(&key).is_some_and(|s| {
            now.saturating_duration_since(s.last_seen) >= SESSION_IDLE
                || now.saturating_duration_since(s.started) >= SESSION_MAX_AGE
        });
        if timed_out && let Some(s) = sessions.remove(&key) {
            self.remember_ended(key.clone(), s.user, now);
            self.mark_dirty();
        }
        let s = sessions.get_mut(&key)?;
        match self.users.get(&s.user) {
            Ok(Some(account)) if account.password_set_ms == s.password_set_ms => {
                s.role = account.role;
                s.must_change = account.must_change;
                s.last_seen = now;
                s.last_seen_ms = crate::local::now_ms();
                self.mark_dirty();
                Some(s.clone())
            }
            _ => {
                sessions.remove(&key);
                self.mark_dirty();
                None
            }
        }
    }

    /// A new session for `account`; its own oldest ends beyond `SESSIONS_PER_ACCOUNT`, the
    /// oldest of all beyond `SESSIONS_MAX`. Returns the token for the cookie.
    pub fn start_session(&self, account: &UserInfo) -> String {
        let now = Instant::now();
        let now_ms = crate::local::now_ms();
        let t = token();
        {
            let mut sessions = lock(&self.sessions);
            let mut own: Vec<(Instant, String)> = sessions
                .iter()
                .filter(|(_, s)| s.user == account.user)
                .map(|(k, s)| (s.started, k.clone()))
                .collect();
            own.sort();
            let over = (own.len() + 1).saturating_sub(SESSIONS_PER_ACCOUNT);
            for (_, k) in own.into_iter().take(over) {
                sessions.remove(&k);
            }
            if sessions.len() >= SESSIONS_MAX {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    sessions.remove(&k);
                }
            }
            sessions.insert(
                token_hash(&t),
                Session {
                    user: account.user.clone(),
                    role: account.role,
                    password_set_ms: account.password_set_ms,
                    must_change: account.must_change,
                    csrf: token(),
                    started: now,
                    last_seen: now,
                    started_ms: now_ms,
                    last_seen_ms: now_ms,
                },
            );
        }
        self.changed();
        t
    }

    pub fn end_session(&self, token: &str) {
        lock(&self.sessions).remove(&token_hash(token));
        self.changed();
    }

    /// Ends every session of `user`.
    pub fn end_sessions_of(&self, user: &str) {
        lock(&self.sessions).retain(|_, s| s.user != user);
        self.changed();
    }

    fn remember_ended(&self, key: String, user: String, now: Instant) {
        let mut ended = lock(&self.ended);
        ended.retain(|_, (_, at)| now.saturating_duration_since(*at) < DRAFT_KEEP);
        if ended.len() >= ENDED_SESSIONS_MAX
            && let Some(k) = ended
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            ended.remove(&k);
        }
        ended.insert(key, (user, now));
    }

    /// The account whose session of `token` ended by time (idle, age, a restart that lost
    /// it): a form it sends is kept for that account.
    pub fn ended_session_user(&self, token: &str) -> Option<String> {
        let key = token_hash(token);
        let ended = lock(&self.ended);
        ended
            .get(&key)
            .filter(|(_, at)| at.elapsed() < DRAFT_KEEP)
            .map(|(u, _)| u.clone())
    }

    /// Keeps what `user` typed into the form at `path` (the latest one only).
    pub fn keep_draft(&self, user: &str, path: &str, mut fields: HashMap<String, String>) {
        fields.remove("csrf");
        fields.remove("action");
        lock(&self.drafts).insert(
            user.to_string(),
            Draft {
                path: path.to_string(),
                fields,
                saved: Instant::now(),
            },
        );
    }

    /// Whether `user` has a kept form waiting.
    pub fn has_draft(&self, user: &str) -> bool {
        lock(&self.drafts)
            .get(user)
            .is_some_and(|d| d.saved.elapsed() < DRAFT_KEEP)
    }

    /// Takes `user`'s kept form.
    pub fn take_draft(&self, user: &str) -> Option<Draft> {
        lock(&self.drafts)
            .remove(user)
            .filter(|d| d.saved.elapsed() < DRAFT_KEEP)
    }

    /// The sessions changed: the file follows now (never call with the sessions locked).
    fn changed(&self) {
        self.mark_dirty();
        self.save_sessions();
    }

    /// The file is behind; the next save writes it.
    fn mark_dirty(&self) {
        self.sessions_dirty
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes the sessions file if anything changed (the periodic tick and the stop call it
    /// for the sessions' last use); a failure is logged (sessions then end at a restart).
    pub fn save_sessions(&self) {
        if !self.persist
            || !self
                .sessions_dirty
                .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let file = SessionsFile {
            sessions: lock(&self.sessions)
                .iter()
                .map(|(k, s)| StoredSession {
                    token_sha256: k.clone(),
                    user: s.user.clone(),
                    role: s.role,
                    password_set_ms: s.password_set_ms,
                    must_change: s.must_change,
                    csrf: s.csrf.clone(),
                    started_ms: s.started_ms,
                    last_seen_ms: s.last_seen_ms,
                })
                .collect(),
        };
        if let Err(e) = crate::users::write_private(&self.dir, SESSIONS_FILE, &file) {
            tracing::warn!(error = %e, "cannot keep the editor's sessions; they end at a restart");
        }
    }

    /// Reads the sessions a previous run kept; those that timed out meanwhile are remembered
    /// as ended (their forms are still kept).
    fn load_sessions(&self) {
        let path = self.dir.join(SESSIONS_FILE);
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        if meta.len() > SESSIONS_FILE_BYTES_MAX {
            tracing::warn!(path = %path.display(), "the sessions file is over its limit; sessions start anew");
            return;
        }
        let file: SessionsFile = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the sessions file; sessions start anew");
                return;
            }
        };
        let (now, now_ms) = (Instant::now(), crate::local::now_ms());
        let ago = |ms: u64| Duration::from_millis(now_ms.saturating_sub(ms));
        let mut sessions = lock(&self.sessions);
        for st in file.sessions.into_iter().take(SESSIONS_MAX) {
            let (since_start, since_use) = (ago(st.started_ms), ago(st.last_seen_ms));
            let (Some(started), Some(last_seen)) =
                (now.checked_sub(since_start), now.checked_sub(since_use))
            else {
                continue;
            };
            if since_use >= SESSION_IDLE || since_start >= SESSION_MAX_AGE {
                self.remember_ended(st.token_sha256, st.user, now);
                continue;
            }
            sessions.insert(
                st.token_sha256,
                Session {
                    user: st.user,
                    role: st.role,
                    password_set_ms: st.password_set_ms,
                    must_change: st.must_change,
                    csrf: st.csrf,
                    started,
                    last_seen,
                    started_ms: st.started_ms,
                    last_seen_ms: st.last_seen_ms,
                },
            );
        }
    }

    /// Sessions of `user` now.
    pub fn sessions_of(&self, user: &str) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.user == user)
            .count()
    }

    /// A login attempt of `user` with `password` from `address`, with the device cookie the
    /// browser sent (if any). Slowed and audited as the module docs say; the argon2 check
    /// runs on the blocking pool, at most `LOGIN_CHECKS_MAX` at once.
    pub async fn login(
        &self,
        user: &str,
        password: String,
        address: IpAddr,
        device_cookie: Option<&str>,
    ) -> LoginOutcome {
        let now = Instant::now();
        let valid_name = crate::users::validate_user_name(user).is_ok();
        let known = valid_name && matches!(self.users.get(user), Ok(Some(_)));
        let client = match device_cookie.and_then(|c| self.device_key.check(c, user, now_s())) {
            Some(nonce) if known => Client::Device(nonce),
            _ => Client::Untrusted(address),
        };
        // A name no account can have is no account: counted as one name, never written at
        // its length.
        let counted = if valid_name { user } else { "" };
        let attempt: Attempt = match lock(&self.guard).attempt(counted, known, client, now) {
            Ok(a) => a,
            Err(wait) => {
                tracing::warn!(address = %address, wait_s = wait.as_secs(), "a login came before its wait was over");
                return LoginOutcome::Wait(wait);
            }
        };
        let Ok(_turn) = self.checks.acquire().await else {
            return LoginOutcome::Failed(UserError::Hash("the login checks stopped".into()));
        };
        let (users, name) = (self.users.clone(), user.to_string());
        let checked = tokio::task::spawn_blocking(move || {
            if !valid_name {
                return Err(UserError::WrongPassword);
            }
            users.verify(&name, &password)
        })
        .await
        .unwrap_or_else(|e| Err(UserError::Hash(e.to_string())));
        match checked {
            Ok(account) => {
                lock(&self.guard).succeeded(&attempt);
                let mut e = AuditEntry::new(&account.user, "login", crate::local::now_ms());
                e.address = Some(address.to_string());
                if matches!(client, Client::Device(_)) {
                    e.detail = Some(crate::words::accounts::KNOWN_DEVICE.into());
                }
                self.note(&e);
                tracing::info!(user = %account.user, address = %address, "staff login");
                let session = self.start_session(&account);
                let device_cookie =
                    self.device_key
                        .issue(&account.user, now_s(), &mut rand_core::OsRng);
                LoginOutcome::In {
                    session,
                    account,
                    device_cookie,
                }
            }
            Err(UserError::WrongPassword) => {
                let key = if known {
                    FailKey::Account(user.to_string())
                } else {
                    FailKey::Address(crate::login::address_key(address))
                };
                let closed = lock(&self.failures).failed(key, address, now, crate::local::now_ms());
                if let Some(e) = closed {
                    self.note(&e);
                }
                LoginOutcome::Wrong
            }
            Err(e) => LoginOutcome::Failed(e),
        }
    }

    /// Writes the failed-login windows that have closed (all of them when `all`, at stop).
    pub fn flush_failures(&self, all: bool) {
        let closed = lock(&self.failures).take(Instant::now(), all);
        for e in &closed {
            self.note(e);
        }
    }

    /// Failed-login windows not written yet, newest first (the log page shows them on top).
    pub fn open_failures(&self) -> Vec<AuditEntry> {
        lock(&self.failures).open()
    }

    /// Adds an account, with `password` chosen by its holder or, when `None`, a one-time one
    /// made here (returned). Audited as done `by`.
    pub fn add(
        &self,
        name: &str,
        role: StaffRole,
        password: Option<&str>,
        by: &str,
    ) -> Result<(UserInfo, Option<String>), UserError> {
        let made = password.is_none().then(new_password);
        let pw = password_of(password, &made);
        let info = self.users.add(
            name,
            role,
            pw,
            &mut rand_core::OsRng,
            crate::local::now_ms(),
        )?;
        // A new account under a name that failed before starts with a clean count.
        lock(&self.guard).reset(name);
        self.note_by(by, "user_add", name);
        Ok((info, made))
    }

    /// Removes an account: its sessions end and its count goes at once.
    pub fn remove(&self, name: &str, by: &str) -> Result<(), UserError> {
        self.users.remove(name)?;
        self.end_sessions_of(name);
        lock(&self.guard).reset(name);
        self.note_by(by, "user_remove", name);
        Ok(())
    }

    /// A new password for `name` (a one-time one made here when `None`): its sessions end and
    /// its lock lifts at once.
    pub fn reset_password(
        &self,
        name: &str,
        password: Option<&str>,
        by: &str,
    ) -> Result<(UserInfo, Option<String>), UserError> {
        let made = password.is_none().then(new_password);
        let pw = password_of(password, &made);
        let info =
            self.users
                .set_password(name, pw, &mut rand_core::OsRng, crate::local::now_ms())?;
        self.end_sessions_of(name);
        lock(&self.guard).reset(name);
        self.note_by(by, "password_reset", name);
        Ok((info, made))
    }

    /// A staff member sets their own password (`/konto`): the current one must be right
    /// (a failure counts as a failed login of the account) and the new one differ. Their other
    /// sessions end; the caller starts a new one for this browser.
    pub async fn change_own_password(
        &self,
        user: &str,
        current: String,
        new: String,
        address: IpAddr,
    ) -> Result<UserInfo, UserError> {
        crate::users::check_new_password(&new)?;
        if current == new {
            return Err(UserError::SamePassword);
        }
        let now = Instant::now();
        let attempt = lock(&self.guard)
            .attempt(user, true, Client::Untrusted(address), now)
            .map_err(UserError::TooSoon)?;
        let Ok(_turn) = self.checks.acquire().await else {
            return Err(UserError::Hash("the login checks stopped".into()));
        };
        let (users, name) = (self.users.clone(), user.to_string());
        let changed = tokio::task::spawn_blocking(move || {
            match users.verify(&name, &current) {
                Ok(_) => {}
                Err(UserError::WrongPassword) => return Err(UserError::WrongCurrentPassword),
                Err(e) => return Err(e),
            }
            users.set_password(
                &name,
                Password::Chosen(&new),
                &mut rand_core::OsRng,
                crate::local::now_ms(),
            )
        })
        .await
        .unwrap_or_else(|e| Err(UserError::Hash(e.to_string())))?;
        lock(&self.guard).succeeded(&attempt);
        self.end_sessions_of(user);
        let mut e = AuditEntry::new(user, "password_changed", crate::local::now_ms());
        e.address = Some(address.to_string());
        self.note(&e);
        Ok(changed)
    }
}

fn new_password() -> String {
    crate::users::generate_password(&mut rand_core::OsRng)
}

/// The one-time password `made` here, else the one `given` (chosen by its holder).
fn password_of<'a>(given: Option<&'a str>, made: &'a Option<String>) -> Password<'a> {
    match made {
        Some(m) => Password::OneTime(m),
        None => Password::Chosen(given.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(user: &str) -> UserInfo {
        UserInfo {
            user: user.into(),
            role: StaffRole::Redaktor,
            created_ms: 1,
            password_set_ms: 1,
            must_change: false,
        }
    }

    /// One account logging in again and again ends its own oldest sessions, never another's.
    #[test]
    fn one_account_cannot_push_others_out() {
        let dir = tempfile::tempdir().unwrap();
        let staff = Staff::with(dir.path(), &[3u8; 32], false);
        let anna = staff.start_session(&info("anna"));
        let first_bo = staff.start_session(&info("bo"));
        for _ in 0..(SESSIONS_MAX * 2) {
            staff.start_session(&info("bo"));
        }
        assert_eq!(staff.sessions_of("bo"), SESSIONS_PER_ACCOUNT);
        assert_eq!(staff.sessions_of("anna"), 1);
        let sessions = lock(&staff.sessions);
        assert!(sessions.contains_key(&token_hash(&anna)));
        assert!(
            !sessions.contains_key(&token_hash(&first_bo)),
            "the oldest was kept"
        );
    }

    /// Failures make one line per account (or address) per window, with the count.
    #[test]
    fn failed_logins_are_aggregated_per_window() {
        let mut log = FailureLog::default();
        let t = Instant::now();
        let a: IpAddr = [127, 0, 0, 5].into();
        let b: IpAddr = [127, 0, 0, 6].into();
        for i in 0..37 {
            let from = if i % 2 == 0 { a } else { b };
            assert!(
                log.failed(FailKey::Account("anna".into()), from, t, 1000 + i)
                    .is_none()
            );
        }
        for i in 0..20 {
            log.failed(FailKey::Address(a), a, t, 2000 + i);
        }
        assert!(
            log.take(t, false).is_empty(),
            "a window open is not written"
        );
        let closed = log.failed(FailKey::Account("anna".into()), a, t + FAILURE_WINDOW, 9000);
        let e = closed.unwrap();
        assert_eq!(
            (e.user.as_str(), e.count, e.time_ms, e.until_ms),
            ("anna", Some(37), 1000, Some(1036))
        );
        assert_eq!(e.address.as_deref(), Some("127.0.0.5, 127.0.0.6"));
        let rest = log.take(t + FAILURE_WINDOW, false);
        assert_eq!(rest.len(), 1);
        assert_eq!(
            (rest[0].user.as_str(), rest[0].count),
            (UNKNOWN_ACCOUNT, Some(20))
        );
        assert_eq!(
            log.take(t, true).len(),
            1,
            "the window anna's last failure opened"
        );
        // Bounded.
        for i in 0..(FAILURE_WINDOWS_MAX as u32 + 50) {
            log.failed(FailKey::Address(IpAddr::from(i.to_be_bytes())), a, t, 1);
        }
        assert!(log.windows.len() <= FAILURE_WINDOWS_MAX + 1);
    }
}
