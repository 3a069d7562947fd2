//! `spindel run`'s settings file (`DIR/spindel.toml` or `--config FILE`): read, checked, and
//! every error named by file, line and key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use spindel_node::transport::{Limits, PeerAddr};

use crate::args::{LogFormat, parse_addr, parse_peer, parse_public_url};

/// `spindel run`'s settings file (`DIR/spindel.toml` or `--config FILE`). Flags override it.
/// Values are `Spanned` so an error names the line they are on.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunFile {
    pub(crate) listen: Option<toml::Spanned<String>>,
    pub(crate) http: Option<toml::Spanned<String>>,
    pub(crate) metrics: Option<toml::Spanned<String>>,
    pub(crate) admin: Option<toml::Spanned<String>>,
    #[serde(default)]
    pub(crate) aggregators: Vec<toml::Spanned<String>>,
    pub(crate) log_level: Option<toml::Spanned<String>>,
    pub(crate) log_format: Option<LogFormat>,
    /// Transport limits (`[limits]`); a key left out keeps its default.
    #[serde(default)]
    pub(crate) limits: Limits,
    /// Reverse proxies (addresses) whose `X-Forwarded-For` gives the client's address.
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<toml::Spanned<String>>,
    /// Where readers find the knowledge bank; the editor links to it.
    pub(crate) public_url: Option<toml::Spanned<String>>,
    /// Seconds a payload the members ordered erased is held, hidden, before it is erased for
    /// good (default: three days).
    pub(crate) erasure_settle_secs: Option<u64>,
    /// The sites (origins) that may frame `/inbaddning`; absent: any site.
    pub(crate) embed_ancestors: Option<toml::Spanned<Vec<toml::Spanned<String>>>>,
}

/// What a key of the settings file takes, as an error of the wrong type says it.
pub(crate) fn run_file_expects(key: &str) -> &'static str {
    match key {
        "listen" | "http" | "metrics" | "admin" => "a \"HOST:PORT\" string",
        "aggregators" => "a list of \"NODEID@HOST:PORT\" strings",
        "trusted_proxies" => "a list of IP address strings, like [\"127.0.0.1\"]",
        "public_url" => "an http or https URL string, like \"https://kunskapsbank.example.se\"",
        "log_level" => "one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
        "log_format" => "\"text\" or \"json\"",
        "erasure_settle_secs" => "a whole number of seconds, like 259200 (three days)",
        "embed_ancestors" => "a list of origin strings, like [\"https://www.skane.example.se\"]",
        "limits" => "a table ([limits])",
        k if k.starts_with("limits.") => "a whole number",
        _ => "another value",
    }
}

/// A place in a settings file: the 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The key set on a line of a settings file (`key = value`), with the table it is in
/// (`limits.connections_max`); `None` for a line that sets no key.
pub(crate) fn key_on_line(text: &str, line: usize) -> Option<String> {
    let mut table: Option<String> = None;
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if let Some(rest) = l.strip_prefix('[') {
            table = rest.split(']').next().map(|t| t.trim().to_string());
        }
        if i + 1 == line {
            let (key, _) = l.split_once('=')?;
            let key = key.trim().trim_matches('"');
            if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
                return None;
            }
            return Some(match table {
                Some(t) => format!("{t}.{key}"),
                None => key.to_string(),
            });
        }
    }
    None
}

/// The key an error on `line` is about: the key set on that line, the table a `[table]` line
/// opens, or, inside a value over several lines (a list), the key above that the value
/// belongs to.
pub(crate) fn key_at(text: &str, line: usize) -> Option<String> {
    let here = text.lines().nth(line.checked_sub(1)?)?.trim();
    if let Some(rest) = here.strip_prefix('[') {
        return rest.split(']').next().map(|t| t.trim().to_string());
    }
    (1..=line).rev().find_map(|n| key_on_line(text, n))
}

/// The line that sets `key` in `table` (`None`: the top level), if a line does.
pub(crate) fn line_of_key(text: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let want = match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    };
    (1..=text.lines().count()).find(|&n| key_on_line(text, n).as_deref() == Some(&want))
}

