//! The knowledge bank page in a real browser: headless Chromium driven over WebDriver
//! (chromedriver, Debian packages `chromium` and `chromium-driver`), against a running
//! `spindel demo`. Part of the slow suite (`SPINDEL_SLOW_TESTS=1`, which CI sets; `.ci/run`
//! installs both packages); there it fails if the browser is missing.
//!
//! A person's path: open `/`, type an inflected Swedish word into the search box, press Sök,
//! open a result and read it, narrow the results with a filter link and with the region
//! select, and look at the page on a phone-sized screen. Screenshots land in
//! `target/tmp/browser/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spindel_tests::{http_request, slow_tests, spindel_bin};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Kills a child process when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        spindel_tests::stop_gently(&mut self.0, Duration::from_secs(10));
    }
}

/// A WebDriver session: the few commands this test needs.
struct Browser {
    driver: SocketAddr,
    session: String,
}

impl Browser {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(self.driver, method, &path, body)
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_string()
    }

    /// Clicks `element` and waits until the browser has left `from` and loaded the new page.
    fn click_and_load(&self, element: &str) {
        let from = self.url();
        self.click(element);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.url() != from && self.script("return document.readyState") == "complete" {
                return;
            }
            assert!(Instant::now() < deadline, "clicking did not leave {from}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Clicks `element` and waits until the page holds `css` (a POST that answers at the same
    /// address, such as a preview).
    fn click_until(&self, element: &str, css: &str) {
        self.click(element);
        let probe = format!(
            "return document.readyState === 'complete' && document.querySelector({}) !== null",
            json!(css)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.script(&probe) != true {
            assert!(
                Instant::now() < deadline,
                "no {css:?} after the click on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn clear(&self, element: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        );
    }

    /// axe-core's serious and critical WCAG 2.1 A/AA violations on the page (empty: none).
    fn axe(&self, axe_source: &str) -> Vec<String> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": format!("{axe_source}\nreturn typeof axe;"), "args": []})),
        );
        let found = self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": "const done = arguments[arguments.length - 1]; \
                axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}) \
                .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical') \
                .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', ')))) \
                .catch(e => done(['axe failed: ' + e]));", "args": []})),
        );
        found
            .as_array()
            .unwrap_or_else(|| panic!("axe answered {found}"))
            .iter()
            .map(|v| v.as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Fails the test when axe finds a serious or critical violation on the page.
    fn assert_accessible(&self, axe_source: &str) {
        let violations = self.axe(axe_source);
        assert!(violations.is_empty(), "{}: {violations:#?}", self.url());
    }

    fn find_all(&self, css: &str) -> Vec<String> {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .unwrap_or_else(|| panic!("elements {css:?}: not a list"))
        .iter()
        .map(|e| e[ELEMENT].as_str().unwrap().to_string())
        .collect()
    }

    fn find(&self, css: &str) -> String {
        let all = self.find_all(css);
        assert!(!all.is_empty(), "no element {css:?} on {}", self.url());
        all[0].clone()
    }

    fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    fn texts(&self, css: &str) -> Vec<String> {
        self.find_all(css).iter().map(|e| self.text(e)).collect()
    }

    fn click(&self, element: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn type_into(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The number in the results heading ("11 träffar för …").
    fn hits(&self) -> usize {
        let heading = self.text(&self.find("#traffar"));
        heading
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no hit count in {heading:?}"))
    }
}

fn call(driver: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let (status, _, text) = http_request(driver, method, path, body.as_deref());
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: {status}: not JSON ({e}): {text}"));
    assert_eq!(status, 200, "{method} {path}: {v}");
    v["value"].clone()
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        other => panic!("not base64: {other}"),
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk
            .iter()
            .copied()
            .filter(|c| *c != b'=')
            .map(val)
            .collect();
        let n = data
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, v)| acc | (u32::from(*v) << (18 - 6 * i)));
        for i in 0..data.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `spindel demo` and returns it with the address of its page.
fn start_demo() -> (Guard, SocketAddr) {
    let mut child = Command::new(spindel_bin())
        .args(["demo", "--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read stdout to its end in a thread (the demo keeps printing after the address line),
    // handing over the page's address.
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Kunskapsbanken: http://") {
                let _ = tx.send(rest.trim_end_matches('/').parse::<SocketAddr>().unwrap());
            }
        }
    });
    let http = rx.recv_timeout(Duration::from_secs(120)).ok();
    let guard = Guard(child);
    (guard, http.expect("the demo prints the page's address"))
}

fn start_browser() -> (Guard, Browser) {
    for bin in [CHROMEDRIVER, CHROMIUM] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver), as .ci/run does"
        );
    }
    let port = free_port();
    let driver = Guard(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(addr).is_ok()
            && call(addr, "GET", "/status", None)["ready"] == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tempfile::tempdir().unwrap().keep();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--lang=sv-SE",
                "--window-size=1280,1100",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    }}});
    let session = call(addr, "POST", "/session", Some(caps));
    let browser = Browser {
        driver: addr,
        session: session["sessionId"].as_str().unwrap().to_string(),
    };
    (driver, browser)
}

