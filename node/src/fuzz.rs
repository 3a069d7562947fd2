//! The node's decoders of bytes a client controls, for the property tests and the `cargo fuzz`
//! targets in `fuzz/` (the protocol's are in `spindel_protocol::fuzz`): each takes any bytes
//! and must never panic.

use std::collections::HashMap;

/// A query string as `GET /api/v1/records` and the page's search (`/sok`) receive it.
pub fn query_string(bytes: &[u8]) {
    if let Ok(params) = serde_urlencoded::from_bytes::<HashMap<String, String>>(bytes)
        && let Ok(request) = crate::http::records_request(&params)
    {
        let _ = crate::runtime::query_from_request(&request);
    }
    if let Ok(raw) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes) {
        let _ = crate::web::search_params(raw);
    }
}
