//! Redaktionen under abuse (issue 17), through the real binary and from several client
//! addresses on loopback (127.0.0.5, 127.0.0.6, ...): guessing never keeps the account holder
//! out, a trusted proxy names the client, one-time passwords open only `/konto`, account
//! changes from the command line reach the running node, failed logins are aggregated in the
//! audit trail and `/logg` pages through all of it, sessions per account are capped, and a
//! researcher's contact details cannot be harvested.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};

use spindel_tests::{
    NodeProc, csrf_field, header, http_exchange, http_exchange_from, http_form_from, init, publish,
    s, set_cookie, spindel, spindel_stdin, user_add,
};

const PASSWORD: &str = "ett långt lösenord för test";

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A login from `from` with the extra `cookies` (a device cookie, say) and `headers`:
/// (status, lower-cased head, body).
fn login_from(
    from: IpAddr,
    admin: SocketAddr,
    user: &str,
    password: &str,
    cookies: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let (_, head, body) = http_exchange_from(from, admin, "GET", "/logga-in", &[], None);
    let c = set_cookie(&head, "spindel_inloggning").expect("login cookie");
    let csrf = csrf_field(&body);
    let mut cookie = format!("spindel_inloggning={c}");
    if !cookies.is_empty() {
        cookie.push_str("; ");
        cookie.push_str(cookies);
    }
    let mut all = vec![("Cookie", cookie.as_str())];
    all.extend_from_slice(headers);
    http_form_from(
        from,
        admin,
        "/logga-in",
        &all,
        &[("user", user), ("password", password), ("csrf", &csrf)],
    )
}

