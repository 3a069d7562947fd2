//! Helpers for spindel's cross-crate and multi-process tests: find the built `spindel` binary,
//! run it, and read what it printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `spindel` binary under test: `$SPINDEL_BIN`, else the one cargo built next to this test
/// (`cargo test --workspace` builds it).
pub fn spindel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SPINDEL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/spindel
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("spindel"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary) or set SPINDEL_BIN",
        bin.display()
    );
    bin
}

/// What one run of the binary printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout parsed as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "expected success, got {self:?}");
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", self.stdout))
    }

    /// Asserts success.
    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, 0, "expected success, got {self:?}");
        self
    }

    /// Asserts exit code `code` and exactly one line on stderr containing `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "exit code for {self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "stderr must be one line: {:?}", self.stderr);
        assert!(lines[0].starts_with("error:"), "stderr: {:?}", self.stderr);
        assert!(
            lines[0].contains(needle),
            "stderr {:?} does not name {needle:?}",
            self.stderr
        );
    }
}

/// Runs `spindel ARGS` with no stdin.
pub fn spindel(args: &[&str]) -> Run {
    spindel_env(args, &[])
}

/// Runs `spindel ARGS` with extra environment variables.
pub fn spindel_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(spindel_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("SPINDEL_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("run spindel"))
}

/// Runs `spindel ARGS` with `input` on stdin.
pub fn spindel_stdin(args: &[&str], input: &str) -> Run {
    let mut child = Command::new(spindel_bin())
        .args(args)
        .env_remove("SPINDEL_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spindel");
    // The command may exit before reading its input (an early error): a broken pipe is fine.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    Run::from(child.wait_with_output().expect("wait spindel"))
}

/// `spindel publish --data-dir DIR --kind KIND --file - --json` with `json` on stdin.
pub fn publish_run(dir: &Path, kind: &str, json: &str) -> Run {
    publish_args(dir, kind, &[], json)
}

/// [`publish_run`] of a new version of the own record `record_id` (`--id`).
pub fn publish_version(dir: &Path, kind: &str, record_id: &str, json: &str) -> Run {
    publish_args(dir, kind, &["--id", record_id], json)
}

/// `spindel publish --data-dir DIR --kind KIND EXTRA.. --file - --json` with `json` on stdin.
fn publish_args(dir: &Path, kind: &str, extra: &[&str], json: &str) -> Run {
    let mut args = vec!["publish", "--data-dir", s(dir), "--kind", kind];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--file", "-", "--json"]);
    spindel_stdin(&args, json)
}

/// The arguments of `spindel import --data-dir DIR --kind KIND --file FILE`.
pub fn import_args<'a>(dir: &'a Path, kind: &'a str, file: &'a Path) -> [&'a str; 7] {
    [
        "import",
        "--data-dir",
        s(dir),
        "--kind",
        kind,
        "--file",
        s(file),
    ]
}

/// Runs `spindel import` of `file` as records of `kind` into the node in `dir`.
pub fn import_file(dir: &Path, kind: &str, file: &Path) -> Run {
    spindel(&import_args(dir, kind, file))
}

/// [`import_file`] with `--json`: what was imported, as one JSON document.
pub fn import_file_json(dir: &Path, kind: &str, file: &Path) -> Run {
    let mut args = import_args(dir, kind, file).to_vec();
    args.push("--json");
    spindel(&args)
}

