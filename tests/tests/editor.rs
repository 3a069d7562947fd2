//! Redaktionen (issue 11) through the real binary: staff accounts (`spindel user ...`), the
//! editor's own listener (`run --admin`), login with CSRF, lockout after failed logins, logout,
//! and the public listener serving none of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;

use spindel_tests::{
    EditorNetwork, NodeProc, api_titles, csrf_field, editor_network, eventually, hidden_field,
    http_exchange, http_form, http_get, init, location, multipart, s, set_cookie, spindel,
    spindel_stdin,
};

const PASSWORD: &str = "ett långt lösenord för test";

/// The login page: (its CSRF cookie, the form's token).
fn login_page(admin: SocketAddr) -> (String, String) {
    let (status, head, body) = http_exchange(admin, "GET", "/logga-in", &[], None);
    assert_eq!(status, 200, "{body}");
    let cookie = set_cookie(&head, "spindel_inloggning").expect("login cookie");
    assert!(
        head.contains("httponly") && head.contains("samesite=strict"),
        "{head}"
    );
    (cookie, csrf_field(&body))
}

fn login(admin: SocketAddr, user: &str, password: &str) -> (u16, String, String) {
    let (cookie, csrf) = login_page(admin);
    let c = format!("spindel_inloggning={cookie}");
    http_form(
        admin,
        "/logga-in",
        &[("Cookie", &c)],
        &[("user", user), ("password", password), ("csrf", &csrf)],
    )
}

/// A region "skane" with staff `users` (name, role), running with `args`.
fn editor_node(
    users: &[(&str, &str)],
    args: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, NodeProc) {
    spindel_tests::editor_region(users, PASSWORD, args)
}

fn add_user(dir: &Path, name: &str, role: &str) {
    let v = spindel_tests::user_add(dir, name, role, Some(PASSWORD));
    assert_eq!(v["user"], name);
    assert!(
        v.get("password").is_none(),
        "a chosen password is printed back"
    );
}

#[test]
fn staff_accounts_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    let v = spindel(&[
        "user",
        "add",
        "--data-dir",
        s(&dir),
        "anna",
        "--role",
        "admin",
        "--json",
    ])
    .json();
    let once = v["password"].as_str().expect("a one-time password");
    assert_eq!(once.len(), 24);
    add_user(&dir, "bo", "redaktor");
    let list = spindel(&["user", "list", "--data-dir", s(&dir), "--json"]).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["anna", "bo"]);
    let text = std::fs::read_to_string(dir.join("users.json")).unwrap();
    assert!(
        !text.contains(once) && !text.contains(PASSWORD),
        "a password is stored"
    );
    assert!(text.contains("$argon2id$"));
    // Bad input: one line each, nothing written.
    spindel(&[
        "user",
        "add",
        "--data-dir",
        s(&dir),
        "Anna",
        "--role",
        "admin",
    ])
    .fails(1, "user name \"Anna\"");
    spindel(&[
        "user",
        "add",
        "--data-dir",
        s(&dir),
        "cia",
        "--role",
        "chef",
    ])
    .fails(2, "redaktor or admin");
    spindel(&[
        "user",
        "add",
        "--data-dir",
        s(&dir),
        "bo",
        "--role",
        "admin",
    ])
    .fails(1, "exists already");
    spindel_stdin(
        &[
            "user",
            "add",
            "--data-dir",
            s(&dir),
            "cia",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "kort",
    )
    .fails(1, "at least 12 characters");
    spindel(&["user", "remove", "--data-dir", s(&dir), "anna"]).fails(1, "last admin");
    spindel(&["user", "remove", "--data-dir", s(&dir), "nemo"]).fails(1, "no user \"nemo\"");
    spindel(&["user", "list", "--data-dir", s(&tmp.path().join("ingen"))])
        .fails(1, "no spindel node");
    let reset = spindel(&[
        "user",
        "reset-password",
        "--data-dir",
        s(&dir),
        "bo",
        "--json",
    ])
    .json();
    assert_eq!(reset["password"].as_str().unwrap().len(), 24);
    spindel(&["user", "remove", "--data-dir", s(&dir), "bo"]).ok();
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["user_add", "user_add", "password_reset", "user_remove"]
    );
}

#[test]
fn the_editor_is_off_unless_asked_and_never_on_the_public_listener() {
    let (tmp, _dir, node) = editor_node(&[("anna", "admin")], &["--http", "127.0.0.1:0"]);
    assert!(node.admin.is_none());
    assert!(!node.log().contains("editor on"), "{}", node.log());
    let http = node.http.unwrap();
    for (method, path) in [
        ("GET", "/logga-in"),
        ("POST", "/logga-in"),
        ("POST", "/logga-ut"),
        ("GET", "/ny/method"),
    ] {
        let (status, _, _) = http_exchange(
            http,
            method,
            path,
            &[],
            Some(("application/x-www-form-urlencoded", "user=anna")),
        );
        assert!(
            status == 404 || status == 405,
            "{method} {path} on the public listener: {status}"
        );
    }
    assert_eq!(node.terminate(10), 0);

    // An aggregator has no editor.
    let (agg, _) = init(tmp.path(), "nationell", "aggregator");
    spindel(&[
        "run",
        "--data-dir",
        s(&agg),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ])
    .fails(1, "an aggregator has no editor");
}

