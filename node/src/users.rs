//! The staff of a region's editor ("Redaktionen"): accounts with argon2id password hashes, and
//! the local audit trail of what each did.
//!
//! Both live in the data directory and are never replicated (they are personal data about the
//! staff): `DIR/users.json` (mode 0600, replaced whole: a new file is written, synced and
//! renamed over the old, under an exclusive lock on `DIR/users.lock`) and `DIR/audit.jsonl`
//! (mode 0600, one JSON object a line, appended and synced). A password is never stored, logged
//! or kept beyond the call that hashes or checks it.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Serialize};

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
/// Characters of a generated one-time password (from [`PASSWORD_ALPHABET`]: about 119 bits).
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
            StaffRole::Redaktor => "redaktör",
            StaffRole::Admin => "administratör",
        }
    }
}

impl std::str::FromStr for StaffRole {
    type Err = UserError;

    fn from_str(s: &str) -> Result<StaffRole, UserError> {
        match s {
            "redaktor" | "redaktör" => Ok(StaffRole::Redaktor),
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
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UserError + '_ {
    move |error| UserError::Io {
        path: path.to_path_buf(),
        error,
    }
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

    /// Adds an account with `password` (checked by the caller: chosen or generated).
    pub fn add(
        &self,
        name: &str,
        role: StaffRole,
        password: &str,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<UserInfo, UserError> {
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
        password: &str,
        rng: &mut impl CryptoRngCore,
        now_ms: u64,
    ) -> Result<(), UserError> {
        check_new_password(password)?;
        let hash = hash_password(password, rng)?;
        self.change(|users| {
            let u = users
                .iter_mut()
                .find(|u| u.name == name)
                .ok_or_else(|| UserError::Unknown(name.to_string()))?;
            u.hash = hash;
            u.password_set_ms = now_ms;
            Ok(())
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

/// Checks the bytes of an accounts file (one from a backup) before it is written: at most
/// [`USERS_FILE_BYTES_MAX`], and accounts as this version reads them. Returns how many.
pub fn check_accounts_file(bytes: &[u8]) -> Result<usize, String> {
    if bytes.len() as u64 > USERS_FILE_BYTES_MAX {
        return Err(format!(
            "{} bytes, over the limit of {USERS_FILE_BYTES_MAX}",
            bytes.len()
        ));
    }
    let accounts: AccountsFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if accounts.users.len() > USERS_MAX {
        return Err(format!("more than {USERS_MAX} accounts"));
    }
    for a in &accounts.users {
        validate_user_name(&a.name).map_err(|e| e.to_string())?;
        PasswordHash::new(&a.hash).map_err(|e| format!("the hash of {:?}: {e}", a.name))?;
    }
    Ok(accounts.users.len())
}

fn info(a: &Account) -> UserInfo {
    UserInfo {
        user: a.name.clone(),
        role: a.role,
        created_ms: a.created_ms,
        password_set_ms: a.password_set_ms,
    }
}

/// One line of the audit trail: who did what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time_ms: u64,
    pub user: String,
    /// `publish`, `edit`, `delete`, `import`, `erase_on_request`, `login`, `login_failed`,
    /// `logout`, `user_add`, `user_remove`, `password_reset`.
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
    let mut line = serde_json::to_vec(entry).map_err(|e| UserError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    line.push(b'\n');
    f.write_all(&line).map_err(io(&path))?;
    f.sync_data().map_err(io(&path))
}

/// The audit trail of `dir`, oldest first; the last `limit` entries. A line that cannot be
/// read (cut by a crash) is skipped.
pub fn read_audit(dir: &Path, limit: usize) -> Result<Vec<AuditEntry>, UserError> {
    let path = dir.join(AUDIT_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let mut out = std::collections::VecDeque::new();
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(io(&path))?;
        if line.len() > AUDIT_LINE_BYTES_MAX {
            continue;
        }
        if let Ok(e) = serde_json::from_slice::<AuditEntry>(&line) {
            if out.len() == limit {
                out.pop_front();
            }
            out.push_back(e);
        }
    }
    Ok(out.into())
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
            .add("anna", StaffRole::Admin, &pw, &mut rand_core::OsRng, 1)
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
            .set_password("anna", "ett nytt långt lösenord", &mut rand_core::OsRng, 2)
            .unwrap();
        assert!(users.verify("anna", &pw).is_err(), "the old password works");
        users.verify("anna", "ett nytt långt lösenord").unwrap();
    }

    #[test]
    fn bad_names_short_passwords_duplicates_and_the_last_admin_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::new(dir.path());
        let pw = "tolv tecken minst";
        let add = |n: &str, r| users.add(n, r, pw, &mut rand_core::OsRng, 1);
        for bad in ["", "Anna", "9anna", "anna lind", "å", &"a".repeat(33)] {
            assert!(
                matches!(add(bad, StaffRole::Redaktor), Err(UserError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            users.add("anna", StaffRole::Admin, "kort", &mut rand_core::OsRng, 1),
            Err(UserError::ShortPassword)
        ));
        assert!(matches!(
            users.add(
                "anna",
                StaffRole::Admin,
                &"x".repeat(PASSWORD_BYTES_MAX + 1),
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
            audit(
                dir.path(),
                &AuditEntry {
                    time_ms: i,
                    user: "anna".into(),
                    action: "publish".into(),
                    kind: Some("method".into()),
                    record_id: None,
                    seq: Some(i),
                    detail: None,
                },
            )
            .unwrap();
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
}