/// Stops a child as an operator would: SIGTERM, then SIGKILL if it has not exited `within`
/// (a demo removes its temporary directory, with the nodes' keys, only when it is let stop).
pub fn stop_gently(child: &mut std::process::Child, within: std::time::Duration) {
    if sigterm_and_wait(child, within).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends SIGTERM and waits up to `within` for the child to exit; its exit status, or `None`
/// if it is still running.
pub fn sigterm_and_wait(
    child: &mut std::process::Child,
    within: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Publishes `json` as a record of `kind` and returns the `--json` answer (asserting success).
pub fn publish(dir: &Path, kind: &str, json: &str) -> serde_json::Value {
    publish_run(dir, kind, json).json()
}

/// Nodes made with `spindel init` under one directory: the aggregator "nationell" and regions,
/// each admitted under its name (`spindel allow`, offline). None runs yet.
#[derive(Debug)]
pub struct Initialised {
    pub agg_dir: PathBuf,
    pub agg_id: String,
    /// Each region's directory and NodeId, in the order named.
    pub regions: Vec<(PathBuf, String)>,
}

/// [`init_regions`] of a fixed number of regions: the aggregator's directory and NodeId, and
/// each region's.
pub fn init_network<const N: usize>(
    tmp: &Path,
    names: [&str; N],
) -> (PathBuf, String, [(PathBuf, String); N]) {
    let net = init_regions(tmp, &names);
    let regions = <[_; N]>::try_from(net.regions).expect("one region a name");
    (net.agg_dir, net.agg_id, regions)
}

/// [`Initialised`] with the regions `names` under `tmp`.
pub fn init_regions(tmp: &Path, names: &[&str]) -> Initialised {
    let (agg_dir, agg_id) = init(tmp, "nationell", "aggregator");
    let regions = names
        .iter()
        .map(|name| {
            let (dir, id) = init(tmp, name, "region");
            allow(&agg_dir, &id, name).ok();
            (dir, id)
        })
        .collect();
    Initialised {
        agg_dir,
        agg_id,
        regions,
    }
}

/// `spindel allow` of `id` under `name` on the aggregator in `agg_dir` (running or not).
pub fn allow(agg_dir: &Path, id: &str, name: &str) -> Run {
    spindel(&[
        "allow",
        "--data-dir",
        s(agg_dir),
        id,
        "--name",
        name,
        "--json",
    ])
}

/// `spindel disallow --json` of `id` on the aggregator in `agg_dir` (running or not).
pub fn disallow(agg_dir: &Path, id: &str) -> Run {
    spindel(&["disallow", "--data-dir", s(agg_dir), id, "--json"])
}

/// An aggregator and the region "skane" as processes, the region serving its page and its
/// editor, with one staff member: what a coordinator works in.
#[derive(Debug)]
pub struct EditorNetwork {
    /// The region's data directory and NodeId.
    pub dir: PathBuf,
    pub region_id: String,
    pub agg: NodeProc,
    pub region: NodeProc,
}

/// Starts an [`EditorNetwork`] under `tmp` with the staff member `user` of `role`, whose
/// password is `password`.
pub fn editor_network(tmp: &Path, user: &str, role: &str, password: &str) -> EditorNetwork {
    let (agg_dir, agg_id, [(dir, region_id)]) = init_network(tmp, ["skane"]);
    let args = [
        "user",
        "add",
        "--data-dir",
        s(&dir),
        user,
        "--role",
        role,
        "--password-stdin",
    ];
    spindel_stdin(&args, password).ok();
    let agg = NodeProc::start(
        &agg_dir,
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    );
    let peer = agg.peer(&agg_id);
    let region = NodeProc::start(
        &dir,
        &[
            "--aggregator",
            &peer,
            "--admin",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ],
    );
    EditorNetwork {
        dir,
        region_id,
        agg,
        region,
    }
}

/// The titles of the `kind` records the API at `http` serves.
pub fn api_titles(http: std::net::SocketAddr, kind: &str) -> Vec<String> {
    let (status, body) = http_get(http, &format!("/api/v1/records?kind={kind}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["data"]["title"].as_str().unwrap_or("").to_string())
        .collect()
}

/// `spindel init` of a region `name` shown as `display_name`, in `dir`: its NodeId.
pub fn init_region_as(dir: &Path, name: &str, display_name: &str) -> String {
    let v = spindel(&[
        "init",
        "--data-dir",
        s(dir),
        "--name",
        name,
        "--display-name",
        display_name,
        "--json",
    ])
    .json();
    v["node_id"].as_str().expect("node_id").to_string()
}

/// `spindel init` of a node named `name` with `role` in `tmp/name`: its directory and NodeId.
pub fn init(tmp: &Path, name: &str, role: &str) -> (std::path::PathBuf, String) {
    let dir = tmp.join(name);
    let v = spindel(&[
        "init",
        "--data-dir",
        s(&dir),
        "--name",
        name,
        "--role",
        role,
        "--json",
    ])
    .json();
    (dir, v["node_id"].as_str().expect("node_id").to_string())
}

/// A path as `&str` for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A plain HTTP/1.1 GET against `addr`: (status, body). No client library: the bytes on the
/// wire are exactly what a browser or curl would send.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_request(addr, "GET", path, None);
    (status, body)
}

/// One HTTP/1.1 request (`Connection: close`), optionally with a JSON body: (status, head,
/// body). The head is lower-cased for header checks.
pub fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> (u16, String, String) {
    let body = json.map(|j| ("application/json", j));
    http_exchange(addr, method, path, &[], body)
}

/// An HTML form POST (`application/x-www-form-urlencoded` of `fields`) with `headers`
/// (a `Cookie`, say): (status, lower-cased head, body).
pub fn http_form(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let body = serde_urlencoded::to_string(fields).expect("form");
    http_exchange(
        addr,
        "POST",
        path,
        headers,
        Some(("application/x-www-form-urlencoded", &body)),
    )
}

/// The value of cookie `name` set by a response head (as [`http_exchange`] returns it,
/// lower-cased).
pub fn set_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie:"))
        .filter_map(|c| c.trim().split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The value of header `name` (lower case) in a response head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
}

/// `spindel user add --data-dir DIR NAME --role ROLE --json`, with `password` on stdin
/// (`--password-stdin`) or, when `None`, a one-time password made and printed: the JSON.
pub fn user_add(dir: &Path, name: &str, role: &str, password: Option<&str>) -> serde_json::Value {
    let mut args = vec![
        "user",
        "add",
        "--data-dir",
        s(dir),
        name,
        "--role",
        role,
        "--json",
    ];
    match password {
        Some(p) => {
            args.push("--password-stdin");
            spindel_stdin(&args, p).json()
        }
        None => spindel(&args).json(),
    }
}

/// A region "skane" in a new temporary directory with staff `users` (name, role) whose
/// password is `password`, running with `args`: (the directory's guard, the data directory,
/// the node).
pub fn editor_region(
    users: &[(&str, &str)],
    password: &str,
    args: &[&str],
) -> (tempfile::TempDir, PathBuf, NodeProc) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, _) = init(tmp.path(), "skane", "region");
    for (name, role) in users {
        let v = user_add(&dir, name, role, Some(password));
        assert_eq!(v["user"], *name);
        assert!(
            v.get("password").is_none(),
            "a chosen password is printed back"
        );
    }
    let node = NodeProc::start(&dir, args);
    (tmp, dir, node)
}

/// The value of the hidden field `name` of an editor page (`version` of an edit form).
pub fn hidden_field(body: &str, name: &str) -> Option<String> {
    let key = format!("type=\"hidden\" name=\"{name}\" value=\"");
    let at = body.find(&key)? + key.len();
    body[at..].split('"').next().map(str::to_string)
}

/// The hidden `csrf` field of an editor page.
pub fn csrf_field(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    body[at..at + 64].to_string()
}

/// One HTTP/1.1 request with extra `headers` and an optional (content type, body).
pub fn http_exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let stream = std::net::TcpStream::connect(addr).expect("connect http");
    exchange_on(stream, addr, method, path, headers, body)
}

