//! `spindel demo`: a whole national network on loopback. One aggregator and the eight regional
//! platforms of SOUL's action plan (or N), each a real node with its own key and sled store in a
//! temporary directory, replicating over QUIC exactly as in production. The platforms are the
//! founders of a charter they all sign, with a majority threshold; once they run, a ninth
//! platform (`cli/demo/newcomer.jsonl`) is endorsed into the network by a majority of them
//! and then starts, as a newcomer does (decision 0041).
//!
//! The sample records are data, not code: `cli/demo/samples.jsonl`, one record a line
//! (`{"region", "kind", "record"}`; a region's display name is its profile's), compiled into
//! the binary. They are written for the project in Swedish from the facts of the action plan
//! (the platforms, their member organisations, the activities the plan describes). Researcher
//! contacts and SROI figures are invented for the demonstration and say so in their text.
//!
//! Store work (creating nodes, signing, reading heads) runs on the blocking pool, never on the
//! async workers; shutting down waits until every node's store is closed before the directory
//! is removed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use spindel_node::local::{self, LocalNode, Role};
use spindel_node::server::{NodeHandle, NodeSettings, PreBound};
use spindel_node::{ReadModel, Reads};
use spindel_protocol::NodeId;
use spindel_protocol::charter::{Charter, Founder, SignedCharter};
use spindel_protocol::record::Kind;

/// Regions `--regions` accepts.
pub const DEMO_REGIONS_MAX: usize = 64;
/// The sample records, one a line.
const SAMPLES: &str = include_str!("../demo/samples.jsonl");
/// The ninth platform's records, in the same form: it is endorsed into the network.
const NEWCOMER: &str = include_str!("../demo/newcomer.jsonl");
/// The network's name in the demo's charter.
const NETWORK: &str = "SOUL";
/// How long the demo waits for the newcomer's endorsements to reach the aggregator.
const ENDORSED_WITHIN: Duration = Duration::from_secs(30);
/// How often the summary is read while the network gets in sync (each read is a few store
/// lookups per region, on the blocking pool).
const SYNC_POLL: Duration = Duration::from_millis(50);

/// One region of the demo: its node name, display name, and records to publish.
#[derive(Debug, Clone)]
pub struct RegionSample {
    pub name: String,
    pub display_name: String,
    pub records: Vec<(Kind, Value)>,
}

/// One line of `samples.jsonl`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleLine {
    region: String,
    kind: Kind,
    record: Value,
}

/// The eight platforms of the action plan with their sample records, in the file's order.
pub fn seed_regions() -> Result<Vec<RegionSample>> {
    samples_of(SAMPLES, "samples.jsonl")
}

/// The ninth platform, endorsed into the network once the others run.
pub fn newcomer() -> Result<RegionSample> {
    samples_of(NEWCOMER, "newcomer.jsonl")?
        .pop()
        .ok_or_else(|| anyhow!("demo/newcomer.jsonl holds no region"))
}

/// The regions of a samples file, in its order.
fn samples_of(text: &str, file: &str) -> Result<Vec<RegionSample>> {
    let mut regions: Vec<RegionSample> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let s: SampleLine =
            serde_json::from_str(line).with_context(|| format!("demo/{file} line {}", i + 1))?;
        let at = match regions.iter().position(|r| r.name == s.region) {
            Some(at) => at,
            None => {
                regions.push(RegionSample {
                    name: s.region.clone(),
                    display_name: String::new(),
                    records: Vec::new(),
                });
                regions.len() - 1
            }
        };
        if s.kind == Kind::Profile {
            regions[at].display_name = s.record["display_name"]
                .as_str()
                .unwrap_or(&s.region)
                .to_string();
        }
        regions[at].records.push((s.kind, s.record));
    }
    if let Some(r) = regions.iter().find(|r| r.display_name.is_empty()) {
        bail!("demo/{file}: region {} has no profile", r.name);
    }
    Ok(regions)
}

/// `n` regions: the seed's eight first, then numbered extra regions.
pub fn demo_regions(n: usize) -> Result<Vec<RegionSample>> {
    let mut regions = seed_regions()?;
    let base = regions.clone();
    let mut i = regions.len();
    while regions.len() < n {
        let template = &base[i % base.len()];
        let mut extra = template.clone();
        extra.name = format!("region-{}", i + 1);
        extra.display_name = format!("Region {} (exempel)", i + 1);
        for (kind, value) in &mut extra.records {
            if *kind == Kind::Profile {
                value["display_name"] = Value::from(extra.display_name.clone());
            }
        }
        regions.push(extra);
        i += 1;
    }
    regions.truncate(n);
    Ok(regions)
}

