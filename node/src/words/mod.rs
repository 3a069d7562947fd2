//! Every Swedish phrase the node says from Rust, in one place, so a wording change is one
//! edit; the rest of the wording lives in the templates (`node/templates/`). By subject:
//! `formats` (a kind's names and counts, dates, numbers, waits), `errors` (a typed error as a
//! Swedish sentence), `pages` (headings, notices and banners of the pages and the editor),
//! `import` (an import's upload, progress and refusals, line by line), `fields` (the kinds'
//! form labels and help texts, a field's errors) and `accounts` (roles, the audit trail's
//! words).
//!
//! A child takes a sibling's words as `super::sibling::X`, never from here; nothing here
//! imports the modules that say these words. `accounts` and `fields` are leaves: the modules
//! the rest of `words` stands on (`users`, `forms`, `import_csv`) take them by their path,
//! `crate::words::fields::X`.

pub(crate) mod accounts;
mod errors;
pub(crate) mod fields;
mod formats;
mod import;
mod pages;

pub(crate) use accounts::{AUDIT_ACTIONS, no_such_action};
pub(crate) use errors::*;
pub(crate) use formats::*;
pub(crate) use import::*;
pub(crate) use pages::*;
