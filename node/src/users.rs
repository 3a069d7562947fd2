//! The staff of a region's editor ("Redaktionen"): accounts with argon2id password hashes, and
//! the local audit trail of what each did.
//!
//! Both live in the data directory and are never replicated (they are personal data about the
//! staff): `DIR/users.json` (mode 0600, replaced whole: a new file is written, synced and
//! renamed over the old, under an exclusive lock on `DIR/users.lock`) and `DIR/audit.jsonl`
//! (mode 0600, one JSON object a line, appended and synced). A password is never stored, logged
//! or kept beyond the call that hashes or checks it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

use crate::words::accounts::{ADMIN_ROLE, EDITOR_ROLE};

/// The accounts.
pub const USERS_FILE: &str = "users.json";
/// Held exclusively while the accounts are changed (the CLI and a running editor may both).
pub const USERS_LOCK: &str = "users.lock";
/// What staff did in the editor, a JSON object a line.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// Largest accounts file read.
pub const USERS_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Accounts a node holds at most.
pub const USERS_MAX: usize = 200;
/// Shortest password a person may choose.
pub const PASSWORD_CHARS_MIN: usize = 12;
/// Longest password checked (argon2 takes any length; a megabyte of it is only work).
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Characters of a generated one-time password (from `PASSWORD_ALPHABET`: about 119 bits).
pub const GENERATED_PASSWORD_CHARS: usize = 24;
/// No 0/O, 1/l/I: a generated password is read off a screen and typed.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Longest audit line read back.
const AUDIT_LINE_BYTES_MAX: usize = 4096;

/// What a staff member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    /// Publishes, edits and deletes the region's records.
    Redaktor,
    /// Also manages the accounts and reads the audit trail.
    Admin,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Redaktor => "redaktor",
            StaffRole::Admin => "admin",
        }
    }

    /// How the editor names the role.
    pub fn label_sv(self) -> &'static str {
        match self {
            StaffRole::Redaktor => EDITOR_ROLE,
            StaffRole::Admin => ADMIN_ROLE,
        }
    }
}

impl std::str::FromStr for StaffRole {
    type Err = UserError;

    fn from_str(s: &str) -> Result<StaffRole, UserError> {
        match s {
            "redaktor" | EDITOR_ROLE => Ok(StaffRole::Redaktor),
            "admin" => Ok(StaffRole::Admin),
            other => Err(UserError::BadRole(other.to_string())),
        }
    }
}

/// One account as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Account {
    name: String,
    role: StaffRole,
    /// argon2id in PHC form (`$argon2id$v=19$m=...`).
    hash: String,
    created_ms: u64,
    password_set_ms: u64,
    /// The password was made by the system (a new account or a reset without a chosen one):
    /// it only lets its holder choose their own (`/konto`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    must_change: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    users: Vec<Account>,
}

/// An account as lists show it (never its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserInfo {
    pub user: String,
    pub role: StaffRole,
    pub created_ms: u64,
    pub password_set_ms: u64,
    /// The password is a one-time one: the holder must choose their own before anything else.
    pub must_change: bool,
}

