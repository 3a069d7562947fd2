//! The knowledge bank on other sites (docs/interface.md, HTTP; decision 0042): the Atom feed
//! `/flode.atom` (RFC 4287), with the search page's filters, and the embed `/inbaddning`, a
//! small page without scripts that a region's own website frames, the one route whose
//! `frame-ancestors` lets another site frame it (settings `embed_ancestors`).
//!
//! An entry's id is its record's address as a tag URI (RFC 4151), the same for every version
//! and on every node, and its `updated` is when the current version was signed: a reader that
//! follows the feed sees a new version as the same entry updated. A deleted record is not in
//! the feed (the page of the last entries is read again on each fetch).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use spindel_protocol::Kind;

use crate::params::Params;
use crate::query::Query;
use crate::read::Reads;
use crate::shared::Shared;
use crate::web::{
    PageError, PublicUrl, RecordItem, bad_request, internal, items, page, query_error,
};
use crate::words;

/// Entries of a feed: the newest versions first.
pub const FEED_ENTRIES_MAX: usize = 50;
/// Records an embed lists when `limit` is not given, and the most it lists.
pub const EMBED_LIMIT_DEFAULT: usize = 5;
pub const EMBED_LIMIT_MAX: usize = 20;
/// Characters of a record's text an entry or an embed shows as its summary.
pub const SUMMARY_CHARS_MAX: usize = 400;

/// The parameters of the feed (those of the search page, without its cursor).
const FEED_PARAMS: &[&str] = &["kind", "region", "tag", "q"];
/// The parameters of the embed.
const EMBED_PARAMS: &[&str] = &["kind", "region", "tag", "limit"];

/// Which sites may frame `/inbaddning` (settings `embed_ancestors`): the value of its
/// `frame-ancestors` directive. Every other route keeps `frame-ancestors 'none'`.
#[derive(Debug, Clone)]
pub struct EmbedAncestors(pub String);

impl EmbedAncestors {
    /// Any site (`*`): the embed holds public records and nothing to click that acts.
    pub fn any() -> EmbedAncestors {
        EmbedAncestors("*".into())
    }

    /// The origins given (`https://www.example.se`, or `*`), each checked: a scheme of http or
    /// https, a host, perhaps a port, nothing else. An empty list: any site.
    pub fn from_origins(origins: &[String]) -> Result<EmbedAncestors, String> {
        if origins.is_empty() {
            return Ok(EmbedAncestors::any());
        }
        for o in origins {
            check_origin(o)?;
        }
        Ok(EmbedAncestors(origins.join(" ")))
    }
}

/// `origin` is `*` or `http(s)://host[:port]`: what a CSP source expression for a site is,
/// with nothing that could end the directive or add another.
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("{origin:?} is not an origin: it must start with https:// or http://")
        })?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !host.starts_with(['.', '-']);
    let port_ok = port.is_none_or(|p| {
        p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
    });
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "{origin:?} is not an origin: a scheme, a host name and perhaps a port, like \"https://www.skane.example.se\" (no path, no spaces)"
        ))
    }
}

/// A record's text that a feed entry or an embed shows under its title.
fn summary_of(item: &RecordItem) -> Option<String> {
    let d = &item.view.data;
    let text = ["summary", "description", "text", "proxy", "affiliation"]
        .iter()
        .find_map(|k| d.get(k).and_then(|v| v.as_str()))
        .filter(|s| !s.trim().is_empty())?;
    let mut out: String = text.chars().take(SUMMARY_CHARS_MAX).collect();
    if text.chars().count() > SUMMARY_CHARS_MAX {
        out.push('…');
    }
    Some(out)
}

/// Text as XML 1.0 takes it: `&`, `<`, `>`, `"` and `'` escaped, and the characters XML does
/// not allow (most control characters) left out, so a record's text cannot end an element or
/// break the document.
pub(crate) fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || ('\u{FFFE}'..='\u{FFFF}').contains(&c) => {}
            c => out.push(c),
        }
    }
    out
}

