//! What deletion, correction and the one writer of a log promise, through the real binary:
//! after a delete or a correction no byte of the purged content is left in any file of any data
//! directory it reached (docs/data-protection.md), also after a crash in the middle of the
//! purge; concurrent publishes through a running node never fork its log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use spindel_tests::{
    Initialised, NodeProc, copy_dir, eventually, files_containing, import_args, init, init_regions,
    publish_run, s, spindel, spindel_env, spindel_stdin,
};

/// How long erasure may take after a tombstone or a new version is applied (the promise).
const ERASE_DEADLINE_S: u64 = 60;

/// An aggregator that admitted `regions` (each initialised in `tmp`), running with `extra`
/// arguments: its directory, process and peer address, and each region's directory and NodeId.
struct Network {
    agg_dir: PathBuf,
    agg: NodeProc,
    peer: String,
    regions: Vec<(PathBuf, String)>,
}

fn network(tmp: &Path, regions: &[&str], extra: &[&str]) -> Network {
    let Initialised {
        agg_dir,
        agg_id,
        regions,
    } = init_regions(tmp, regions);
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let agg = NodeProc::start(&agg_dir, &args);
    let peer = agg.peer(&agg_id);
    Network {
        agg_dir,
        agg,
        peer,
        regions,
    }
}

fn researcher(name: &str, phone: Option<&str>) -> String {
    let mut v = serde_json::json!({
        "name": name,
        "affiliation": "Umeå universitet",
        "fields": ["social ekonomi"],
        "email": "forskare@example.org",
        "consent": {"given": true, "date": "2026-03-12", "method": "blankett"},
    });
    if let Some(p) = phone {
        v["phone"] = p.into();
    }
    v.to_string()
}

fn edit(dir: &Path, kind: &str, record_id: &str, json: &str) {
    spindel_tests::spindel_stdin(
        &[
            "publish",
            "--data-dir",
            s(dir),
            "--kind",
            kind,
            "--id",
            record_id,
            "--file",
            "-",
            "--json",
        ],
        json,
    )
    .ok();
}

fn head_of(dir: &Path, author: &str) -> u64 {
    spindel(&["status", "--data-dir", s(dir), "--json"]).json()["heads"][author]
        .as_u64()
        .unwrap_or(0)
}