/// Why an account operation failed (one line, naming the account or the file).
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error(
        "user name {0:?}: 1-32 characters, lowercase letters a-z, digits, '.', '_' and '-', starting with a letter"
    )]
    BadName(String),
    #[error("role {0:?}: redaktor or admin")]
    BadRole(String),
    #[error("user {0:?} exists already")]
    Exists(String),
    #[error("no user {0:?}")]
    Unknown(String),
    #[error("the password must be at least {PASSWORD_CHARS_MIN} characters")]
    ShortPassword,
    #[error("the password is over {PASSWORD_BYTES_MAX} bytes")]
    LongPassword,
    #[error("wrong user name or password")]
    WrongPassword,
    #[error("{USERS_MAX} users already; remove one first")]
    TooMany,
    #[error("the last admin cannot be removed or made a redaktor; add another admin first")]
    LastAdmin,
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("hashing the password failed: {0}")]
    Hash(String),
    #[error(
        "{path}: cannot give it to the data directory's owner ({error}); run the command as that user (sudo -u spindel spindel user ...)"
    )]
    Owner {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    #[error("too many wrong passwords; try again in {} s", .0.as_secs().max(1))]
    TooSoon(std::time::Duration),
    #[error("the new password must differ from the current one")]
    SamePassword,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UserError + '_ {
    move |error| UserError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Gives a file this command created in `dir` to the directory's owner. A command run as root
/// on a node's directory (owned by the service's user) must not leave files the node cannot
/// read; anyone else creates files as the owner already, or fails with the error that says so.
fn own_like_dir(file: &File, path: &Path, dir: &Path) -> Result<(), UserError> {
    use std::os::unix::fs::MetadataExt;
    let owner = fs::metadata(dir).map_err(io(dir))?;
    let made = file.metadata().map_err(io(path))?;
    if made.uid() == owner.uid() && made.gid() == owner.gid() {
        return Ok(());
    }
    let uid = rustix::fs::Uid::from_raw(owner.uid());
    let gid = rustix::fs::Gid::from_raw(owner.gid());
    rustix::fs::fchown(file, Some(uid), Some(gid)).map_err(|e| UserError::Owner {
        path: path.to_path_buf(),
        error: e.into(),
    })
}

/// Writes `value` as JSON to `dir/name`, 0600, whole (a new file synced and renamed over the
/// old), owned like the directory.
pub fn write_private<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), UserError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.new"));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        own_like_dir(&f, &tmp, dir)?;
        let text = serde_json::to_vec(value).map_err(|e| UserError::Corrupt {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io(&path))
}

/// A user name: 1-32 of `a-z 0-9 . _ -`, starting with a letter.
pub fn validate_user_name(name: &str) -> Result<(), UserError> {
    let ok = (1..=32).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(UserError::BadName(name.chars().take(40).collect()))
    }
}

/// A password a person chose: long enough, not absurdly long.
pub fn check_new_password(password: &str) -> Result<(), UserError> {
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(UserError::LongPassword);
    }
    if password.chars().count() < PASSWORD_CHARS_MIN {
        return Err(UserError::ShortPassword);
    }
    Ok(())
}

/// A one-time password for a new account or a reset.
pub fn generate_password(rng: &mut impl CryptoRngCore) -> String {
    (0..GENERATED_PASSWORD_CHARS)
        .map(|_| {
            // Rejection sampling: no bias toward the alphabet's first letters.
            let n = PASSWORD_ALPHABET.len() as u32;
            let zone = u32::MAX - (u32::MAX % n);
            loop {
                let v = rng.next_u32();
                if v < zone {
                    return PASSWORD_ALPHABET[(v % n) as usize] as char;
                }
            }
        })
        .collect()
}

