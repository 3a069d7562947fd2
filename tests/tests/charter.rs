//! `spindel charter new/sign/show` through the real binary: three founding regions draw up a
//! charter and sign it with their node keys; a forged or broken file is refused by name, and
//! a refused command leaves the file as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spindel_tests::{init, s, spindel};

#[test]
fn founders_draw_up_and_sign_a_charter_and_forgeries_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (skane, skane_id) = init(tmp.path(), "skane", "region");
    let (dalarna, dalarna_id) = init(tmp.path(), "dalarna", "region");
    let (stockholm, stockholm_id) = init(tmp.path(), "stockholm", "region");
    let (stranger, _) = init(tmp.path(), "gotland", "region");
    let file = tmp.path().join("soul.json");
    let founders = [
        format!("{skane_id}=skane"),
        format!("{dalarna_id}=dalarna"),
        format!("{stockholm_id}=stockholm"),
    ];
    let mut args = vec!["charter", "new", "--name", "SOUL", "--threshold", "2"];
    args.extend(founders.iter().map(String::as_str));
    args.extend(["--out", s(&file), "--json"]);
    let drawn = spindel(&args).json();
    assert_eq!(drawn["network"], "SOUL");
    assert_eq!(drawn["threshold"], 2);
    assert_eq!(drawn["complete"], false);
    assert_eq!(drawn["missing"].as_array().unwrap().len(), 3);
    let id = drawn["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64);

    // Never over an existing file; bad founders and thresholds are named.
    let before = std::fs::read(&file).unwrap();
    spindel(&args).fails(1, "never overwritten");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let other = tmp.path().join("other.json");
    let mut bad = vec!["charter", "new", "--name", "SOUL", "--threshold", "4"];
    bad.extend(founders.iter().map(String::as_str));
    bad.extend(["--out", s(&other)]);
    spindel(&bad).fails(1, "threshold 4 must be from 1 to the 3 founding regions");
    let twice = format!("{skane_id}=dalarna");
    spindel(&[
        "charter",
        "new",
        "--name",
        "SOUL",
        "--threshold",
        "1",
        &founders[0],
        &founders[1],
        &twice,
        "--out",
        s(&other),
    ])
    .fails(1, "founding region");
    spindel(&[
        "charter",
        "new",
        "--name",
        "SOUL",
        "--threshold",
        "1",
        "abc=x",
        "--out",
        s(&other),
    ])
    .fails(2, "is not a node id");
    assert!(!other.exists(), "a refused charter writes no file");

    // Each founder signs with its node key; a stranger cannot, nobody signs twice.
    let signed = spindel(&[
        "charter",
        "sign",
        "--data-dir",
        s(&skane),
        s(&file),
        "--json",
    ])
    .json();
    assert_eq!(
        signed["id"],
        id.as_str(),
        "signing does not change the charter"
    );
    // Founders are listed in key order (keys are random): compare as a set.
    let mut missing: Vec<&str> = signed["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    missing.sort();
    assert_eq!(missing, ["dalarna", "stockholm"]);
    let once = std::fs::read(&file).unwrap();
    spindel(&["charter", "sign", "--data-dir", s(&skane), s(&file)]).fails(1, "has already signed");
    spindel(&["charter", "sign", "--data-dir", s(&stranger), s(&file)])
        .fails(1, "not a founding region");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        once,
        "a refused signature writes nothing"
    );
    spindel(&["charter", "sign", "--data-dir", s(&dalarna), s(&file)]).ok();
    let shown = spindel(&["charter", "show", s(&file), "--json"]).json();
    assert_eq!(shown["complete"], false);
    assert_eq!(shown["missing"], serde_json::json!(["stockholm"]));
    let text = spindel(&["charter", "show", s(&file)]).ok().stdout.clone();
    assert!(
        text.contains("not in force until signed by: stockholm"),
        "{text}"
    );
    spindel(&["charter", "sign", "--data-dir", s(&stockholm), s(&file)]).ok();
    let shown = spindel(&["charter", "show", s(&file), "--json"]).json();
    assert_eq!(shown["complete"], true);
    assert!(
        shown["founders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["signed"] == true)
    );
    assert_eq!(shown["id"], id.as_str());

    // A forged signature (one hex digit changed) and changed charter bytes are named.
    let good = std::fs::read_to_string(&file).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let sig = v["signatures"][0]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { "1" } else { "0" },
        &sig[1..]
    );
    v["signatures"][0]["signature"] = flipped.into();
    let forged = tmp.path().join("forged.json");
    std::fs::write(&forged, v.to_string()).unwrap();
    spindel(&["charter", "show", s(&forged)]).fails(1, "does not verify");
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let bytes = v["charter"]
        .as_str()
        .unwrap()
        .replace(&hex_of("SOUL"), &hex_of("SOUX"));
    v["charter"] = bytes.into();
    std::fs::write(&forged, v.to_string()).unwrap();
    spindel(&["charter", "show", s(&forged)]).fails(1, "does not verify");
    // Not a charter at all, or too big to be one.
    std::fs::write(&forged, "{}").unwrap();
    spindel(&["charter", "show", s(&forged)]).fails(1, "not a spindel charter");
    std::fs::write(&forged, vec![b' '; 1 << 20]).unwrap();
    spindel(&["charter", "show", s(&forged)]).fails(1, "over the limit");
    spindel(&["charter", "show", s(&tmp.path().join("missing.json"))])
        .fails(1, "cannot read the charter");
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