/// [`http_exchange`] from the local address `from` (127.0.0.5, 127.0.0.6, ...: every
/// 127.0.0.0/8 address is this machine), as a client elsewhere would come.
pub fn http_exchange_from(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    socket
        .bind(&std::net::SocketAddr::new(from, 0).into())
        .expect("bind the client address");
    socket.connect(&addr.into()).expect("connect http");
    exchange_on(socket.into(), addr, method, path, headers, body)
}

/// [`http_form`] from the local address `from`.
pub fn http_form_from(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let body = serde_urlencoded::to_string(fields).expect("form");
    http_exchange_from(
        from,
        addr,
        "POST",
        path,
        headers,
        Some(("application/x-www-form-urlencoded", &body)),
    )
}

fn exchange_on(
    mut stream: std::net::TcpStream,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let mut extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let body = match body {
        Some((content_type, text)) => {
            extra.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                text.len()
            ));
            text
        }
        None => "",
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n{body}"
    )
    .expect("write");
    // Read the head, then the body by Content-Length, by chunks, or to the end: some servers
    // (chromedriver) keep the connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = read_some(&mut stream, &mut buf);
        if n == 0 {
            break raw.len();
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let complete = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if complete {
            break;
        }
        let n = read_some(&mut stream, &mut buf);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if chunked { dechunk(&body) } else { body };
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// One read of the answer; a read a signal interrupted (EINTR) is tried again, as `read_to_end`
/// does, and any other error fails the test.
fn read_some(stream: &mut impl std::io::Read, buf: &mut [u8]) -> usize {
    loop {
        match stream.read(buf) {
            Ok(n) => return n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read http: {e}"),
        }
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..eol]);
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let rest = &body[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        body = rest.get(n + 2..).unwrap_or_default();
    }
    out
}

