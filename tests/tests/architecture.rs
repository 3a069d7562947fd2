//! Architecture invariants, read from `cargo metadata`:
//! - dependencies point one way: spindel (cli) -> spindel-node -> spindel-protocol;
//! - spindel-protocol depends, directly or transitively, on no I/O crate;
//! - the API and the pages (`http.rs`, `web.rs`) never see the store;
//! - ARCHITECTURE.md is short and maps every module; no file refers to a file not in the repo.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Crates that do network, disk or async I/O; none may be under spindel-protocol.
const IO_CRATES: &[&str] = &[
    "tokio",
    "quinn",
    "quinn-proto",
    "quinn-udp",
    "sled",
    "tantivy",
    "mio",
    "socket2",
    "rustls",
    "axum",
    "hyper",
    "reqwest",
    "async-std",
    "futures-io",
    "memmap2",
    "fs4",
    "tempfile",
];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

/// Names of every package reachable from `root` through normal (non-dev, non-build) edges.
fn closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let packages: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let start = packages
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("package {root} not found"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(packages[dep_id].to_string()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn protocol_is_pure_and_dependencies_point_one_way() {
    let meta = metadata();
    let protocol = closure(&meta, "spindel-protocol");
    let io: Vec<&&str> = IO_CRATES
        .iter()
        .filter(|c| protocol.contains(**c))
        .collect();
    assert!(io.is_empty(), "spindel-protocol reaches I/O crates {io:?}");
    assert!(!protocol.contains("spindel-node") && !protocol.contains("spindel"));

    let node = closure(&meta, "spindel-node");
    assert!(node.contains("spindel-protocol"));
    assert!(!node.contains("spindel"), "node must not depend on the cli");
    let cli = closure(&meta, "spindel");
    assert!(cli.contains("spindel-node") && cli.contains("spindel-protocol"));
    // The check itself must be able to see I/O crates where they are.
    assert!(node.contains("sled") && node.contains("tantivy"));
}

#[test]
fn protocol_source_uses_no_clock_fs_or_net() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/src");
    // Every source file, those in module folders (`sync/`) too.
    let mut sources = Vec::new();
    files_under(&dir, &[".rs"], &mut sources);
    for path in sources {
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::fs",
            "std::net",
            "SystemTime",
            "Instant::now",
            "thread_rng",
            "OsRng::default",
        ] {
            // Tests may use OsRng; production code gets randomness injected.
            let production = text.split("#[cfg(test)]").next().unwrap();
            assert!(
                !production.contains(banned),
                "{} uses {banned}",
                path.display()
            );
        }
    }
}

/// The production code of a source file: without its test module (at its end, where tests
/// may reach anywhere) and without comment lines (prose may name what code must not call).
fn production(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    code_before_tests(&text)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The code of a source file before its inline test module (`#[cfg(test)]` and then
/// `mod name {`, with or without a visibility), which stands at its end.
fn code_before_tests(text: &str) -> &str {
    let mut at = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim_end() == "#[cfg(test)]"
            && let Some(next) = lines.peek()
        {
            let declared = next
                .trim_start_matches("pub(super) ")
                .trim_start_matches("pub(crate) ");
            if declared.starts_with("mod ") && declared.trim_end().ends_with('{') {
                return &text[..at];
            }
        }
        at += line.len();
    }
    text
}

/// Whether the code of `text` (comments aside) names the type `word` as a whole identifier
/// (`Store`, not `StoreError`, nor an error's variant `QueryError::Store`).
fn names_word(text: &str, word: &str) -> bool {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .any(|line| {
            line.match_indices(word).any(|(at, _)| {
                !ident(line[..at].chars().next_back())
                    && !ident(line[at + word.len()..].chars().next())
                    && !line[..at].ends_with("Error::")
            })
        })
}

fn node_src() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/src")
}