/// A region "skane" with staff, its editor (and `extra` args) running.
fn region(
    users: &[(&str, &str)],
    extra: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, NodeProc) {
    let mut args = vec!["--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    spindel_tests::editor_region(users, PASSWORD, &args)
}

/// Twenty made-up names from one address, or wrong passwords for anna from five, slow the
/// strangers down (429 with Retry-After); anna's browser, where she has logged in before, is
/// never held, from any address; bo is not touched.
#[test]
fn guessing_never_keeps_the_account_holder_out() {
    let (_tmp, _dir, node) = region(&[("anna", "admin"), ("bo", "redaktor")], &[]);
    let admin = node.admin.unwrap();
    // Anna logs in once from her own machine: her browser gets a device cookie.
    let (status, head, _) = login_from(ip(5), admin, "anna", PASSWORD, "", &[]);
    assert_eq!(status, 303);
    let device = set_cookie(&head, "spindel_enhet").expect("a device cookie");
    assert!(head.contains("max-age="), "{head}");
    let device = format!("spindel_enhet={device}");

    // An attacker at 127.0.0.6: 20 made-up names, then even a right password from there waits.
    for i in 0..20 {
        let (status, _, _) = login_from(ip(6), admin, &format!("gissning{i}"), "fel", "", &[]);
        assert_eq!(status, 401, "guess {i}");
    }
    let (status, head, body) = login_from(ip(6), admin, "bo", PASSWORD, "", &[]);
    assert_eq!(status, 429, "{body}");
    assert!(header(&head, "retry-after").is_some(), "{head}");
    assert!(body.contains("Vänta"), "{body}");
    // Another address is not slowed; nor is anna's browser at the attacker's address.
    assert_eq!(login_from(ip(7), admin, "bo", PASSWORD, "", &[]).0, 303);
    assert_eq!(
        login_from(ip(6), admin, "anna", PASSWORD, &device, &[]).0,
        303,
        "a trusted device was held by its address"
    );

    // Wrong passwords for anna from five addresses: anna's account is slowed for anyone
    // without her device cookie...
    for a in 10..15 {
        assert_eq!(login_from(ip(a), admin, "anna", "fel", "", &[]).0, 401);
    }
    let (status, head, _) = login_from(ip(20), admin, "anna", PASSWORD, "", &[]);
    assert_eq!(status, 429);
    let wait: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // A forged device cookie is just untrusted.
    let forged = device.replace("spindel_enhet=anna:", "spindel_enhet=anna:1");
    assert_eq!(
        login_from(ip(24), admin, "anna", PASSWORD, &forged, &[]).0,
        429
    );
    // ...but her own browser gets in at once, from anywhere.
    assert_eq!(
        login_from(ip(21), admin, "anna", PASSWORD, &device, &[]).0,
        303
    );
    assert_eq!(
        login_from(ip(5), admin, "anna", PASSWORD, &device, &[]).0,
        303
    );
    // A device cookie is the account's: it does not help anyone guessing another account.
    for _ in 0..5 {
        login_from(ip(22), admin, "bo", "fel", "", &[]);
    }
    assert_eq!(
        login_from(ip(23), admin, "bo", PASSWORD, &device, &[]).0,
        429,
        "anna's device cookie let bo's guesser through"
    );
    assert_eq!(node.terminate(10), 0);
}

/// Behind a reverse proxy named in `trusted_proxies`, the client is the last address the
/// proxy put in X-Forwarded-For: one client guessing does not slow another behind the same
/// proxy. A client that is not a trusted proxy cannot choose its address that way.
#[test]
fn a_trusted_proxy_names_the_client() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    user_add(&dir, "anna", "admin", Some(PASSWORD));
    std::fs::write(
        dir.join("spindel.toml"),
        "admin = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.2\"]\n",
    )
    .unwrap();
    let node = NodeProc::start(&dir, &[]);
    let admin = node.admin.unwrap();
    let proxy = ip(2);
    let via = |client: &'static str| [("X-Forwarded-For", client)];
    for i in 0..20 {
        login_from(
            proxy,
            admin,
            &format!("x{i}"),
            "fel",
            "",
            &via("198.51.100.7"),
        );
    }
    assert_eq!(
        login_from(proxy, admin, "anna", PASSWORD, "", &via("198.51.100.7")).0,
        429
    );
    assert_eq!(
        login_from(proxy, admin, "anna", PASSWORD, "", &via("198.51.100.8")).0,
        303,
        "one client behind the proxy slowed another"
    );
    // Not a trusted proxy: its X-Forwarded-For is ignored; it is slowed by its own address.
    for i in 0..20 {
        login_from(
            ip(9),
            admin,
            &format!("y{i}"),
            "fel",
            "",
            &via("203.0.113.1"),
        );
    }
    assert_eq!(
        login_from(ip(9), admin, "anna", PASSWORD, "", &via("203.0.113.99")).0,
        429,
        "a client chose its address"
    );
    assert_eq!(node.terminate(10), 0);
    // Successful logins are audited with the client's address.
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "login" && e["address"] == "198.51.100.8"),
        "{audit}"
    );
    // A bad proxy address in the settings is one line naming the field.
    std::fs::write(
        dir.join("spindel.toml"),
        "trusted_proxies = [\"proxy.lan\"]\n",
    )
    .unwrap();
    spindel(&["run", "--data-dir", s(&dir)]).fails(1, "trusted_proxies[0]");
}