/// A researcher contact is published, replicated to the aggregator and a second region,
/// corrected (phone removed) and deleted: within the deadline no byte of the removed phone,
/// then of the name, is left in any file of the three data directories.
#[test]
fn deletion_and_correction_erase_the_bytes_on_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network(tmp.path(), &["skane", "dalarna"], &[]);
    let (agg_dir, peer) = (net.agg_dir.clone(), net.peer.clone());
    let [(skane, skane_id), (dalarna, _)] = <[_; 2]>::try_from(net.regions.clone()).unwrap();
    let _skane_node = NodeProc::start(&skane, &["--aggregator", &peer]);
    let _dalarna_node = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let dirs = [&agg_dir, &skane, &dalarna];

    // Canaries: strings that occur nowhere else.
    // No stemmer changes a word ending in "q": the full-text index holds it as it is.
    let name = "Kanariefågel Qxzvbnmxq";
    let name_canary = "Qxzvbnmxq";
    let phone_canary = "+46 70 913 57 24";
    // Imported together with another contact, so both share full-text segments: the erasure
    // has to merge the deleted document out, not just drop a segment of its own.
    let lines = format!(
        "{}\n{}\n",
        researcher(name, Some(phone_canary)),
        researcher("Bertil Grannsson", Some("+46 90 786 50 00"))
    );
    spindel_tests::spindel_stdin(
        &[
            "import",
            "--data-dir",
            s(&skane),
            "--kind",
            "researcher",
            "--file",
            "-",
        ],
        &lines,
    )
    .ok();
    let page = spindel(&[
        "query",
        "--data-dir",
        s(&skane),
        "--text",
        "Qxzvbnmxq",
        "--json",
    ])
    .json();
    let rid = page["records"][0]["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(30, "the contacts at the aggregator and in dalarna", || {
        head_of(&agg_dir, &skane_id) >= 3 && head_of(&dalarna, &skane_id) >= 3
    });
    // The scan must see the contact on every node first, or the test would be blind. (The
    // full-text index keeps words in an FST, where a byte scan cannot see them: that the merge
    // removes a deleted record's words is tested on the term dictionaries in node/src/search.rs.)
    for dir in dirs {
        assert!(
            !files_containing(dir, name_canary).is_empty(),
            "the scan does not find the contact in {} (the test would be blind)",
            dir.display()
        );
    }

    // A correction: the phone number is removed. Only the new version is kept anywhere.
    edit(&skane, "researcher", &rid, &researcher(name, None));
    eventually(30, "the correction everywhere", || {
        head_of(&agg_dir, &skane_id) >= 4 && head_of(&dalarna, &skane_id) >= 4
    });
    eventually(
        ERASE_DEADLINE_S,
        "the old phone number erased everywhere",
        || {
            dirs.iter()
                .all(|d| files_containing(d, phone_canary).is_empty())
        },
    );
    for dir in dirs {
        assert!(!files_containing(dir, name_canary).is_empty());
    }

    // A profile's old display name goes too once corrected (profiles are content as well).
    let display_canary = "Qvzkanarieplattform";
    let profile = |name: &str| serde_json::json!({"display_name": name}).to_string();
    publish_run(
        &skane,
        "profile",
        &profile(&format!("Skåne {display_canary}")),
    )
    .ok();
    eventually(30, "the profile everywhere", || {
        head_of(&agg_dir, &skane_id) >= 5 && head_of(&dalarna, &skane_id) >= 5
    });
    assert!(!files_containing(&dalarna, display_canary).is_empty());
    publish_run(
        &skane,
        "profile",
        &profile("Nätverket Social Ekonomi Skåne"),
    )
    .ok();
    eventually(30, "the corrected profile everywhere", || {
        head_of(&agg_dir, &skane_id) >= 6 && head_of(&dalarna, &skane_id) >= 6
    });
    eventually(
        ERASE_DEADLINE_S,
        "the old display name erased everywhere",
        || {
            dirs.iter()
                .all(|d| files_containing(d, display_canary).is_empty())
        },
    );

    // The deletion: nothing of the contact is left in any file on any node.
    spindel(&["delete", "--data-dir", s(&skane), &rid, "--json"]).ok();
    eventually(30, "the tombstone everywhere", || {
        head_of(&agg_dir, &skane_id) >= 7 && head_of(&dalarna, &skane_id) >= 7
    });
    let started = std::time::Instant::now();
    eventually(ERASE_DEADLINE_S, "the contact erased everywhere", || {
        dirs.iter()
            .all(|d| files_containing(d, name_canary).is_empty())
    });
    eprintln!(
        "erased on all three nodes {} ms after the tombstone arrived",
        started.elapsed().as_millis()
    );
    // The signed headers stay: the log is still complete and verifiable everywhere.
    for dir in dirs {
        assert_eq!(head_of(dir, &skane_id), 7);
        assert!(!files_containing(dir, "Grannsson").is_empty());
    }
    let status = spindel(&["status", "--data-dir", s(&dalarna), "--json"]).json();
    assert!(status["forks"].as_array().unwrap().is_empty());
}

/// A crash (abort) after the tombstone is durable but before the payload is erased: the bytes
/// are still there, and the next start erases them before it serves anything.
#[test]
fn a_crash_in_the_middle_of_a_purge_is_finished_by_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    let canary = "Zqwkanariemannen";
    let run = publish_run(&dir, "researcher", &researcher(canary, None));
    let rid = run.json()["record_id"].as_str().unwrap().to_string();
    assert!(!files_containing(&dir, canary).is_empty());

    let crashed = spindel_env(
        &["delete", "--data-dir", s(&dir), &rid],
        &[("SPINDEL_FAULT_INJECT", "abort-before-erase")],
    );
    assert_ne!(crashed.code, 0, "the fault was not injected");
    let packs = dir.join("payloads");
    assert!(
        !files_containing(&packs, canary).is_empty(),
        "the crash came too late to test anything: the payload was already erased"
    );
    // The tombstone itself is durable.
    let page = spindel(&["query", "--data-dir", s(&dir), "--json"]).json();
    assert!(
        !page.to_string().contains(canary),
        "the deleted contact is still served: {page}"
    );
    // That first open after the crash erased everything before it answered.
    let left = files_containing(&dir, canary);
    assert!(left.is_empty(), "left after restart: {left:?}");
}

