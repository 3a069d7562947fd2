//! The staff's words: the roles (as shown and as typed), who did a change, and what the
//! audit trail's actions are called. A leaf: `users` and `staff` take these as
//! `crate::words::accounts::X`, below the rest of `words`.

/// The editor role as shown, and as a person may type it besides `redaktor`.
pub(crate) const EDITOR_ROLE: &str = "redaktör";
/// The admin role as shown.
pub(crate) const ADMIN_ROLE: &str = "administratör";
/// Who did it, in the audit trail, when the command line changed an account.
pub(crate) const COMMAND_LINE: &str = "(kommandoraden)";
/// The audit trail's name for failed logins with names no account has.
pub(crate) const UNKNOWN_ACCOUNT: &str = "(okänt konto)";
/// A login's detail when the browser's account had logged in there before.
pub(crate) const KNOWN_DEVICE: &str = "känd enhet";

/// What the audit trail's actions are called on `/logg`.
pub(crate) const AUDIT_ACTIONS: &[(&str, &str)] = &[
    ("publish", "publicerade"),
    ("edit", "ändrade"),
    ("delete", "tog bort"),
    ("erase_on_request", "raderade på begäran"),
    ("import", "importerade"),
    ("login", "loggade in"),
    ("login_failed", "misslyckade inloggningar"),
    ("logout", "loggade ut"),
    ("user_add", "lade till konto"),
    ("user_remove", "tog bort konto"),
    ("password_reset", "gav nytt lösenord"),
    ("password_changed", "bytte sitt lösenord"),
    ("endorse", "gav stöd till en region"),
    ("revoke", "begärde att ett medlemskap upphör"),
    ("erase", "beordrade att en post raderas"),
    ("withdraw", "drog tillbaka ett medlemsbeslut"),
];

/// An action of the audit trail no page knows.
pub(crate) fn no_such_action(a: &str) -> String {
    format!("Det finns ingen händelse av typen {a:?}.")
}
