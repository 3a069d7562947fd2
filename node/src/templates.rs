//! The template environment of the public pages and the editor (minijinja, templates compiled
//! into the binary), with the filters the templates use: text, paragraphs, `mailto:` and `tel:`
//! links, and the Swedish words of [`crate::words`].

use std::sync::OnceLock;

use minijinja::{Environment, Value};

use crate::words::{date, datetime, kind_count, kind_label, short_datetime, sv_amount, sv_number};

/// The compiled templates (once per process).
pub(crate) fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("macros.html", include_str!("../templates/macros.html")),
            ("search.html", include_str!("../templates/search.html")),
            ("record.html", include_str!("../templates/record.html")),
            ("region.html", include_str!("../templates/region.html")),
            ("overview.html", include_str!("../templates/overview.html")),
            (
                "proxybank.html",
                include_str!("../templates/proxybank.html"),
            ),
            ("error.html", include_str!("../templates/error.html")),
            (
                "granskning.html",
                include_str!("../templates/granskning.html"),
            ),
            (
                "natverket.html",
                include_str!("../templates/natverket.html"),
            ),
            ("calendar.html", include_str!("../templates/calendar.html")),
            (
                "inbaddning.html",
                include_str!("../templates/inbaddning.html"),
            ),
            (
                "integritet.html",
                include_str!("../templates/integritet.html"),
            ),
            (
                "editor_base.html",
                include_str!("../templates/editor_base.html"),
            ),
            (
                "editor_login.html",
                include_str!("../templates/editor_login.html"),
            ),
            (
                "editor_posts.html",
                include_str!("../templates/editor_posts.html"),
            ),
            (
                "editor_remove_many.html",
                include_str!("../templates/editor_remove_many.html"),
            ),
            (
                "editor_reset.html",
                include_str!("../templates/editor_reset.html"),
            ),
            (
                "editor_account.html",
                include_str!("../templates/editor_account.html"),
            ),
            (
                "editor_start.html",
                include_str!("../templates/editor_start.html"),
            ),
            (
                "editor_error.html",
                include_str!("../templates/editor_error.html"),
            ),
            (
                "editor_form.html",
                include_str!("../templates/editor_form.html"),
            ),
            (
                "editor_preview.html",
                include_str!("../templates/editor_preview.html"),
            ),
            (
                "editor_record.html",
                include_str!("../templates/editor_record.html"),
            ),
            (
                "editor_network.html",
                include_str!("../templates/editor_network.html"),
            ),
            (
                "editor_members.html",
                include_str!("../templates/editor_members.html"),
            ),
            (
                "editor_act_confirm.html",
                include_str!("../templates/editor_act_confirm.html"),
            ),
            (
                "editor_network_record.html",
                include_str!("../templates/editor_network_record.html"),
            ),
            (
                "editor_delete.html",
                include_str!("../templates/editor_delete.html"),
            ),
            (
                "editor_users.html",
                include_str!("../templates/editor_users.html"),
            ),
            (
                "editor_audit.html",
                include_str!("../templates/editor_audit.html"),
            ),
            (
                "editor_import.html",
                include_str!("../templates/editor_import.html"),
            ),
        ] {
            // The templates are part of the binary and tested; a syntax error is a build bug.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env.add_filter("kind_label", |k: &str| kind_label(k, false));
        env.add_filter("kind_plural", |k: &str| kind_label(k, true));
        env.add_filter("kind_count", |k: &str, n: u64| kind_count(k, n));
        env.add_filter("date", date);
        env.add_filter("datetime", datetime);
        env.add_filter("event_when", |start: &str, end: &str| {
            crate::words::event_when(start, end)
        });
        env.add_filter("short_datetime", short_datetime);
        env.add_filter("sv_number", sv_number);
        env.add_filter("sv_amount", sv_amount);
        env.add_filter("truncate", truncate);
        env.add_filter("paragraphs", paragraphs);
        env.add_filter("mailto", mailto);
        env.add_filter("tel", tel);
        env
    })
}

/// Renders one of the templates (the page's and the editor's share filters and style).
pub(crate) fn render_template(template: &str, ctx: Value) -> Result<String, minijinja::Error> {
    templates().get_template(template)?.render(ctx)
}

/// At most `n` characters (default 240), cut at a word and marked with an ellipsis.
pub(crate) fn truncate(s: &str, n: Option<usize>) -> String {
    let n = n.unwrap_or(240);
    if s.chars().count() <= n {
        return s.to_string();
    }
    let cut: String = s.chars().take(n).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a);
    format!("{}…", cut.trim_end_matches([',', '.', ';', ':']))
}

/// Plain text as escaped HTML paragraphs (blank lines separate them, single newlines break).
pub(crate) fn paragraphs(s: &str) -> Value {
    let mut html = String::new();
    for p in s.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        html.push_str("<p>");
        html.push_str(&escape(p).replace('\n', "<br>"));
        html.push_str("</p>");
    }
    Value::from_safe_string(html)
}

/// The line a region's own website pastes to frame the embed with the region's five newest
/// records (decision 0042): under `public_url`, else under a placeholder the page says to
/// replace.
pub(crate) fn embed_line(public_url: Option<&str>, region: &str) -> String {
    let site = public_url.map_or("https://KUNSKAPSBANKENS-ADRESS", |u| {
        u.trim_end_matches('/')
    });
    let region = serde_urlencoded::to_string([("region", region)]).unwrap_or_default();
    format!(
        "<iframe src=\"{site}/inbaddning?{region}&limit=5\" title=\"Senaste i kunskapsbanken\" width=\"100%\" height=\"420\"></iframe>"
    )
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// An e-mail address as a `mailto:` URI: every byte outside RFC 6068's safe set is
/// percent-encoded, so an address holding `?`, `&`, `=` or `%` (valid in an addr-spec) can never
/// add headers such as a hidden Bcc.
pub(crate) fn mailto(address: &str) -> String {
    let mut out = String::from("mailto:");
    for b in address.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*+,;:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A phone number as a `tel:` URI: the leading `+` and the digits, nothing else.
pub(crate) fn tel(phone: &str) -> String {
    let mut out = String::from("tel:");
    out.extend(
        phone
            .chars()
            .enumerate()
            .filter(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '+'))
            .map(|(_, c)| c),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_and_tel_links_carry_nothing_but_the_address() {
        assert_eq!(
            mailto("a?bcc=spy%40evil.se&x=@lu.se"),
            "mailto:a%3Fbcc%3Dspy%2540evil.se%26x%3D@lu.se"
        );
        assert_eq!(mailto("anna@lu.se"), "mailto:anna@lu.se");
        assert_eq!(mailto("å@lu.se"), "mailto:%C3%A5@lu.se");
        assert_eq!(tel("+46 46-222 00 00"), "tel:+46462220000");
        assert_eq!(tel("(08) 123 45"), "tel:0812345");
    }

    #[test]
    fn every_template_compiles() {
        let env = templates();
        for name in [
            "base.html",
            "macros.html",
            "search.html",
            "record.html",
            "region.html",
            "overview.html",
            "proxybank.html",
            "error.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn text_filters_cut_at_a_word_and_escape_paragraphs() {
        assert_eq!(truncate("kort", Some(10)), "kort");
        assert_eq!(
            truncate("Integration i förening, steg för steg", Some(25)),
            "Integration i förening…"
        );
        assert_eq!(
            paragraphs("a <b>\n\nc\nd").to_string(),
            "<p>a &lt;b&gt;</p><p>c<br>d</p>"
        );
    }
}