#[test]
fn a_person_searches_reads_and_filters_the_knowledge_bank_in_chromium() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    let (_demo, http) = start_demo();
    let (_driver, b) = start_browser();
    let base = format!("http://{http}");

    // The start page: a labelled search box, every record, in Swedish.
    b.goto(&format!("{base}/"));
    assert_eq!(b.script("return document.documentElement.lang"), "sv");
    let all = b.hits();
    assert_eq!(
        all, 53,
        "the demo's 53 records (the ninth platform's two among them)"
    );
    assert_eq!(b.text(&b.find("label[for=q]")), "Sökord");

    // Search an inflected form: "föreningarna" finds what says "förening".
    let q = b.find("#q");
    b.click(&q);
    b.type_into(&q, "föreningarna");
    b.click_and_load(&b.find("form.search button[type=submit]"));
    assert!(b.url().contains("q=f%C3%B6reningarna"), "{}", b.url());
    let found = b.hits();
    assert!(found > 0 && found < all, "{found} of {all}");
    let titles = b.texts("li.record h3 a");
    assert!(
        titles.iter().any(|t| t == "Integration i förening"),
        "{titles:?}"
    );
    b.screenshot("search.png");

    // Open the result and read what a person sees.
    let link = b
        .find_all("li.record h3 a")
        .into_iter()
        .find(|e| b.text(e) == "Integration i förening")
        .unwrap();
    b.click_and_load(&link);
    assert!(b.url().contains("/post/"), "{}", b.url());
    assert_eq!(b.text(&b.find("h1")), "Integration i förening");
    let page = b.text(&b.find("main"));
    for seen in [
        "Social innovation från Nätverket Social Ekonomi Skåne",
        "Nyanlända möter föreningslivet",
        "Partnerskap Skåne",
        "1 : 3,2 (2011)",
        "Taggar",
        "nyanlända",
    ] {
        assert!(
            page.contains(seen),
            "{seen:?} not on the record page:\n{page}"
        );
    }
    b.screenshot("record.png");

    // Filters narrow: a facet link, then the region select on top of it.
    b.goto(&format!("{base}/"));
    let methods = b
        .find_all("aside a")
        .into_iter()
        .find(|e| b.text(e) == "Metoder")
        .expect("a Metoder facet link");
    b.click_and_load(&methods);
    let method_hits = b.hits();
    assert!(method_hits > 0 && method_hits < all, "{method_hits}");
    assert!(
        b.texts("li.record .kind").iter().all(|k| k == "Metod"),
        "{:?}",
        b.texts("li.record .kind")
    );
    b.click(&b.find("#region option[value=skane]"));
    b.click_and_load(&b.find("form.search button[type=submit]"));
    let narrowed = b.hits();
    assert!(
        narrowed > 0 && narrowed < method_hits,
        "{narrowed} of {method_hits}"
    );
    assert!(b.url().contains("region=skane") && b.url().contains("kind=method"));
    assert!(
        b.text(&b.find("p.active"))
            .contains("Nätverket Social Ekonomi Skåne")
    );

    // The national overview shows the SROI figures with their median.
    b.click_and_load(&b.find("nav a[href='/oversikt']"));
    let overview = b.text(&b.find("main"));
    assert!(overview.contains("Median 1 :"), "{overview}");
    assert!(
        overview.contains("Västra Götalandsplattformen"),
        "{overview}"
    );
    b.screenshot("overview.png");

    // The network's own page: the founders, and the ninth platform they endorsed.
    b.goto(&format!("{base}/natverket"));
    let network = b.text(&b.find("main"));
    assert!(network.contains("Grundande region"), "{network}");
    assert!(network.contains("varmland"), "{network}");
    assert!(network.contains("Stöd från"), "{network}");
    let axe = axe_source();
    b.assert_accessible(&axe);
    b.screenshot("network.png");
    // The ninth platform's page: endorsed by whom, and its key.
    b.goto(&format!("{base}/region/varmland"));
    let region = b.text(&b.find("main"));
    assert!(region.contains("Regionens nycklar"), "{region}");
    assert!(region.contains("med stöd från"), "{region}");
    b.assert_accessible(&axe);

    // On a phone-sized screen nothing runs off the side.
    b.goto(&format!("{base}/?q=f%C3%B6reningarna"));
    b.resize(390, 844);
    b.screenshot("phone.png");
    let widths = b.script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, \
         Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).map(e => e.tagName + '.' + e.className).slice(0, 5)]",
    );
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the page is wider than a phone: {widths}"
    );
    b.resize(1280, 1100);
    b.goto(&format!("{base}/"));
    let shot = b.screenshot("knowledge-bank.png");
    eprintln!("screenshots in {}", shot.parent().unwrap().display());
    b.call("DELETE", "", None);
}

/// axe-core from the npm registry (pinned), unpacked once into the test's temporary directory.
const AXE_CORE: &str = "axe-core@4.14.1";