#[test]
fn login_needs_the_form_token_and_a_session_ends_at_logout() {
    let (_tmp, dir, node) = editor_node(&[("anna", "admin")], &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.expect("editor address");

    // Not logged in: the start page sends to the login page.
    let (status, head, _) = http_exchange(admin, "GET", "/", &[], None);
    assert_eq!(status, 303);
    assert!(head.contains("location: /logga-in"), "{head}");

    // No token, or a token that is not this browser's: 403, no session.
    let (cookie, csrf) = login_page(admin);
    let c = format!("spindel_inloggning={cookie}");
    for (headers, fields) in [
        (
            vec![("Cookie", c.as_str())],
            vec![("user", "anna"), ("password", PASSWORD)],
        ),
        (
            vec![],
            vec![
                ("user", "anna"),
                ("password", PASSWORD),
                ("csrf", csrf.as_str()),
            ],
        ),
        (
            vec![("Cookie", "spindel_inloggning=00")],
            vec![
                ("user", "anna"),
                ("password", PASSWORD),
                ("csrf", csrf.as_str()),
            ],
        ),
    ] {
        let (status, head, body) = http_form(admin, "/logga-in", &headers, &fields);
        assert_eq!(status, 403, "{body}");
        assert!(set_cookie(&head, "spindel_redaktion").is_none());
        assert!(body.contains("Inget har sparats"), "{body}");
    }

    // A wrong password: 401 and the form again, with the message tied to the fields.
    let (status, _, body) = login(admin, "anna", "fel lösenord helt");
    assert_eq!(status, 401);
    assert!(body.contains("Fel användarnamn eller lösenord."), "{body}");
    assert!(
        body.contains("aria-describedby=\"inloggning-fel\""),
        "{body}"
    );

    // The right one: a session cookie, the start page.
    let (status, head, _) = login(admin, "anna", PASSWORD);
    assert_eq!(status, 303, "{head}");
    let session = set_cookie(&head, "spindel_redaktion").expect("session cookie");
    assert!(
        head.contains("httponly") && head.contains("samesite=strict"),
        "{head}"
    );
    assert!(!head.contains("secure"), "Secure without TLS: {head}");
    let sc = format!("spindel_redaktion={session}");
    let (status, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &sc)], None);
    assert_eq!(status, 200);
    assert!(body.contains("Inloggad som anna (administratör)"), "{body}");
    assert!(body.contains("regionens poster") || body.contains("Regionens poster"));
    // The line that shows the region's newest records on its own website (the embed).
    assert!(
        body.contains("&lt;iframe src=&quot;") && body.contains("inbaddning?region="),
        "{body}"
    );
    let token = csrf_field(&body);

    // A login form from a second tab, sent after this one logged in: already in, not a 403.
    let (status, head, _) = http_form(
        admin,
        "/logga-in",
        &[("Cookie", &sc)],
        &[("user", "anna"), ("password", "x"), ("csrf", "stale")],
    );
    assert_eq!((status, location(&head)), (303, "/".to_string()));

    // Logout needs the session's token; without it the session lives on.
    let (status, _, _) = http_form(admin, "/logga-ut", &[("Cookie", &sc)], &[]);
    assert_eq!(status, 403);
    let (status, _, _) = http_exchange(admin, "GET", "/", &[("Cookie", &sc)], None);
    assert_eq!(status, 200);
    let (status, head, _) = http_form(admin, "/logga-ut", &[("Cookie", &sc)], &[("csrf", &token)]);
    assert_eq!(status, 303);
    assert!(head.contains("location: /logga-in"), "{head}");
    let (status, _, _) = http_exchange(admin, "GET", "/", &[("Cookie", &sc)], None);
    assert_eq!(status, 303, "the session outlived its logout");

    // Behind a reverse proxy with TLS the cookie is Secure.
    let (cookie, csrf) = login_page(admin);
    let c = format!("spindel_inloggning={cookie}");
    let (_, head, _) = http_form(
        admin,
        "/logga-in",
        &[("Cookie", &c), ("X-Forwarded-Proto", "https")],
        &[("user", "anna"), ("password", PASSWORD), ("csrf", &csrf)],
    );
    assert!(head.contains("secure"), "{head}");

    // Failed logins are written one line per window, at the latest when the node stops.
    assert_eq!(node.terminate(10), 0);
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["user_add", "login", "logout", "login", "login_failed"]
    );
    let login = &audit[1];
    assert_eq!(login["address"], "127.0.0.1", "a login without its address");
    assert_eq!(audit[4]["count"], 1);
}

/// A logged-in session: (its cookie header value, its CSRF token).
fn session(admin: SocketAddr, user: &str) -> (String, String) {
    let (status, head, _) = login(admin, user, PASSWORD);
    assert_eq!(status, 303, "{head}");
    let sc = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").unwrap()
    );
    let (_, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &sc)], None);
    (sc.clone(), csrf_field(&body))
}

