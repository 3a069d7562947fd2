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
    Params::parse(raw, &[]).map_err(|e| bad_request(words::param_error(&e)))?;
    let report = shared
        .read(|n| Ok(n.membership()))
        .await
        .map_err(internal)?;
    let (members, former): (Vec<_>, Vec<_>) = report
        .as_ref()
        .map(|r| r.regions.clone())
        .unwrap_or_default()
        .into_iter()
        .partition(|r| r.state == "member");
    Ok((
        "natverket.html",
        "network",
        context! { report => report, members => members, former => former },
    ))
}

/// `/natverket`: who belongs to the network, and who decided it.
async fn network(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let r = network_page(&shared, raw.as_deref()).await;
    page(&shared, r)
}
