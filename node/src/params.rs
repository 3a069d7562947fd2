//! The one parser of query strings, for the API and the pages: a parameter the route does not
//! know, one given twice, or a query string that does not decode is refused (each surface says
//! so in its own language), never silently dropped or overwritten.

use std::collections::BTreeMap;

/// What a query string may not be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown parameter {name:?}; {}", use_instead(known))]
    Unknown {
        name: String,
        known: &'static [&'static str],
    },
    #[error("parameter {0:?} is given more than once")]
    Repeated(&'static str),
    #[error("the query string does not decode: {0}")]
    Malformed(String),
}

/// What to use instead of an unknown parameter: the route's, or none at all.
fn use_instead(known: &[&str]) -> String {
    if known.is_empty() {
        "this address takes no parameters".to_string()
    } else {
        format!("use {}", known.join(", "))
    }
}

/// A route's parameters, each at most once and each one the route knows. Values are trimmed;
/// an empty value counts as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<&'static str, String>);

impl Params {
    /// Parses `raw` (the part of the URL after `?`, if any) for a route that knows `known`.
    pub fn parse(raw: Option<&str>, known: &'static [&'static str]) -> Result<Params, ParamError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|e| ParamError::Malformed(e.to_string()))?;
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            let Some(&name) = known.iter().find(|k| **k == name) else {
                return Err(ParamError::Unknown { name, known });
            };
            if params.insert(name, value.trim().to_string()).is_some() {
                return Err(ParamError::Repeated(name));
            }
        }
        params.retain(|_, v: &mut String| !v.is_empty());
        Ok(Params(params))
    }

    /// The value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets or, with `None`, removes a value (for links built from the current parameters).
    pub fn set(&mut self, name: &'static str, value: Option<String>) {
        match value.filter(|v| !v.is_empty()) {
            Some(v) => {
                self.0.insert(name, v);
            }
            None => {
                self.0.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const KNOWN: &[&str] = &["q", "kind"];

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused() {
        let p = Params::parse(Some("q=%C3%B6rebro+l%C3%A4n&kind=&"), KNOWN).unwrap();
        assert_eq!(p.get("q"), Some("örebro län"));
        assert_eq!(p.get("kind"), None);
        assert_eq!(Params::parse(None, KNOWN).unwrap(), Params::default());
        assert_eq!(
            Params::parse(Some("kind=method&kind=researcher"), KNOWN),
            Err(ParamError::Repeated("kind"))
        );
        // Repeated also when the first was empty: which one was meant is not guessed.
        assert_eq!(
            Params::parse(Some("q=&q=x"), KNOWN),
            Err(ParamError::Repeated("q"))
        );
        let unknown = Params::parse(Some("colour=red"), KNOWN).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown parameter \"colour\"; use q, kind"
        );
        assert_eq!(
            Params::parse(Some("x=1"), &[]).unwrap_err().to_string(),
            "unknown parameter \"x\"; this address takes no parameters"
        );
        // Bytes that are not UTF-8 decode lossily (U+FFFD), as browsers send them.
        assert_eq!(
            Params::parse(Some("q=%FF"), KNOWN).unwrap().get("q"),
            Some("\u{fffd}")
        );
    }
}