#[test]
fn a_coordinator_publishes_edits_and_deletes_a_method_from_the_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let EditorNetwork {
        dir,
        agg,
        region: node,
        ..
    } = editor_network(tmp.path(), "anna", "redaktor", PASSWORD);
    let (admin, http, agg_http) = (node.admin.unwrap(), node.http.unwrap(), agg.http.unwrap());
    let (sc, csrf) = session(admin, "anna");
    let cookie = [("Cookie", sc.as_str())];

    // The form: a label tied to each field, help beside it.
    let (status, _, body) = http_exchange(admin, "GET", "/ny/method", &cookie, None);
    assert_eq!(status, 200);
    assert!(body.contains("<label for=\"title\">Titel"), "{body}");
    assert!(body.contains("aria-describedby=\"title-hjalp\""), "{body}");

    // Without the session's token: 403, nothing written.
    let fields = [
        ("title", "Lokal överenskommelse i Skåne"),
        ("summary", "Så skrevs den"),
        ("tags", "samverkan\nkommun"),
    ];
    let mut no_token: Vec<(&str, &str)> = fields.to_vec();
    no_token.push(("action", "publish"));
    let (status, _, _) = http_form(admin, "/ny/method", &cookie, &no_token);
    assert_eq!(status, 403);
    assert!(
        api_titles(http, "method").is_empty(),
        "a POST without a token wrote"
    );

    // A field the protocol refuses: the form again, the Swedish message beside the field.
    let (status, _, body) = http_form(
        admin,
        "/ny/method",
        &cookie,
        &[
            ("title", " "),
            ("summary", "s"),
            ("csrf", &csrf),
            ("action", "preview"),
        ],
    );
    assert_eq!(status, 400);
    assert!(body.contains("id=\"title-fel\">Fyll i fältet."), "{body}");
    assert!(body.contains("aria-invalid=\"true\""), "{body}");
    // Every problem at once, in page order, each linked from the summary.
    let (status, _, body) = http_form(
        admin,
        "/ny/method",
        &cookie,
        &[
            ("title", ""),
            ("summary", ""),
            ("links", "inte en adress"),
            ("csrf", &csrf),
            ("action", "preview"),
        ],
    );
    assert_eq!(status, 400);
    let at = |needle: &str| {
        body.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {body}"))
    };
    assert!(
        at("href=\"#title\"") < at("href=\"#summary\"")
            && at("href=\"#summary\"") < at("href=\"#links\"")
    );
    for id in ["title-fel", "summary-fel", "links-fel"] {
        at(&format!("id=\"{id}\""));
    }
    assert!(body.contains("de här 3 sakerna"), "{body}");

    // Preview, then publish.
    let mut with = fields.to_vec();
    with.push(("csrf", &csrf));
    let mut preview = with.clone();
    preview.push(("action", "preview"));
    let (status, _, body) = http_form(admin, "/ny/method", &cookie, &preview);
    assert_eq!(status, 200);
    assert!(
        body.contains("Förhandsgranska") && body.contains("value=\"publish\""),
        "{body}"
    );
    assert!(
        api_titles(http, "method").is_empty(),
        "the preview published"
    );
    let mut publish = with.clone();
    publish.push(("action", "publish"));
    let (status, head, _) = http_form(admin, "/ny/method", &cookie, &publish);
    assert_eq!(status, 303, "{head}");
    let page = location(&head);
    assert!(
        page.starts_with("/post/") && page.contains("?publicerad="),
        "{page}"
    );
    let rid = page["/post/".len()..page.find('?').unwrap()].to_string();
    assert_eq!(
        api_titles(http, "method"),
        ["Lokal överenskommelse i Skåne"]
    );
    // The post's own version (not its place in the region's log), shown as readers see it.
    let (_, _, body) = http_exchange(admin, "GET", &page, &cookie, None);
    assert!(body.contains("Publicerad som version 1."), "{body}");
    assert!(
        body.contains("<p class=\"lead\">Så skrevs den</p>") && body.contains("<li>samverkan</li>"),
        "not the public page's layout: {body}"
    );
    eventually(20, "the method at the aggregator", || {
        api_titles(agg_http, "method") == ["Lokal överenskommelse i Skåne"]
    });

    // Edit: a new version everywhere.
    let (status, _, body) =
        http_exchange(admin, "GET", &format!("/post/{rid}/andra"), &cookie, None);
    assert_eq!(status, 200);
    assert!(
        body.contains("samverkan\nkommun"),
        "the form is not filled: {body}"
    );
    let version = hidden_field(&body, "version").expect("the version the form was opened on");
    let edit = [
        ("title", "Lokal överenskommelse, reviderad"),
        ("summary", "Så skrevs den om"),
        ("version", version.as_str()),
        ("csrf", csrf.as_str()),
        ("action", "publish"),
    ];
    let (status, head, _) = http_form(admin, &format!("/post/{rid}/andra"), &cookie, &edit);
    assert_eq!(status, 303, "{head}");
    eventually(20, "the new version at the aggregator", || {
        api_titles(agg_http, "method") == ["Lokal överenskommelse, reviderad"]
    });

    // Delete after the confirmation page: gone everywhere.
    let (status, _, body) =
        http_exchange(admin, "GET", &format!("/post/{rid}/ta-bort"), &cookie, None);
    assert_eq!(status, 200);
    assert!(body.contains("kan aldrig publiceras igen"), "{body}");
    let (status, _, _) = http_form(admin, &format!("/post/{rid}/ta-bort"), &cookie, &[]);
    assert_eq!(status, 403, "a delete without a token");
    let (status, head, _) = http_form(
        admin,
        &format!("/post/{rid}/ta-bort"),
        &cookie,
        &[("csrf", &csrf)],
    );
    assert_eq!(status, 303, "{head}");
    // A confirmation that it happened.
    let (_, _, body) = http_exchange(admin, "GET", &location(&head), &cookie, None);
    assert!(body.contains("Posten är borttagen"), "{body}");
    assert!(api_titles(http, "method").is_empty());
    eventually(20, "the deletion at the aggregator", || {
        api_titles(agg_http, "method").is_empty()
    });

    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    let writes: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record_id"].is_string())
        .map(|e| (e["user"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        writes,
        [("anna", "publish"), ("anna", "edit"), ("anna", "delete")]
    );
    for p in [node, agg] {
        assert_eq!(p.terminate(10), 0);
    }
}

/// Two staff members publishing at the same moment both succeed (one writer orders them).
#[test]
fn two_staff_members_publish_at_the_same_time() {
    let (_tmp, _dir, node) = editor_node(
        &[("anna", "admin"), ("bo", "redaktor")],
        &["--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let admin = node.admin.unwrap();
    let sessions = [session(admin, "anna"), session(admin, "bo")];
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, (sc, csrf))| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let title = format!("Samtidig metod {i}");
                barrier.wait();
                let (status, head, _) = http_form(
                    admin,
                    "/ny/method",
                    &[("Cookie", &sc)],
                    &[
                        ("title", &title),
                        ("summary", "s"),
                        ("csrf", &csrf),
                        ("action", "publish"),
                    ],
                );
                assert_eq!(status, 303, "{head}");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut got = api_titles(node.http.unwrap(), "method");
    got.sort();
    assert_eq!(got, ["Samtidig metod 0", "Samtidig metod 1"]);
    assert_eq!(node.terminate(10), 0);
}

/// An admin manages the accounts in the browser; a redaktör cannot. A removed account's
/// session ends at once.
#[test]
fn admins_manage_accounts_and_redaktors_cannot() {
    let (_tmp, _dir, node) = editor_node(
        &[("anna", "admin"), ("bo", "redaktor")],
        &["--admin", "127.0.0.1:0"],
    );
    let admin = node.admin.unwrap();
    let (bo, bo_csrf) = session(admin, "bo");
    let (status, _, body) = http_exchange(admin, "GET", "/anvandare", &[("Cookie", &bo)], None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Bara för administratörer"), "{body}");
    let (status, _, _) = http_form(
        admin,
        "/anvandare",
        &[("Cookie", &bo)],
        &[("name", "mallory"), ("role", "admin"), ("csrf", &bo_csrf)],
    );
    assert_eq!(status, 403);
    let (status, _, _) = http_exchange(admin, "GET", "/logg", &[("Cookie", &bo)], None);
    assert_eq!(status, 403);

    let (anna, csrf) = session(admin, "anna");
    let (status, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &anna)], None);
    assert_eq!(status, 200);
    assert!(
        body.contains("href=\"/anvandare\""),
        "no accounts link for an admin: {body}"
    );
    let (status, _, body) = http_form(
        admin,
        "/anvandare",
        &[("Cookie", &anna)],
        &[("name", "cia"), ("role", "redaktor"), ("csrf", &csrf)],
    );
    assert_eq!(status, 200, "{body}");
    let at = body
        .find("class=\"password\">")
        .expect("the one-time password")
        + 17;
    let password = &body[at..at + 24];
    let (status, head, _) = login(admin, "cia", password);
    assert_eq!(status, 303, "the one-time password does not log in");
    assert_eq!(
        location(&head),
        "/konto",
        "a one-time password opens more than /konto"
    );
    let (status, _, body) = http_form(
        admin,
        "/anvandare",
        &[("Cookie", &anna)],
        &[("name", "Cia Ek"), ("role", "redaktor"), ("csrf", &csrf)],
    );
    assert_eq!(status, 400);
    assert!(body.contains("Användarnamnet: 1–32 tecken"), "{body}");

    // Removing bo ends bo's session.
    let (status, _, _) = http_form(
        admin,
        "/anvandare/bo/ta-bort",
        &[("Cookie", &anna)],
        &[("csrf", &csrf)],
    );
    assert_eq!(status, 200);
    let (status, _, _) = http_exchange(admin, "GET", "/", &[("Cookie", &bo)], None);
    assert_eq!(status, 303, "a removed account's session lives on");
    let (status, _, body) = http_exchange(admin, "GET", "/logg", &[("Cookie", &anna)], None);
    assert_eq!(status, 200);
    assert!(
        body.contains("tog bort konto") && body.contains("lade till konto"),
        "{body}"
    );
    assert_eq!(node.terminate(10), 0);
}

/// A JSON Lines upload runs the import: all or nothing, the bad line named, the file erased;
/// without the session's token no byte is kept.
#[test]
fn a_jsonl_upload_imports_all_or_nothing() {
    let (_tmp, dir, node) = editor_node(
        &[("anna", "redaktor")],
        &["--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let (admin, http) = (node.admin.unwrap(), node.http.unwrap());
    let (sc, csrf) = session(admin, "anna");
    let good = "{\"title\":\"Importerad ett\",\"summary\":\"s\"}\n{\"title\":\"Importerad två\",\"summary\":\"s\"}\n";
    let bad = "{\"title\":\"Bra rad\",\"summary\":\"s\"}\n{\"title\":\"\",\"summary\":\"s\"}\n";
    let post = |fields: &[(&str, &str)], file: Option<(&str, &str)>| {
        let (ct, body) = multipart(fields, file);
        http_exchange(
            admin,
            "POST",
            "/importera",
            &[("Cookie", &sc)],
            Some((&ct, &body)),
        )
    };
    // No token: 403 and nothing kept.
    let (status, _, _) = post(&[("kind", "method")], Some(("m.jsonl", good)));
    assert_eq!(status, 403);
    // The import runs on; its progress page refreshes itself until it has ended.
    let ended = |head: &str| {
        let page = location(head);
        assert!(page.starts_with("/importera/"), "{page}");
        let mut last = (0, String::new());
        eventually(20, "the import to end", || {
            let (status, _, body) = http_exchange(admin, "GET", &page, &[("Cookie", &sc)], None);
            let running = body.contains("http-equiv=\"refresh\"");
            last = (status, body);
            !running
        });
        last
    };
    // A bad line: nothing imported, the line named.
    let (status, head, _) = post(
        &[("csrf", &csrf), ("kind", "method")],
        Some(("m.jsonl", bad)),
    );
    assert_eq!(status, 303);
    let (status, body) = ended(&head);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("Ingenting importerades") && body.contains("Rad 2:"),
        "{body}"
    );
    assert!(api_titles(http, "method").is_empty());
    // A good file: every line, one publish each.
    let (status, head, _) = post(
        &[("csrf", &csrf), ("kind", "method")],
        Some(("m.jsonl", good)),
    );
    assert_eq!(status, 303);
    let (status, body) = ended(&head);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2 poster importerade"), "{body}");
    // Not without a session.
    let (status, _, _) = http_exchange(admin, "GET", &location(&head), &[], None);
    assert_eq!(status, 303, "the progress page without a session");
    let mut got = api_titles(http, "method");
    got.sort();
    assert_eq!(got, ["Importerad ett", "Importerad två"]);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("import."))
        .collect();
    assert!(
        left.is_empty(),
        "uploads left in the data directory: {left:?}"
    );
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "import" && e["user"] == "anna"),
        "{audit}"
    );
    assert_eq!(node.terminate(10), 0);
}