fn axe_source() -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("axe");
    let js = dir.join("package/axe.min.js");
    if !js.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let packed = Command::new("npm")
            .args(["pack", AXE_CORE, "--silent", "--pack-destination"])
            .arg(&dir)
            .output()
            .unwrap_or_else(|e| panic!("npm is needed to fetch {AXE_CORE}: {e}"));
        assert!(packed.status.success(), "npm pack {AXE_CORE}: {packed:?}");
        let tgz = String::from_utf8(packed.stdout).unwrap();
        let unpacked = Command::new("tar")
            .arg("xzf")
            .arg(dir.join(tgz.trim()))
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(unpacked.success(), "unpacking {AXE_CORE}");
    }
    std::fs::read_to_string(js).unwrap()
}

/// A coordinator who has never seen a terminal, in Chromium: logs in to Redaktionen, writes a
/// method, previews and publishes it, finds it on the region's public page and (over real QUIC)
/// at the aggregator, edits it and deletes it. axe-core finds no serious or critical WCAG 2.1
/// A/AA violation on any editor or public page on the way.
#[test]
fn a_coordinator_publishes_edits_and_deletes_in_chromium_and_axe_passes_every_page() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    use spindel_tests::{EditorNetwork, api_titles, editor_network, eventually, http_get};
    let axe = axe_source();
    let tmp = tempfile::tempdir().unwrap();
    let password = "ett långt lösenord för webbläsaren";
    let EditorNetwork {
        dir,
        region_id,
        agg,
        region,
    } = editor_network(tmp.path(), "anna", "admin", password);
    let editor = format!("http://{}", region.admin.unwrap());
    let public = format!("http://{}", region.http.unwrap());
    let agg_http = agg.http.unwrap();
    let methods_at_aggregator = || api_titles(agg_http, "method");
    let (_driver, b) = start_browser();

    // The check can fail: an input without a label is a critical violation to axe.
    b.goto("data:text/html;charset=utf-8,<html lang=sv><title>t</title><main><input id=x></main></html>");
    let found = b.axe(&axe);
    assert!(
        found.iter().any(|v| v.starts_with("label")),
        "axe missed an unlabelled input: {found:?}"
    );

    // Log in.
    b.goto(&format!("{editor}/"));
    assert!(b.url().ends_with("/logga-in"), "{}", b.url());
    b.assert_accessible(&axe);
    b.type_into(&b.find("#user"), "anna");
    b.type_into(&b.find("#password"), password);
    b.click_and_load(&b.find("form.card button[type=submit]"));
    assert!(b.text(&b.find("main")).contains("Inloggad som anna"));
    b.assert_accessible(&axe);
    b.screenshot("editor-start.png");

    // A new method: first with the title left out, then whole.
    let new_method = b
        .find_all("ul.actions a")
        .into_iter()
        .find(|e| b.text(e) == "Ny metod")
        .expect("a Ny metod link");
    b.click_and_load(&new_method);
    b.assert_accessible(&axe);
    b.type_into(
        &b.find("#summary"),
        "Så skriver en kommun och de idéburna en överenskommelse.",
    );
    b.click_until(&b.find("button[value=preview]"), "#title-fel");
    assert_eq!(b.text(&b.find("#title-fel")), "Fyll i fältet.");
    b.assert_accessible(&axe);
    b.type_into(&b.find("#title"), "Lokal överenskommelse i Skåne");
    b.type_into(&b.find("#tags"), "samverkan\nkommun");
    b.screenshot("editor-form.png");
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    assert!(
        b.text(&b.find("article.preview"))
            .contains("Lokal överenskommelse i Skåne")
    );
    b.assert_accessible(&axe);
    b.click_and_load(&b.find("button[value=publish]"));
    assert!(b.url().contains("/post/"), "{}", b.url());
    assert!(b.text(&b.find("main")).contains("Publicerad som version"));
    b.assert_accessible(&axe);
    let rid = b
        .url()
        .split("/post/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();

    // On the region's public page, and at the aggregator over QUIC.
    b.goto(&format!("{public}/post/{region_id}/{rid}"));
    assert_eq!(b.text(&b.find("h1")), "Lokal överenskommelse i Skåne");
    eventually(20, "the method at the aggregator", || {
        methods_at_aggregator() == ["Lokal överenskommelse i Skåne"]
    });
    // Every public page passes axe too.
    for path in [
        "/".to_string(),
        "/?q=%C3%B6verenskommelse".to_string(),
        format!("/post/{region_id}/{rid}"),
        "/region/skane".to_string(),
        "/oversikt".to_string(),
        "/integritet".to_string(),
        "/granskning".to_string(),
        "/finns-inte".to_string(),
    ] {
        b.goto(&format!("{public}{path}"));
        b.assert_accessible(&axe);
    }

    // Edit: a new version everywhere.
    b.goto(&format!("{editor}/post/{rid}/andra"));
    b.assert_accessible(&axe);
    let title = b.find("#title");
    b.clear(&title);
    b.type_into(&title, "Lokal överenskommelse, reviderad");
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    b.click_and_load(&b.find("button[value=publish]"));
    eventually(20, "the new version at the aggregator", || {
        methods_at_aggregator() == ["Lokal överenskommelse, reviderad"]
    });

    // The post's page after the edit: version 2, its history table, axe-clean.
    b.goto(&format!("{editor}/post/{rid}"));
    let history = b.text(&b.find("#historik + .scroll table"));
    assert!(
        history.contains("Ändrad") && history.contains("Publicerad"),
        "{history}"
    );
    b.assert_accessible(&axe);

    // The admin's pages.
    for path in [
        "/anvandare",
        "/anvandare/anna/nytt-losenord",
        "/logg",
        "/logg?typ=login",
        "/konto",
        "/importera",
        "/ny/innovation",
        "/ny/researcher",
        "/ny/profile",
    ] {
        b.goto(&format!("{editor}{path}"));
        b.assert_accessible(&axe);
    }

    // A stale form: the edit form is opened, a colleague publishes a newer version (here from
    // the command line), and Publicera shows the merge page, with the person's text kept.
    b.goto(&format!("{editor}/post/{rid}/andra"));
    let title = b.find("#title");
    b.clear(&title);
    b.type_into(&title, "Min titel från ett gammalt formulär");
    spindel_tests::publish_version(
        &dir,
        "method",
        &rid,
        r#"{"title":"Kollegans version","summary":"Ny sammanfattning"}"#,
    )
    .ok();
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    b.click_until(&b.find("button[value=publish]"), "#konflikt");
    assert!(b.text(&b.find("#konflikt")).contains("Kollegans version"));
    b.assert_accessible(&axe);
    // Merged: published over the colleague's version, knowingly.
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    b.click_and_load(&b.find("button[value=publish]"));
    eventually(20, "the merged version at the aggregator", || {
        methods_at_aggregator() == ["Min titel från ett gammalt formulär"]
    });

    // A refused CSV import: its errors row by row, in a list inside the alert.
    let bad_csv = tmp.path().join("fel.csv");
    std::fs::write(
        &bad_csv,
        "\u{feff}title;summary;links\r\nBra;S;\r\n;Saknar titel;\r\nFel;S;www.utan-schema.se\r\n",
    )
    .unwrap();
    b.goto(&format!("{editor}/importera"));
    b.type_into(&b.find("#file"), bad_csv.to_str().unwrap());
    b.click_until(&b.find("form.card button[type=submit]"), "#import-fel li");
    let said = b.text(&b.find("#import-fel"));
    assert!(
        said.contains("Rad 3") && said.contains("Titel (title)") && said.contains("Rad 4"),
        "{said}"
    );
    b.assert_accessible(&axe);

    // Alla poster, and the question before removing the chosen ones (not answered here).
    b.goto(&format!("{editor}/poster"));
    b.assert_accessible(&axe);
    b.click(&b.find("input[type=checkbox]"));
    b.click_until(&b.find("button.secondary"), "input[name=bekrafta]");
    assert!(b.text(&b.find("h1")).starts_with("Ta bort 1 post"));
    b.assert_accessible(&axe);

    // Mitt konto: a wrong current password is said beside its field.
    b.goto(&format!("{editor}/konto"));
    b.type_into(&b.find("#current"), "inte rätt lösenord");
    b.type_into(&b.find("#new"), "ett nytt långt lösenord");
    b.type_into(&b.find("#again"), "ett nytt långt lösenord");
    b.click_until(&b.find("form.card button[type=submit]"), "#current-fel");
    assert!(b.text(&b.find("#current-fel")).contains("stämmer inte"));
    b.assert_accessible(&axe);

    // Delete, after the confirmation page: gone everywhere.
    b.goto(&format!("{editor}/post/{rid}/ta-bort"));
    assert!(
        b.text(&b.find("main"))
            .contains("kan aldrig publiceras igen")
    );
    b.assert_accessible(&axe);
    b.click_and_load(&b.find("form.card button[type=submit]"));
    eventually(20, "the deletion at the aggregator", || {
        methods_at_aggregator().is_empty()
    });
    let (status, _) = http_get(region.http.unwrap(), &format!("/post/{region_id}/{rid}"));
    assert_eq!(
        status, 404,
        "the deleted method is still on the public page"
    );

    b.call("DELETE", "", None);
    for p in [region, agg] {
        assert_eq!(p.terminate(10), 0);
    }
}

