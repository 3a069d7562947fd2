//! A node's secret key stays where it must: a running region that has read its key file,
//! dialed its aggregator (the TLS identity made from the key) and written a backup holds no
//! copy of the key's hex text or of its PKCS#8 form anywhere in its memory, used or freed
//! (docs/data-protection.md, "Local files"). Its memory is read through /proc, as its parent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spindel_tests::{NodeProc, eventually, init_network, publish_run, s, spindel};

/// Every readable, private mapping of process `pid`: (start, end).
fn private_regions(pid: u32) -> Vec<(u64, u64)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let range = parts.next()?;
            let perms = parts.next()?;
            // Readable and private (heap, stacks, anonymous maps, writable data); not the
            // binary's read-only text, which holds no key.
            if !perms.starts_with("rw") {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// How many times each needle occurs in the private memory of process `pid`.
fn occurrences(pid: u32, needles: &[&[u8]]) -> Vec<usize> {
    use std::io::{Read, Seek, SeekFrom};
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut counts = vec![0; needles.len()];
    for (start, end) in private_regions(pid) {
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue; // a guard page or a mapping gone meanwhile
        }
        for (count, needle) in counts.iter_mut().zip(needles) {
            *count += buf.windows(needle.len()).filter(|w| w == needle).count();
        }
    }
    counts
}

#[test]
fn a_running_node_keeps_no_copy_of_its_key_text_or_pkcs8_form() {
    let tmp = tempfile::tempdir().unwrap();
    let (agg_dir, agg_id, [(dir, id)]) = init_network(tmp.path(), ["skane"]);
    let agg = NodeProc::start(&agg_dir, &["--listen", "127.0.0.1:0"]);
    let region = NodeProc::start(&dir, &["--aggregator", &agg.peer(&agg_id)]);
    let json = r#"{"title":"Nyckelprov","summary":"Ett prov"}"#;
    assert_eq!(publish_run(&dir, "method", json).code, 0);
    eventually(20, "the record at the aggregator", || {
        spindel(&["status", "--data-dir", s(&agg_dir), "--json"]).json()["heads"][&id] == 2
    });
    // A backup through the running node: it writes the key out.
    let backup = tmp.path().join("skane.backup");
    spindel(&["backup", "--data-dir", s(&dir), "--to", s(&backup)]).ok();

    let hex_text = std::fs::read_to_string(dir.join("node.key")).unwrap();
    let hex_text = hex_text.trim();
    let mut seed = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut seed).unwrap();
    let public = hex::decode(&id).unwrap();
    // Needles that survive the allocator: a freed block's first 16 bytes are overwritten with
    // its free-list links, so each needle is the tail of what a copy would hold.
    // - the hex text's second half;
    // - the PKCS#8 document's seed tail followed by the start of its public-key field
    //   ([1] BIT STRING: 81 21 00, then the key), found only in that form.
    let hex_tail = &hex_text.as_bytes()[32..];
    let mut pkcs8_tail = seed[16..].to_vec();
    pkcs8_tail.extend_from_slice(&[0x81, 0x21, 0x00]);
    pkcs8_tail.extend_from_slice(&public[..8]);
    let pid = region.child.id();
    let found = occurrences(pid, &[hex_tail, &pkcs8_tail, &seed]);
    eprintln!(
        "copies in memory: hex text {}, PKCS#8 {}, key in use {}",
        found[0], found[1], found[2]
    );
    assert_eq!(found[0], 0, "the key's hex text is in the node's memory");
    assert_eq!(found[1], 0, "the key's PKCS#8 form is in the node's memory");
    // The check can see the key at all: the signing key itself is there, in use.
    assert!(
        found[2] > 0,
        "the key itself was not found: the memory scan is blind"
    );
    for p in [region, agg] {
        assert_eq!(p.terminate(15), 0);
    }
}
