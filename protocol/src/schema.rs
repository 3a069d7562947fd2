//! The rules every record's fields are checked by: the named limits, text lengths, addresses
//! (http, e-mail, phone), region names, and the [`SchemaError`] that names the field and the
//! rule of a refusal in one line.

use limits::*;

/// A record that breaks its kind's schema: a one-line message (English, as the CLI and the API
/// say it), and for a form, the field it is about and what is wrong, so an interface can say it
/// beside the field in its own language. The rules are these, in one place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    pub message: String,
    /// The field as named in the record's JSON: `title`, `links[2]`, `consent.date`,
    /// `sroi.ratio`; an unknown or missing field by the name serde gives (without the object it
    /// is in); `None` for the record as a whole (not JSON).
    pub field: Option<String>,
    pub problem: Problem,
}

/// What is wrong with a field (see [`SchemaError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required text is empty.
    Required,
    /// A text's length in characters is outside `min..=max`.
    Length { min: usize, max: usize, got: usize },
    /// A text holds control characters.
    Control,
    /// A list has too few or too many entries.
    Count { min: usize, max: usize, got: usize },
    /// Not an absolute http or https URL.
    Url,
    /// Not an e-mail address.
    Email,
    /// Not a phone number.
    Phone,
    /// Not a date `YYYY-MM-DD` in range.
    Date,
    /// Not a number greater than 0.
    Positive,
    /// Not an RFC 3339 time with an offset.
    DateTime,
    /// An end before its start.
    EndBeforeStart,
    /// Neither a place nor an online address (an event needs one).
    PlaceOrOnline,
    /// A year outside `min..=max`.
    Year { min: i64, max: i64, got: i64 },
    /// A researcher record without consent given.
    Consent,
    /// Not JSON at all (the field is `None`).
    NotJson,
    /// A field the kind does not have (the field is the name as given; serde does not say
    /// where in a nested object it was).
    UnknownField,
    /// A region name that breaks the naming rule.
    RegionName,
    /// Not a fraction from 0 to 1.
    Fraction,
    /// Not a finite amount from 0 to `max`.
    Amount { max: u64 },
    /// The same entry twice in a list.
    Duplicate,
    /// Not a reference to a record, `NODEID/RECORD_ID`.
    Reference,
    /// Not a node id: 64 lowercase hex characters of a usable ed25519 key.
    NodeId,
    /// Not one of the values allowed.
    Choice { allowed: Vec<&'static str> },
    /// Anything else: the message says it.
    Other,
}

impl SchemaError {
    /// An error about the record as a whole.
    pub fn new(message: impl Into<String>) -> SchemaError {
        SchemaError {
            message: message.into(),
            field: None,
            problem: Problem::Other,
        }
    }

    pub(crate) fn at(field: &str, problem: Problem, message: String) -> SchemaError {
        SchemaError {
            message,
            field: Some(field.to_string()),
            problem,
        }
    }
}

/// Limits of docs/records.md, named.
pub mod limits {
    pub const TITLE_CHARS_MAX: usize = 200;
    pub const SUMMARY_CHARS_MAX: usize = 2000;
    pub const DESCRIPTION_CHARS_MAX: usize = 20_000;
    pub const PROFILE_DESCRIPTION_CHARS_MAX: usize = 5000;
    pub const NAME_CHARS_MAX: usize = 200;
    pub const MEMBERS_MAX: usize = 500;
    pub const ORGANISATIONS_MAX: usize = 50;
    pub const ORGANISATION_CHARS_MAX: usize = 200;
    pub const TAGS_MAX: usize = 20;
    pub const TAG_CHARS_MAX: usize = 40;
    pub const LINKS_MAX: usize = 20;
    pub const URL_CHARS_MAX: usize = 2000;
    pub const CONTACT_CHARS_MAX: usize = 200;
    pub const FIELDS_MAX: usize = 20;
    pub const FIELD_CHARS_MAX: usize = 100;
    pub const EMAIL_CHARS_MAX: usize = 254;
    pub const PHONE_CHARS_MAX: usize = 40;
    pub const REGION_NAME_CHARS_MAX: usize = 32;
    pub const SROI_YEAR_MIN: i64 = 1900;
    pub const SROI_YEAR_MAX: i64 = 2200;
    pub const CONSENT_METHOD_CHARS_MAX: usize = 200;
    pub const CONSENT_SCOPE_CHARS_MAX: usize = 500;
    /// Years a consent date may carry (`YYYY-MM-DD`).
    pub const CONSENT_YEAR_MIN: u32 = 1970;
    pub const CONSENT_YEAR_MAX: u32 = 2200;
    /// An event's place (an address as text).
    pub const EVENT_PLACE_CHARS_MAX: usize = 500;
    pub const EVENT_ORGANISER_CHARS_MAX: usize = 200;
    /// Years an event's start and end may fall in (as written, in their own offset).
    pub const EVENT_YEAR_MIN: i64 = 2000;
    pub const EVENT_YEAR_MAX: i64 = 2100;
    /// An indicator's texts (kind `indicator`).
    pub const OUTCOME_CHARS_MAX: usize = 200;
    pub const INDICATOR_CHARS_MAX: usize = 300;
    pub const PROXY_CHARS_MAX: usize = 500;
    pub const UNIT_CHARS_MAX: usize = 100;
    pub const SOURCE_CHARS_MAX: usize = 2000;
    /// The largest `value_sek` a proxy may state (one billion kronor).
    pub const VALUE_SEK_MAX: f64 = 1_000_000_000.0;
    /// The price years an indicator's `year` may carry.
    pub const INDICATOR_YEAR_MIN: i64 = 1990;
    pub const INDICATOR_YEAR_MAX: i64 = 2100;
    /// Indicators an innovation's `sroi.indicators` may name.
    pub const SROI_INDICATORS_MAX: usize = 50;
}