/// The proxy bank in Chromium: the demo's outcome with proxies from two regions, side by side
/// with their median, an indicator's page; then a coordinator publishes an indicator from
/// Redaktionen and picks it for an innovation's SROI figure. axe-core passes `/proxybank`, an
/// indicator's page, `/ny/indicator` and the innovation form with the bank's checkboxes.
#[test]
fn the_proxy_bank_compares_regions_and_staff_publish_and_pick_indicators_in_chromium() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    use spindel_tests::{EditorNetwork, editor_network, http_get};
    let axe = axe_source();
    let (_demo, http) = start_demo();
    let (_driver, b) = start_browser();
    let base = format!("http://{http}");

    // The start page links the bank.
    b.goto(&format!("{base}/"));
    b.click_and_load(&b.find("nav a[href='/proxybank']"));
    assert_eq!(b.text(&b.find("h1")), "Proxybanken för SROI");
    let section = b
        .find_all("section.outcome")
        .into_iter()
        .find(|e| b.text(e).starts_with("Fler personer i arbete"))
        .expect("the outcome Fler personer i arbete");
    let text = b.text(&section);
    assert!(text.contains("2 indikatorer från 2 regioner"), "{text}");
    assert!(text.contains("Median 127 500 kr"), "{text}");
    assert!(
        text.contains("Nätverket Social Ekonomi Skåne")
            && text.contains("PLUS Östra Mellansverige"),
        "{text}"
    );
    assert!(
        text.contains("Arbetsträning i föreningsdrivna secondhandbutiker"),
        "{text}"
    );
    b.assert_accessible(&axe);
    b.screenshot("proxybank.png");
    // An indicator's page: its fields in Swedish and the innovation that uses it.
    b.click_and_load(&b.find("section.outcome td a[href^='/post/']"));
    let page = b.text(&b.find("main"));
    for seen in [
        "Indikator med proxy",
        "Utfall",
        "Finansiell proxy",
        "Används i",
    ] {
        assert!(page.contains(seen), "{seen:?} not on {page}");
    }
    b.assert_accessible(&axe);

    // Redaktionen: a new indicator, then an innovation that picks it.
    let tmp = tempfile::tempdir().unwrap();
    let password = "ett långt lösenord för webbläsaren";
    let EditorNetwork {
        region_id,
        agg,
        region,
        ..
    } = editor_network(tmp.path(), "anna", "redaktor", password);
    let editor = format!("http://{}", region.admin.unwrap());
    b.goto(&format!("{editor}/"));
    b.type_into(&b.find("#user"), "anna");
    b.type_into(&b.find("#password"), password);
    b.click_and_load(&b.find("form.card button[type=submit]"));
    b.goto(&format!("{editor}/ny/indicator"));
    b.assert_accessible(&axe);
    b.type_into(&b.find("#indicator"), "Deltagare i arbete efter ett år");
    b.type_into(&b.find("#value_sek"), "mycket");
    b.click_until(&b.find("button[value=preview]"), "#value_sek-fel");
    assert_eq!(b.text(&b.find("#outcome-fel")), "Fyll i fältet.");
    b.assert_accessible(&axe);
    b.type_into(&b.find("#outcome"), "Fler personer i arbete");
    b.clear(&b.find("#value_sek"));
    b.type_into(&b.find("#value_sek"), "98 000");
    b.type_into(&b.find("#proxy"), "Minskat försörjningsstöd (exempelvärde)");
    b.type_into(&b.find("#unit"), "per person och år");
    b.type_into(&b.find("#year"), "2025");
    b.type_into(&b.find("#source"), "https://example.org/kalla");
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    assert!(
        b.text(&b.find("article.preview"))
            .contains("98 000 kr per person och år")
    );
    b.assert_accessible(&axe);
    b.click_and_load(&b.find("button[value=publish]"));
    assert!(b.text(&b.find("main")).contains("Publicerad som version"));
    b.goto(&format!("{editor}/ny/innovation"));
    b.assert_accessible(&axe);
    b.type_into(&b.find("#title"), "Arbetsträning i Skåne");
    b.type_into(&b.find("#summary"), "Träning inför arbete.");
    b.type_into(&b.find("#sroi-ratio"), "2,5");
    b.click(&b.find("fieldset.pick-group input[type=checkbox]"));
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    assert!(
        b.text(&b.find("article.preview"))
            .contains("Deltagare i arbete efter ett år")
    );
    b.click_and_load(&b.find("button[value=publish]"));
    let (_, body) = http_get(region.http.unwrap(), "/api/v1/records?kind=innovation");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let named = v["records"][0]["data"]["sroi"]["indicators"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(named.starts_with(&region_id), "{named}");
    b.call("DELETE", "", None);
    for p in [region, agg] {
        assert_eq!(p.terminate(10), 0);
    }
}

