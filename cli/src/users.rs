//! `spindel user ...`: the staff accounts of a region's editor (`spindel run --admin`). They live
//! in the data directory beside the store (never replicated), so these commands work whether or
//! not the node runs; a running editor sees a change at the next login or page.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Serialize;
use spindel_node::users::{
    AuditEntry, PASSWORD_BYTES_MAX, StaffRole, UserInfo, Users, audit, generate_password,
    read_audit,
};

use crate::output;
use crate::{DataDir, JsonFlag};

/// Audit lines `user audit` prints by default.
const AUDIT_SHOWN: usize = 100;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a staff account; prints a one-time password unless --password-stdin.
    Add {
        #[command(flatten)]
        dir: DataDir,
        /// 1-32 of a-z, 0-9, '.', '_' and '-', starting with a letter.
        name: String,
        /// redaktor: publishes, edits and deletes; admin: also manages accounts.
        #[arg(long, value_parser = parse_role)]
        role: StaffRole,
        /// Read the password (at least 12 characters) from stdin instead.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Every account, with its role.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Remove an account (never the last admin); its sessions end at their next request.
    Remove {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Give an account a new password (a one-time one unless --password-stdin).
    ResetPassword {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// What staff did in the editor: who, when, what (the last 100 lines, or --limit).
    Audit {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value_t = AUDIT_SHOWN)]
        limit: usize,
        #[command(flatten)]
        out: JsonFlag,
    },
}

fn parse_role(s: &str) -> Result<StaffRole, String> {
    s.parse()
        .map_err(|e: spindel_node::users::UserError| e.to_string())
}

/// What `user add` and `user reset-password` print.
#[derive(Debug, Serialize)]
struct Account {
    user: String,
    role: StaffRole,
    /// The one-time password (when it was not read from stdin).
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

impl Account {
    /// An account as printed: the password only when it was made here (one-time).
    fn of(info: UserInfo, password: String, generated: bool) -> Account {
        Account {
            user: info.user,
            role: info.role,
            password: generated.then_some(password),
        }
    }
}

/// The data directory must hold a node (the accounts belong to it).
fn users_of(dir: &DataDir) -> Result<Users> {
    spindel_node::local::read_config(&dir.data_dir)?;
    Ok(Users::new(&dir.data_dir))
}

/// The password from stdin (one line, without its line end), or a new one-time password.
fn password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((generate_password(&mut rand_core::OsRng), true));
    }
    if std::io::stdin().is_terminal() {
        bail!("--password-stdin reads the password from stdin, but stdin is a terminal");
    }
    let mut text = String::new();
    std::io::stdin()
        .take(PASSWORD_BYTES_MAX as u64 + 2)
        .read_to_string(&mut text)
        .context("reading the password from stdin")?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok((text.to_string(), false))
}

fn note(dir: &Path, action: &str, name: &str) -> Result<()> {
    audit(
        dir,
        &AuditEntry {
            time_ms: spindel_node::local::now_ms(),
            user: "(kommandoraden)".into(),
            action: action.into(),
            kind: None,
            record_id: None,
            seq: None,
            detail: Some(name.to_string()),
        },
    )?;
    Ok(())
}

pub fn run(cmd: UserCommand) -> Result<()> {
    let now = spindel_node::local::now_ms();
    match cmd {
        UserCommand::Add {
            dir,
            name,
            role,
            password_stdin,
            out,
        } => {
            let users = users_of(&dir)?;
            let (pw, generated) = password(password_stdin)?;
            let added = users.add(&name, role, &pw, &mut rand_core::OsRng, now)?;
            note(&dir.data_dir, "user_add", &name)?;
            let shown = Account::of(added, pw, generated);
            output::emit(out.json, &shown, || match &shown.password {
                Some(pw) => format!(
                    "added {} ({}); one-time password: {pw}\nGive it to them in person or by phone; they log in at the editor (spindel run --admin).",
                    shown.user,
                    shown.role.as_str()
                ),
                None => format!("added {} ({})", shown.user, shown.role.as_str()),
            })
        }
        UserCommand::List { dir, out } => {
            let list: Vec<UserInfo> = users_of(&dir)?.list()?;
            output::emit(out.json, &list, || {
                if list.is_empty() {
                    return "no users; add the first admin with `spindel user add --data-dir DIR NAME --role admin`".into();
                }
                list.iter()
                    .map(|u| format!("{:<32} {}", u.user, u.role.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        UserCommand::Remove { dir, name, out } => {
            users_of(&dir)?.remove(&name)?;
            note(&dir.data_dir, "user_remove", &name)?;
            output::emit(out.json, &serde_json::json!({"removed": name}), || {
                format!("removed {name}")
            })
        }
        UserCommand::ResetPassword {
            dir,
            name,
            password_stdin,
            out,
        } => {
            let users = users_of(&dir)?;
            let Some(user) = users.get(&name)? else {
                bail!("no user {name:?}");
            };
            let (pw, generated) = password(password_stdin)?;
            users.set_password(&name, &pw, &mut rand_core::OsRng, now)?;
            note(&dir.data_dir, "password_reset", &name)?;
            let shown = Account::of(user, pw, generated);
            output::emit(out.json, &shown, || match &shown.password {
                Some(pw) => format!("new one-time password for {}: {pw}", shown.user),
                None => format!("password of {} changed", shown.user),
            })
        }
        UserCommand::Audit { dir, limit, out } => {
            spindel_node::local::read_config(&dir.data_dir)?;
            let entries = read_audit(&dir.data_dir, limit)?;
            output::emit(out.json, &entries, || {
                entries
                    .iter()
                    .map(|e| {
                        let what = [
                            e.kind.clone(),
                            e.record_id.clone(),
                            e.seq.map(|s| format!("seq {s}")),
                            e.detail.clone(),
                        ]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                        format!(
                            "{} {:<16} {:<16} {what}",
                            spindel_protocol::time::rfc3339_ms(e.time_ms),
                            e.user,
                            e.action
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
    }
}