/// A TOML or serde error of the settings file in one line: the line, the column, the key, and
/// what was wrong in words that name what the key takes.
pub(crate) fn settings_error(path: &Path, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return anyhow::anyhow!("{}: {message}", path.display());
    };
    let (line, column) = line_col(text, span.start);
    let key = key_at(text, line);
    let place = format!("{} line {line}, column {column}", path.display());
    // Unknown key: `unknown field `x`, expected one of `a`, `b`` (the span is the key itself).
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let known = rest
            .split_once(", expected ")
            .map(|(_, k)| k.trim_start_matches("one of ").replace('`', ""))
            .unwrap_or_default();
        let shown = key.clone().unwrap_or_else(|| name.to_string());
        return anyhow::anyhow!("{place}: {shown}: unknown key `{name}` (the keys are: {known})");
    }
    let Some(key) = key else {
        return anyhow::anyhow!("{place}: {message}");
    };
    // Wrong type: `invalid type: string "x", expected a sequence`.
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let got = if rest.starts_with("string") {
            "a string"
        } else if rest.starts_with("integer") || rest.starts_with("floating point") {
            "a number"
        } else if rest.starts_with("boolean") {
            "true or false"
        } else if rest.starts_with("sequence") {
            "a list"
        } else if rest.starts_with("map") {
            "a table"
        } else {
            "another type"
        };
        let expects = run_file_expects(&key);
        return anyhow::anyhow!("{place}: {key}: expected {expects}, got {got}");
    }
    if message.starts_with("unknown variant") {
        let expects = run_file_expects(&key);
        return anyhow::anyhow!("{place}: {key}: expected {expects} ({message})");
    }
    // A value TOML cannot read, most often text without quotes (`listen = 127.0.0.1:7780`).
    let value = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(_, v)| v.trim())
        .unwrap_or("");
    if value.is_empty() || value.starts_with(['"', '\'', '[', '{']) {
        anyhow::anyhow!("{place}: {key}: {message}")
    } else {
        anyhow::anyhow!(
            "{place}: {key}: text needs quotes, like {key} = \"{}\" ({message})",
            value.split('#').next().unwrap_or("").trim()
        )
    }
}

/// `run`'s settings, read and checked once: every address and peer parsed.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    /// The file they came from, if any.
    pub(crate) path: Option<PathBuf>,
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) http: Option<SocketAddr>,
    pub(crate) metrics: Option<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) aggregators: Vec<PeerAddr>,
    pub(crate) log_level: Option<String>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) limits: Limits,
    pub(crate) trusted_proxies: Vec<std::net::IpAddr>,
    pub(crate) public_url: Option<String>,
    pub(crate) erasure_settle: Option<std::time::Duration>,
    pub(crate) embed_ancestors: Vec<String>,
}