/// Regions answer each other: a coordinator in Skåne finds Dalarna's record under "Nätverket",
/// opens it, presses "Svara med en erfarenhet", sees the record above the form, chooses the
/// outcome, previews and publishes; the answer shows under Dalarna's record on the public page
/// (and at the aggregator), and `/oversikt` counts it. axe-core finds no serious or critical
/// violation on the network list, the read-only record, the answer form, the record page with
/// answers, the answer's page and the overview with its matrix.
#[test]
fn a_region_answers_another_regions_record_in_chromium_and_axe_passes() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    use spindel_tests::{NodeProc, eventually, http_get, init_network, publish, s, spindel_stdin};
    let axe = axe_source();
    let tmp = tempfile::tempdir().unwrap();
    let password = "ett långt lösenord för webbläsaren";
    let (agg_dir, agg_id, [(sk_dir, _), (dal_dir, dal_id)]) =
        init_network(tmp.path(), ["skane", "dalarna"]);
    spindel_stdin(
        &[
            "user",
            "add",
            "--data-dir",
            s(&sk_dir),
            "anna",
            "--role",
            "admin",
            "--password-stdin",
        ],
        password,
    )
    .ok();
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let sk = NodeProc::start(
        &sk_dir,
        &[
            "--aggregator",
            &peer,
            "--admin",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
    );
    let dal = NodeProc::start(&dal_dir, &["--aggregator", &peer]);
    let rid = publish(
        &dal_dir,
        "method",
        r#"{"title":"Dalarnas fond för föreningar","summary":"Ett regionalt kapital."}"#,
    )["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (editor, public) = (
        format!("http://{}", sk.admin.unwrap()),
        format!("http://{}", sk.http.unwrap()),
    );
    let record = format!("/post/{dal_id}/{rid}");
    eventually(30, "Dalarna's record in Skåne", || {
        http_get(sk.http.unwrap(), &record).0 == 200
    });
    let (_driver, b) = start_browser();
    b.goto(&format!("{editor}/"));
    b.type_into(&b.find("#user"), "anna");
    b.type_into(&b.find("#password"), password);
    b.click_and_load(&b.find("form.card button[type=submit]"));

    // Nätverket: every region's records; Dalarna's opens read-only, with the answer button.
    b.click_and_load(&b.find("nav a[href='/natverket']"));
    b.assert_accessible(&axe);
    b.click_and_load(&b.find(&format!("a[href='/natverket/{dal_id}/{rid}']")));
    assert_eq!(b.text(&b.find("h1")), "Dalarnas fond för föreningar");
    b.assert_accessible(&axe);
    let answer = b
        .find_all("ul.actions a")
        .into_iter()
        .find(|e| b.text(e) == "Svara med en erfarenhet")
        .expect("Svara med en erfarenhet");
    b.click_and_load(&answer);
    assert!(b.url().contains("/ny/experience?about="), "{}", b.url());
    assert!(
        b.text(&b.find("section.answering"))
            .contains("Dalarnas fond för föreningar")
    );
    b.assert_accessible(&axe);
    // Without text and outcome: both said beside their fields, at once.
    b.click_until(&b.find("button[value=preview]"), "#outcome-fel");
    assert_eq!(b.text(&b.find("#text-fel")), "Fyll i fältet.");
    b.assert_accessible(&axe);
    b.type_into(
        &b.find("#text"),
        "Skåne provade fonden med tre kommuner\nDet tog ett år att komma igång.",
    );
    b.click(&b.find("#outcome option[value=adapted]"));
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    assert!(b.text(&b.find("article.preview")).contains("Anpassat"));
    b.assert_accessible(&axe);
    b.click_and_load(&b.find("button[value=publish]"));
    assert!(b.text(&b.find("main")).contains("Publicerad som version"));
    let answer_id = b
        .url()
        .split("/post/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();

    // Under Dalarna's record on the public page, at the aggregator too; axe on every page.
    b.goto(&format!("{public}{record}"));
    assert!(
        b.text(&b.find("section.answers"))
            .contains("Skåne provade fonden med tre kommuner")
    );
    b.assert_accessible(&axe);
    eventually(30, "the answer at the aggregator", || {
        http_get(agg.http.unwrap(), &record)
            .1
            .contains("Skåne provade fonden")
    });
    let sk_id =
        spindel_tests::spindel(&["id", "--data-dir", s(&sk_dir), "--json"]).json()["node_id"]
            .as_str()
            .unwrap()
            .to_string();
    b.goto(&format!("{public}/post/{sk_id}/{answer_id}"));
    assert!(
        b.text(&b.find("p.answered"))
            .contains("Dalarnas fond för föreningar")
    );
    b.assert_accessible(&axe);
    b.goto(&format!("{public}/oversikt"));
    assert!(b.text(&b.find("table.matrix")).contains('1'));
    b.assert_accessible(&axe);
    b.goto(&format!("{editor}/ny/experience"));
    b.assert_accessible(&axe);

    b.call("DELETE", "", None);
    for p in [dal, sk, agg] {
        assert_eq!(p.terminate(10), 0);
    }
}

/// A coordinator publishes a meeting place from Redaktionen (Swedish wall-clock time); a person
/// finds it on `/kalender`, opens it, and finds the feed to subscribe to. axe-core finds no
/// serious or critical violation on the calendar, the event's page and `/ny/event`.
#[test]
fn a_meeting_place_is_published_found_on_the_calendar_and_subscribed_to_in_chromium() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    use spindel_tests::{EditorNetwork, editor_network, eventually, http_get};
    let axe = axe_source();
    let tmp = tempfile::tempdir().unwrap();
    let password = "ett långt lösenord för webbläsaren";
    let EditorNetwork {
        region_id,
        agg,
        region,
        ..
    } = editor_network(tmp.path(), "anna", "redaktor", password);
    let editor = format!("http://{}", region.admin.unwrap());
    let public = format!("http://{}", region.http.unwrap());
    let agg_http = agg.http.unwrap();
    let (_driver, b) = start_browser();

    b.goto(&format!("{editor}/"));
    b.type_into(&b.find("#user"), "anna");
    b.type_into(&b.find("#password"), password);
    b.click_and_load(&b.find("form.card button[type=submit]"));
    let new_event = b
        .find_all("ul.actions a")
        .into_iter()
        .find(|e| b.text(e) == "Ny mötesplats")
        .expect("a Ny mötesplats link");
    b.click_and_load(&new_event);
    b.assert_accessible(&axe);
    b.type_into(&b.find("#title"), "Regional träff om Överenskommelsen");
    // A datetime-local field takes its value in the browser's own format; set it as a form
    // submits it.
    b.script("document.querySelector('#start').value = '2099-06-12T09:00';");
    b.script("document.querySelector('#end').value = '2099-06-12T12:30';");
    b.click_until(&b.find("button[value=preview]"), "#place-fel");
    assert!(b.text(&b.find("#place-fel")).contains("Ange en plats"));
    b.assert_accessible(&axe);
    b.type_into(&b.find("#place"), "Folkets hus, Lund");
    b.type_into(&b.find("#registration_url"), "https://exempel.se/anmalan");
    b.click_until(&b.find("button[value=preview]"), "article.preview");
    assert!(
        b.text(&b.find("article.preview"))
            .contains("fredag 12 juni 2099 kl. 09:00–12:30")
    );
    b.assert_accessible(&axe);
    b.click_and_load(&b.find("button[value=publish]"));
    assert!(b.text(&b.find("main")).contains("Publicerad som version"));

    // The calendar: the event, its page, and the feed to subscribe to.
    b.goto(&format!("{public}/"));
    b.click_and_load(&b.find("nav a[href='/kalender']"));
    b.assert_accessible(&axe);
    b.screenshot("calendar.png");
    let feed = b.find("a[type='text/calendar']");
    assert!(b.text(&feed).contains("Prenumerera"));
    let link = b
        .find_all("ol.records h3 a")
        .into_iter()
        .find(|e| b.text(e) == "Regional träff om Överenskommelsen")
        .expect("the event on /kalender");
    b.click_and_load(&link);
    assert!(
        b.url().contains(&format!("/post/{region_id}/")),
        "{}",
        b.url()
    );
    let main = b.text(&b.find("main"));
    assert!(
        main.contains("fredag 12 juni 2099 kl. 09:00–12:30"),
        "{main}"
    );
    assert!(
        main.contains("Folkets hus, Lund") && main.contains("Anmälan"),
        "{main}"
    );
    b.assert_accessible(&axe);
    b.goto(&format!("{public}/kalender/tidigare"));
    b.assert_accessible(&axe);
    eventually(20, "the event in the aggregator's feed", || {
        http_get(agg_http, "/kalender.ics")
            .1
            .contains("SUMMARY:Regional träff om Överenskommelsen")
    });
}