/// A `spindel run` process. Killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NodeProc {
    pub child: std::process::Child,
    /// The QUIC address it listens on, if it listens.
    pub listen: Option<std::net::SocketAddr>,
    /// The HTTP address it serves, if it does.
    pub http: Option<std::net::SocketAddr>,
    /// The operator's address (`--metrics`), if it serves one.
    pub metrics: Option<std::net::SocketAddr>,
    /// The editor's address (`--admin`), if it serves one.
    pub admin: Option<std::net::SocketAddr>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl NodeProc {
    /// Starts `spindel run --data-dir DIR ARGS` and waits until it runs.
    pub fn start(dir: &Path, args: &[&str]) -> NodeProc {
        NodeProc::start_logging(dir, args, Some("info"))
    }

    /// [`NodeProc::start`] with RUST_LOG set to `rust_log`, or with no log variable at all.
    pub fn start_logging(dir: &Path, args: &[&str], rust_log: Option<&str>) -> NodeProc {
        NodeProc::start_command(Command::new(spindel_bin()), dir, args, rust_log)
    }

    /// [`NodeProc::start`] with the process's open-file limit (soft and hard) at `nofile`:
    /// `prlimit --nofile=N:N spindel run ...` (util-linux; prlimit sets the limit and execs
    /// the node, so the child is the node itself).
    pub fn start_with_nofile(dir: &Path, args: &[&str], nofile: u64) -> NodeProc {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(spindel_bin());
        NodeProc::start_command(cmd, dir, args, Some("info"))
    }

    /// Runs `cmd run --data-dir DIR ARGS` (`cmd` names the binary, maybe behind a wrapper) and
    /// waits until it runs.
    fn start_command(
        mut cmd: Command,
        dir: &Path,
        args: &[&str],
        rust_log: Option<&str>,
    ) -> NodeProc {
        use std::io::BufRead;
        cmd.env_remove("SPINDEL_LOG").env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd
            .arg("run")
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .env_remove("SPINDEL_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn spindel run");
        let stderr = child.stderr.take().expect("stderr");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let (mtx, mrx) = std::sync::mpsc::channel();
        let (atx, arx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(Some((false, addr.trim().parse().expect("listen address"))));
                } else if let Some(addr) = line.strip_prefix("http on ") {
                    let _ = tx.send(Some((true, addr.trim().parse().expect("http address"))));
                } else if let Some(addr) = line.strip_prefix("metrics on ") {
                    let _ = mtx.send(addr.trim().parse().expect("metrics address"));
                } else if let Some(addr) = line.strip_prefix("editor on ") {
                    let _ = atx.send(addr.trim().parse().expect("editor address"));
                } else if line.contains(" running; stop with Ctrl-C") {
                    let _ = tx.send(None);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let (mut listen, mut http) = (None, None);
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(30)) {
                Ok(Some((false, addr))) => listen = Some(addr),
                Ok(Some((true, addr))) => http = Some(addr),
                Ok(None) => break,
                Err(_) => panic!("spindel run did not start: {}", log.lock().unwrap()),
            }
        }
        NodeProc {
            child,
            listen,
            http,
            metrics: mrx.try_recv().ok(),
            admin: arx.try_recv().ok(),
            stderr: log,
        }
    }

    /// `NODEID@127.0.0.1:PORT` of this listening node.
    pub fn peer(&self, node_id: &str) -> String {
        format!("{node_id}@{}", self.listen.expect("listening node"))
    }

    /// What the process wrote on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit code (panics if it takes over `secs`).
    pub fn terminate(mut self, secs: u64) -> i32 {
        match sigterm_and_wait(&mut self.child, std::time::Duration::from_secs(secs)) {
            Some(status) => status.code().unwrap_or(-1),
            None => panic!("no exit {secs} s after SIGTERM: {}", self.log()),
        }
    }

    /// SIGKILL, like a power cut.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the series `series` (its name and labels exactly as printed, e.g.
