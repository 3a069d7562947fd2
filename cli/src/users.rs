//! `spindel user ...`: the staff accounts of a region's editor (`spindel run --admin`). They live
//! in the data directory beside the store (never replicated). While the node runs, `add`,
//! `remove` and `reset-password` go through its control channel, so a reset lifts the
//! account's lock and ends its sessions at once; otherwise they change the files (owned by
//! the data directory's owner, also when run as root).

use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, bail};
use spindel_node::control::{self, AccountAnswer, Request};
use spindel_node::users::{PASSWORD_BYTES_MAX, UserInfo, Users, read_audit};
use spindel_node::{COMMAND_LINE, Staff};

use crate::args::{DataDir, UserCommand};
use crate::output;

/// The data directory must hold a node (the accounts belong to it).
fn users_of(dir: &DataDir) -> Result<Users> {
    spindel_node::local::read_config(&dir.data_dir)?;
    Ok(Users::new(&dir.data_dir))
}

/// The password from stdin (one line, without its line end), or `None`: a one-time password
/// is made.
fn password(from_stdin: bool) -> Result<Option<String>> {
    if !from_stdin {
        return Ok(None);
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
    Ok(Some(text.to_string()))
}

/// Runs an account change through the running node (its sessions and locks follow at once),
/// or on the files when no node runs.
fn change<T: serde::de::DeserializeOwned>(
    dir: &DataDir,
    request: Request,
    direct: impl FnOnce(&Staff) -> Result<T, spindel_node::users::UserError>,
) -> Result<T> {
    spindel_node::local::read_config(&dir.data_dir)?;
    if let Some(v) = control::request(&dir.data_dir, &request)? {
        return serde_json::from_value(v).context("the node answered the account change oddly");
    }
    Ok(direct(&Staff::offline(&dir.data_dir))?)
}

fn answer(info: UserInfo, password: Option<String>) -> AccountAnswer {
    AccountAnswer {
        user: info.user,
        role: info.role,
        password,
    }
}

pub fn run(cmd: UserCommand) -> Result<()> {
    match cmd {
        UserCommand::Add {
            dir,
            name,
            role,
            password_stdin,
            out,
        } => {
            let pw = password(password_stdin)?;
            let request = Request::UserAdd {
                name: name.clone(),
                role,
                password: pw.clone(),
            };
            let shown: AccountAnswer = change(&dir, request, |staff| {
                let (info, made) = staff.add(&name, role, pw.as_deref(), COMMAND_LINE)?;
                Ok(answer(info, made))
            })?;
            output::emit(out.json, &shown, || match &shown.password {
                Some(pw) => format!(
                    "added {} ({}); one-time password: {pw}\nGive it to them in person or by phone; it only lets them choose their own password at the editor's /konto page (spindel run --admin).",
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
            let request = Request::UserRemove { name: name.clone() };
            let done: serde_json::Value = change(&dir, request, |staff| {
                staff.remove(&name, COMMAND_LINE)?;
                Ok(serde_json::json!({ "removed": name }))
            })?;
            output::emit(out.json, &done, || format!("removed {name}"))
        }
        UserCommand::ResetPassword {
            dir,
            name,
            password_stdin,
            out,
        } => {
            let pw = password(password_stdin)?;
            let request = Request::UserReset {
                name: name.clone(),
                password: pw.clone(),
            };
            let shown: AccountAnswer = change(&dir, request, |staff| {
                let (info, made) = staff.reset_password(&name, pw.as_deref(), COMMAND_LINE)?;
                Ok(answer(info, made))
            })?;
            output::emit(out.json, &shown, || match &shown.password {
                Some(pw) => format!(
                    "new one-time password for {}: {pw}\nIt only lets them choose their own password at /konto; their sessions have ended.",
                    shown.user
                ),
                None => format!(
                    "password of {} changed; their sessions have ended",
                    shown.user
                ),
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