/// Redaktionen's membership pages under a charter, in Chromium: an admin endorses a region
/// through the form (first with a bad id, said beside the field), the confirmation page and
/// the result, and axe-core finds no serious or critical violation on any of them.
#[test]
fn an_admin_endorses_a_region_in_chromium_and_axe_passes_the_membership_pages() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    use spindel_tests::{NodeProc, init, s, spindel, user_add};
    let axe = axe_source();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (skane, skane_id) = init(t, "skane", "region");
    let (_, gotland_id) = init(t, "gotland", "region");
    let file = t.join("soul.json");
    let founder = format!("{skane_id}=skane");
    spindel(&[
        "charter",
        "new",
        "--name",
        "SOUL",
        "--threshold",
        "1",
        &founder,
        "--out",
        s(&file),
    ])
    .ok();
    spindel(&["charter", "sign", "--data-dir", s(&skane), s(&file)]).ok();
    spindel(&["charter", "adopt", "--data-dir", s(&skane), s(&file)]).ok();
    let password = "ett långt lösenord för webbläsaren";
    user_add(&skane, "anna", "admin", Some(password));
    let node = NodeProc::start(&skane, &["--admin", "127.0.0.1:0"]);
    let editor = format!("http://{}", node.admin.unwrap());
    let (_driver, b) = start_browser();
    b.goto(&format!("{editor}/"));
    b.type_into(&b.find("#user"), "anna");
    b.type_into(&b.find("#password"), password);
    b.click_and_load(&b.find("form.card button[type=submit]"));

    b.goto(&format!("{editor}/medlemskap"));
    assert!(b.text(&b.find("main")).contains("Grundande region"));
    b.assert_accessible(&axe);
    // A bad id: said beside the field, the name kept.
    b.type_into(&b.find("#stod-node"), "inte-ett-id");
    b.type_into(&b.find("#stod-name"), "gotland");
    b.click_and_load(&b.find("form[action='/medlemskap/stod'] button[type=submit]"));
    assert!(b.text(&b.find("#stod-node-fel")).contains("64 tecken"));
    assert_eq!(
        b.script("return document.querySelector('#stod-name').value"),
        "gotland"
    );
    b.assert_accessible(&axe);
    // The confirmation page, then the act.
    b.clear(&b.find("#stod-node"));
    b.type_into(&b.find("#stod-node"), &gotland_id);
    b.click_until(
        &b.find("form[action='/medlemskap/stod'] button[type=submit]"),
        "input[name=confirm]",
    );
    assert!(b.text(&b.find("main")).contains("När 1 medlem har"));
    b.assert_accessible(&axe);
    b.click_until(&b.find("main form button[type=submit]"), "p.notice");
    let done = b.text(&b.find("main"));
    assert!(done.contains("gotland är nu medlem"), "{done}");
    b.assert_accessible(&axe);
    b.screenshot("editor-membership.png");
    b.call("DELETE", "", None);
}