/// A new password and who made it.
#[derive(Debug, Clone, Copy)]
pub enum Password<'a> {
    /// Typed by its holder (`--password-stdin`, `/konto`).
    Chosen(&'a str),
    /// Made by the system ([`generate_password`]) and shown to someone: good for one thing
    /// only, choosing a new one.
    OneTime(&'a str),
}

impl<'a> Password<'a> {
    fn parts(self) -> (&'a str, bool) {
        match self {
            Password::Chosen(p) => (p, false),
            Password::OneTime(p) => (p, true),
        }
    }
}

fn hash_password(password: &str, rng: &mut impl CryptoRngCore) -> Result<String, UserError> {
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| UserError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// The accounts of the node in `dir`.
#[derive(Debug, Clone)]
pub struct Users {
    dir: PathBuf,
}

impl Users {
    pub fn new(dir: &Path) -> Users {
        Users {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(USERS_FILE)
    }

    fn read(&self) -> Result<AccountsFile, UserError> {
        let path = self.path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AccountsFile::default());
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let len = file.metadata().map_err(io(&path))?.len();
        if len > USERS_FILE_BYTES_MAX {
            return Err(UserError::Corrupt {
                path,
                reason: format!("{len} bytes, over the limit of {USERS_FILE_BYTES_MAX}"),
            });
        }
        let accounts: AccountsFile =
            serde_json::from_reader(BufReader::new(file)).map_err(|e| UserError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(accounts)
    }

    /// Changes the accounts under the lock: `change` edits them; the file is replaced whole.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Vec<Account>) -> Result<T, UserError>,
    ) -> Result<T, UserError> {
        let lock_path = self.dir.join(USERS_LOCK);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        own_like_dir(&lock, &lock_path, &self.dir)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(&lock_path)(e.into()))?;
        let mut accounts = self.read()?;
        let out = change(&mut accounts.users)?;
        let path = self.path();
        let tmp = self.dir.join(format!("{USERS_FILE}.new"));
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            own_like_dir(&f, &tmp, &self.dir)?;
            let text = serde_json::to_vec_pretty(&accounts).map_err(|e| UserError::Corrupt {
                path: tmp.clone(),
                reason: e.to_string(),
            })?;
            f.write_all(&text).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        drop(lock);
        Ok(out)
    }

    /// Adds an account with `password`: `Chosen` by its holder, or `OneTime` (made by the
    /// system: it only opens `/konto`).
    pub fn add(
        &self,
        name: &str,
        role: StaffRole,
        password: Password<'_>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<UserInfo, UserError> {
        let (password, must_change) = password.parts();
        validate_user_name(name)?;
        check_new_password(password)?;
        let hash = hash_password(password, rng)?;
        self.change(|users| {
            if users.iter().any(|u| u.name == name) {
                return Err(UserError::Exists(name.to_string()));
            }
            if users.len() >= USERS_MAX {
                return Err(UserError::TooMany);
            }
            let account = Account {
                name: name.to_string(),
                role,
                hash,
                created_ms: now_ms,
                password_set_ms: now_ms,
                must_change,
            };
            let info = info(&account);
            users.push(account);
            Ok(info)
        })
    }

    /// Removes an account (never the last admin).
    pub fn remove(&self, name: &str) -> Result<(), UserError> {
        self.change(|users| {
            let at = users
                .iter()
                .position(|u| u.name == name)
                .ok_or_else(|| UserError::Unknown(name.to_string()))?;
            let admins = users.iter().filter(|u| u.role == StaffRole::Admin).count();
            if users[at].role == StaffRole::Admin && admins == 1 {
                return Err(UserError::LastAdmin);
            }
            users.remove(at);
            Ok(())
        })
    }

    /// Sets a new password (the old one stops working at once).
    pub fn set_password(
        &self,
        name: &str,
        password: Password<'_>,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<UserInfo, UserError> {
        let (password, must_change) = password.parts();
        check_new_password(password)?;
        let hash = hash_password(password, rng)?;
        self.change(|users| {
            let u = users
                .iter_mut()
                .find(|u| u.name == name)
                .ok_or_else(|| UserError::Unknown(name.to_string()))?;
            u.hash = hash;
            // Never the same instant twice: sessions are bound to it.
            u.password_set_ms = now_ms.max(u.password_set_ms + 1);
            u.must_change = must_change;
            Ok(info(u))
        })
    }

    /// Every account, by name.
    pub fn list(&self) -> Result<Vec<UserInfo>, UserError> {
        let mut out: Vec<UserInfo> = self.read()?.users.iter().map(info).collect();
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }

    /// Checks a password (argon2id, a few tens of milliseconds: run it off the async threads).
    /// An unknown user costs a hash too, so timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Result<UserInfo, UserError> {
        if password.len() > PASSWORD_BYTES_MAX {
            return Err(UserError::WrongPassword);
        }
        let accounts = self.read()?;
        let found = accounts.users.iter().find(|u| u.name == name);
        // An unknown name is checked against a hash made once, so it costs one argon2 run
        // like a known one.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let phc = match found {
            Some(u) => u.hash.clone(),
            None => match DUMMY.get() {
                Some(h) => h.clone(),
                None => {
                    let h = hash_password("timing", &mut rand_core::OsRng)?;
                    DUMMY.get_or_init(|| h).clone()
                }
            },
        };
        let parsed = PasswordHash::new(&phc).map_err(|e| UserError::Corrupt {
            path: self.path(),
            reason: format!("the hash of {name:?}: {e}"),
        })?;
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match found {
            Some(u) if ok => Ok(info(u)),
            _ => Err(UserError::WrongPassword),
        }
    }

    /// The account `name`, if it exists (a session checks its user still does).
    pub fn get(&self, name: &str) -> Result<Option<UserInfo>, UserError> {
        Ok(self.read()?.users.iter().find(|u| u.name == name).map(info))
    }
}

