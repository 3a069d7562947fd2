//! The 151 Wycheproof ed25519 vectors (tests/data, Apache-2.0, see tests/data/LICENSE) through
//! spindel's own verify function: every verdict must match.

use serde_json::Value;
use spindel_protocol::keys::verify_strict;

#[test]
fn all_wycheproof_vectors_give_the_expected_verdict() {
    let text = include_str!("data/ed25519_test.json");
    let doc: Value = serde_json::from_str(text).expect("vector file is JSON");
    let mut count = 0;
    let mut failures = Vec::new();
    for group in doc["testGroups"].as_array().expect("testGroups") {
        let pk = hex::decode(group["publicKey"]["pk"].as_str().expect("pk")).expect("pk hex");
        for case in group["tests"].as_array().expect("tests") {
            count += 1;
            let id = case["tcId"].as_u64().expect("tcId");
            let msg = hex::decode(case["msg"].as_str().expect("msg")).expect("msg hex");
            let sig = hex::decode(case["sig"].as_str().expect("sig")).expect("sig hex");
            let expected_valid = match case["result"].as_str().expect("result") {
                "valid" => true,
                "invalid" => false,
                other => panic!("vector {id}: unexpected result {other}"),
            };
            let got_valid = verify_strict(&pk, &msg, &sig).is_ok();
            if got_valid != expected_valid {
                failures.push(format!(
                    "tcId {id} ({}): expected valid={expected_valid}, got {got_valid}",
                    case["comment"]
                ));
            }
        }
    }
    assert_eq!(count, 151, "the vector file holds 151 cases");
    assert!(
        failures.is_empty(),
        "{} mismatches: {failures:#?}",
        failures.len()
    );
}
