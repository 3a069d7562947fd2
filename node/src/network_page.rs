//! `/natverket`, the network's own page: its charter, its member regions (since when, endorsed
//! by whom, their keys), the endorsements and revocations still pending, and former members,
//! from the same [`crate::local::MembershipReport`] as `/api/v1/network` and `spindel status`
//! (decision 0041). Without a charter it says who admits regions instead.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use minijinja::context;

use crate::params::Params;
use crate::read::Reads;
use crate::shared::Shared;
use crate::web::{PageError, bad_request, internal, page};
use crate::words;

/// The network's page.
pub fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new().route("/natverket", axum::routing::get(network))
}

async fn network_page(
    shared: &Arc<Shared>,
    raw: Option<&str>,
) -> Result<(&'static str, &'static str, minijinja::Value), PageError> {
    let params =
        Params::parse(raw, &["raderingar"]).map_err(|e| bad_request(words::param_error(&e)))?;
    let page = erasures_page(&params)?;
    let report = shared
        .read(move |n| Ok(n.membership_page(page)))
        .await
        .map_err(internal)?;
    let (prev, next) = erasure_links("/natverket", report.as_ref());
    let (members, former): (Vec<_>, Vec<_>) = report
        .as_ref()
        .map(|r| r.regions.clone())
        .unwrap_or_default()
        .into_iter()
        .partition(|r| r.state == "member");
    Ok((
        "natverket.html",
        "network",
        context! {
            report => report, members => members, former => former,
            erasures_prev => prev, erasures_next => next,
        },
    ))
}

/// The page of erasure orders `?raderingar=N` asks for (from 1).
pub(crate) fn erasures_page(params: &Params) -> Result<usize, PageError> {
    match params.get("raderingar") {
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| bad_request(words::BAD_PAGE_NUMBER)),
        None => Ok(1),
    }
}

/// Links to the previous and next page of erasure orders on `path`, where there is one.
pub(crate) fn erasure_links(
    path: &str,
    report: Option<&crate::local::MembershipReport>,
) -> (Option<String>, Option<String>) {
    let Some(r) = report else {
        return (None, None);
    };
    let link = |page: usize| format!("{path}?raderingar={page}#radering");
    (
        (r.erasures_page > 1).then(|| link(r.erasures_page - 1)),
        (r.erasures_page < r.erasures_pages).then(|| link(r.erasures_page + 1)),
    )
}

/// `/natverket`: who belongs to the network, and who decided it.
async fn network(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = network_page(&shared, raw.as_deref()).await;
    page(&shared, r)
}
