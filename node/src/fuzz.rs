//! The node's decoders of bytes a client controls, for the property tests and the `cargo fuzz`
//! targets in `fuzz/` (the protocol's are in `spindel_protocol::fuzz`): each takes any bytes
//! and must never panic.

/// A query string as `GET /api/v1/records` and the page's search (`/`) receive it (a URL's
/// query is text; other bytes never reach a handler).
pub fn query_string(bytes: &[u8]) {
    let Ok(raw) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(request) = crate::http::records_request(Some(raw)) {
        let _ = crate::query::Query::from_request(&request);
    }
    let _ = crate::web::search_params(Some(raw));
}