pub(crate) struct Check {
    pub(crate) kind: &'static str,
}

impl Check {
    pub(crate) fn fail(&self, field: &str, problem: Problem, msg: String) -> SchemaError {
        SchemaError::at(field, problem, format!("{} record: {msg}", self.kind))
    }

    pub(crate) fn text(
        &self,
        field: &str,
        value: &str,
        min: usize,
        max: usize,
    ) -> Result<(), SchemaError> {
        let n = value.chars().count();
        if n < min || n > max {
            return Err(if min > 0 && n == 0 {
                self.fail(
                    field,
                    Problem::Required,
                    format!("{field} is required and must not be empty"),
                )
            } else {
                self.fail(
                    field,
                    Problem::Length { min, max, got: n },
                    format!("{field} must be {min}-{max} characters, got {n}"),
                )
            });
        }
        if value
            .chars()
            .any(|ch| ch.is_control() && ch != '\n' && ch != '\t' && ch != '\r')
        {
            return Err(self.fail(
                field,
                Problem::Control,
                format!("{field} contains control characters"),
            ));
        }
        Ok(())
    }

    pub(crate) fn opt_text(
        &self,
        field: &str,
        value: &Option<String>,
        max: usize,
    ) -> Result<(), SchemaError> {
        match value {
            Some(v) => self.text(field, v, 0, max),
            None => Ok(()),
        }
    }

    pub(crate) fn list(
        &self,
        field: &str,
        items: &[String],
        min_items: usize,
        max_items: usize,
        max_chars: usize,
    ) -> Result<(), SchemaError> {
        if items.len() < min_items || items.len() > max_items {
            return Err(self.fail(
                field,
                Problem::Count {
                    min: min_items,
                    max: max_items,
                    got: items.len(),
                },
                format!(
                    "{field} must have {min_items}-{max_items} entries, got {}",
                    items.len()
                ),
            ));
        }
        for (i, item) in items.iter().enumerate() {
            self.text(&format!("{field}[{i}]"), item, 1, max_chars)?;
        }
        Ok(())
    }

    pub(crate) fn urls(&self, field: &str, urls: &[String]) -> Result<(), SchemaError> {
        if urls.len() > LINKS_MAX {
            return Err(self.fail(
                field,
                Problem::Count {
                    min: 0,
                    max: LINKS_MAX,
                    got: urls.len(),
                },
                format!(
                    "{field} must have at most {LINKS_MAX} entries, got {}",
                    urls.len()
                ),
            ));
        }
        for (i, url) in urls.iter().enumerate() {
            self.url(&format!("{field}[{i}]"), url)?;
        }
        Ok(())
    }

    pub(crate) fn opt_url(&self, field: &str, url: &Option<String>) -> Result<(), SchemaError> {
        match url {
            Some(u) => self.url(field, u),
            None => Ok(()),
        }
    }

    pub(crate) fn url(&self, field: &str, url: &str) -> Result<(), SchemaError> {
        if is_http_url(url) {
            Ok(())
        } else {
            Err(self.fail(
                field,
                Problem::Url,
                format!(
                    "{field} must be an http or https URL, got {:?}",
                    url.chars().take(80).collect::<String>()
                ),
            ))
        }
    }
}

/// An absolute `http://` or `https://` URL with a host, no whitespace or control characters,
/// at most [`limits::URL_CHARS_MAX`] characters.
pub fn is_http_url(url: &str) -> bool {
    if url.chars().count() > URL_CHARS_MAX
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    let lower = url.to_ascii_lowercase();
    let rest = match lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        Some(rest) => rest,
        None => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !host.ends_with(']') => {
            if !port.is_empty() && !port.chars().all(|c| c.is_ascii_digit()) {
                return false;
            }
            h
        }
        _ => host,
    };
    !host.is_empty() && !host.starts_with('.') && !host.starts_with('-')
}

/// `local@domain.tld`: one `@`, a non-empty local part, a dotted domain of letters, digits and
/// hyphens, no whitespace, at most 254 characters.
pub fn is_email(email: &str) -> bool {
    // RFC 5322 addr-spec in its dot-atom form (RFC 6532 lets atext be any non-ASCII character
    // too): no quoted local parts, no comments, no domain literals. A local part may hold
    // characters such as `?`, `=`, `%` and `&`, so a page puts an address in a `mailto:` link
    // only percent-encoded.
    if email.chars().count() > EMAIL_CHARS_MAX {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+-/=?^_`{|}~".contains(c)
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
    };
    let dot_atom = |s: &str, ok: &dyn Fn(&str) -> bool| {
        !s.is_empty() && s.split('.').all(|part| !part.is_empty() && ok(part))
    };
    let local_ok = local.len() <= 64 && dot_atom(local, &|p: &str| p.chars().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && dot_atom(domain, &|l: &str| {
            l.chars().count() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    local_ok && domain_ok
}

/// Digits, spaces and `- ( )`, with one optional leading `+`, and 5 to 20 digits.
pub(crate) fn is_phone(phone: &str) -> bool {
    let n = phone.chars().count();
    let body = phone.strip_prefix('+').unwrap_or(phone);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    (1..=PHONE_CHARS_MAX).contains(&n)
        && (5..=20).contains(&digits)
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'))
}

/// A node's short name: 1-32 of `a-z 0-9 -`.
pub fn validate_region_name(name: &str) -> Result<(), String> {
    let ok = (1..=REGION_NAME_CHARS_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "a name is 1-{REGION_NAME_CHARS_MAX} of a-z, 0-9 and -, got {:?}",
            name.chars().take(40).collect::<String>()
        ))
    }
}