/// Modules of a running node that ask the read model and the writer, never the store.
const ABOVE_THE_STORE: &[&str] = &[
    "http.rs",
    "editor/mod.rs",
    "editor/page.rs",
    "editor/auth.rs",
    "editor/posts.rs",
    "editor/network.rs",
    "editor/members.rs",
    "editor/post_list.rs",
    "editor/accounts.rs",
    "editor/audit.rs",
    "editor/import.rs",
    "import_csv.rs",
    "web.rs",
    "calendar.rs",
    "feeds.rs",
    "export.rs",
    "proxybank_page.rs",
    "audit_page.rs",
    "network_page.rs",
    "templates.rs",
    "words/mod.rs",
    "words/formats.rs",
    "words/errors.rs",
    "words/pages.rs",
    "words/import.rs",
    "words/accounts.rs",
    "words/fields.rs",
    "localtime.rs",
    "control.rs",
    "session.rs",
    "pipeline.rs",
    "checkpoints.rs",
    "accept.rs",
    "shared.rs",
    "runtime.rs",
    "server.rs",
    "privacy.rs",
    "dialer.rs",
    "client.rs",
    "gate.rs",
    "metrics.rs",
    "params.rs",
    "link.rs",
    "transport.rs",
    "listener.rs",
    "login.rs",
    "ratelimit.rs",
    "staff.rs",
];

/// The API, the pages, the control socket, the sync driver and the rest of the running node
/// ask the read model (`LocalNode`'s read methods, `read.rs`), never the store: they do not
/// open it, name it, or reach into it. The CLI neither.
#[test]
fn the_store_is_private_to_the_node() {
    let mut files: Vec<_> = ABOVE_THE_STORE.iter().map(|f| node_src().join(f)).collect();
    let cli = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/src");
    for entry in std::fs::read_dir(&cli).unwrap() {
        files.push(entry.unwrap().path());
    }
    for path in files {
        let text = production(&path);
        assert!(
            !text.contains(".store()") && !names_word(&text, "Store"),
            "{} reaches the store: ask the read model (node/src/read.rs) instead",
            path.display()
        );
    }
    // Every module of the node is in the list above or below the store, so a new one is
    // placed on purpose.
    let below = [
        "lib.rs",
        "local/mod.rs",
        "local/error.rs",
        "local/dir.rs",
        "local/reports.rs",
        "local/node.rs",
        "local/writes.rs",
        "local/acts.rs",
        "local/rotation.rs",
        "local/init.rs",
        "read.rs",
        "regions.rs",
        "users.rs",
        "forms.rs",
        "local/import.rs",
        "local/import/lines.rs",
        "local/witness.rs",
        "writer.rs",
        "received.rs",
        "events.rs",
        "backup.rs",
        "store/mod.rs",
        "store/keys.rs",
        "store/types.rs",
        "store/index_queue.rs",
        "store/handle.rs",
        "store/reads.rs",
        "store/history.rs",
        "store/erase.rs",
        "store/open.rs",
        "store/overlay.rs",
        "store/overlay/members.rs",
        "store/calendar.rs",
        "store/tally.rs",
        "store/apply.rs",
        "store/admissions.rs",
        "store/members.rs",
        "store/witness.rs",
        "payloads.rs",
        "search.rs",
        "query.rs",
        "bank.rs",
        "proxybank.rs",
        "answers.rs",
        "agenda.rs",
        "fuzz.rs",
    ];
    let mut sources = Vec::new();
    files_under(&node_src(), &[".rs"], &mut sources);
    for path in sources {
        let name = path
            .strip_prefix(node_src())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            ABOVE_THE_STORE.contains(&name.as_str()) || below.contains(&name.as_str()),
            "node/src/{name} is new: add it to ABOVE_THE_STORE or to the modules below the store"
        );
    }
}

/// `LocalNode`'s write methods (and the store's).
const WRITES: &[&str] = &[
    ".publish(",
    ".delete(",
    ".import(",
    ".import_cancellable(",
    ".allow(",
    ".apply(",
    ".take_admissions(",
    ".erase_pending(",
    ".clear_restored(",
];

