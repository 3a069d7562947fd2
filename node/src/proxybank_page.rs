//! `/proxybank`, the SROI proxy bank's page: the query string read and checked, the bank's
//! page derived by [`crate::proxybank`] through the read model, rendered by the public page's
//! templates (its own routes, merged by the HTTP router as the calendar's are).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use minijinja::{Value, context};
use spindel_protocol::record::Kind;

use crate::params::Params;
use crate::query::Query;
use crate::read::Reads;
use crate::shared::Shared;
use crate::web::{PageError, bad_request, page, query_error};
use crate::words;

/// The proxy bank's page.
pub fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route("/proxybank", axum::routing::get(proxybank))
}

/// Parameters the proxy bank understands.
const PROXYBANK_PARAMS: &[&str] = &["q", "region", "tag", "sida"];

/// `/proxybank` with `params`, at page `page`.
fn proxybank_url(params: &Params, page: usize) -> String {
    let mut pairs: Vec<(&str, String)> = ["q", "region", "tag"]
        .iter()
        .filter_map(|k| params.get(k).map(|v| (*k, v.to_string())))
        .collect();
    if page > 1 {
        pairs.push(("sida", page.to_string()));
    }
    match serde_urlencoded::to_string(pairs) {
        Ok(q) if !q.is_empty() => format!("/proxybank?{q}"),
        _ => "/proxybank".to_string(),
    }
}

async fn proxybank_page(
    shared: &Arc<Shared>,
    raw: Option<&str>,
) -> Result<(&'static str, &'static str, Value), PageError> {
    let mut params =
        Params::parse(raw, PROXYBANK_PARAMS).map_err(|e| bad_request(words::param_error(&e)))?;
    let tag = params.get("tag").map(str::to_lowercase);
    params.set("tag", tag);
    let page = match params.get("sida") {
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| bad_request(words::BAD_PAGE_NUMBER))?,
        None => 1,
    };
    let get = |k: &str| params.get(k).map(str::to_string);
    let q = Query {
        kind: Some(Kind::Indicator),
        region: get("region"),
        tag: get("tag"),
        text: get("q"),
        ..Query::default()
    };
    let (bank, facets) = shared
        .read(move |n| {
            let bank = n.proxybank(&q, page)?;
            Ok((bank, n.facets(&q)?))
        })
        .await
        .map_err(query_error)?;
    let prev = (bank.page > 1).then(|| proxybank_url(&params, bank.page - 1));
    let next = (bank.page < bank.pages).then(|| proxybank_url(&params, bank.page + 1));
    Ok((
        "proxybank.html",
        "proxybank",
        context! {
            b => Value::from_serialize(&bank), q => get("q"), region => get("region"),
            tag => get("tag"), regions => facets.regions, tags => facets.tags,
            prev => prev, next => next, scan_max => crate::proxybank::SCAN_MAX,
        },
    ))
}

async fn proxybank(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = proxybank_page(&shared, raw.as_deref()).await;
    page(&shared, r)
}
