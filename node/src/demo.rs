//! `spindel demo`: a whole national network on loopback. One aggregator and the eight regional
//! platforms of SOUL's action plan (or N), each a real node with its own key and sled store in a
//! temporary directory, replicating over QUIC exactly as in production.
//!
//! The sample data is written for the project in Swedish from the facts of the action plan
//! (the platforms, their member organisations, the activities the plan describes). Researcher
//! contacts and SROI figures are invented for the demonstration and say so in their text.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spindel_protocol::NodeId;
use spindel_protocol::record::Kind;

use crate::local::{self, Role};
use crate::runtime::{RunOptions, Running};
use crate::transport::{Limits, PeerAddr};

/// Regions `--regions` accepts.
pub const DEMO_REGIONS_MAX: usize = 64;

/// One region of the demo: its node name, display name, and records to publish.
#[derive(Debug, Clone)]
pub struct RegionSample {
    pub name: String,
    pub display_name: String,
    pub records: Vec<(Kind, Value)>,
}

fn researcher(name: &str, affiliation: &str, fields: &[&str], email: &str) -> (Kind, Value) {
    (
        Kind::Researcher,
        json!({
            "name": format!("{name} (exempelkontakt)"),
            "affiliation": affiliation,
            "fields": fields,
            "email": email,
            "consent": {"given": true, "date": "2026-09-15", "method": "e-post", "scope": "att listas i kunskapsbanken"},
        }),
    )
}

fn innovation(
    title: &str,
    summary: &str,
    description: &str,
    tags: &[&str],
    orgs: &[&str],
    sroi: Option<(f64, i64)>,
) -> (Kind, Value) {
    let mut v = json!({
        "title": title,
        "summary": summary,
        "description": description,
        "tags": tags,
        "organisations": orgs,
    });
    if let Some((ratio, year)) = sroi {
        v["sroi"] = json!({"ratio": ratio, "year": year});
        v["description"] = json!(format!(
            "{description} SROI-talet är ett påhittat exempelvärde för demonstrationen, inte en mätning."
        ));
    }
    (Kind::Innovation, v)
}

fn method(title: &str, summary: &str, description: &str, tags: &[&str]) -> (Kind, Value) {
    (
        Kind::Method,
        json!({"title": title, "summary": summary, "description": description, "tags": tags}),
    )
}

fn profile(display_name: &str, description: &str, members: &[&str]) -> (Kind, Value) {
    (
        Kind::Profile,
        json!({"display_name": display_name, "description": description, "members": members}),
    )
}