/// The first write in `code` not sent to the node's writer (`shared.writer.publish(..)` is
/// sent; `shared.node.publish(..)`, `LocalNode::publish(..)` are not), however rustfmt broke
/// its lines.
fn write_past_the_writer(code: &str, allowed: &[&str]) -> Option<&'static str> {
    let text: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    WRITES.iter().copied().find(|write| {
        !allowed.contains(write)
            && (text
                .match_indices(write)
                .any(|(at, _)| !text[..at].ends_with(".writer"))
                || text.contains(&format!("LocalNode::{}", &write[1..])))
    })
}

/// Every write of a running node goes through its one writer (`writer.rs`), which announces
/// what it changed: no other module calls `LocalNode`'s write methods.
#[test]
fn every_write_goes_through_the_writer() {
    assert_eq!(
        write_past_the_writer("shared.node.publish(kind, &json)", &[]),
        Some(".publish(")
    );
    assert_eq!(
        write_past_the_writer("shared\n    .writer\n    .publish(kind, json)", &[]),
        None
    );
    for bypass in [
        "LocalNode::publish(&shared.node, kind, &json)",
        "let writer = shared.node.clone(); writer.publish(kind)",
        "own_log_writer.delete(rid)",
    ] {
        assert!(write_past_the_writer(bypass, &[]).is_some(), "{bypass}");
    }
    for file in ABOVE_THE_STORE {
        let path = node_src().join(file);
        // The gate removes the restore marker once caught up (a file, not the store).
        let allowed: &[&str] = if *file == "gate.rs" {
            &[".clear_restored("]
        } else {
            &[]
        };
        if let Some(write) = write_past_the_writer(&production(&path), allowed) {
            panic!(
                "{} calls {write} past the writer: send it to shared.writer",
                path.display()
            );
        }
    }
}

/// The first line of that rule is the compiler's: the tasks of a running node hold the read
/// model (`ReadModel`, which has no write method) and the writer's handle, never the node
/// itself. Only the three places that assemble a node take a `LocalNode`, to give it to the
/// writer.
#[test]
fn the_tasks_of_a_running_node_hold_the_read_model_not_the_node() {
    const ASSEMBLY: &[&str] = &["shared.rs", "runtime.rs", "server.rs"];
    for file in ABOVE_THE_STORE {
        if ASSEMBLY.contains(file) {
            continue;
        }
        let path = node_src().join(file);
        assert!(
            !names_word(&production(&path), "LocalNode"),
            "{} holds a LocalNode: take the read model (shared.node) and the writer instead",
            path.display()
        );
    }
    let shared = production(&node_src().join("shared.rs"));
    assert!(
        shared.contains("pub node: ReadModel,"),
        "Shared::node is the read model"
    );
}

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`, skipping build
/// output, git's own files and fuzz corpora.
fn files_under(dir: &std::path::Path, exts: &[&str], out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            let skipped = ["target", ".git", "node_modules", "corpus", "artifacts"];
            if !skipped.contains(&name.as_str()) {
                files_under(&path, exts, out);
            }
        } else if exts.iter().any(|ext| name.ends_with(ext)) {
            out.push(path);
        }
    }
}

/// The code map's section of ARCHITECTURE.md that starts with the heading `heading`, up to
/// the next heading of any level.
fn map_section<'a>(map: &'a str, heading: &str) -> &'a str {
    let start = map
        .find(heading)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no section {heading}"));
    let rest = &map[start + heading.len()..];
    let end = rest.find("\n#").map_or(rest.len(), |at| at + 1);
    &rest[..end]
}

/// ARCHITECTURE.md stays short (at most 250 lines) and its code map names every source file
/// of the crates, each in its crate's section, by its path below the crate's `src/` (the test
/// crate's by its path below `tests/`), so a new module is placed on the map when it is made.
#[test]
fn the_architecture_map_is_short_and_names_every_module() {
    let root = repo_root();
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let lines = map.lines().count();
    assert!(
        lines <= 250,
        "ARCHITECTURE.md has {lines} lines, at most 250: move the reasons to docs/decisions/"
    );
    let crates = [
        ("protocol/src", "### `protocol/src/`", "protocol/src"),
        ("node/src", "### `node/src/`", "node/src"),
        ("cli/src", "### `cli/src/`", "cli/src"),
        ("tests", "### `tests/`", "tests"),
    ];
    let mut missing = Vec::new();
    for (dir, heading, base) in crates {
        let section = map_section(&map, heading);
        let mut sources = Vec::new();
        files_under(&root.join(dir), &[".rs"], &mut sources);
        assert!(!sources.is_empty(), "no sources under {dir}");
        for path in sources {
            let relative = path.strip_prefix(root.join(base)).unwrap();
            let relative = relative.to_str().unwrap();
            if !section.contains(&format!("`{relative}`")) {
                missing.push(format!("{base}/{relative}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name {missing:?}: add one line for each, as \
         `path below the crate's src` in its crate's section"
    );
}

