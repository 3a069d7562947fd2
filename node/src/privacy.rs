//! The privacy rules every answer follows, in one place: the HTTP API and page
//! ([`crate::http`], [`crate::web`]) and the QUIC query answer ([`crate::session`]) call these,
//! so no surface can hand out in bulk what a person's record holds.

use spindel_protocol::record::Kind;

use crate::query::QueryPage;

/// Contact fields of researcher records that a list leaves out: a person's e-mail address and
/// phone number are shown only to someone who asks for that one record (and at most
/// [`crate::ratelimit::CONTACTS`] of them per client address).
pub const CONTACT_FIELDS: [&str; 2] = ["email", "phone"];

/// Records of `kind` hold personal data (a researcher who agreed to be listed): their pages
/// and API answers are marked so (no caching, no indexing of contact details).
pub fn is_personal(kind: Kind) -> bool {
    kind == Kind::Researcher
}

/// Marks a response that carries personal data (a researcher contact): no cache keeps it and
/// no search engine indexes it.
pub fn personal_data(response: &mut axum::response::Response) {
    use axum::http::{HeaderValue, header};
    let h = response.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
}

/// Takes the contact fields out of every researcher record of a page (lists never carry them
/// in bulk: the HTTP API and remote queries).
pub fn leave_out_contacts(page: &mut QueryPage) {
    for r in &mut page.records {
        if is_personal(r.kind)
            && let Some(data) = r.data.as_object_mut()
        {
            for field in CONTACT_FIELDS {
                data.remove(field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::RecordView;

    #[test]
    fn a_list_never_carries_a_researchers_contact_details() {
        let view = |kind: Kind, data: serde_json::Value| RecordView {
            record_id: "00".repeat(16),
            kind,
            region: None,
            author: "ab".repeat(32),
            seq: 1,
            version: 1,
            updated_at: String::new(),
            created_at: String::new(),
            data,
        };
        let mut page = QueryPage {
            records: vec![
                view(
                    Kind::Researcher,
                    serde_json::json!({"name": "Eva", "email": "eva@example.se", "phone": "070", "affiliation": "LU"}),
                ),
                // Another kind's "email" is not a person's contact field.
                view(
                    Kind::Method,
                    serde_json::json!({"title": "t", "email": "x"}),
                ),
            ],
            next_cursor: None,
        };
        leave_out_contacts(&mut page);
        assert_eq!(
            page.records[0].data,
            serde_json::json!({"name": "Eva", "affiliation": "LU"})
        );
        assert_eq!(page.records[1].data["email"], "x");
    }
}