/// 100 publishes at once through one running node: all succeed, seqs are dense, no fork and
/// no refusal (choosing the seq, signing and applying are one critical section).
#[test]
fn concurrent_publishes_through_a_running_node_never_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = init(tmp.path(), "skane", "region");
    let node = NodeProc::start(&dir, &[]);
    const N: usize = 100;
    let seqs: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let dir = dir.clone();
                scope.spawn(move || {
                    let json =
                        serde_json::json!({"title": format!("Metod {i}"), "summary": "Samtidigt"})
                            .to_string();
                    let run = publish_run(&dir, "method", &json);
                    assert_eq!(run.code, 0, "publish {i} failed: {}", run.stderr);
                    run.json()["seq"].as_u64().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (2..=N as u64 + 1).collect::<Vec<_>>());
    let status = spindel(&["status", "--data-dir", s(&dir), "--json"]).json();
    assert_eq!(status["heads"][&id], N as u64 + 1);
    assert!(status["forks"].as_array().unwrap().is_empty());
    assert!(
        status["refused"].as_object().unwrap().is_empty(),
        "{status}"
    );
    drop(node);
}

/// A publish issued while `spindel run` is still starting (store held, control socket not yet
/// bound) waits for the node instead of failing with "the store is in use".
#[test]
fn a_publish_while_the_node_starts_waits_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = init(tmp.path(), "skane", "region");
    for round in 0..5 {
        let mut run = std::process::Command::new(spindel_tests::spindel_bin())
            .args(["run", "--data-dir", s(&dir)])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let json =
            serde_json::json!({"title": format!("Tidig {round}"), "summary": "Direkt"}).to_string();
        let published = publish_run(&dir, "method", &json);
        assert_eq!(published.code, 0, "round {round}: {}", published.stderr);
        let socket = dir.join("control.sock");
        eventually(30, "the node to run", || socket.exists());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &run.id().to_string()])
            .status();
        assert!(run.wait().unwrap().success());
    }
    let status = spindel(&["status", "--data-dir", s(&dir), "--json"]).json();
    assert_eq!(status["heads"][&id], 6);
}

fn titles_at(dir: &Path, author: &str) -> Vec<String> {
    let page = spindel(&["query", "--data-dir", s(dir), "--json", "--limit", "1000"]).json();
    let mut titles: Vec<String> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["author"] == author && r["kind"] == "method")
        .map(|r| r["data"]["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    titles
}

fn method(dir: &Path, title: &str) -> u64 {
    let json = serde_json::json!({"title": title, "summary": "Återställd"}).to_string();
    let run = publish_run(dir, "method", &json);
    assert_eq!(run.code, 0, "publish {title}: {}", run.stderr);
    run.json()["seq"].as_u64().unwrap()
}

/// The scenario of a restore from an old copy: the region's later records were at the
/// aggregator only. On start the region catches up with its own log before it signs, so the
/// next publish continues the true log: every record everywhere, no fork, no refusal.
#[test]
fn a_node_started_from_an_old_copy_catches_up_with_itself_instead_of_forking() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network(tmp.path(), &["skane"], &[]);
    let (agg_dir, peer) = (net.agg_dir.clone(), net.peer.clone());
    let (skane, skane_id) = net.regions[0].clone();
    let run_skane = || NodeProc::start(&skane, &["--aggregator", &peer]);

    let node = run_skane();
    assert_eq!(method(&skane, "Före kopian"), 2);
    eventually(30, "seq 2 at the aggregator", || {
        head_of(&agg_dir, &skane_id) == 2
    });
    assert_eq!(node.terminate(10), 0);
    let old = tmp.path().join("skane-kopia");
    copy_dir(&skane, &old);

    let node = run_skane();
    assert_eq!(method(&skane, "Efter kopian 1"), 3);
    assert_eq!(method(&skane, "Efter kopian 2"), 4);
    eventually(30, "seq 4 at the aggregator", || {
        head_of(&agg_dir, &skane_id) == 4
    });
    assert_eq!(node.terminate(10), 0);

    // The old copy is put back and started: it must not sign seq 3 again.
    std::fs::remove_dir_all(&skane).unwrap();
    std::fs::rename(&old, &skane).unwrap();
    assert_eq!(head_of(&skane, &skane_id), 2, "the copy is old");
    let _node = run_skane();
    assert_eq!(method(&skane, "Efter återställningen"), 5);
    eventually(30, "seq 5 at the aggregator", || {
        head_of(&agg_dir, &skane_id) == 5
    });
    let all = [
        "Efter kopian 1",
        "Efter kopian 2",
        "Efter återställningen",
        "Före kopian",
    ];
    assert_eq!(titles_at(&agg_dir, &skane_id), all);
    assert_eq!(titles_at(&skane, &skane_id), all);
    for dir in [&agg_dir, &skane] {
        let status = spindel(&["status", "--data-dir", s(dir), "--json"]).json();
        assert!(status["forks"].as_array().unwrap().is_empty(), "{status}");
        for reason in ["fork", "prev_mismatch", "frozen"] {
            assert!(status["refused"].get(reason).is_none(), "{status}");
        }
    }
}