/// The eight platforms of the action plan with their sample records.
pub fn seed_regions() -> Vec<RegionSample> {
    let r = |name: &str, display: &str, records: Vec<(Kind, Value)>| RegionSample {
        name: name.into(),
        display_name: display.into(),
        records,
    };
    vec![
        r(
            "skane",
            "Nätverket Social Ekonomi Skåne",
            vec![
                profile(
                    "Nätverket Social Ekonomi Skåne",
                    "Ideell paraplyorganisation för regionalt verksamma idéburna organisationer i Skåne: omvärldsbevakning, kunskapsutveckling, kunskapsspridning och påverkansarbete.",
                    &[
                        "ABF Malmö",
                        "ABF Skåne",
                        "Barnens Rätt I Samhället (BRIS)",
                        "Coompanion - Kooperativ Utveckling Skåne",
                        "Folkbildningsföreningen i Malmö",
                        "Folkuniversitetet",
                        "Föreningen Furuboda",
                        "Handikapporganisationernas Samarbetsorgan Skåne (HSO)",
                        "Hela Sverige Ska Leva – Skåne",
                        "Individuell Människohjälp (IM)",
                        "Internationella Kvinnoföreningen i Malmö (IKF)",
                    ],
                ),
                innovation(
                    "Integration i förening",
                    "Nyanlända möter föreningslivet: informatörer visar vägen in i föreningar som blir en plats för språk, kontakter och delaktighet.",
                    "Ett regionalt flyktingfondsprojekt i samverkan med Länsstyrelsens utvecklingsarbete i Partnerskap Skåne. Föreningarna tar emot nya medlemmar och lär sig av varandra hur mottagandet kan göras bättre.",
                    &["integration", "föreningsliv", "nyanlända"],
                    &["Nätverket Social Ekonomi Skåne", "Partnerskap Skåne"],
                    Some((3.2, 2011)),
                ),
                innovation(
                    "Ökad inkludering genom språk",
                    "Språkträning i föreningarnas vardag i stället för i klassrummet.",
                    "Ett ESF-projekt där studieförbund och föreningar erbjuder samtalsgrupper på svenska kopplade till föreningens verksamhet.",
                    &["integration", "språk", "folkbildning"],
                    &["ABF Skåne", "Folkuniversitetet"],
                    None,
                ),
                method(
                    "Regional överenskommelse med Region Skåne",
                    "Hur en överenskommelse mellan region och idéburen sektor tas fram och följs upp.",
                    "Erfarenheter från arbetet med den regionala överenskommelsen 2010-2014: dialogmöten, gemensamma åtaganden och uppföljning. Stöd till kommuner som vill skriva lokala överenskommelser.",
                    &["överenskommelse", "samverkan", "dialog"],
                ),
                researcher(
                    "Karin Lind",
                    "Lunds universitet",
                    &["social ekonomi", "civilsamhälle"],
                    "karin.lind@example.org",
                ),
            ],
        ),
        r(
            "ostra-mellansverige",
            "PLUS Östra Mellansverige",
            vec![
                profile(
                    "PLUS Östra Mellansverige",
                    "Partnerskapet för Lokal Utveckling och Social ekonomi i Östra Mellansverige: en förening av de lokala länsplattformarna.",
                    &[
                        "Se Upp (Östergötland)",
                        "L&SEK (Örebro län)",
                        "PLUS Uppsala",
                        "Nätverket Västmanland",
                        "Social Ekonomi Sörmland (under bildande)",
                    ],
                ),
                innovation(
                    "Arbetsintegrerande sociala företag i Uppsala län",
                    "Sociala företag som ger arbete och gemenskap åt personer långt från arbetsmarknaden.",
                    "Plattformen samlar erfarenheter från sociala företag bland medlemmarna och sprider dem till andra län.",
                    &["socialt företagande", "arbetsintegrering"],
                    &["PLUS Uppsala", "Coompanion"],
                    Some((2.6, 2010)),
                ),
                method(
                    "Kartläggning och statistik över den sociala ekonomin",
                    "Så kartläggs sektorns storlek och verksamheter i ett län.",
                    "Metod från regionalfondsprojektet: register, enkäter till föreningar och samverkan med länsstyrelser för att synliggöra sektorn.",
                    &["statistik", "kartläggning", "forskning"],
                ),
                researcher(
                    "Johan Berg",
                    "Linköpings universitet",
                    &["lokal utveckling", "socialt företagande"],
                    "johan.berg@example.org",
                ),
            ],
        ),
        r(
            "dalarna",
            "Föreningen Social Ekonomi i Dalarna",
            vec![
                profile(
                    "Föreningen Social Ekonomi i Dalarna",
                    "Ideell förening som sprider kunskap om den sociala ekonomins möjligheter och arbetar med sektorns finansiering.",
                    &[
                        "Dalarnas Idrottsförbund",
                        "HSO Dalarna",
                        "Verdandi Dalarna",
                        "PRO Dalarna",
                        "Coompanion",
                        "Dalarnas Bildningsförbund",
                        "IOGT-NTO-rörelsen",
                        "RSMH Dalarna",
                    ],
                ),
                innovation(
                    "En fond för den sociala ekonomin i Dalarna",
                    "Ett regionalt kapital som idéburna organisationer kan låna och söka ur.",
                    "Föreningens arbete med framtida finansiering: en fond som gör sektorn mindre beroende av kortsiktiga projektbidrag.",
                    &["finansiering", "socialt kapital"],
                    &["Föreningen Social Ekonomi i Dalarna"],
                    Some((4.1, 2012)),
                ),
                method(
                    "Uppvaktningar och seminarier om finansiering",
                    "Hur en liten förening med enbart medlemsavgifter når beslutsfattare.",
                    "Seminarier och uppvaktningar där medlemsorganisationerna tillsammans visar sektorns egenvärde och mervärde.",
                    &["påverkansarbete", "finansiering"],
                ),
                researcher(
                    "Eva Dahl",
                    "Högskolan Dalarna",
                    &["finansiering", "ideell sektor"],
                    "eva.dahl@example.org",
                ),
            ],
        ),
        r(
            "stockholm",
            "Stockholms läns utvecklingspartnerskap (SLUP)",
            vec![
                profile(
                    "Stockholms läns utvecklingspartnerskap (SLUP)",
                    "Utvecklingspartnerskap för den sociala ekonomin i Stockholms län, bildat av stora paraplyorganisationer; även kommuner kan bli medlemmar.",
                    &[
                        "Paraplyorganisationer i Stockholms län",
                        "Kommuner i Stockholms län",
                    ],
                ),
                method(
                    "Affärsmässighet med bibehållen värdegrund",
                    "Kompetensutveckling i marknadsföring, prissättning och styrelsearbete för idéburna organisationer.",
                    "SOUL:s övergripande insatsområde omsatt i en kurs: hur en förening säljer sina tjänster utan att tappa sin idé.",
                    &["affärsmässighet", "kompetensutveckling", "styrelsearbete"],
                ),
                innovation(
                    "Mötesplats för föreningar och kommuner",
                    "Medlemsaktiviteter där föreningar och kommuner hittar gemensamma projekt.",
                    "Partnerskapet arrangerar aktiviteter och informerar om aktuella projekt hos medlemsorganisationerna.",
                    &["samverkan", "mötesplats"],
                    &["SLUP"],
                    None,
                ),
                researcher(
                    "Ali Hassan",
                    "Ersta Sköndal Bräcke högskola",
                    &["civilsamhälle", "frivilligt arbete"],
                    "ali.hassan@example.org",
                ),
            ],
        ),
        r(
            "mellersta-norrland",
            "Social Ekonomi Mellersta Norrland",
            vec![
                profile(
                    "Social Ekonomi Mellersta Norrland",
                    "SEMN samlar organisationer som samarbetar för att främja den sociala ekonomins utveckling i Jämtland och Västernorrland.",
                    &[
                        "Coompanion Jämtlands län",
                        "Hela Sverige Skall Leva i Jämtlands län",
                        "Hela Sverige Skall Leva i Västernorrland",
                        "Jämtland-Härjedalens Idrottsförbund",
                        "Jämtlands läns landsting",
                        "Studieförbundet Vuxenskolan region Jämtlands län",
                        "Studieförbundet Vuxenskolan Medelpad västra",
                        "Västernorrlands Idrottsförbund",
                    ],
                ),
                method(
                    "Processledning för byaföreningar",
                    "Stöd till byaföreningar och lokala utvecklingsgrupper som vill driva egna projekt.",
                    "Processledare hjälper gruppen att formulera idén, hitta samarbetspartner och söka finansiering.",
                    &["lokal utveckling", "landsbygd", "processledning"],
                ),
                innovation(
                    "Råd och stöd till kooperativ med utvecklingsidéer",
                    "En väg in för grupper, föreningar och kooperativ som vill starta något nytt.",
                    "SEMN förmedlar konsultinsatser och tar initiativ till nya projekt lokalt och regionalt.",
                    &["kooperativ", "lokal utveckling"],
                    &["Coompanion Jämtlands län"],
                    Some((2.9, 2011)),
                ),
                researcher(
                    "Maria Sjöberg",
                    "Mittuniversitetet",
                    &["entreprenörskap", "social ekonomi"],
                    "maria.sjoberg@example.org",
                ),
            ],
        ),
        r(
            "ovre-norrland",
            "Social ekonomi Övre Norrland",
            vec![
                profile(
                    "Social ekonomi Övre Norrland",
                    "Nätverk av idrotten, folkhögskolorna, HSO, Coompanion, Röda Korset, studieförbunden, Hela Sverige ska leva och Svenska kyrkan.",
                    &[
                        "Idrotten",
                        "Folkhögskolorna",
                        "HSO",
                        "Coompanion",
                        "Röda Korset",
                        "Studieförbundet Vuxenskolan",
                        "Hela Sverige ska leva",
                        "Svenska kyrkan",
                    ],
                ),
                innovation(
                    "Gemensamt projekt för forskning och kompetensutveckling",
                    "Organisationerna i norr finansierar forskning och lärande tillsammans.",
                    "Ett gemensamt projekt där sektorn och forskarna formulerar frågorna tillsammans: forskning med sektorn, inte om den.",
                    &["forskning", "kompetensutveckling"],
                    &["Social ekonomi Övre Norrland"],
                    None,
                ),
                method(
                    "Lärträffar i samband med SOUL",
                    "Korta regionala träffar där deltagarna delar vad de lärt sig.",
                    "Träffarna används för att planera gemensamma ansökningar och nominera representanter till EU-partnerskap.",
                    &["lärande", "nätverk"],
                ),
                researcher(
                    "Lars Nilsson",
                    "Umeå universitet",
                    &["folkbildning", "socialt kapital"],
                    "lars.nilsson@example.org",
                ),
            ],
        ),
        r(
            "smaland-oarna",
            "Region Småland och Öarna",
            vec![
                profile(
                    "Region Småland och Öarna",
                    "Ett nätverk för den sociala ekonomin under bildande, med en handlingsplan för hur det ska växa fram.",
                    &["Kärngrupp för nätverksbildandet"],
                ),
                method(
                    "Vår värdegrund är säljande – så når vi ut",
                    "Använd värdegrunden som verktyg för att bli mer affärsmässig.",
                    "Tvådagarsworkshop där organisationerna formulerar sitt erbjudande utifrån sin värdegrund.",
                    &["affärsmässighet", "värdegrund", "marknadsföring"],
                ),
                method(
                    "OPERA-övning för organisationssamverkan",
                    "En strukturerad övning för att enas om nästa steg i ett nätverk.",
                    "Deltagarna arbetar enskilt, i par och i grupp och rangordnar till sist förslagen tillsammans.",
                    &["samverkan", "metod", "nätverk"],
                ),
                innovation(
                    "Dialogprocess för lokala överenskommelser",
                    "Uppföljning av överenskommelsen mellan regeringen, idéburna organisationer och SKL, lokalt.",
                    "Erfarenheter från konferensen om överenskommelsen fångas upp och blir underlag för lokala dialogprocesser.",
                    &["överenskommelse", "dialog"],
                    &["Region Småland och Öarna"],
                    None,
                ),
            ],
        ),
        r(
            "vastra-gotaland",
            "Västra Götalandsplattformen",
            vec![
                profile(
                    "Västra Götalandsplattformen",
                    "Plattform för den sociala ekonomin i Västra Götaland.",
                    &["Idéburna organisationer i Västra Götaland"],
                ),
                innovation(
                    "Sociala hänsyn i upphandling",
                    "Upphandlingar som ger arbetsintegrerande sociala företag en chans.",
                    "Plattformen verkar för förenkling och socialt hänsynstagande i upphandlingsprocesser, så att små organisationer kan bli leverantörer.",
                    &["upphandling", "socialt företagande", "arbetsintegrering"],
                    &["Västra Götalandsplattformen"],
                    Some((3.6, 2012)),
                ),
                method(
                    "Följeforskning på ESF-projekt",
                    "En sammanställning av följeforskning för att lära mellan projekten.",
                    "Rapporter från följeforskare samlas och diskuteras på lärträffar där praktiker och forskare möts.",
                    &["forskning", "ESF", "lärande"],
                ),
                researcher(
                    "Sara Ek",
                    "Göteborgs universitet",
                    &["offentlig upphandling", "social ekonomi"],
                    "sara.ek@example.org",
                ),
            ],
        ),
    ]
}