/// A generated password opens only /konto; there its holder chooses their own (current
/// required, errors beside their fields), sees their logins, and goes on in a new session.
#[test]
fn a_one_time_password_only_opens_konto() {
    let (_tmp, dir, node) = region(&[("anna", "admin")], &[]);
    let admin = node.admin.unwrap();
    let once = user_add(&dir, "cia", "redaktor", None)["password"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, head, _) = login_from(ip(5), admin, "cia", &once, "", &[]);
    assert_eq!(status, 303);
    assert_eq!(header(&head, "location"), Some("/konto"), "{head}");
    let sc = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").unwrap()
    );
    let cookie = [("Cookie", sc.as_str())];
    for path in ["/", "/ny/method", "/importera"] {
        let (status, head, _) = http_exchange(admin, "GET", path, &cookie, None);
        assert_eq!(status, 303, "{path}");
        assert_eq!(header(&head, "location"), Some("/konto"), "{path}: {head}");
    }
    let (status, _, body) = http_exchange(admin, "GET", "/konto", &cookie, None);
    assert_eq!(status, 200);
    assert!(body.contains("engångslösenord"), "{body}");
    assert!(
        body.contains("127.0.0.5"),
        "recent logins without the address: {body}"
    );
    assert!(
        !body.contains("href=\"/ny/"),
        "the menu offers more than /konto"
    );
    let csrf = csrf_field(&body);
    // A publish with the one-time session writes nothing.
    let (status, _, _) = http_form_from(
        ip(5),
        admin,
        "/ny/method",
        &cookie,
        &[("csrf", &csrf), ("action", "publish"), ("title", "x")],
    );
    assert_eq!(status, 303);
    let post = |fields: &[(&str, &str)]| http_form_from(ip(5), admin, "/konto", &cookie, fields);
    let new = "mitt eget långa lösenord";
    let (status, _, body) = post(&[
        ("csrf", &csrf),
        ("current", "fel"),
        ("new", new),
        ("again", new),
    ]);
    assert_eq!(status, 400);
    assert!(
        body.contains("id=\"current-fel\"") && body.contains("stämmer inte"),
        "{body}"
    );
    let (status, _, body) = post(&[
        ("csrf", &csrf),
        ("current", &once),
        ("new", new),
        ("again", "annat"),
    ]);
    assert_eq!(status, 400);
    assert!(body.contains("id=\"again-fel\""), "{body}");
    let (status, _, body) = post(&[
        ("csrf", &csrf),
        ("current", &once),
        ("new", "kort"),
        ("again", "kort"),
    ]);
    assert_eq!(status, 400);
    assert!(
        body.contains("id=\"new-fel\"") && body.contains("minst 12"),
        "{body}"
    );
    let (status, _, _) = post(&[("current", &once), ("new", new), ("again", new)]);
    assert_eq!(status, 403, "no token, no change");
    let (status, head, body) = post(&[
        ("csrf", &csrf),
        ("current", &once),
        ("new", new),
        ("again", new),
    ]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Ditt lösenord är bytt"), "{body}");
    // The old session ended with the old password; the new cookie goes on.
    assert_eq!(http_exchange(admin, "GET", "/", &cookie, None).0, 303);
    let fresh = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").expect("a new session")
    );
    assert_eq!(
        http_exchange(admin, "GET", "/", &[("Cookie", &fresh)], None).0,
        200
    );
    assert_eq!(login_from(ip(6), admin, "cia", &once, "", &[]).0, 401);
    let (status, head, _) = login_from(ip(6), admin, "cia", new, "", &[]);
    assert_eq!(status, 303);
    assert_eq!(header(&head, "location"), Some("/"), "{head}");
    assert_eq!(node.terminate(10), 0);
    let list = spindel(&["user", "list", "--data-dir", s(&dir), "--json"]).json();
    let cia = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == "cia")
        .unwrap();
    assert_eq!(cia["must_change"], false);
}

/// `spindel user reset-password` on a running node lifts the wait and ends the sessions at
/// once; `user add` and `remove` reach it too; run as root on another user's directory, the
/// files stay that user's.
#[test]
fn account_changes_from_the_command_line_reach_the_running_node() {
    let (_tmp, dir, node) = region(&[("anna", "admin"), ("bo", "redaktor")], &[]);
    let admin = node.admin.unwrap();
    let (_, head, _) = login_from(ip(5), admin, "bo", PASSWORD, "", &[]);
    let bo = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").unwrap()
    );
    for a in 10..16 {
        login_from(ip(a), admin, "bo", "fel", "", &[]);
    }
    assert_eq!(login_from(ip(16), admin, "bo", PASSWORD, "", &[]).0, 429);
    let new = "bos nya långa lösenord";
    let v = spindel_stdin(
        &[
            "user",
            "reset-password",
            "--data-dir",
            s(&dir),
            "bo",
            "--password-stdin",
            "--json",
        ],
        new,
    )
    .json();
    assert_eq!(v["user"], "bo");
    assert!(v.get("password").is_none());
    assert_eq!(
        http_exchange(admin, "GET", "/", &[("Cookie", &bo)], None).0,
        303,
        "a session outlived a reset from the command line"
    );
    assert_eq!(
        login_from(ip(17), admin, "bo", new, "", &[]).0,
        303,
        "the wait outlived a reset from the command line"
    );
    // Add and remove through the running node.
    let once = user_add(&dir, "cia", "redaktor", None)["password"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, head, _) = login_from(ip(18), admin, "cia", &once, "", &[]);
    assert_eq!(status, 303);
    let cia = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").unwrap()
    );
    spindel(&["user", "remove", "--data-dir", s(&dir), "cia", "--json"]).ok();
    assert_eq!(
        http_exchange(admin, "GET", "/konto", &[("Cookie", &cia)], None).0,
        303
    );
    assert_eq!(node.terminate(10), 0);
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    let by_cli: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["user"] == "(kommandoraden)")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        by_cli.ends_with(&["password_reset", "user_add", "user_remove"]),
        "{by_cli:?}"
    );

    // Root on a directory that belongs to the service's user (here uid 4242): the accounts
    // file stays readable by the node.
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        std::os::unix::fs::chown(&dir, Some(4242), Some(4242)).unwrap();
        user_add(&dir, "dan", "redaktor", Some(PASSWORD));
        for f in ["users.json", "audit.jsonl"] {
            let m = std::fs::metadata(dir.join(f)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4242), "{f} left to root");
        }
    }
}