/// The accounts file of `dir` as it is on disk (a backup takes it whole), or `None` when there
/// is none. A file over [`USERS_FILE_BYTES_MAX`] is refused, as every reader refuses it.
pub fn accounts_file_bytes(dir: &Path) -> Result<Option<Vec<u8>>, UserError> {
    use std::io::Read;
    let path = dir.join(USERS_FILE);
    // The file is replaced by a rename: an open file is one whole version of it.
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(USERS_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io(&path))?;
    if bytes.len() as u64 > USERS_FILE_BYTES_MAX {
        return Err(UserError::Corrupt {
            path,
            reason: format!("over the limit of {USERS_FILE_BYTES_MAX} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// Why the bytes of an accounts file (one from a backup) are not accounts this version reads.
#[derive(Debug, thiserror::Error)]
pub enum AccountsFileError {
    #[error("{0} bytes, over the limit of {USERS_FILE_BYTES_MAX}")]
    TooLarge(usize),
    #[error("not an accounts file: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("more than {USERS_MAX} accounts")]
    TooMany,
    #[error(transparent)]
    Name(#[from] UserError),
    #[error("the hash of {name:?}: {error}")]
    Hash {
        name: String,
        error: argon2::password_hash::Error,
    },
}

/// Checks the bytes of an accounts file (one from a backup) before it is written: at most
/// [`USERS_FILE_BYTES_MAX`], and accounts as this version reads them. Returns how many.
pub fn check_accounts_file(bytes: &[u8]) -> Result<usize, AccountsFileError> {
    if bytes.len() as u64 > USERS_FILE_BYTES_MAX {
        return Err(AccountsFileError::TooLarge(bytes.len()));
    }
    let accounts: AccountsFile = serde_json::from_slice(bytes)?;
    if accounts.users.len() > USERS_MAX {
        return Err(AccountsFileError::TooMany);
    }
    for a in &accounts.users {
        validate_user_name(&a.name)?;
        PasswordHash::new(&a.hash).map_err(|error| AccountsFileError::Hash {
            name: a.name.clone(),
            error,
        })?;
    }
    Ok(accounts.users.len())
}

fn info(a: &Account) -> UserInfo {
    UserInfo {
        user: a.name.clone(),
        role: a.role,
        created_ms: a.created_ms,
        password_set_ms: a.password_set_ms,
        must_change: a.must_change,
    }
}

/// One line of the audit trail: who did what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time_ms: u64,
    pub user: String,
    /// `publish`, `edit`, `delete`, `import`, `erase_on_request`, `login`, `login_failed`,
    /// `logout`, `user_add`, `user_remove`, `password_reset`, `endorse`, `revoke`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// A short note (the account an admin changed, the number of records imported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The client's address (logins; failed logins: the addresses of the window, comma
    /// separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Failed logins: how many in the window from `time_ms` to `until_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// An edit: the fields it changed, by the record's JSON names (`summary`, `sroi.ratio`);
    /// names only, never values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl AuditEntry {
    /// An entry of `user` doing `action` now, with nothing else said.
    pub fn new(user: &str, action: &str, time_ms: u64) -> AuditEntry {
        AuditEntry {
            time_ms,
            user: user.to_string(),
            action: action.to_string(),
            kind: None,
            record_id: None,
            seq: None,
            detail: None,
            address: None,
            count: None,
            until_ms: None,
            fields: Vec::new(),
        }
    }
}

/// Appends `entry` to the audit trail in `dir`, synced.
pub fn audit(dir: &Path, entry: &AuditEntry) -> Result<(), UserError> {
    let path = dir.join(AUDIT_FILE);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    own_like_dir(&f, &path, dir)?;
    let mut line = serde_json::to_vec(entry).map_err(|e| UserError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    f.write_all(&line).map_err(io(&path))?;
    f.sync_data().map_err(io(&path))
}

/// Bytes of the audit trail one page reads at most, whatever the filter: a filter that
/// matches little stops there and offers to read on.
pub const AUDIT_SCAN_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// Bytes read from the end at a time.
const AUDIT_BLOCK_BYTES: u64 = 64 * 1024;

/// A page of the audit trail, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Where the next (older) page starts reading back from, if anything is left.
    pub older: Option<u64>,
}

/// Entries of the audit trail of `dir` that `keep` keeps, newest first, read back from byte
/// `before` (the end when `None`): at most `limit`, and at most [`AUDIT_SCAN_BYTES_MAX`]
/// read. A line that cannot be read (cut by a crash, over the line limit) is skipped.
pub fn read_audit_page(
    dir: &Path,
    before: Option<u64>,
    limit: usize,
    keep: impl Fn(&AuditEntry) -> bool,
) -> Result<AuditPage, UserError> {
    use std::io::{Seek, SeekFrom};
    let path = dir.join(AUDIT_FILE);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AuditPage::default()),
        Err(e) => return Err(io(&path)(e)),
    };
    let len = file.metadata().map_err(io(&path))?.len();
    let mut pos = before.unwrap_or(len).min(len);
    let stop_at = pos.saturating_sub(AUDIT_SCAN_BYTES_MAX);
    let mut page = AuditPage::default();
    // Bytes from `pos` up to the first line end after it: the end of a line whose start is
    // in an earlier block.
    let mut tail: Vec<u8> = Vec::new();
    // The line being read is over the limit: its start is dropped when found.
    let mut overlong = false;
    loop {
        if pos == 0 {
            if !tail.is_empty() && !overlong {
                take_line(&tail, &keep, &mut page.entries);
            }
            return Ok(page);
        }
        if pos <= stop_at || page.entries.len() >= limit {
            page.older = Some(pos + tail.len() as u64);
            page.entries.truncate(limit);
            return Ok(page);
        }
        let start = pos.saturating_sub(AUDIT_BLOCK_BYTES);
        let mut buf = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start)).map_err(io(&path))?;
        std::io::Read::read_exact(&mut file, &mut buf).map_err(io(&path))?;
        buf.extend_from_slice(&tail);
        let mut line_end = buf.len();
        let mut i = buf.len();
        while i > 0 {
            i -= 1;
            if buf[i] != b'\n' {
                continue;
            }
            if !overlong && page.entries.len() < limit {
                let at_entries = page.entries.len();
                take_line(&buf[i + 1..line_end], &keep, &mut page.entries);
                if page.entries.len() == limit && at_entries < limit {
                    // The next page starts right before this line.
                    page.older = Some(start + i as u64 + 1);
                    return Ok(page);
                }
            }
            overlong = false;
            line_end = i;
        }
        tail = buf[..line_end].to_vec();
        if tail.len() > AUDIT_LINE_BYTES_MAX {
            tail.clear();
            overlong = true;
        }
        pos = start;
    }
}

fn take_line(line: &[u8], keep: &impl Fn(&AuditEntry) -> bool, out: &mut Vec<AuditEntry>) {
    if line.is_empty() || line.len() > AUDIT_LINE_BYTES_MAX {
        return;
    }
    if let Ok(e) = serde_json::from_slice::<AuditEntry>(line)
        && keep(&e)
    {
        out.push(e);
    }
}

/// The audit trail of `dir`, oldest first; the last `limit` entries.
pub fn read_audit(dir: &Path, limit: usize) -> Result<Vec<AuditEntry>, UserError> {
    let mut page = read_audit_page(dir, None, limit, |_| true)?;
    page.entries.reverse();
    Ok(page.entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn accounts_are_hashed_with_argon2id_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::new(dir.path());
        let pw = generate_password(&mut rand_core::OsRng);
        assert_eq!(pw.chars().count(), GENERATED_PASSWORD_CHARS);
        users
            .add(
                "anna",
                StaffRole::Admin,
                Password::OneTime(&pw),
                &mut rand_core::OsRng,
                1,
            )
            .unwrap();
        let text = fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(text.contains("$argon2id$v=19$"), "{text}");
        assert!(!text.contains(&pw), "the password is stored");
        let mode = fs::metadata(dir.path().join(USERS_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(users.verify("anna", &pw).unwrap().role, StaffRole::Admin);
        assert!(matches!(
            users.verify("anna", "fel lösenord här"),
            Err(UserError::WrongPassword)
        ));
        assert!(matches!(
            users.verify("okand", &pw),
            Err(UserError::WrongPassword)
        ));
        users
            .set_password(
                "anna",
                Password::Chosen("ett nytt långt lösenord"),
                &mut rand_core::OsRng,
                2,
            )
            .unwrap();
        assert!(users.verify("anna", &pw).is_err(), "the old password works");
        users.verify("anna", "ett nytt långt lösenord").unwrap();
    }

    #[test]
    fn bad_names_short_passwords_duplicates_and_the_last_admin_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::new(dir.path());
        let pw = "tolv tecken minst";
        let add = |n: &str, r| users.add(n, r, Password::Chosen(pw), &mut rand_core::OsRng, 1);
        for bad in ["", "Anna", "9anna", "anna lind", "å", &"a".repeat(33)] {
            assert!(
                matches!(add(bad, StaffRole::Redaktor), Err(UserError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            users.add(
                "anna",
                StaffRole::Admin,
                Password::Chosen("kort"),
                &mut rand_core::OsRng,
                1
            ),
            Err(UserError::ShortPassword)
        ));
        assert!(matches!(
            users.add(
                "anna",
                StaffRole::Admin,
                Password::Chosen(&"x".repeat(PASSWORD_BYTES_MAX + 1)),
                &mut rand_core::OsRng,
                1
            ),
            Err(UserError::LongPassword)
        ));
        add("anna", StaffRole::Admin).unwrap();
        assert!(matches!(
            add("anna", StaffRole::Redaktor),
            Err(UserError::Exists(_))
        ));
        add("bo.ek", StaffRole::Redaktor).unwrap();
        assert!(matches!(users.remove("anna"), Err(UserError::LastAdmin)));
        users.remove("bo.ek").unwrap();
        assert!(matches!(users.remove("bo.ek"), Err(UserError::Unknown(_))));
        assert_eq!(users.list().unwrap().len(), 1);
        assert!(!dir.path().join(format!("{USERS_FILE}.new")).exists());
    }

    #[test]
    fn the_audit_trail_keeps_the_last_entries_and_skips_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            let mut e = AuditEntry::new("anna", "publish", i);
            e.seq = Some(i);
            audit(dir.path(), &e).unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(AUDIT_FILE))
            .unwrap();
        f.write_all(b"{\"time_ms\":9,\"us").unwrap();
        let last = read_audit(dir.path(), 3).unwrap();
        assert_eq!(
            last.iter().map(|e| e.time_ms).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }

    /// Pages go back through the whole trail, newest first, filtered; every entry is on
    /// exactly one page whatever the block boundaries; an over-long line is skipped whole.
    #[test]
    fn audit_pages_cover_the_whole_trail_once() {
        let dir = tempfile::tempdir().unwrap();
        let n = 3000u64;
        for i in 0..n {
            let user = if i % 3 == 0 { "bo" } else { "anna" };
            let mut e = AuditEntry::new(user, if i % 2 == 0 { "publish" } else { "login" }, i);
            // Lines of varying length, so they straddle the 64 KiB blocks.
            e.detail = Some("x".repeat((i % 97) as usize));
            if i == 1500 {
                e.detail = Some("y".repeat(AUDIT_LINE_BYTES_MAX + 10));
            }
            audit(dir.path(), &e).unwrap();
        }
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = read_audit_page(dir.path(), before, 100, |_| true).unwrap();
            assert!(page.entries.len() <= 100);
            seen.extend(page.entries.iter().map(|e| e.time_ms));
            match page.older {
                Some(o) => before = Some(o),
                None => break,
            }
        }
        let expected: Vec<u64> = (0..n).rev().filter(|i| *i != 1500).collect();
        assert_eq!(seen, expected);
        // Filtered: bo's logins only.
        let page = read_audit_page(dir.path(), None, 5, |e| {
            e.user == "bo" && e.action == "login"
        })
        .unwrap();
        let times: Vec<u64> = page.entries.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, [2997, 2991, 2985, 2979, 2973]);
    }

    /// A filter that matches nothing reads at most AUDIT_SCAN_BYTES_MAX and offers to go on.
    #[test]
    fn an_audit_page_reads_a_bounded_amount() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join(AUDIT_FILE))
            .unwrap();
        let mut line = serde_json::to_vec(&AuditEntry::new("anna", "login", 1)).unwrap();
        line.push(b'\n');
        let lines = (AUDIT_SCAN_BYTES_MAX as usize / line.len()) * 2;
        f.write_all(&line.repeat(lines)).unwrap();
        let page = read_audit_page(dir.path(), None, 10, |e| e.user == "nobody").unwrap();
        assert!(page.entries.is_empty());
        let older = page.older.expect("a cursor to read on");
        let len = (line.len() * lines) as u64;
        assert!(older < len && older >= len - AUDIT_SCAN_BYTES_MAX - line.len() as u64);
    }

    /// Files a command creates belong to the data directory's owner (as root on the service's
    /// directory); where they cannot be given, the error says how to run the command.
    #[test]
    fn files_are_given_to_the_directory_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let users = Users::new(dir.path());
        users
            .add(
                "anna",
                StaffRole::Admin,
                Password::Chosen("tolv tecken minst"),
                &mut rand_core::OsRng,
                1,
            )
            .unwrap();
        audit(dir.path(), &AuditEntry::new("anna", "login", 1)).unwrap();
        let me = fs::metadata(dir.path()).unwrap().uid();
        if me != 0 || rustix::process::geteuid().as_raw() != 0 {
            return;
        }
        // As root, on a directory owned by another user.
        rustix::fs::chown(
            dir.path(),
            Some(rustix::fs::Uid::from_raw(4242)),
            Some(rustix::fs::Gid::from_raw(4242)),
        )
        .unwrap();
        users
            .add(
                "bo",
                StaffRole::Redaktor,
                Password::Chosen("tolv tecken minst"),
                &mut rand_core::OsRng,
                2,
            )
            .unwrap();
        audit(dir.path(), &AuditEntry::new("bo", "login", 2)).unwrap();
        for f in [USERS_FILE, AUDIT_FILE, USERS_LOCK] {
            let m = fs::metadata(dir.path().join(f)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4242), "{f}");
        }
    }
}