/// Every kind through its form: an innovation with its SROI, a researcher with consent, and the
/// region's profile (edited, never made anew).
#[test]
fn every_kind_is_published_from_its_form() {
    let (_tmp, _dir, node) = editor_node(
        &[("anna", "redaktor")],
        &["--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let (admin, http) = (node.admin.unwrap(), node.http.unwrap());
    let (sc, csrf) = session(admin, "anna");
    let cookie = [("Cookie", sc.as_str())];
    let publish = |path: &str, fields: &[(&str, &str)]| {
        let mut all = fields.to_vec();
        all.push(("csrf", &csrf));
        all.push(("action", "publish"));
        http_form(admin, path, &cookie, &all)
    };
    let (status, head, body) = publish(
        "/ny/innovation",
        &[
            ("title", "Språkcafé"),
            ("summary", "Möten varje vecka"),
            ("organisations", "Coompanion Skåne"),
            ("sroi.ratio", "3,4"),
            ("sroi.year", "2024"),
        ],
    );
    assert_eq!(status, 303, "{head}{body}");
    let (status, head, body) = publish(
        "/ny/researcher",
        &[
            ("name", "Anna Forskare"),
            ("affiliation", "Lunds universitet"),
            ("fields", "social ekonomi\nSROI"),
            ("email", "anna@lu.example.se"),
            ("consent.given", "on"),
            ("consent.date", "2026-11-01"),
            ("consent.method", "e-post"),
        ],
    );
    assert_eq!(status, 303, "{head}{body}");
    let (_, body) = http_get(http, "/api/v1/records?kind=innovation");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["records"][0]["data"]["sroi"]["ratio"], 3.4);
    let (_, body) = http_get(http, "/api/v1/records?kind=researcher");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["records"][0]["data"]["consent"]["date"], "2026-11-01");

    // The profile: /ny/profile leads to its edit form.
    let (status, head, _) = http_exchange(admin, "GET", "/ny/profile", &cookie, None);
    assert_eq!(status, 303);
    let edit = location(&head);
    assert!(edit.ends_with("/andra"), "{edit}");
    let (_, _, form) = http_exchange(admin, "GET", &edit, &cookie, None);
    let version = hidden_field(&form, "version").unwrap();
    let (status, head, body) = publish(
        &edit,
        &[
            ("display_name", "Nätverket Social Ekonomi Skåne"),
            ("website", "https://skane.example.se"),
            ("version", &version),
        ],
    );
    assert_eq!(status, 303, "{head}{body}");
    let (_, body) = http_get(http, "/api/v1/records?kind=profile");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["records"][0]["data"]["display_name"],
        "Nätverket Social Ekonomi Skåne"
    );
    assert_eq!(
        v["records"][0]["data"]["name"], "skane",
        "the node's name is kept"
    );
    assert_eq!(
        v["records"].as_array().unwrap().len(),
        1,
        "a second profile was made"
    );
    assert_eq!(node.terminate(10), 0);
}