/// A record's address as an Atom id: a tag URI, the same for every version and every node.
fn entry_id(author: &str, record_id: &str) -> String {
    format!("tag:spindel,2026:post/{author}/{record_id}")
}

/// A path or query under the site: absolute under `public_url` when it is set.
fn under(public_url: Option<&str>, path: &str) -> String {
    match public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path.to_string(),
    }
}

/// The filters of a feed or an embed as a query string (`?kind=…`), empty ones left out.
fn query_string(params: &Params, keys: &[&str]) -> String {
    let pairs: Vec<(&str, &str)> = keys
        .iter()
        .filter_map(|k| params.get(k).filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(&pairs) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

/// The feed of `entries` (newest first) as Atom XML.
pub(crate) fn atom(
    title: &str,
    query: &str,
    entries: &[RecordItem],
    public_url: Option<&str>,
    now: &str,
) -> String {
    let updated = entries.first().map_or(now, |e| e.view.updated_at.as_str());
    let mut x = String::with_capacity(1024 + entries.len() * 1024);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"sv\">\n");
    x.push_str(&format!(
        "  <id>{}</id>\n  <title>{}</title>\n  <updated>{}</updated>\n",
        xml_text(&format!("tag:spindel,2026:flode{query}")),
        xml_text(title),
        xml_text(updated)
    ));
    x.push_str(&format!(
        "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
        xml_text(&under(public_url, &format!("/flode.atom{query}")))
    ));
    x.push_str(&format!(
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        xml_text(&under(public_url, &format!("/{query}")))
    ));
    x.push_str("  <generator>spindel</generator>\n");
    x.push_str(&format!(
        "  <author><name>{}</name></author>\n",
        xml_text(words::FEED_AUTHOR)
    ));
    for e in entries {
        let v = &e.view;
        let region = e
            .region_display
            .clone()
            .unwrap_or_else(|| v.author[..8].to_string());
        x.push_str("  <entry>\n");
        x.push_str(&format!(
            "    <id>{}</id>\n    <title>{}</title>\n    <updated>{}</updated>\n    <published>{}</published>\n",
            xml_text(&entry_id(&v.author, &v.record_id)),
            xml_text(&e.title),
            xml_text(&v.updated_at),
            xml_text(&v.created_at)
        ));
        x.push_str(&format!(
            "    <author><name>{}</name></author>\n",
            xml_text(&region)
        ));
        x.push_str(&format!(
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
            xml_text(&under(
                public_url,
                &format!("/post/{}/{}", v.author, v.record_id)
            ))
        ));
        x.push_str(&format!(
            "    <category term=\"{}\" label=\"{}\"/>\n",
            xml_text(v.kind.as_str()),
            xml_text(&words::kind_label(v.kind.as_str(), false))
        ));
        for tag in v
            .data
            .get("tags")
            .and_then(|t| t.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
        {
            x.push_str(&format!(
                "    <category term=\"{}\"/>\n",
                xml_text(&tag.to_lowercase())
            ));
        }
        if let Some(summary) = summary_of(e) {
            x.push_str(&format!(
                "    <summary type=\"text\">{}</summary>\n",
                xml_text(&summary)
            ));
        }
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x
}

/// The query a feed's or an embed's filters make, or a page error naming the parameter.
fn filters(params: &Params, limit: usize) -> Result<Query, PageError> {
    let get = |k: &str| params.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let kind = match get("kind") {
        Some(k) => Some(
            k.parse::<Kind>()
                .ok()
                .filter(|k| !k.is_membership())
                .ok_or_else(|| bad_request(words::unknown_kind(&k)))?,
        ),
        None => None,
    };
    Ok(Query {
        kind,
        region: get("region"),
        tag: get("tag"),
        text: get("q"),
        limit: Some(limit),
        ..Query::default()
    })
}

/// Pages of its own size a feed or an embed reads at most to fill itself after leaving out
/// profiles and researchers (a bound on the work one request does).
const PAGES_READ_MAX: usize = 8;

/// The records `q` finds, newest version first, contacts left out, as the pages list them. A
/// region's profile is its presentation, not news, and a researcher is a person who agreed to
/// be listed, not to be syndicated: both are left out unless `q` asks for that kind.
fn newest(
    n: &crate::read::ReadModel,
    q: &Query,
) -> Result<Vec<RecordItem>, crate::read::ReadError> {
    let shown = q.limit.unwrap_or(FEED_ENTRIES_MAX);
    let mut asked = q.clone();
    let mut records = Vec::with_capacity(shown);
    for _ in 0..PAGES_READ_MAX {
        let mut found = n.search(&asked)?;
        crate::privacy::leave_out_contacts(&mut found);
        records.extend(found.records.into_iter().filter(|r| {
            q.kind.is_some() || (r.kind != Kind::Profile && !crate::privacy::is_personal(r.kind))
        }));
        match found.next_cursor {
            Some(c) if records.len() < shown => asked.cursor = Some(c),
            _ => break,
        }
    }
    let mut list = items(n, records)?;
    list.sort_by(|a, b| b.view.updated_at.cmp(&a.view.updated_at));
    list.truncate(shown);
    Ok(list)
}

/// `GET /flode.atom`: the newest records the filters find, as an Atom feed.
async fn feed(
    State(shared): State<Arc<Shared>>,
    axum::Extension(public_url): axum::Extension<PublicUrl>,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = async {
        let params = Params::parse(raw.as_deref(), FEED_PARAMS)
            .map_err(|e| bad_request(words::param_error(&e)))?;
        let q = filters(&params, FEED_ENTRIES_MAX)?;
        let title = words::feed_title(
            q.kind.map(|k| k.as_str()),
            q.region.as_deref(),
            q.tag.as_deref(),
            q.text.as_deref(),
        );
        let entries = shared
            .read(move |n| newest(n, &q))
            .await
            .map_err(query_error)?;
        Ok::<_, PageError>((params, title, entries))
    }
    .await;
    match r {
        Ok((params, title, entries)) => {
            let personal = entries
                .iter()
                .any(|e| crate::privacy::is_personal(e.view.kind));
            let now = spindel_protocol::time::rfc3339_ms(crate::local::now_ms());
            let body = atom(
                &title,
                &query_string(&params, FEED_PARAMS),
                &entries,
                public_url.0.as_deref(),
                &now,
            );
            let mut r = (StatusCode::OK, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/atom+xml; charset=utf-8"),
            );
            if personal {
                crate::privacy::personal_data(&mut r);
            }
            r
        }
        Err(e) => page(&shared, Err(e)),
    }
}

/// `GET /inbaddning`: the newest records the filters find, as a small page another site frames.
async fn embed(
    State(shared): State<Arc<Shared>>,
    axum::Extension(public_url): axum::Extension<PublicUrl>,
    axum::Extension(ancestors): axum::Extension<EmbedAncestors>,
    RawQuery(raw): RawQuery,
) -> Response {
    let r = async {
        let params = Params::parse(raw.as_deref(), EMBED_PARAMS)
            .map_err(|e| bad_request(words::param_error(&e)))?;
        let limit = match params.get("limit").filter(|v| !v.is_empty()) {
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=EMBED_LIMIT_MAX).contains(l))
                .ok_or_else(|| bad_request(words::embed_limit(EMBED_LIMIT_MAX)))?,
            None => EMBED_LIMIT_DEFAULT,
        };
        let q = filters(&params, limit)?;
        let entries = shared
            .read(move |n| {
                // A region the address misspells is said, not shown as an empty list.
                if q.region.is_some() {
                    n.query(&Query {
                        region: q.region.clone(),
                        limit: Some(1),
                        ..Query::default()
                    })?;
                }
                newest(n, &q)
            })
            .await
            .map_err(|e| match e {
                crate::read::ReadError::Question(crate::query::QueryError::UnknownRegion(
                    r,
                    known,
                )) => bad_request(words::embed_unknown_region(&r, &known)),
                other => query_error(other),
            })?;
        Ok::<_, PageError>((params, entries))
    }
    .await;
    // An error is shown inside the frame too (the embed's own page, its own policy), so the
    // region's website says what is wrong instead of a browser's refusal.
    let (status, error, params, entries) = match r {
        Ok((params, entries)) => (StatusCode::OK, None, Some(params), entries),
        Err(e) => {
            let (status, message) = e.parts();
            (status, Some(message.to_string()), None, Vec::new())
        }
    };
    let base = public_url.0.as_deref();
    let list: Vec<minijinja::Value> = entries
        .iter()
        .map(|e| {
            context! {
                title => e.title.clone(),
                href => under(base, &format!("/post/{}/{}", e.view.author, e.view.record_id)),
                kind => e.view.kind.as_str(),
                region => e.region_display.clone(),
                updated => e.view.updated_at.clone(),
                summary => summary_of(e),
            }
        })
        .collect();
    let more = under(
        base,
        &format!(
            "/{}",
            params
                .as_ref()
                .map(|p| query_string(p, FEED_PARAMS))
                .unwrap_or_default()
        ),
    );
    let rendered = crate::templates::templates()
        .get_template("inbaddning.html")
        .and_then(|t| {
            t.render(context! {
                records => list,
                error => error,
                more => more,
                stylesheet => under(base, "/assets/inbaddning.css"),
                node_name => shared.node.config().name.clone(),
            })
        });
    let body = match rendered {
        Ok(b) => b,
        Err(e) => return page(&shared, Err(internal(e))),
    };
    let mut r = crate::web::html(status, body);
    if entries
        .iter()
        .any(|e| crate::privacy::is_personal(e.view.kind))
    {
        crate::privacy::personal_data(&mut r);
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors {}",
        ancestors.0
    );
    match HeaderValue::from_str(&csp) {
        Ok(v) => {
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        Err(e) => return page(&shared, Err(internal(e))),
    }
    // The referrer stays with the reader's own site: the embed's links open spindel's pages.
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    r
}

const EMBED_STYLE: &str = include_str!("../templates/inbaddning.css");

/// The embed's own small stylesheet.
async fn embed_style() -> Response {
    crate::web::stylesheet(EMBED_STYLE)
}

/// The feed's and the embed's routes.
pub fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/flode.atom", get(feed))
        .route("/inbaddning", get(embed))
        .route("/assets/inbaddning.css", get(embed_style))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_are_checked_before_they_reach_the_header() {
        assert_eq!(EmbedAncestors::from_origins(&[]).unwrap().0, "*");
        assert_eq!(
            EmbedAncestors::from_origins(&[
                "https://www.skane.example.se".into(),
                "http://127.0.0.1:8080".into()
            ])
            .unwrap()
            .0,
            "https://www.skane.example.se http://127.0.0.1:8080"
        );
        for bad in [
            "www.skane.se",
            "https://",
            "https://a.se/path",
            "https://a.se; script-src *",
            "https://a.se:0",
            "https://a.se:99999",
            "https://a.se:+443",
            "ftp://a.se",
            "https://a .se",
        ] {
            let e = EmbedAncestors::from_origins(&[bad.into()]).unwrap_err();
            assert!(e.contains("is not an origin"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_records_text_cannot_break_the_feed() {
        assert_eq!(
            xml_text("a<b>&\"'\u{0}\u{8}c\u{FFFE}\n"),
            "a&lt;b&gt;&amp;&quot;&apos;c\n"
        );
    }
}