/// The settings file of `run`: `--config FILE` (which must exist), else `DIR/spindel.toml` if
/// there is one.
pub(crate) fn run_file(dir: &Path, config: Option<&Path>) -> Result<Settings> {
    let path = match config {
        Some(p) => p.to_path_buf(),
        None => {
            let p = dir.join("spindel.toml");
            if !p.exists() {
                return Ok(Settings::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))?;
    parse_run_file(&path, &text)
}

/// The settings in `text` (read from `path`): every value checked; an error is one line naming
/// the file, the line and the key.
pub(crate) fn parse_run_file(path: &Path, text: &str) -> Result<Settings> {
    let file: RunFile = toml::from_str(text).map_err(|e| settings_error(path, text, &e))?;
    let at = |span: std::ops::Range<usize>, key: &str, e: String| {
        let (line, _) = line_col(text, span.start);
        anyhow::anyhow!("{} line {line}: {key}: {e}", path.display())
    };
    let addr = |field: &str, v: Option<toml::Spanned<String>>| {
        v.map(|v| parse_addr(v.get_ref()).map_err(|e| at(v.span(), field, e)))
            .transpose()
    };
    let aggregators = file
        .aggregators
        .iter()
        .enumerate()
        .map(|(i, a)| {
            parse_peer(a.get_ref()).map_err(|e| at(a.span(), &format!("aggregators[{i}]"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    file.limits.check().map_err(|e| {
        let line = line_of_key(text, Some("limits"), e.field)
            .map_or(String::new(), |l| format!(" line {l}"));
        anyhow::anyhow!("{}{line}: {e}", path.display())
    })?;
    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.get_ref().parse::<std::net::IpAddr>().map_err(|_| {
                at(
                    a.span(),
                    &format!("trusted_proxies[{i}]"),
                    format!("{:?} is not an IP address (a proxy is named by its address, like \"127.0.0.1\")", a.get_ref()),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(l) = &file.log_level
        && !["error", "warn", "info", "debug", "trace"].contains(&l.get_ref().as_str())
    {
        return Err(at(
            l.span(),
            "log_level",
            format!(
                "{:?} is not one of error, warn, info, debug, trace",
                l.get_ref()
            ),
        ));
    }
    if let Some(list) = &file.embed_ancestors {
        if list.get_ref().is_empty() {
            return Err(at(
                list.span(),
                "embed_ancestors",
                "an empty list: leave the key out to let any site frame the embed, or list the sites that may, like [\"https://www.skane.example.se\"]".into(),
            ));
        }
        for (i, o) in list.get_ref().iter().enumerate() {
            spindel_node::embed_origin(o.get_ref())
                .map_err(|e| at(o.span(), &format!("embed_ancestors[{i}]"), e))?;
        }
    }
    let public_url = file
        .public_url
        .as_ref()
        .map(|u| parse_public_url(u.get_ref()).map_err(|e| at(u.span(), "public_url", e)))
        .transpose()?;
    Ok(Settings {
        public_url,
        listen: addr("listen", file.listen)?,
        http: addr("http", file.http)?,
        metrics: addr("metrics", file.metrics)?,
        admin: addr("admin", file.admin)?,
        aggregators,
        log_level: file.log_level.map(toml::Spanned::into_inner),
        log_format: file.log_format,
        limits: file.limits,
        trusted_proxies,
        erasure_settle: file.erasure_settle_secs.map(std::time::Duration::from_secs),
        embed_ancestors: file
            .embed_ancestors
            .map(|l| {
                l.into_inner()
                    .into_iter()
                    .map(toml::Spanned::into_inner)
                    .collect()
            })
            .unwrap_or_default(),
        path: Some(path.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn error(text: &str) -> String {
        let e = parse_run_file(Path::new("/etc/spindel/skane.toml"), text).unwrap_err();
        let line = format!("{e:#}");
        assert!(!line.contains('\n'), "one line: {line}");
        line
    }

    #[test]
    fn settings_errors_name_the_file_the_line_and_the_key() {
        let e = error("# a comment\nlog_level = \"info\"\naggregators = \"x@y:1\"\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 3, column 15: aggregators: expected a list of \"NODEID@HOST:PORT\" strings, got a string"),
            "{e}"
        );
        let e = error("metrics = \"127.0.0.1:9780\"\nlisten = 127.0.0.1:7700\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 2, column ")
                && e.contains(": listen: text needs quotes, like listen = \"127.0.0.1:7700\""),
            "{e}"
        );
        let e = error("\n\nlisen = \"127.0.0.1:7700\"\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 3, column 1: lisen: unknown key `lisen` (the keys are: listen, http,"),
            "{e}"
        );
        let e = error("[limits]\nconections_max = 5\n");
        assert!(
            e.contains("line 2, column 1: limits.conections_max: unknown key `conections_max` (the keys are: frame_bytes_max, connections_max,"),
            "{e}"
        );
        let e = error("log_level = \"info\"\naggregators = [\n  \"a@b:1\",\n  5,\n]\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 4, column 3: aggregators: expected a list of \"NODEID@HOST:PORT\" strings, got a number"),
            "{e}"
        );
        let e = error("[limitz]\nconnections_max = 5\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 1, column 2: limitz: unknown key `limitz` (the keys are: listen,"),
            "{e}"
        );
        let e = error("log_level = \"info\"\naggregators = [\n  \"a@b:1\",\n]\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 3: aggregators[0]: "),
            "{e}"
        );
        let e = error("log_level = \"loud\"\n");
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 1: log_level: \"loud\" is not one of"),
            "{e}"
        );
        let e = error("log_format = \"xml\"\n");
        assert!(e.starts_with("/etc/spindel/skane.toml line 1, column 14: log_format: expected \"text\" or \"json\""), "{e}");
        let e = error("erasure_settle_secs = \"tre dygn\"\n");
        assert!(
            e.contains("line 1, column 23: erasure_settle_secs: expected a whole number of seconds, like 259200 (three days), got a string"),
            "{e}"
        );
        let settings = parse_run_file(
            Path::new("/etc/spindel/skane.toml"),
            "erasure_settle_secs = 60\n",
        )
        .unwrap();
        assert_eq!(
            settings.erasure_settle,
            Some(std::time::Duration::from_secs(60))
        );
        let e = error("http = 7780\n");
        assert!(
            e.ends_with("line 1, column 8: http: expected a \"HOST:PORT\" string, got a number"),
            "{e}"
        );
        let e = error(
            "listen = \"127.0.0.1:0\"\n\n[limits]\nidle_timeout_ms = 5000\nconnections_max = 0\n",
        );
        assert!(
            e.starts_with("/etc/spindel/skane.toml line 5: limits.connections_max must be between 1 and 100000, got 0"),
            "{e}"
        );
        let e = error("trusted_proxies = [\"proxy\"]\n");
        assert!(
            e.starts_with(
                "/etc/spindel/skane.toml line 1: trusted_proxies[0]: \"proxy\" is not an IP address"
            ),
            "{e}"
        );
        let e = error("log_level = \"info\"\npublic_url = \"kunskapsbank.example.se\"\n");
        assert!(
            e.starts_with(
                "/etc/spindel/skane.toml line 2: public_url: \"kunskapsbank.example.se\" is not an http or https address"
            ),
            "{e}"
        );
        assert_eq!(
            parse_public_url("https://kunskapsbank.example.se/").as_deref(),
            Ok("https://kunskapsbank.example.se")
        );
        assert_eq!(
            parse_public_url("https://example.se/kunskapsbank").as_deref(),
            Ok("https://example.se/kunskapsbank")
        );
        for bad in [
            "https://example.se/?a=1",
            "https://example.se/#top",
            "https://anna@example.se",
            "https://example.se/\"><script>",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(line_col("å\nbc", 4), (2, 2));
    }

    /// Every example settings file reads through `run`'s own parser (its commented-out
    /// `http`, `admin` and `trusted_proxies` lines included), and no two nodes of the examples
    /// use the same port, so all of them run side by side on one machine.
    #[test]
    fn the_deploy_examples_parse_and_use_distinct_ports() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
        let mut ports: std::collections::BTreeMap<u16, String> = Default::default();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if !name.ends_with(".toml") || name == "config.toml" {
                continue;
            }
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| {
                    for key in ["http", "admin", "trusted_proxies"] {
                        if let Some(rest) = l.strip_prefix("# ")
                            && rest.starts_with(&format!("{key} = "))
                        {
                            return format!("{rest}\n");
                        }
                    }
                    format!("{l}\n")
                })
                .collect();
            let text = text.replace("AGGREGATOR_NODEID", &"ab".repeat(32));
            let settings = parse_run_file(&path, &text).unwrap_or_else(|e| panic!("{e:#}"));
            let role_ports = [
                settings.listen,
                settings.http,
                settings.metrics,
                settings.admin,
            ];
            if name == "nationell.toml" {
                assert_eq!(settings.http.unwrap().port(), 7780);
                assert_eq!(settings.metrics.unwrap().port(), 9780);
            } else {
                assert!(
                    settings.http.is_some() && settings.admin.is_some(),
                    "{name}"
                );
                assert_eq!(settings.aggregators.len(), 1, "{name}");
                assert_eq!(settings.trusted_proxies.len(), 1, "{name}");
            }
            for addr in role_ports.into_iter().flatten() {
                if let Some(other) = ports.insert(addr.port(), name.clone()) {
                    panic!("port {} in both {other} and {name}", addr.port());
                }
            }
            files += 1;
        }
        assert_eq!(files, 9, "the aggregator and the eight regions");
        assert_eq!(ports.len(), 3 + 8 * 3);
    }
}