/// A new password ends the account's sessions and lifts the wait its guessers set.
#[test]
fn a_password_reset_ends_sessions_and_lifts_the_lock() {
    let (_tmp, _dir, node) = editor_node(
        &[("anna", "admin"), ("bo", "redaktor")],
        &["--admin", "127.0.0.1:0"],
    );
    let admin = node.admin.unwrap();
    let (bo, _) = session(admin, "bo");
    for _ in 0..6 {
        login(admin, "bo", "inte bos lösenord");
    }
    assert_eq!(login(admin, "bo", PASSWORD).0, 429);
    let (anna, csrf) = session(admin, "anna");
    // First the question, then the new password.
    let (status, _, body) = http_exchange(
        admin,
        "GET",
        "/anvandare/bo/nytt-losenord",
        &[("Cookie", &anna)],
        None,
    );
    assert_eq!(status, 200);
    assert!(body.contains("slutar fungera direkt"), "{body}");
    let (status, _, body) = http_form(
        admin,
        "/anvandare/bo/nytt-losenord",
        &[("Cookie", &anna)],
        &[("csrf", &csrf)],
    );
    assert_eq!(status, 200, "{body}");
    let at = body.find("class=\"password\">").expect("the new password") + 17;
    let new = body[at..at + 24].to_string();
    let (status, _, _) = http_exchange(admin, "GET", "/", &[("Cookie", &bo)], None);
    assert_eq!(status, 303, "a session outlived its password");
    assert_eq!(
        login(admin, "bo", &new).0,
        303,
        "the lock outlived the reset"
    );
    assert_eq!(node.terminate(10), 0);
}