/// The comment text of a Rust source: whole comment lines, and what follows ` //` after code
/// (outside a string: an even number of quotes before it; `https://` is no comment).
fn rust_comments(text: &str) -> String {
    text.lines()
        .filter_map(|line| {
            if let Some(comment) = line.trim_start().strip_prefix("//") {
                return Some(comment);
            }
            let at = line.find(" //")?;
            (line[..at].matches('"').count() % 2 == 0).then(|| &line[at + 3..])
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The targets of the relative Markdown links in `text` (`[text](target)`, without `#anchor`).
fn markdown_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap().trim();
        if !target.is_empty() && !target.contains(':') && !target.contains(' ') {
            out.push(target.to_string());
        }
    }
    out
}

/// The file paths `text` mentions: words that end in `.md` or start with `docs/` (a word is a
/// run of letters, digits and `_ . / -`; web addresses, which hold `//`, are not paths).
fn mentioned_paths(text: &str) -> Vec<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    text.split(|c: char| !word(c))
        .filter(|w| !w.contains("//"))
        .map(|w| w.trim_end_matches(['.', '/', '-']))
        .filter(|w| {
            let named_md = w
                .strip_suffix(".md")
                .and_then(|stem| stem.chars().next_back())
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            named_md || (w.starts_with("docs/") && w.len() > "docs/".len())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn mentioned_paths_and_links_are_found() {
    let text = "See [the map](ARCHITECTURE.md#code-map), [site](https://x.se/a.md), `docs/records.md`,\n\
                docs/decisions/, *.md files, https://example.se/docs/x and ../protocol.md.";
    assert_eq!(markdown_links(text), ["ARCHITECTURE.md"]);
    assert_eq!(
        mentioned_paths(text),
        [
            "ARCHITECTURE.md",
            "docs/records.md",
            "docs/decisions",
            "../protocol.md"
        ]
    );
    assert_eq!(
        rust_comments("let a = 1; // see x.md\n  //! y.md\nlet u = \"https://a.se/b.md // c\";"),
        " see x.md\n! y.md"
    );
}

/// The repository refers to no file it does not hold: every relative Markdown link, and every
/// path a Markdown file or a Rust comment mentions (a word ending in `.md`, or starting with
/// `docs/`), exists, relative to the file that mentions it or to the repository's root (a bare
/// file name: somewhere in the repository). Nothing names the specification outside the
/// repository it was written from.
#[test]
fn the_repository_refers_to_no_file_it_does_not_contain() {
    let root = repo_root();
    let mut files = Vec::new();
    files_under(&root, &[".md", ".rs"], &mut files);
    let mut names = BTreeSet::new();
    let mut all = Vec::new();
    files_under(&root, &[""], &mut all);
    for path in &all {
        names.insert(path.file_name().unwrap().to_str().unwrap().to_string());
    }
    // Spelled in two halves, so this file does not mention them itself.
    let outside = [concat!("../", "shared"), concat!("contract", ".md")];
    let mut broken = Vec::new();
    for path in &files {
        let shown = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        for word in outside {
            if text.contains(word) {
                broken.push(format!(
                    "{shown} mentions {word}, which is not in the repository"
                ));
            }
        }
        let markdown = shown.ends_with(".md");
        let prose = if markdown {
            text.clone()
        } else {
            rust_comments(&text)
        };
        let dir = path.parent().unwrap();
        if markdown {
            for link in markdown_links(&prose) {
                if !dir.join(&link).exists() {
                    broken.push(format!("{shown} links to {link}, which does not exist"));
                }
            }
        }
        for mention in mentioned_paths(&prose) {
            let found = if mention.contains('/') {
                dir.join(&mention).exists() || root.join(&mention).exists()
            } else {
                names.contains(&mention)
            };
            if !found {
                broken.push(format!("{shown} mentions {mention}, which does not exist"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The module path of a source file of node/src (`query.rs` is `query`, `editor/mod.rs` is
/// `editor`, `editor/page.rs` is `editor::page`).
fn module_of(relative: &std::path::Path) -> String {
    let parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_str().unwrap().trim_end_matches(".rs").to_string())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

/// What each module of node/src takes from the others: the modules named by its `crate::`
/// and `super::` paths and, in a folder's `mod.rs`, by its children's names. A path is
/// given to the longest module it names (`crate::editor::page::Editor` is `editor::page`).
fn node_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    files_under(&node_src(), &[".rs"], &mut files);
    let modules: BTreeMap<String, std::path::PathBuf> = files
        .iter()
        .map(|f| (module_of(f.strip_prefix(node_src()).unwrap()), f.clone()))
        .filter(|(m, _)| m != "lib")
        .collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let code = production(file);
        let is_folder = file.ends_with("mod.rs");
        let parent = match module.rsplit_once("::") {
            Some((parent, _)) if !is_folder => parent.to_string(),
            _ => module.clone(),
        };
        let parent_of_folder = module.rsplit_once("::").map(|(p, _)| p.to_string());
        let mut named = BTreeSet::new();
        for (at, _) in code
            .match_indices("crate::")
            .chain(code.match_indices("super::"))
        {
            if at > 0 && ident(code[..at].chars().next_back().unwrap()) {
                continue;
            }
            let rest: String = code[at..].chars().take_while(|c| ident(*c)).collect();
            let (base, path) = match rest.split_once("::") {
                Some(("crate", path)) => (String::new(), path),
                Some(("super", path)) if is_folder => {
                    (parent_of_folder.clone().unwrap_or_default(), path)
                }
                Some(("super", path)) => (parent.clone(), path),
                _ => continue,
            };
            let mut best = base.clone();
            let mut candidate = base;
            for segment in path.split("::") {
                candidate = if candidate.is_empty() {
                    segment.to_string()
                } else {
                    format!("{candidate}::{segment}")
                };
                if modules.contains_key(&candidate) {
                    best = candidate.clone();
                }
            }
            if !best.is_empty() && &best != module {
                named.insert(best);
            }
        }
        if is_folder {
            for child in modules.keys() {
                let Some(name) = child.strip_prefix(&format!("{module}::")) else {
                    continue;
                };
                let used = code
                    .match_indices(&format!("{name}::"))
                    .any(|(at, _)| at == 0 || !ident(code[..at].chars().next_back().unwrap()));
                if used {
                    named.insert(child.clone());
                }
            }
        }
        graph.insert(module.clone(), named);
    }
    graph
}

/// No two modules of the node import each other, directly or in a circle: each call goes
/// one way, so a module can be read (and changed) knowing only the ones below it.
#[test]
fn no_two_modules_of_the_node_import_each_other() {
    let graph = node_imports();
    assert!(
        graph["editor"].contains("editor::page"),
        "{:?}",
        graph["editor"]
    );
    assert!(graph["editor::posts"].contains("editor::page"));
    assert!(graph["http"].contains("shared"));
    // Depth-first search for a way back to where it started.
    fn way_back(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(from).into_iter().flatten() {
            path.push(next.clone());
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) && way_back(graph, next, to, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if way_back(&graph, module, module, &mut path, &mut BTreeSet::new()) {
            panic!("a circle of imports in node/src: {}", path.join(" -> "));
        }
    }
}

/// The node crate's surface is deliberate: at most eight public modules, the rest private
/// and the few items others use re-exported by name (`pub use`).
#[test]
fn the_node_crate_has_at_most_eight_public_modules() {
    let lib = std::fs::read_to_string(node_src().join("lib.rs")).unwrap();
    let public: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .collect();
    assert!(
        public.len() <= 8,
        "node/src/lib.rs has {} public modules: {public:?}; make a module private and re-export what others use with `pub use`",
        public.len()
    );
    assert!(lib.lines().any(|l| l.starts_with("pub use ")));
}

/// Rooms with one job: no file of production code in protocol/src, node/src or cli/src is
/// over 800 lines. Test code does not count: a file's inline test module (`#[cfg(test)]` and
/// a `mod`, at its end) nor a file its parent declares `#[cfg(test)] mod name;`.
#[test]
fn no_production_file_is_over_800_lines() {
    const LINES_MAX: usize = 800;
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["protocol/src", "node/src", "cli/src"] {
        files_under(&root.join(dir), &[".rs"], &mut files);
    }
    assert!(files.len() > 50, "{} files", files.len());
    // Where each file's test code starts, and the files that are test modules of their own.
    let mut test_files = BTreeSet::new();
    let mut production_lines = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            let declared = pair[1]
                .trim_start_matches("pub(super) ")
                .trim_start_matches("pub(crate) ");
            if let (true, Some(name)) = (
                pair[0] == "#[cfg(test)]",
                declared
                    .strip_prefix("mod ")
                    .and_then(|d| d.strip_suffix(';')),
            ) {
                let dir =
                    if f.ends_with("mod.rs") || f.ends_with("lib.rs") || f.ends_with("main.rs") {
                        f.parent().unwrap().to_path_buf()
                    } else {
                        f.with_extension("")
                    };
                test_files.insert(dir.join(format!("{name}.rs")));
                test_files.insert(dir.join(name).join("mod.rs"));
            }
        }
        production_lines.insert(f.clone(), code_before_tests(&text).lines().count());
    }
    let long: Vec<String> = production_lines
        .iter()
        .filter(|(f, lines)| **lines > LINES_MAX && !test_files.contains(*f))
        .map(|(f, lines)| format!("{} ({lines})", f.strip_prefix(&root).unwrap().display()))
        .collect();
    assert!(
        long.is_empty(),
        "over {LINES_MAX} lines of production code, split by job: {long:?}"
    );
    // The measure sees test code: the simulation is a test file, the store's tests are cut.
    assert!(test_files.contains(&root.join("protocol/src/sync/simulation/mod.rs")));
    assert!(production_lines[&root.join("node/src/listener.rs")] < 800);
}

/// The production lines of `path` (comments aside, also after code) that say Swedish: a
/// string (or any code) with one of `åäöÅÄÖ`.
fn swedish_lines(path: &std::path::Path) -> Vec<String> {
    production(path)
        .lines()
        .map(|line| match line.find(" //") {
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .filter(|code| code.contains(['å', 'ä', 'ö', 'Å', 'Ä', 'Ö']))
        .map(|code| code.trim().to_string())
        .collect()
}

/// Every Swedish phrase a person reads comes from the templates or from `node/src/words/`,
/// so a wording change is one edit: no production line elsewhere in node/src holds a string
/// with `åäöÅÄÖ`.
#[test]
fn swedish_words_live_in_the_templates_and_the_words_module() {
    let src = node_src();
    let words = src.join("words");
    assert!(
        swedish_lines(&words.join("pages.rs")).len() > 10,
        "the check finds no Swedish where it is"
    );
    let mut files = Vec::new();
    files_under(&src, &[".rs"], &mut files);
    let said: Vec<String> = files
        .iter()
        .filter(|p| !p.starts_with(&words))
        .flat_map(|path| {
            let relative = path.strip_prefix(&src).unwrap().display().to_string();
            swedish_lines(path)
                .into_iter()
                .map(move |l| format!("node/src/{relative}: {l}"))
        })
        .collect();
    assert!(
        said.is_empty(),
        "Swedish said from Rust outside node/src/words/: move it there (or to a template):\n{}",
        said.join("\n")
    );
}