/// One row of the summary printed when the network is in sync.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SummaryRow {
    pub name: String,
    pub display_name: String,
    pub records: u64,
    pub head: u64,
    pub at_aggregator: u64,
    /// The lowest head of this region seen in any other region.
    pub in_every_region: u64,
}

/// A running demo network.
pub struct Demo {
    pub root: PathBuf,
    /// The aggregator, serving the page and the API.
    pub aggregator: NodeHandle,
    pub regions: Vec<(RegionSample, NodeId, NodeHandle)>,
    pub http: SocketAddr,
}

/// A sample record names another sample record (an answer's `about`, an innovation's
/// indicators) as `sample:REGION/TITLE`: the node ids and record ids are made when the demo
/// starts, so the file cannot hold them. The record named must come earlier in the file.
const SAMPLE_REF: &str = "sample:";

/// Replaces every `sample:REGION/TITLE` string in `value` by the reference (`NODEID/RECORD_ID`)
/// of that region's sample record with that title, published before.
fn resolve_sample_refs(
    value: &mut Value,
    published: &std::collections::HashMap<(String, String), String>,
) -> Result<()> {
    match value {
        Value::String(text) => {
            if let Some(named) = text.strip_prefix(SAMPLE_REF) {
                let (region, title) = named
                    .split_once('/')
                    .with_context(|| format!("{text:?} is not {SAMPLE_REF}REGION/TITLE"))?;
                let found = published
                    .get(&(region.to_string(), title.to_string()))
                    .with_context(|| format!("{text:?} names no earlier sample record"))?;
                *text = found.clone();
            }
        }
        Value::Array(items) => {
            for item in items {
                resolve_sample_refs(item, published)?;
            }
        }
        Value::Object(fields) => {
            for item in fields.values_mut() {
                resolve_sample_refs(item, published)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// A sample time relative to the demo's start: `demo-date:+45d 09:00` is 09:00 Swedish time 45
/// days on (`-3d` days back), as RFC 3339 with the offset of that moment.
const DEMO_DATE: &str = "demo-date:";

/// Replaces every `demo-date:` string in `value` by the time it stands for at `now_ms`.
fn resolve_demo_dates(value: &mut Value, now_ms: i64) -> Result<()> {
    match value {
        Value::String(text) => {
            if let Some(rest) = text.strip_prefix(DEMO_DATE) {
                let bad = || anyhow::anyhow!("{text:?} is not {DEMO_DATE}+DAYSd HH:MM");
                let (days, time) = rest.split_once(' ').ok_or_else(bad)?;
                let days: i64 = days
                    .strip_suffix('d')
                    .and_then(|d| d.strip_prefix('+').unwrap_or(d).parse().ok())
                    .ok_or_else(bad)?;
                let (date, _) = spindel_node::stockholm(now_ms + days * 86_400_000);
                *text = spindel_node::from_stockholm_local(&format!("{date}T{time}"))
                    .map_err(|_| bad())?;
            }
        }
        Value::Array(items) => {
            for item in items {
                resolve_demo_dates(item, now_ms)?;
            }
        }
        Value::Object(fields) => {
            for item in fields.values_mut() {
                resolve_demo_dates(item, now_ms)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The demo's nodes before they run.
struct Prepared {
    agg: LocalNode,
    /// The founding regions, in the samples' order.
    founders: Vec<(RegionSample, LocalNode)>,
    /// The ninth platform: it adopted the charter and waits to be endorsed.
    newcomer: (RegionSample, LocalNode),
    /// Endorsements that admit a region: a majority of the founders.
    threshold: usize,
}

/// Creates the nodes, has every founder sign the charter and every node adopt it, and
/// publishes the sample data (blocking: store work).
fn prepare(
    root: &std::path::Path,
    samples: Vec<RegionSample>,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Prepared> {
    let create = |name: &str, role: Role, display_name: &str| {
        local::init_open(
            &root.join(name),
            name,
            role,
            Some(display_name),
            &mut rand_core::OsRng,
        )
    };
    let agg = create("nationell", Role::Aggregator, "SOUL nationellt nätverk")?;
    let mut founders = Vec::new();
    for sample in samples {
        let node = create(&sample.name, Role::Region, &sample.display_name)?;
        founders.push((sample, node));
    }
    let sample = newcomer()?;
    let node = create(&sample.name, Role::Region, &sample.display_name)?;
    let newcomer = (sample, node);
    let threshold = founders.len() / 2 + 1;
    let mut named: Vec<Founder> = founders
        .iter()
        .map(|(s, n)| Founder {
            node: n.node_id(),
            name: s.name.clone(),
        })
        .collect();
    named.sort_by_key(|f| f.node);
    let mut charter = SignedCharter::new(&Charter {
        network: NETWORK.into(),
        threshold: u32::try_from(threshold)?,
        created_ms: local::now_ms(),
        founders: named,
    })?;
    for (_, node) in &founders {
        charter.sign(node.key())?;
    }
    for node in std::iter::once(&agg)
        .chain(founders.iter().map(|(_, n)| n))
        .chain([&newcomer.1])
    {
        node.adopt_charter(&charter)?;
    }
    progress(format!(
        "stadga för {NETWORK}: {} grundande regioner har signerat; stöd från {threshold} tar in en ny region",
        founders.len()
    ));
    // (region, title) -> the reference of a sample record published before (see `SAMPLE_REF`).
    let mut published: std::collections::HashMap<(String, String), String> = Default::default();
    for (sample, node) in founders.iter().chain(std::iter::once(&newcomer)) {
        for (kind, value) in &sample.records {
            let mut value = value.clone();
            resolve_demo_dates(&mut value, i64::try_from(local::now_ms()).unwrap_or(0))
                .with_context(|| format!("demo samples, region {}", sample.name))?;
            resolve_sample_refs(&mut value, &published)
                .with_context(|| format!("demo samples, region {}", sample.name))?;
            let done = node
                .publish(
                    *kind,
                    &value.to_string(),
                    None,
                    &mut rand_core::OsRng,
                    local::now_ms(),
                )
                .with_context(|| sample.name.clone())?;
            if let Some(title) =
                spindel_protocol::record::Record::from_json(*kind, &value.to_string())
                    .ok()
                    .map(|r| r.title().to_string())
            {
                published.insert(
                    (sample.name.clone(), title),
                    format!("{}/{}", node.node_id().to_hex(), done.record_id),
                );
            }
        }
        progress(format!(
            "{}: {} poster signerade",
            sample.display_name,
            sample.records.len()
        ));
    }
    Ok(Prepared {
        agg,
        founders,
        newcomer,
        threshold,
    })
}

/// The first `threshold` founders endorse the newcomer (as `spindel endorse` does, through
/// each running node's writer); returns once the aggregator and every founder count it as a
/// member (each computes it itself from the endorsements it holds).
async fn endorse_newcomer(
    aggregator: &NodeHandle,
    founders: &[(RegionSample, NodeId, NodeHandle)],
    newcomer: &RegionSample,
    id: NodeId,
    threshold: usize,
    progress: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let act = local::ActRequest::Endorse {
        node: id.to_hex(),
        name: newcomer.name.clone(),
        replaces: None,
        upto: None,
    };
    let mut by = Vec::new();
    for (sample, _, handle) in founders.iter().take(threshold) {
        let shared = handle.shared().clone();
        let asked = act.clone();
        let (kind, json) = shared.blocking(move |n| n.act_record(&asked)).await?;
        shared.writer.publish(kind, json, None).await?;
        by.push(sample.name.clone());
    }
    progress(format!(
        "{} ansöker om att gå med i nätverket; stöd från {} av {} regioner ({})",
        newcomer.display_name,
        by.len(),
        founders.len(),
        by.join(", ")
    ));
    let nodes: Vec<ReadModel> = std::iter::once(aggregator)
        .chain(founders.iter().map(|(.., h)| h))
        .map(|h| h.shared().node.clone())
        .collect();
    let key = id.to_hex();
    let deadline = Instant::now() + ENDORSED_WITHIN;
    let mut poll = tokio::time::interval(SYNC_POLL);
    loop {
        poll.tick().await;
        let member = nodes.iter().all(|node| {
            node.membership().is_some_and(|m| {
                m.regions
                    .iter()
                    .any(|r| r.node == key && r.state == "member")
            })
        });
        if member {
            progress(format!(
                "{} är medlem: varje nod räknar det själv ur regionernas signerade stöd",
                newcomer.display_name
            ));
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "not every node counted {} as a member within {} s",
                newcomer.name,
                ENDORSED_WITHIN.as_secs()
            );
        }
    }
}

/// Creates the nodes, publishes the sample data and starts the network.
pub async fn start(
    n: usize,
    http: SocketAddr,
    progress: Arc<dyn Fn(String) + Send + Sync>,
) -> Result<Demo> {
    if n == 0 || n > DEMO_REGIONS_MAX {
        bail!("--regions must be between 1 and {DEMO_REGIONS_MAX}, got {n}");
    }
    let samples = demo_regions(n)?;
    // The page's port first: a taken port fails before anything is written.
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .with_context(|| format!("cannot serve http on {http}"))?;
    let mut salt = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
    let root = std::env::temp_dir().join(format!(
        "spindel-demo-{}-{:02x}{:02x}{:02x}{:02x}",
        std::process::id(),
        salt[0],
        salt[1],
        salt[2],
        salt[3]
    ));
    std::fs::create_dir_all(&root).with_context(|| root.display().to_string())?;
    // Any failure from here on removes the directory again (it holds the nodes' keys).
    let guard = RemoveOnFailure(Some(root.clone()));
    progress(format!("data i {}", root.display()));
    let Prepared {
        agg,
        founders,
        newcomer,
        threshold,
    } = {
        let (root, progress) = (root.clone(), progress.clone());
        tokio::task::spawn_blocking(move || prepare(&root, samples, &*progress)).await??
    };
    let agg_id = agg.node_id();
    // Every node is assembled as `spindel run` assembles one, on loopback.
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let settings = NodeSettings {
        listen: Some(loopback),
        ..NodeSettings::default()
    };
    let prebound = PreBound {
        http: Some(listener),
    };
    let aggregator = NodeHandle::start_with(Arc::new(agg), settings, prebound).await?;
    let http = aggregator
        .bound
        .http
        .ok_or_else(|| anyhow!("the aggregator serves no page"))?;
    let peer = aggregator
        .peer_addr()
        .ok_or_else(|| anyhow!("the aggregator did not bind"))?;
    progress(format!(
        "aggregator {} lyssnar på {}:{} (QUIC)",
        agg_id.short(),
        peer.host,
        peer.port
    ));
    let settings = NodeSettings {
        aggregators: vec![peer.clone()],
        ..NodeSettings::default()
    };
    let mut regions = Vec::new();
    for (sample, node) in founders {
        let id = node.node_id();
        regions.push((sample, id, NodeHandle::start(node, settings.clone()).await?));
    }
    guard.disarm();
    let mut demo = Demo {
        root,
        aggregator,
        regions,
        http,
    };
    // The ninth platform: endorsed by a majority of the running founders, then started.
    let (sample, node) = newcomer;
    let id = node.node_id();
    let endorsed = endorse_newcomer(
        &demo.aggregator,
        &demo.regions,
        &sample,
        id,
        threshold,
        &*progress,
    )
    .await;
    let started = match endorsed {
        Ok(()) => NodeHandle::start(node, settings)
            .await
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match started {
        Ok(handle) => {
            demo.regions.push((sample, id, handle));
            Ok(demo)
        }
        Err(e) => {
            demo.shutdown().await;
            Err(e)
        }
    }
}

/// Removes a directory when dropped, unless disarmed.
struct RemoveOnFailure(Option<PathBuf>);

impl RemoveOnFailure {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnFailure {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Every region's row, and whether the whole network is in sync (blocking: store reads).
fn summary(
    aggregator: &ReadModel,
    regions: &[(String, String, NodeId, ReadModel)],
) -> Result<(Vec<SummaryRow>, bool)> {
    let agg_heads = aggregator.heads()?;
    let region_heads: Vec<_> = regions
        .iter()
        .map(|(.., node)| node.heads())
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut synced = true;
    for (i, (name, display_name, id, node)) in regions.iter().enumerate() {
        let head = region_heads[i].get(id).map_or(0, |h| h.seq);
        let at_aggregator = agg_heads.get(id).map_or(0, |h| h.seq);
        let in_every_region = region_heads
            .iter()
            .map(|h| h.get(id).map_or(0, |h| h.seq))
            .min()
            .unwrap_or(0);
        synced &= at_aggregator == head && in_every_region == head;
        rows.push(SummaryRow {
            name: name.clone(),
            display_name: display_name.clone(),
            records: node.visible_count_of(id)?,
            head,
            at_aggregator,
            in_every_region,
        });
    }
    Ok((rows, synced))
}

impl Demo {
    /// Waits until every region's log is at the aggregator and back in every other region,
    /// reporting progress; fails after `timeout`.
    pub async fn wait_synced(
        &self,
        timeout: Duration,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<SummaryRow>> {
        let aggregator = self.aggregator.shared().node.clone();
        let regions: Arc<Vec<_>> = Arc::new(
            self.regions
                .iter()
                .map(|(s, id, r)| {
                    (
                        s.name.clone(),
                        s.display_name.clone(),
                        *id,
                        r.shared().node.clone(),
                    )
                })
                .collect(),
        );
        let started = Instant::now();
        let mut last = usize::MAX;
        let mut poll = tokio::time::interval(SYNC_POLL);
        loop {
            poll.tick().await;
            let (rows, synced) = {
                let (aggregator, regions) = (aggregator.clone(), regions.clone());
                tokio::task::spawn_blocking(move || summary(&aggregator, &regions)).await??
            };
            let done = rows
                .iter()
                .filter(|r| r.at_aggregator == r.head && r.in_every_region == r.head)
                .count();
            if done != last {
                progress(format!(
                    "synkat: {done}/{} regioner hos aggregatorn och i alla regioner",
                    rows.len()
                ));
                last = done;
            }
            if synced {
                return Ok(rows);
            }
            if started.elapsed() > timeout {
                bail!(
                    "the network did not get in sync within {} s ({done} of {} regions)",
                    timeout.as_secs(),
                    rows.len()
                );
            }
        }
    }

    /// Stops every node, waits until each has closed its store, and removes the temporary
    /// directory.
    pub async fn shutdown(self) {
        let mut nodes = vec![self.aggregator.shared().node.clone()];
        nodes.extend(self.regions.iter().map(|(.., r)| r.shared().node.clone()));
        for (sample, _, r) in self.regions {
            if let Err(e) = r.stop().await {
                tracing::warn!(region = %sample.name, error = %e, "a demo region did not stop cleanly");
            }
        }
        if let Err(e) = self.aggregator.stop().await {
            tracing::warn!(error = %e, "the demo's aggregator did not stop cleanly");
        }
        for node in nodes {
            crate::node_call::release(node).await;
        }
        let root = self.root;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(root)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use spindel_protocol::record::Record;

    #[test]
    fn every_sample_record_is_valid_and_examples_are_marked() {
        let mut regions = seed_regions().unwrap();
        assert_eq!(regions.len(), 8);
        // The ninth platform's records too, marked as an example, under a name of its own.
        let ninth = newcomer().unwrap();
        assert!(
            ninth.display_name.contains("exempel"),
            "{}",
            ninth.display_name
        );
        assert!(regions.iter().all(|r| r.name != ninth.name));
        regions.push(ninth);
        // Every sample record can be named; each name stands for a reference of the right shape.
        let mut refs = std::collections::HashMap::new();
        for (n, r) in regions.iter().enumerate() {
            for (i, (kind, value)) in r.records.iter().enumerate() {
                let mut value = value.clone();
                resolve_demo_dates(&mut value, 1_800_000_000_000).unwrap();
                if resolve_sample_refs(&mut value, &refs).is_err() {
                    continue;
                }
                let title = Record::from_json(*kind, &value.to_string())
                    .unwrap()
                    .title()
                    .to_string();
                refs.insert(
                    (r.name.clone(), title),
                    format!("{:064x}/{:032x}", n + 1, i + 1),
                );
            }
        }
        let (mut indicators, mut named) = (Vec::new(), 0);
        for r in &regions {
            spindel_protocol::record::validate_region_name(&r.name).unwrap();
            assert_eq!(r.records[0].0, Kind::Profile, "{}: profile first", r.name);
            for (kind, value) in &r.records {
                let mut value = value.clone();
                resolve_demo_dates(&mut value, 1_800_000_000_000).unwrap();
                resolve_sample_refs(&mut value, &refs).unwrap();
                let record = Record::from_json(*kind, &value.to_string()).unwrap();
                if let Record::Event(x) = &record {
                    let all = format!("{} {:?} {:?}", x.title, x.description, x.organiser);
                    assert!(all.contains("xempel"), "{all}");
                }
                if let Record::Researcher(x) = &record {
                    assert!(x.name.contains("exempel"), "{}", x.name);
                    assert!(
                        x.email
                            .as_deref()
                            .is_some_and(|e| e.ends_with("@example.org"))
                    );
                }
                if let Record::Innovation(x) = &record
                    && x.sroi.is_some()
                {
                    assert!(
                        x.description
                            .as_deref()
                            .is_some_and(|d| d.contains("exempelvärde"))
                    );
                }
                // A proxy's value is invented: its proxy text says so.
                if let Record::Indicator(x) = &record {
                    assert!(x.proxy.contains("exempelvärde"), "{}", x.proxy);
                    indicators.push((r.name.clone(), x.outcome.to_lowercase()));
                }
                if let Record::Innovation(x) = &record
                    && let Some(sroi) = &x.sroi
                {
                    named += sroi.indicators.len();
                }
            }
        }
        // The proxy bank shows an outcome with proxies from two regions, named by innovations.
        let arbete: std::collections::BTreeSet<_> = indicators
            .iter()
            .filter(|(_, o)| {
                o.split_whitespace().collect::<Vec<_>>().join(" ") == "fler personer i arbete"
            })
            .map(|(region, _)| region.clone())
            .collect();
        assert!(arbete.len() >= 2, "{indicators:?}");
        assert!(named >= 2, "sample innovations name indicators");
        assert_eq!(demo_regions(3).unwrap().len(), 3);
        let many = demo_regions(11).unwrap();
        assert_eq!(many.len(), 11);
        let names: std::collections::BTreeSet<_> = many.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names.len(), 11, "region names are unique");
    }

    #[test]
    fn a_sample_date_is_relative_to_the_demo_start_in_swedish_time() {
        // 2027-01-15T10:00:00Z: winter time; 90 days on is in summer time.
        let now = 1_800_007_200_000;
        let mut value = serde_json::json!({
            "start": "demo-date:+0d 09:00",
            "list": ["demo-date:+90d 18:30", "demo-date:-1d 00:00", "kept"],
        });
        resolve_demo_dates(&mut value, now).unwrap();
        assert_eq!(value["start"], "2027-01-15T09:00:00+01:00");
        assert_eq!(value["list"][0], "2027-04-15T18:30:00+02:00");
        assert_eq!(value["list"][1], "2027-01-14T00:00:00+01:00");
        assert_eq!(value["list"][2], "kept");
        for bad in [
            "demo-date:45d",
            "demo-date:+45 09:00",
            "demo-date:+1d 25:00",
            "demo-date:x 09:00",
        ] {
            let e = resolve_demo_dates(&mut serde_json::json!(bad), now).unwrap_err();
            assert!(e.to_string().contains("is not demo-date:"), "{e}");
        }
    }

    #[test]
    fn a_sample_names_an_earlier_sample_record_by_region_and_title() {
        let mut published = std::collections::HashMap::new();
        let reference = format!("{}/{}", "ab".repeat(32), "cd".repeat(16));
        published.insert(
            ("skane".to_string(), "Integration i förening".to_string()),
            reference.clone(),
        );
        let mut value = serde_json::json!({
            "about": "sample:skane/Integration i förening",
            "list": ["sample:skane/Integration i förening", "kept"],
            "text": "sample text is kept",
        });
        resolve_sample_refs(&mut value, &published).unwrap();
        assert_eq!(value["about"], reference.as_str());
        assert_eq!(value["list"][0], reference.as_str());
        assert_eq!(value["list"][1], "kept");
        assert_eq!(value["text"], "sample text is kept");
        let mut missing = serde_json::json!({"about": "sample:dalarna/Nothing"});
        let e = resolve_sample_refs(&mut missing, &published).unwrap_err();
        assert!(
            e.to_string().contains("names no earlier sample record"),
            "{e}"
        );
        let mut malformed = serde_json::json!({"about": "sample:no-title"});
        let e = resolve_sample_refs(&mut malformed, &published).unwrap_err();
        assert!(e.to_string().contains("REGION/TITLE"), "{e}");
    }
}