/// Failed logins are one line per account (or per address, for names no account has) and
/// window; `/logg` shows the open windows on top, pages back through the whole trail and
/// filters by person and kind.
#[test]
fn the_audit_trail_records_and_logg_pages_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    user_add(&dir, "anna", "admin", Some(PASSWORD));
    // 250 earlier lines, as years of work leave them.
    let mut old = String::new();
    for i in 0..250u64 {
        let who = if i % 5 == 0 { "bo" } else { "anna" };
        old.push_str(&format!(
            "{{\"time_ms\":{},\"user\":\"{who}\",\"action\":\"publish\",\"kind\":\"method\",\"seq\":{i}}}\n",
            1_700_000_000_000u64 + i * 60_000
        ));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("audit.jsonl"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, old.as_bytes()))
        .unwrap();
    let node = NodeProc::start(&dir, &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.unwrap();
    let (_, head, _) = login_from(ip(9), admin, "anna", PASSWORD, "", &[]);
    let sc = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").expect("anna logs in")
    );
    // Guesses: five for anna from two addresses, twenty made-up names from a third.
    for i in 0..5u8 {
        assert_eq!(
            login_from(ip(5 + i % 2), admin, "anna", "fel", "", &[]).0,
            401
        );
    }
    for i in 0..20 {
        assert_eq!(
            login_from(ip(8), admin, &format!("okand{i}"), "fel", "", &[]).0,
            401
        );
    }
    let get = |path: &str| http_exchange(admin, "GET", path, &[("Cookie", &sc)], None);
    let (status, _, body) = get("/logg");
    assert_eq!(status, 200);
    assert!(body.contains("Misslyckade inloggningar just nu"), "{body}");
    assert!(
        body.contains("anna: 5 ") && body.contains("(okänt konto): 20 "),
        "{body}"
    );
    // Paging: 100 a page, back through all 250 + the new lines.
    let rows = |b: &str| b.matches("<tr><td class=\"nowrap\">").count();
    assert_eq!(rows(&body), 100);
    let older = |b: &str| {
        let at = b.find(">Äldre rader</a>")?;
        let href = b[..at].rsplit("href=\"").next().unwrap();
        Some(
            href.trim_end_matches('"')
                .replace("&#x2f;", "/")
                .replace("&amp;", "&"),
        )
    };
    let mut seen = rows(&body);
    let mut next = older(&body);
    while let Some(path) = next {
        let (status, _, b) = get(&path);
        assert_eq!(status, 200, "{path}");
        seen += rows(&b);
        next = older(&b);
    }
    assert_eq!(seen, 250 + 2, "user_add and anna's login besides the 250");
    let (_, _, b) = get("/logg?person=bo&typ=publish");
    assert_eq!(rows(&b), 50);
    assert_eq!(get("/logg?typ=nonsense").0, 400);
    assert_eq!(get("/logg?typ=login&typ=logout").0, 400);
    assert_eq!(node.terminate(10), 0);
    // At stop the windows are written: one line each, with the count and the addresses.
    let audit = spindel(&[
        "user",
        "audit",
        "--data-dir",
        s(&dir),
        "--json",
        "--limit",
        "5",
    ])
    .json();
    let failed: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 2, "{audit}");
    let anna = failed.iter().find(|e| e["user"] == "anna").unwrap();
    assert_eq!(anna["count"], 5);
    assert_eq!(anna["address"], "127.0.0.5, 127.0.0.6");
    let unknown = failed
        .iter()
        .find(|e| e["user"] == "(okänt konto)")
        .unwrap();
    assert_eq!(
        (unknown["count"].as_u64(), unknown["address"].as_str()),
        (Some(20), Some("127.0.0.8"))
    );
}