/// `spindel_http_connections{listener="editor"}`) in a Prometheus text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `cond` every 50 ms until it holds, panicking with `what` after `secs`.
pub fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// True when slow suites should run (`SPINDEL_SLOW_TESTS=1`; CI sets it).
pub fn slow_tests() -> bool {
    std::env::var("SPINDEL_SLOW_TESTS").is_ok_and(|v| v == "1")
}

/// A multipart form as a browser sends it: text fields, then a file (its name, its content).
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str)>) -> (String, String) {
    let boundary = "----spindel-test-boundary";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    if let Some((filename, content)) = file {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/x-ndjson\r\n\r\n{content}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The `location` of a response head (as [`http_exchange`] returns it).
pub fn location(head: &str) -> String {
    header(head, "location").expect("a location").to_string()
}

/// Logs `user` in to the editor at `admin`: (the session's `Cookie` header value, the CSRF
/// token of its pages).
pub fn editor_session(admin: std::net::SocketAddr, user: &str, password: &str) -> (String, String) {
    let (status, head, body) = http_exchange(admin, "GET", "/logga-in", &[], None);
    assert_eq!(status, 200, "{body}");
    let login = format!(
        "spindel_inloggning={}",
        set_cookie(&head, "spindel_inloggning").expect("login cookie")
    );
    let (status, head, _) = http_form(
        admin,
        "/logga-in",
        &[("Cookie", &login)],
        &[
            ("user", user),
            ("password", password),
            ("csrf", &csrf_field(&body)),
        ],
    );
    assert_eq!(status, 303, "{head}");
    let sc = format!(
        "spindel_redaktion={}",
        set_cookie(&head, "spindel_redaktion").expect("session cookie")
    );
    let (_, _, body) = http_exchange(admin, "GET", "/", &[("Cookie", &sc)], None);
    (sc, csrf_field(&body))
}

/// Every author's head at the node in `dir` (`status --json`'s `heads`: NodeId hex to seq).
pub fn heads(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    let status = spindel(&["status", "--data-dir", s(dir), "--json"]).json();
    serde_json::from_value(status["heads"].clone()).expect("heads")
}

/// Every current record at the node in `dir`: record id to the region name it is shown under.
pub fn records_by_region(dir: &Path) -> std::collections::BTreeMap<String, String> {
    spindel(&["query", "--data-dir", s(dir), "--json", "--limit", "1000"]).json()["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["record_id"].as_str().unwrap_or_default().to_string(),
                r["region"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A copy of the directory `from` at `to`, as `cp -a` makes it (modes and times kept).
pub fn copy_dir(from: &Path, to: &Path) {
    let done = std::process::Command::new("cp")
        .args(["-a", s(from), s(to)])
        .status()
        .expect("cp");
    assert!(done.success(), "cp -a {} {}", from.display(), to.display());
}

/// Every file under `dir` whose bytes contain `needle` (ASCII case ignored: the full-text
/// index keeps lower-cased words).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let needle = needle.to_ascii_lowercase().into_bytes();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&path)
                && bytes
                    .to_ascii_lowercase()
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice())
            {
                found.push(path);
            }
        }
    }
    found
}