/// A staff member's password in these tests.
const EDITOR_PASSWORD: &str = "ett långt lösenord för redaktionen";

/// An old copy that signed while offline forks its region's log. Every node names it: the
/// aggregator that caught it, the other region (from the aggregator's signed proof) and the
/// forked region itself, in `status` (with one sentence of advice), the logs and the page;
/// the forked node refuses to sign more, saying what to do.
#[test]
fn a_forked_old_copy_is_named_on_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network(
        tmp.path(),
        &["skane", "dalarna"],
        &["--http", "127.0.0.1:0"],
    );
    let (agg_dir, peer, agg) = (net.agg_dir.clone(), net.peer.clone(), &net.agg);
    let [(skane, skane_id), (dalarna, _)] = <[_; 2]>::try_from(net.regions.clone()).unwrap();
    let _dalarna_node = NodeProc::start(&dalarna, &["--aggregator", &peer]);
    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    method(&skane, "Före kopian");
    assert_eq!(node.terminate(10), 0);
    let old = tmp.path().join("skane-kopia");
    copy_dir(&skane, &old);
    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    assert_eq!(method(&skane, "Efter kopian"), 3);
    eventually(30, "seq 3 in dalarna", || head_of(&dalarna, &skane_id) == 3);
    assert_eq!(node.terminate(10), 0);

    // The old copy signs seq 3 again while no node runs (offline), then goes online, with
    // Redaktionen on.
    std::fs::remove_dir_all(&skane).unwrap();
    std::fs::rename(&old, &skane).unwrap();
    assert_eq!(method(&skane, "Gaffel"), 3);
    spindel_tests::user_add(&skane, "anna", "redaktor", Some(EDITOR_PASSWORD));
    let node = NodeProc::start(&skane, &["--aggregator", &peer, "--admin", "127.0.0.1:0"]);

    let forks_of = |dir: &Path| -> Vec<serde_json::Value> {
        spindel(&["status", "--data-dir", s(dir), "--json"]).json()["forks"]
            .as_array()
            .unwrap()
            .clone()
    };
    for (dir, what) in [
        (&agg_dir, "the aggregator"),
        (&dalarna, "dalarna"),
        (&skane, "skane itself"),
    ] {
        eventually(30, &format!("{what} to name the fork"), || {
            !forks_of(dir).is_empty()
        });
        let fork = &forks_of(dir)[0];
        assert_eq!(fork["author"], skane_id.as_str(), "{what}: {fork}");
        assert_eq!(fork["seq"], 3, "{what}: {fork}");
        assert_eq!(fork["name"], "skane", "{what}: {fork}");
        assert_ne!(fork["first"], fork["second"]);
        let advice = fork["advice"].as_str().unwrap();
        assert!(advice.contains("seq 3"), "{what}: {advice}");
        assert!(!advice.contains("  "), "{what}: {advice}");
        assert_eq!(fork["own"], dir == &skane, "{what}: {fork}");
        let text = spindel(&["status", "--data-dir", s(dir)])
            .ok()
            .stdout
            .clone();
        assert!(
            text.contains("FORK") && text.contains(advice),
            "{what}: {text}"
        );
    }
    let status = spindel(&["status", "--data-dir", s(&agg_dir), "--json"]).json();
    assert_eq!(
        status["refused_by_author"][&skane_id]["fork"], 1,
        "the refusal names its author: {status}"
    );
    // The forked node signs nothing more and says what to do.
    let refused = publish_run(
        &skane,
        "method",
        r#"{"title":"Efter gaffeln","summary":"Nej"}"#,
    );
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("forked at seq 3") && refused.stderr.contains("spindel init"),
        "{}",
        refused.stderr
    );
    // Redaktionen says it on its start page, before anyone fills in a form; a form sent
    // anyway comes back with its text and says nothing was saved.
    let admin = node.admin.unwrap();
    let (cookie, csrf) = spindel_tests::editor_session(admin, "anna", EDITOR_PASSWORD);
    let cookie = [("Cookie", cookie.as_str())];
    let (_, _, start) = spindel_tests::http_exchange(admin, "GET", "/", &cookie, None);
    assert!(
        start.contains("Publicering är avstängd:") && start.contains("gaffel vid post nummer 3"),
        "{start}"
    );
    let (status, _, form) = spindel_tests::http_form(
        admin,
        "/ny/method",
        &cookie,
        &[
            ("title", "Skrevs efter gaffeln"),
            ("summary", "Texten finns kvar"),
            ("csrf", &csrf),
            ("action", "publish"),
        ],
    );
    assert_eq!(status, 409, "{form}");
    assert!(
        form.contains("Inget sparades.")
            && form.contains("gaffel")
            && form.contains("value=\"Skrevs efter gaffeln\"")
            && form.contains("Texten finns kvar"),
        "{form}"
    );
    let (code, page) = spindel_tests::http_get(agg.http.unwrap(), "/region/skane");
    assert_eq!(code, 200);
    assert!(page.contains("förgrenats vid nummer 3"), "{page}");
    assert!(agg.log().contains("fork proven"), "{}", agg.log());
    drop(node);
}