/// Serves `html` to every request on a port of its own (another origin than the node's), for
/// as long as the test runs.
fn host_page(html: String) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    addr
}

/// A region's own website frames the embed: a page served from another origin shows the
/// region's newest records inside its iframe, the origin `embed_ancestors` names and no
/// other (a third site's frame stays empty), and no other page of the node can be framed.
/// axe-core passes the embed.
#[test]
fn a_regions_website_shows_the_embed_in_an_iframe_in_chromium() {
    if !slow_tests() {
        eprintln!("skipped: set SPINDEL_SLOW_TESTS=1 to run the browser test");
        return;
    }
    use spindel_tests::{NodeProc, init, publish};
    let axe = axe_source();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = init(tmp.path(), "skane", "region");
    publish(
        &dir,
        "method",
        r#"{"title":"Lokal överenskommelse i Lund","summary":"Hur kommunen och föreningarna skrev en överenskommelse."}"#,
    );
    // The node is started first (its port is in the frames' address); the sites' pages come
    // after, and the allowed one's origin is known before the node starts.
    let allowed_port = free_port();
    let allowed_origin = format!("http://127.0.0.1:{allowed_port}");
    std::fs::write(
        dir.join("spindel.toml"),
        format!("embed_ancestors = [\"{allowed_origin}\"]\n"),
    )
    .unwrap();
    let node = NodeProc::start(&dir, &["--http", "127.0.0.1:0"]);
    let http = node.http.unwrap();
    let frame = |src: &str| {
        format!(
            "<!doctype html><html lang=\"sv\"><head><meta charset=\"utf-8\"><title>Region Skåne</title></head>\
             <body><h1>Region Skånes webbplats</h1>\
             <iframe id=\"kb\" title=\"Senaste i kunskapsbanken\" src=\"http://{http}{src}\" width=\"400\" height=\"300\"></iframe>\
             </body></html>"
        )
    };
    // The allowed site: its own pages on the port its origin names.
    let allowed = {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind(("127.0.0.1", allowed_port)).unwrap();
        let pages: std::collections::BTreeMap<&str, String> = [
            ("/inbaddning", frame("/inbaddning?kind=method&limit=3")),
            ("/sok", frame("/")),
        ]
        .into_iter()
        .collect();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let html = pages.get(path).cloned().unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
            }
        });
        allowed_origin
    };
    let other = host_page(frame("/inbaddning?kind=method&limit=3"));
    let (_driver, browser) = start_browser();
    let frame_texts = |page: &str| -> (String, Vec<String>) {
        browser.goto(page);
        let iframe = browser.find("#kb");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            browser.call("POST", "/frame", Some(json!({"id": {(ELEMENT): iframe}})));
            let state = browser.script("return document.readyState + ' ' + location.href");
            let ready = state.as_str().unwrap_or("").to_string();
            if ready.starts_with("complete") && !ready.ends_with("about:blank") {
                let titles = browser.texts("li h2 a");
                let href = ready.split_once(' ').map(|x| x.1).unwrap_or("").to_string();
                browser.call("POST", "/frame/parent", Some(json!({})));
                return (href, titles);
            }
            browser.call("POST", "/frame/parent", Some(json!({})));
            assert!(Instant::now() < deadline, "the frame never loaded: {ready}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The allowed site shows the region's newest record inside its frame.
    let (href, titles) = frame_texts(&format!("{allowed}/inbaddning"));
    assert!(href.contains("/inbaddning"), "{href}");
    assert_eq!(titles, ["Lokal överenskommelse i Lund"]);
    browser.screenshot("embed-in-a-regions-site.png");
    // Another site's frame is refused by the browser (frame-ancestors): an error page.
    let (href, titles) = frame_texts(&format!("http://{other}/"));
    assert!(titles.is_empty(), "{titles:?}");
    assert!(href.starts_with("chrome-error://"), "{href}");
    // Any other page of the node refuses every frame, the allowed site's too.
    let (href, titles) = frame_texts(&format!("{allowed}/sok"));
    assert!(
        titles.is_empty() && href.starts_with("chrome-error://"),
        "{href}"
    );
    // The embed itself passes axe-core.
    browser.goto(&format!("http://{http}/inbaddning"));
    assert_eq!(browser.texts("li h2 a"), ["Lokal överenskommelse i Lund"]);
    browser.assert_accessible(&axe);
}