/// Anna and Bo open the same post; Bo publishes a new summary; Anna's title change from the
/// form she opened before publishes nothing and shows both versions; she merges and publishes:
/// both changes are kept. Nothing is silently overwritten.
#[test]
fn an_edit_on_a_stale_form_never_overwrites_a_colleagues() {
    let (_tmp, dir, node) = editor_node(
        &[("anna", "admin"), ("bo", "redaktor")],
        &[
            "--admin",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--public-url",
            "https://kunskapsbank.example.se/",
        ],
    );
    let (admin, http) = (node.admin.unwrap(), node.http.unwrap());
    let rid = spindel_tests::publish(
        &dir,
        "method",
        r#"{"title":"Lokal överenskommelse","summary":"Första sammanfattningen","tags":["samverkan"]}"#,
    )["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/post/{rid}/andra");
    let open = |who: &str| {
        let (cookie, csrf) = session(admin, who);
        let (_, _, body) = http_exchange(admin, "GET", &path, &[("Cookie", &cookie)], None);
        let version = hidden_field(&body, "version").unwrap();
        (cookie, csrf, version)
    };
    let (anna, anna_csrf, anna_version) = open("anna");
    // The header names the region as its staff know it (the profile's display name).
    spindel_tests::publish(
        &dir,
        "profile",
        r#"{"display_name":"Nätverket Social Ekonomi Skåne"}"#,
    );
    let (_, _, start) = http_exchange(admin, "GET", "/", &[("Cookie", &anna)], None);
    assert!(
        start.contains("Nätverket Social Ekonomi Skåne: regionens poster"),
        "{start}"
    );
    let (bo, bo_csrf, bo_version) = open("bo");
    let submit = |cookie: &str, csrf: &str, version: &str, title: &str, summary: &str| {
        http_form(
            admin,
            &path,
            &[("Cookie", cookie)],
            &[
                ("title", title),
                ("summary", summary),
                ("tags", "samverkan"),
                ("version", version),
                ("csrf", csrf),
                ("action", "publish"),
            ],
        )
    };
    let (status, _, _) = submit(
        &bo,
        &bo_csrf,
        &bo_version,
        "Lokal överenskommelse",
        "Bos nya sammanfattning",
    );
    assert_eq!(status, 303);
    let (status, _, body) = submit(
        &anna,
        &anna_csrf,
        &anna_version,
        "Anna har en ny titel",
        "Första sammanfattningen",
    );
    assert_eq!(status, 409, "a stale form overwrote: {body}");
    assert!(
        body.contains("Inget publicerades") && body.contains("bo ändrade posten"),
        "{body}"
    );
    assert!(
        body.contains("Bos nya sammanfattning") && body.contains("Första sammanfattningen"),
        "{body}"
    );
    assert!(
        body.contains("value=\"Anna har en ny titel\""),
        "anna's text was lost: {body}"
    );
    let record = |http| {
        let (_, b) = http_get(http, "/api/v1/records?kind=method");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        v["records"][0]["data"].clone()
    };
    assert_eq!(
        record(http)["summary"],
        "Bos nya sammanfattning",
        "the stale form wrote"
    );
    // The merge page's form is at the current version: merged and published, both kept.
    let merged_version = hidden_field(&body, "version").unwrap();
    assert_ne!(merged_version, anna_version);
    let (status, _, _) = submit(
        &anna,
        &anna_csrf,
        &merged_version,
        "Anna har en ny titel",
        "Bos nya sammanfattning",
    );
    assert_eq!(status, 303);
    let now = record(http);
    assert_eq!(
        (now["title"].as_str(), now["summary"].as_str()),
        (Some("Anna har en ny titel"), Some("Bos nya sammanfattning"))
    );
    // A form without a version (opened before this release) is stale too.
    let (status, _, _) = http_form(
        admin,
        &path,
        &[("Cookie", &bo)],
        &[
            ("title", "x"),
            ("summary", "y"),
            ("csrf", &bo_csrf),
            ("action", "publish"),
        ],
    );
    assert_eq!(status, 409);

    // The post's own versions (1 from the command line, 2 Bo's, 3 Anna's merge), with who
    // changed which fields, on its page and in the log; the API says the version too.
    let api = http_exchange(http, "GET", "/api/v1/records?kind=method", &[], None).2;
    let api: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["records"][0]["version"], 3, "{api}");
    let (status, _, page) = http_exchange(
        admin,
        "GET",
        &format!("/post/{rid}"),
        &[("Cookie", &anna)],
        None,
    );
    assert_eq!(status, 200);
    // The templates escape '/' in attributes (as browsers read them).
    let page = page.replace("&#x2f;", "/");
    let row = |n: u64| {
        let at = page
            .find(&format!("<tr><td class=\"num\">{n}</td>"))
            .unwrap_or_else(|| panic!("no version {n}: {page}"));
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(page.contains("Version 3 ·"), "{page}");
    // With the public address set, the post links to its public page, and its tags to theirs.
    let me = spindel(&["id", "--data-dir", s(&dir)])
        .stdout
        .trim()
        .to_string();
    assert!(
        page.contains(&format!("<a href=\"https://kunskapsbank.example.se/post/{me}/{rid}\">Visa på den publika sidan</a>")),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"https://kunskapsbank.example.se/?tag=samverkan\">samverkan</a>"),
        "{page}"
    );
    let (v3, v2, v1) = (row(3), row(2), row(1));
    assert!(
        v3.contains("Ändrad") && v3.contains("<td>anna</td>") && v3.contains("<td>Titel</td>"),
        "{v3}"
    );
    assert!(
        v2.contains("Ändrad")
            && v2.contains("<td>bo</td>")
            && v2.contains("<td>Sammanfattning</td>"),
        "{v2}"
    );
    assert!(
        v1.contains("Publicerad") && v1.contains("<td>–</td>"),
        "{v1}"
    );
    assert!(
        page.find("<td class=\"num\">3</td>") < page.find("<td class=\"num\">1</td>"),
        "newest first"
    );
    let (status, _, log) = http_exchange(admin, "GET", "/logg", &[("Cookie", &anna)], None);
    assert_eq!(status, 200);
    assert!(
        log.contains(&format!(
            "<a href=\"/post/{rid}\">Anna har en ny titel</a>, version 3: ändrade Titel"
        )),
        "{log}"
    );
    assert!(log.contains(", version 2: ändrade Sammanfattning"), "{log}");
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    let fields: Vec<serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "edit")
        .map(|e| e["fields"].clone())
        .collect();
    assert_eq!(
        fields,
        [serde_json::json!(["summary"]), serde_json::json!(["title"])]
    );
    assert_eq!(node.terminate(10), 0);
}