/// `backup` while the node runs (through the control channel) and while it is stopped; after
/// more publishing, `restore` of the old backup makes a node that waits until it has caught up
/// with the aggregator, then continues the true log. A backup never overwrites a node, and a
/// damaged backup leaves nothing behind.
#[test]
fn backup_and_restore_never_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let net = network(tmp.path(), &["skane"], &[]);
    let (agg_dir, peer) = (net.agg_dir.clone(), net.peer.clone());
    let (skane, skane_id) = net.regions[0].clone();

    let node = NodeProc::start(&skane, &["--aggregator", &peer]);
    method(&skane, "I säkerhetskopian");
    let file = tmp.path().join("skane.backup");
    let done = spindel(&[
        "backup",
        "--data-dir",
        s(&skane),
        "--to",
        s(&file),
        "--json",
    ])
    .json();
    assert_eq!(done["entries"], 2, "{done}");
    assert_eq!(done["file"], s(&file));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "the backup holds the secret key"
    );
    // Publishing goes on after the backup; these records exist only at the aggregator then.
    method(&skane, "Efter säkerhetskopian 1");
    method(&skane, "Efter säkerhetskopian 2");
    eventually(30, "seq 4 at the aggregator", || {
        head_of(&agg_dir, &skane_id) == 4
    });
    assert_eq!(node.terminate(10), 0);
    // A backup of the stopped node works too.
    let stopped = tmp.path().join("stoppad.backup");
    let done = spindel(&[
        "backup",
        "--data-dir",
        s(&skane),
        "--to",
        s(&stopped),
        "--json",
    ])
    .json();
    assert_eq!(done["entries"], 4);

    // The machine is lost; the old backup is restored elsewhere.
    let restored = tmp.path().join("skane-ny");
    let refused = spindel(&["restore", "--from", s(&file), "--data-dir", s(&skane)]);
    refused.fails(1, "already holds a spindel node");
    let v = spindel(&[
        "restore",
        "--from",
        s(&file),
        "--data-dir",
        s(&restored),
        "--json",
    ])
    .json();
    assert_eq!(v["node_id"], skane_id.as_str());
    assert_eq!(v["entries"], 2);
    // Without its aggregator it will not sign: that could fork the log.
    let offline = publish_run(
        &restored,
        "method",
        r#"{"title":"För tidigt","summary":"Nej"}"#,
    );
    assert_eq!(offline.code, 1);
    assert!(
        offline.stderr.contains("restored from a backup"),
        "{}",
        offline.stderr
    );
    let status = spindel(&["status", "--data-dir", s(&restored), "--json"]).json();
    assert_eq!(status["restored"], true, "{status}");
    let text = spindel(&["status", "--data-dir", s(&restored)])
        .ok()
        .stdout
        .clone();
    assert!(text.contains("RESTORED"), "{text}");
    // Started with its aggregator it catches up, then continues the true log; a publish given
    // right after the start waits for that instead of failing.
    let mut node = std::process::Command::new(spindel_tests::spindel_bin())
        .args(["run", "--data-dir", s(&restored), "--aggregator", &peer])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(method(&restored, "Efter återställningen"), 5);
    eventually(30, "seq 5 at the aggregator", || {
        head_of(&agg_dir, &skane_id) == 5
    });
    assert_eq!(
        titles_at(&restored, &skane_id),
        [
            "Efter säkerhetskopian 1",
            "Efter säkerhetskopian 2",
            "Efter återställningen",
            "I säkerhetskopian"
        ]
    );
    assert!(!restored.join("restored").exists());
    let status = spindel(&["status", "--data-dir", s(&agg_dir), "--json"]).json();
    assert!(status["forks"].as_array().unwrap().is_empty(), "{status}");
    let _ = node.kill();
    let _ = node.wait();

    // Not into a directory that holds other files, and a missing file is named once.
    let busy = tmp.path().join("upptagen");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("anteckning.txt"), "min fil").unwrap();
    let r = spindel(&["restore", "--from", s(&file), "--data-dir", s(&busy)]);
    r.fails(1, "is not empty");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    let missing = tmp.path().join("finns-inte.backup");
    let r = spindel(&[
        "restore",
        "--from",
        s(&missing),
        "--data-dir",
        s(&busy.join("ny")),
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("finns-inte.backup"), "{}", r.stderr);

    // A damaged backup: refused with a clear error, nothing left behind.
    let mut bytes = std::fs::read(&stopped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let damaged = tmp.path().join("skadad.backup");
    std::fs::write(&damaged, &bytes).unwrap();
    let target = tmp.path().join("skadad");
    let r = spindel(&["restore", "--from", s(&damaged), "--data-dir", s(&target)]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not a usable spindel backup"),
        "{}",
        r.stderr
    );
    assert!(
        !target.exists(),
        "a failed restore left {}",
        target.display()
    );
    let cut = tmp.path().join("kort.backup");
    std::fs::write(&cut, &std::fs::read(&stopped).unwrap()[..mid]).unwrap();
    let r = spindel(&["restore", "--from", s(&cut), "--data-dir", s(&target)]);
    assert!(r.stderr.contains("cut short"), "{}", r.stderr);
    assert!(!target.exists());
}

/// A backup carries the editor's staff accounts and the audit trail (they exist nowhere
/// else); a restore brings them back, private to the node's owner, so the restored region's
/// staff log in as before and its history is still there.
#[test]
fn a_backup_carries_the_staff_accounts_and_the_audit_trail() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    for (user, role) in [("anna", "admin"), ("bo.ek", "redaktor")] {
        spindel_stdin(
            &[
                "user",
                "add",
                "--data-dir",
                s(&dir),
                user,
                "--role",
                role,
                "--password-stdin",
            ],
            "ett långt lösenord",
        )
        .ok();
    }
    spindel(&["user", "remove", "--data-dir", s(&dir), "bo.ek"]).ok();
    let history = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    // Taken by the running node (through its control socket).
    let node = NodeProc::start(&dir, &[]);
    let file = tmp.path().join("skane.backup");
    let done = spindel(&["backup", "--data-dir", s(&dir), "--to", s(&file), "--json"]).json();
    assert_eq!(done["staff_accounts"], true, "{done}");
    assert_eq!(
        done["audit_bytes"],
        std::fs::metadata(dir.join("audit.jsonl")).unwrap().len(),
        "{done}"
    );
    assert_eq!(node.terminate(10), 0);

    let restored = tmp.path().join("skane-ny");
    let v = spindel(&[
        "restore",
        "--from",
        s(&file),
        "--data-dir",
        s(&restored),
        "--json",
    ])
    .json();
    assert_eq!(v["staff_accounts"], 1, "{v}");
    for f in ["users.json", "audit.jsonl"] {
        let mode = std::fs::metadata(restored.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let users = spindel(&["user", "list", "--data-dir", s(&restored), "--json"]).json();
    assert_eq!(
        users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["user"].as_str().unwrap(), u["role"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("anna", "admin")],
        "{users}"
    );
    let audit = spindel(&["user", "audit", "--data-dir", s(&restored), "--json"]).json();
    assert_eq!(audit, history);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user_add", "user_add", "user_remove"]);
}

/// An import a crash interrupts is all or nothing: before its commit point nothing of it is
/// in the store and its staged entries are erased by the next start; after it (also in the
/// middle of applying it in chunks) the next start finishes it, and the region's next own
/// entry follows the import's last (no fork of its own log).
#[test]
fn an_import_a_crash_interrupts_lands_whole_or_not_at_all() {
    let chunk = spindel_node::local::IMPORT_CHUNK_ENTRIES;
    let n = chunk * 2 + chunk / 2;
    let canary = "Zqximportkanarie";
    let lines: String = (0..n)
        .map(|i| {
            format!("{{\"title\":\"Metod {i}\",\"summary\":\"{canary} i regionen nummer {i}\"}}\n")
        })
        .collect();
    for (fault, lands) in [
        ("abort-import-staged", false),
        ("abort-import-committed", true),
        ("abort-import-applying", true),
        ("abort-import-erasing", true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, id) = init(tmp.path(), "skane", "region");
        let file = tmp.path().join("many.jsonl");
        std::fs::write(&file, &lines).unwrap();
        let crashed = spindel_env(
            &import_args(&dir, "method", &file),
            &[("SPINDEL_FAULT_INJECT", fault)],
        );
        assert_ne!(crashed.code, 0, "{fault}: the fault was not injected");
        let pending = match fault {
            "abort-import-staged" => spindel_node::local::IMPORT_STAGING,
            "abort-import-erasing" => spindel_node::local::IMPORT_APPLIED,
            _ => spindel_node::local::IMPORT_COMMITTED,
        };
        assert!(
            dir.join(pending).exists(),
            "{fault}: no {pending} after the crash"
        );

        // The next start drops or finishes the import before it answers.
        let status = spindel(&["status", "--data-dir", s(&dir), "--json"]).json();
        let expected = if lands { n as u64 + 1 } else { 1 };
        assert_eq!(status["records"], expected, "{fault}: {status}");
        assert_eq!(head_of(&dir, &id), expected, "{fault}");
        for name in [
            spindel_node::local::IMPORT_STAGING,
            spindel_node::local::IMPORT_COMMITTED,
            spindel_node::local::IMPORT_APPLIED,
        ] {
            assert!(!dir.join(name).exists(), "{fault}: {name} left behind");
        }
        if !lands {
            let left = files_containing(&dir, canary);
            assert!(left.is_empty(), "{fault}: staged content left in {left:?}");
        }
        let next = publish_run(
            &dir,
            "method",
            r#"{"title":"Efter importen","summary":"Nästa post"}"#,
        );
        assert_eq!(next.json()["seq"], expected + 1, "{fault}");
        let status = spindel(&["status", "--data-dir", s(&dir), "--json"]).json();
        assert!(status["forks"].as_array().unwrap().is_empty(), "{fault}");
    }

    // A committed import that cannot be read (a disk that lost it) stops the own log with a
    // message naming the file and the way out; removing it gives up the unapplied rest.
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    let committed = dir.join(spindel_node::local::IMPORT_COMMITTED);
    std::fs::write(&committed, vec![0u8; 4096]).unwrap();
    let stuck = publish_run(&dir, "method", r#"{"title":"Fast","summary":"s"}"#);
    assert_ne!(stuck.code, 0);
    assert!(
        stuck.stderr.contains("import.committed") && stuck.stderr.contains("remove this file"),
        "{}",
        stuck.stderr
    );
    std::fs::remove_file(&committed).unwrap();
    let after = publish_run(&dir, "method", r#"{"title":"Loss","summary":"s"}"#);
    assert_eq!(after.json()["seq"], 2);
}