/// `n` regions: the seed's eight first, then numbered extra regions.
pub fn demo_regions(n: usize) -> Vec<RegionSample> {
    let mut regions = seed_regions();
    let base = regions.clone();
    let mut i = regions.len();
    while regions.len() < n {
        let template = &base[i % base.len()];
        let mut extra = template.clone();
        extra.name = format!("region-{}", i + 1);
        extra.display_name = format!("Region {} (exempel)", i + 1);
        for (kind, value) in &mut extra.records {
            if *kind == Kind::Profile {
                value["display_name"] = json!(extra.display_name);
            }
        }
        regions.push(extra);
        i += 1;
    }
    regions.truncate(n);
    regions
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
#[derive(Debug)]
pub struct Demo {
    pub root: PathBuf,
    pub aggregator: Running,
    pub regions: Vec<(RegionSample, NodeId, Running)>,
    pub http: SocketAddr,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Creates the nodes, publishes the sample data and starts the network.
pub async fn start(
    n: usize,
    http: SocketAddr,
    progress: &(dyn Fn(String) + Sync),
) -> Result<Demo, String> {
    if n == 0 || n > DEMO_REGIONS_MAX {
        return Err(format!(
            "--regions must be between 1 and {DEMO_REGIONS_MAX}, got {n}"
        ));
    }
    // The page's port first: a taken port fails before anything is written.
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .map_err(|e| format!("cannot serve http on {http}: {e}"))?;
    let mut salt = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
    let root = std::env::temp_dir().join(format!(
        "spindel-demo-{}-{}",
        std::process::id(),
        hex::encode(salt)
    ));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    // Any failure from here on removes the directory again (it holds the nodes' keys).
    let guard = RemoveOnFailure(Some(root.clone()));
    progress(format!("data i {}", root.display()));
    let agg_dir = root.join("nationell");
    let agg = local::init_open(
        &agg_dir,
        "nationell",
        Role::Aggregator,
        Some("SOUL nationellt nätverk"),
        &mut rand_core::OsRng,
    )
    .map_err(err)?;
    let samples = demo_regions(n);
    let mut prepared = Vec::new();
    for sample in samples {
        let dir = root.join(&sample.name);
        let node = local::init_open(
            &dir,
            &sample.name,
            Role::Region,
            Some(&sample.display_name),
            &mut rand_core::OsRng,
        )
        .map_err(err)?;
        for (kind, value) in &sample.records {
            node.publish(
                *kind,
                &value.to_string(),
                None,
                &mut rand_core::OsRng,
                local::now_ms(),
            )
            .map_err(|e| format!("{}: {e}", sample.name))?;
        }
        agg.allow(node.node_id(), Some(sample.name.clone()))
            .map_err(err)?;
        progress(format!(
            "{}: {} poster signerade",
            sample.display_name,
            sample.records.len()
        ));
        prepared.push((sample, node));
    }
    let agg_key = agg.key().clone();
    let agg_id = agg.node_id();
    let aggregator = Running::start(
        Arc::new(agg),
        agg_key,
        RunOptions {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            aggregators: vec![],
            limits: Limits::default(),
        },
    )
    .await
    .map_err(err)?;
    let (http, _task) = crate::http::serve_listener(aggregator.shared.clone(), listener)
        .map_err(|e| format!("cannot serve http on {http}: {e}"))?;
    let listen = aggregator
        .listen_addr
        .ok_or("the aggregator did not bind")?;
    let peer: PeerAddr = format!("{agg_id}@{listen}").parse()?;
    progress(format!(
        "aggregator {} lyssnar på {listen} (QUIC)",
        agg_id.short()
    ));
    let mut regions = Vec::new();
    for (sample, node) in prepared {
        let id = node.node_id();
        let key = node.key().clone();
        let running = Running::start(
            Arc::new(node),
            key,
            RunOptions {
                listen: None,
                aggregators: vec![peer.clone()],
                limits: Limits::default(),
            },
        )
        .await
        .map_err(err)?;
        regions.push((sample, id, running));
    }
    guard.disarm();
    Ok(Demo {
        root,
        aggregator,
        regions,
        http,
    })
}

/// Removes a directory when dropped, unless disarmed.
struct RemoveOnFailure(Option<std::path::PathBuf>);

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

impl Demo {
    /// The summary now; `None` until every region's log is at the aggregator and back in every
    /// other region.
    pub fn summary(&self) -> Result<(Vec<SummaryRow>, bool), String> {
        let agg_heads = self.aggregator.shared.node.store().heads().map_err(err)?;
        let region_heads: Vec<_> = self
            .regions
            .iter()
            .map(|(_, _, r)| r.shared.node.store().heads())
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut rows = Vec::new();
        let mut synced = true;
        for (i, (sample, id, running)) in self.regions.iter().enumerate() {
            let head = region_heads[i].get(id).map_or(0, |h| h.seq);
            let at_aggregator = agg_heads.get(id).map_or(0, |h| h.seq);
            let in_every_region = region_heads
                .iter()
                .map(|h| h.get(id).map_or(0, |h| h.seq))
                .min()
                .unwrap_or(0);
            synced &= at_aggregator == head && in_every_region == head;
            rows.push(SummaryRow {
                name: sample.name.clone(),
                display_name: sample.display_name.clone(),
                records: running
                    .shared
                    .node
                    .store()
                    .visible_count_of(id)
                    .map_err(err)?,
                head,
                at_aggregator,
                in_every_region,
            });
        }
        Ok((rows, synced))
    }

    /// Waits until the network is in sync, reporting progress; fails after `timeout`.
    pub async fn wait_synced(
        &self,
        timeout: Duration,
        progress: &(dyn Fn(String) + Sync),
    ) -> Result<Vec<SummaryRow>, String> {
        let started = Instant::now();
        let mut last = usize::MAX;
        loop {
            let (rows, synced) = self.summary()?;
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
                return Err(format!(
                    "the network did not get in sync within {} s ({done} of {} regions)",
                    timeout.as_secs(),
                    rows.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every node and removes the temporary directory.
    pub async fn shutdown(self) {
        for (_, _, r) in self.regions {
            r.shutdown().await;
        }
        self.aggregator.shutdown().await;
        // Stores flush and release their files when the last handle drops.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindel_protocol::record::Record;

    #[test]
    fn every_sample_record_is_valid_and_examples_are_marked() {
        let regions = seed_regions();
        assert_eq!(regions.len(), 8);
        for r in &regions {
            spindel_protocol::record::validate_region_name(&r.name).unwrap();
            for (kind, value) in &r.records {
                let record = Record::from_json(*kind, &value.to_string()).unwrap();
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
            }
        }
        assert_eq!(demo_regions(3).len(), 3);
        let many = demo_regions(11);
        assert_eq!(many.len(), 11);
        let names: std::collections::BTreeSet<_> = many.iter().map(|r| r.name.clone()).collect();
        assert_eq!(names.len(), 11, "region names are unique");
    }
}