/// Sessions outlive a restart (kill -9 included: the file is written at login); a form sent
/// after its session ended is kept for its account and comes back filled in after the login.
#[test]
fn nothing_typed_is_lost_to_a_restart_or_an_ended_session() {
    let (_tmp, dir, node) = editor_node(&[("bo", "redaktor")], &["--admin", "127.0.0.1:0"]);
    let (bo, csrf) = session(node.admin.unwrap(), "bo");
    node.kill9();
    let node = NodeProc::start(&dir, &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.unwrap();
    let (status, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &bo)], None);
    assert_eq!(status, 200, "the session did not outlive a restart: {body}");
    let file = std::fs::read_to_string(dir.join("sessions.json")).unwrap();
    assert!(
        !file.contains(bo.trim_start_matches("spindel_redaktion=")),
        "a token is stored"
    );
    assert_eq!(node.terminate(10), 0);

    // Bo's session ends while he writes (the node was down past the idle time).
    let mut sessions: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sessions.json")).unwrap()).unwrap();
    for s in sessions["sessions"].as_array_mut().unwrap() {
        let ms = s["last_seen_ms"].as_u64().unwrap() - 31 * 60 * 1000;
        s["last_seen_ms"] = ms.into();
        s["started_ms"] = ms.into();
    }
    std::fs::write(dir.join("sessions.json"), sessions.to_string()).unwrap();
    let node = NodeProc::start(&dir, &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.unwrap();
    let text = "En lång sammanfattning som tog en halvtimme att skriva";
    let (status, head, _) = http_form(
        admin,
        "/ny/method",
        &[("Cookie", &bo)],
        &[
            ("title", "Min metod"),
            ("summary", text),
            ("csrf", &csrf),
            ("action", "publish"),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(location(&head), "/logga-in?sparat=1");
    let (_, _, page) = http_exchange(admin, "GET", "/logga-in?sparat=1", &[], None);
    assert!(page.contains("Det du skrev är sparat"), "{page}");
    let (status, head, _) = login(admin, "bo", PASSWORD);
    assert_eq!(status, 303);
    assert_eq!(location(&head), "/utkast");
    let sc = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").unwrap()
    );
    let (status, _, body) = http_exchange(admin, "GET", "/utkast", &[("Cookie", &sc)], None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(text) && body.contains("value=\"Min metod\""),
        "the text was lost: {body}"
    );
    assert!(body.contains("inget är publicerat ännu"), "{body}");
    // Nothing was published meanwhile; the draft is taken once.
    let (status, head, _) = http_exchange(admin, "GET", "/utkast", &[("Cookie", &sc)], None);
    assert_eq!((status, location(&head)), (303, "/".to_string()));
    assert_eq!(node.terminate(10), 0);
}

/// The start page says how many posts the region has (205 methods and its profile), and that
/// it shows the newest `START_RECORDS` (200) of them, pointing to "Alla poster" for the rest.
#[test]
fn the_start_page_counts_every_post() {
    let (tmp, dir, node) = editor_node(&[("anna", "redaktor")], &["--admin", "127.0.0.1:0"]);
    let admin = node.admin.unwrap();
    let file = tmp.path().join("metoder.jsonl");
    let lines: String = (0..205)
        .map(|i| format!("{{\"title\":\"Metod {i}\",\"summary\":\"S {i}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    spindel_tests::import_file(&dir, "method", &file).ok();
    let (cookie, _) = session(admin, "anna");
    let (status, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &cookie)], None);
    assert_eq!(status, 200);
    assert!(
        body.contains("har 206 publicerade poster; de 200 senast ändrade visas här, alla under <a href=\"/poster\">Alla poster</a>"),
        "{body}"
    );
    assert_eq!(body.matches("<td><a href=\"/post/").count(), 200);
    assert_eq!(node.terminate(10), 0);
}

/// `/poster`: every post, 50 a page, searchable, filtered by kind and by who changed it last;
/// several removed with one confirmation, each erased as one removal is.
#[test]
fn every_post_is_found_and_many_are_removed_at_once() {
    let (tmp, dir, node) = editor_node(
        &[("anna", "admin"), ("bo", "redaktor")],
        &["--admin", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let (admin, http) = (node.admin.unwrap(), node.http.unwrap());
    let file = tmp.path().join("metoder.jsonl");
    let lines: String = (0..60)
        .map(|i| format!("{{\"title\":\"Metod nummer {i}\",\"summary\":\"Sammanfattning {i}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    spindel_tests::import_file(&dir, "method", &file).ok();
    let (bo, bo_csrf) = session(admin, "bo");
    let (status, _, _) = http_form(
        admin,
        "/ny/method",
        &[("Cookie", &bo)],
        &[
            ("title", "Bos cirkelmetod"),
            ("summary", "En metod som bo skrev"),
            ("csrf", &bo_csrf),
            ("action", "publish"),
        ],
    );
    assert_eq!(status, 303);
    let (anna, csrf) = session(admin, "anna");
    let get = |path: &str| http_exchange(admin, "GET", path, &[("Cookie", &anna)], None);
    let rows = |b: &str| b.matches("<td><a href=\"/post/").count();
    let (status, _, body) = get("/poster");
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&body), 50);
    assert!(
        body.find("Bos cirkelmetod").is_some(),
        "the newest is not first: {body}"
    );
    let older = |b: &str| {
        let at = b.find(">Äldre poster</a>")?;
        let href = b[..at].rsplit("href=\"").next().unwrap();
        Some(
            href.trim_end_matches('"')
                .replace("&#x2f;", "/")
                .replace("&amp;", "&"),
        )
    };
    let (_, _, second) = get(&older(&body).expect("a second page"));
    assert_eq!(rows(&second), 62 - 50, "60 imported, bo's and the profile");
    assert!(older(&second).is_none());
    let (_, _, found) = get("/poster?q=cirkelmetod");
    assert_eq!(rows(&found), 1);
    let (_, _, profiles) = get("/poster?typ=profile");
    assert_eq!(rows(&profiles), 1);
    let (_, _, by_bo) = get("/poster?av=bo");
    assert_eq!(rows(&by_bo), 1);
    assert!(by_bo.contains("Bos cirkelmetod"));
    assert_eq!(get("/poster?typ=nonsense").0, 400);

    // Three chosen: a confirmation naming them, then gone everywhere, each audited.
    let (_, _, page) = get("/poster?q=nummer");
    let ids: Vec<String> = page
        .match_indices("name=\"id_")
        .take(3)
        .map(|(at, _)| page[at + 9..].split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut fields: Vec<(String, String)> = ids
        .iter()
        .map(|i| (format!("id_{i}"), "on".into()))
        .collect();
    fields.push(("csrf".into(), csrf.clone()));
    fn as_refs(f: &[(String, String)]) -> Vec<(&str, &str)> {
        f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    let (status, _, confirm) = http_form(
        admin,
        "/poster/ta-bort",
        &[("Cookie", &anna)],
        &as_refs(&fields),
    );
    assert_eq!(status, 200);
    assert!(confirm.contains("Ta bort 3 poster"), "{confirm}");
    assert_eq!(
        rows(&get("/poster").2) + rows(&get(&older(&get("/poster").2).unwrap()).2),
        62,
        "removed before the confirmation"
    );
    fields.push(("bekrafta".into(), "1".into()));
    let (status, head, _) = http_form(
        admin,
        "/poster/ta-bort",
        &[("Cookie", &anna)],
        &as_refs(&fields),
    );
    assert_eq!(status, 303);
    assert_eq!(location(&head), "/poster?borttagna=3");
    assert!(
        get("/poster?borttagna=3")
            .2
            .contains("3 poster är borttagna")
    );
    let (_, api) = http_get(http, "/api/v1/records?kind=method&limit=100");
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 61 - 3);
    assert_eq!(node.terminate(10), 0);
    let audit = spindel(&["user", "audit", "--data-dir", s(&dir), "--json"]).json();
    let deletes = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "delete" && e["user"] == "anna")
        .count();
    assert_eq!(deletes, 3);
}

/// A region whose aggregator does not answer publishes offline after the catch-up wait, and
/// Redaktionen's notice says so: no aggregator has answered yet, the post goes out when the
/// link is back, and another copy of the node must be stopped first.
#[test]
fn a_post_published_while_no_aggregator_answers_says_so() {
    let agg_tmp = tempfile::tempdir().unwrap();
    let (_, agg_id) = init(agg_tmp.path(), "nationell", "aggregator");
    // Pinned, never started: nothing answers at this address.
    let peer = format!("{agg_id}@127.0.0.1:9");
    let (_tmp, _dir, node) = editor_node(
        &[("anna", "redaktor")],
        &["--aggregator", &peer, "--admin", "127.0.0.1:0"],
    );
    let admin = node.admin.unwrap();
    let (sc, csrf) = session(admin, "anna");
    let cookie = [("Cookie", sc.as_str())];
    let (status, head, _) = http_form(
        admin,
        "/ny/method",
        &cookie,
        &[
            ("title", "Utan förbindelse"),
            ("summary", "Skrevs när aggregatorn var nere"),
            ("csrf", &csrf),
            ("action", "publish"),
        ],
    );
    assert_eq!(status, 303, "{head}");
    let page = location(&head);
    assert!(page.ends_with("&offline=1"), "{page}");
    let (status, _, body) = http_exchange(admin, "GET", &page, &cookie, None);
    assert_eq!(status, 200);
    assert!(
        body.contains("men ingen aggregator har svarat ännu")
            && body.contains("när förbindelsen är tillbaka")
            && body.contains("stoppa den först"),
        "{body}"
    );
    assert!(!body.contains("Den sprids nu till aggregatorn"), "{body}");

    // An import and a removal say it too.
    let (ct, upload) = multipart(
        &[("csrf", &csrf), ("kind", "method")],
        Some((
            "m.jsonl",
            "{\"title\":\"Importerad utan förbindelse\",\"summary\":\"s\"}\n",
        )),
    );
    let (status, head, _) =
        http_exchange(admin, "POST", "/importera", &cookie, Some((&ct, &upload)));
    assert_eq!(status, 303, "{head}");
    let progress = location(&head);
    let mut imported = String::new();
    eventually(20, "the import to end", || {
        imported = http_exchange(admin, "GET", &progress, &cookie, None).2;
        !imported.contains("http-equiv=\"refresh\"")
    });
    assert!(
        imported.contains("1 post importerad och publicerad.")
            && imported.contains("Ingen aggregator har svarat ännu"),
        "{imported}"
    );
    let rid = page["/post/".len()..page.find('?').unwrap()].to_string();
    let (status, head, _) = http_form(
        admin,
        &format!("/post/{rid}/ta-bort"),
        &cookie,
        &[("csrf", &csrf)],
    );
    assert_eq!(status, 303, "{head}");
    let start = location(&head);
    assert_eq!(start, "/?borttagen=1&offline=1");
    let body = http_exchange(admin, "GET", &start, &cookie, None).2;
    assert!(
        body.contains("Posten är borttagen") && body.contains("Ingen aggregator har svarat ännu"),
        "{body}"
    );
}