/// One account logging in again and again ends its own oldest session, never another's.
#[test]
fn sessions_per_account_are_capped() {
    let (_tmp, _dir, node) = region(&[("anna", "admin"), ("bo", "redaktor")], &[]);
    let admin = node.admin.unwrap();
    let session = |from: u8, user: &str| {
        let (_, head, _) = login_from(ip(from), admin, user, PASSWORD, "", &[]);
        format!(
            "spindel_redaktion={}",
            set_cookie(&head, "spindel_redaktion").unwrap()
        )
    };
    let anna = session(5, "anna");
    let first_bo = session(6, "bo");
    let later: Vec<String> = (0..5).map(|_| session(6, "bo")).collect();
    let live = |c: &str| http_exchange(admin, "GET", "/", &[("Cookie", c)], None).0 == 200;
    assert!(!live(&first_bo), "bo's oldest session outlived the cap");
    assert!(later.iter().all(|c| live(c)));
    assert!(live(&anna), "bo pushed anna out");
    assert_eq!(node.terminate(10), 0);
}

/// A researcher's e-mail and phone: a script fetching them in bulk gets 429 with Retry-After
/// after the burst, per address, on the API and the page alike; other records and other
/// addresses are not slowed; `/metrics` counts it.
#[test]
fn contact_details_cannot_be_harvested() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id) = init(tmp.path(), "skane", "region");
    let researcher = publish(
        &dir,
        "researcher",
        r#"{"name":"Forskare Ett","affiliation":"Lunds universitet","fields":["socialt företagande"],"email":"ett@example.org","phone":"+46 46 123","consent":{"given":true,"date":"2026-01-01","method":"e-post"}}"#,
    );
    let method = publish(
        &dir,
        "method",
        r#"{"title":"Lokal överenskommelse","summary":"Så skrivs en överenskommelse","tags":["samverkan"]}"#,
    );
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let api = format!(
        "/api/v1/records/{id}/{}",
        researcher["record_id"].as_str().unwrap()
    );
    let page = format!("/post/{id}/{}", researcher["record_id"].as_str().unwrap());
    let other = format!(
        "/api/v1/records/{id}/{}",
        method["record_id"].as_str().unwrap()
    );
    let get = |from: u8, path: &str| http_exchange_from(ip(from), http, "GET", path, &[], None);
    // A reader: every one served.
    for i in 0..30 {
        let path = if i % 2 == 0 { &api } else { &page };
        let (status, _, body) = get(5, path);
        assert_eq!(status, 200, "request {i}: {body}");
        assert!(body.contains("ett@example.org"));
    }
    // The script goes on: refused, on both surfaces, with Retry-After.
    let (status, head, body) = get(5, &api);
    assert_eq!(status, 429, "{body}");
    assert!(header(&head, "retry-after").is_some());
    assert!(!body.contains("ett@example.org"));
    let (status, head, body) = get(5, &page);
    assert_eq!(status, 429);
    assert!(header(&head, "retry-after").is_some());
    assert!(
        body.contains("För många sidor med kontaktuppgifter"),
        "{body}"
    );
    // Other records, other addresses: served.
    assert_eq!(get(5, &other).0, 200);
    assert_eq!(get(6, &api).0, 200);
    let (_, metrics) = spindel_tests::http_get(http, "/metrics");
    let refused: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("spindel_contact_views_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(refused, 2, "{metrics}");
    assert_eq!(node.terminate(10), 0);
}
