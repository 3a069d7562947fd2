//! The kinds' form fields as a person reads them (label, then help text), and what is wrong
//! with a field, in Swedish. A leaf: `forms` and `import_csv` take these as
//! `crate::words::fields::X`, below the rest of `words`.

use spindel_protocol::record::{Problem, SchemaError};

/// A field's label and help text.
pub(crate) type Said = (&'static str, &'static str);

pub(crate) const DISPLAY_NAME: Said = (
    "Plattformens namn",
    "Så som det visas för läsarna, till exempel Nätverket Social Ekonomi Skåne.",
);

pub(crate) const PROFILE_DESCRIPTION: Said = ("Om plattformen", "Vad plattformen gör och för vem.");

pub(crate) const MEMBERS: Said = ("Medlemsorganisationer", "En organisation per rad.");

pub(crate) const WEBSITE: Said = (
    "Webbplats",
    "Fullständig adress, till exempel https://www.exempel.se. Sidan Integritet \
         (/integritet) anger den som regionens kontakt för frågor om personuppgifter.",
);

pub(crate) const TITLE: Said = ("Titel", "Kort och beskrivande, högst 200 tecken.");

pub(crate) const INNOVATION_SUMMARY: Said = (
    "Sammanfattning",
    "Några meningar om vad innovationen är och gör.",
);

pub(crate) const INNOVATION_DESCRIPTION: Said = (
    "Beskrivning",
    "Hur det gick till, vad som behövs, vad som lärts.",
);

pub(crate) const INNOVATION_TAGS: Said =
    ("Taggar", "Ett ämnesord per rad, till exempel integration.");

pub(crate) const ORGANISATIONS: Said = (
    "Organisationer",
    "De som driver eller drev den, en per rad.",
);

pub(crate) const LINKS: Said = ("Länkar", "En fullständig webbadress per rad.");

pub(crate) const CONTACT: Said = (
    "Kontakt",
    "Vem läsaren kan fråga (en funktionsadress hellre än en person).",
);

pub(crate) const SROI_RATIO: Said = (
    "SROI-kvot",
    "Social avkastning per satsad krona, till exempel 3,4. Lämna tomt om ingen beräkning finns.",
);

pub(crate) const SROI_YEAR: Said = ("SROI-år", "Året beräkningen gäller.");

pub(crate) const SROI_REPORT_URL: Said = ("SROI-rapport", "Webbadress till rapporten.");

pub(crate) const SROI_INDICATORS: Said = (
    "Indikatorer ur proxybanken",
    "Kryssa i de indikatorer och finansiella proxyer som SROI-beräkningen använde. \
         Alla regioners indikatorer finns med, grupperade efter utfall.",
);

pub(crate) const OUTCOME: Said = (
    "Utfall",
    "Förändringen som värderas, till exempel Fler personer i arbete. Proxybanken grupperar \
         på utfallet, så skriv det som andra regioner skriver det.",
);

pub(crate) const INDICATOR: Said = (
    "Indikator",
    "Hur förändringen mäts, till exempel Antal deltagare med anställning efter sex månader.",
);

pub(crate) const PROXY: Said = (
    "Finansiell proxy",
    "Vad värdet står för, till exempel Minskat försörjningsstöd. Skriv exempelvärde om \
         värdet är påhittat.",
);

pub(crate) const VALUE_SEK: Said = (
    "Värde i kronor",
    "Ett tal från 0 till 1 000 000 000, i årets prisnivå, till exempel 120 000.",
);

pub(crate) const UNIT: Said = (
    "Enhet",
    "Vad ett värde gäller, till exempel per person och år eller per tillfälle.",
);

pub(crate) const PRICE_YEAR: Said = (
    "Prisår",
    "Året vars prisnivå värdet anges i, till exempel 2024.",
);

pub(crate) const SOURCE: Said = (
    "Källa",
    "Var värdet kommer ifrån: en fullständig webbadress (https://) eller en referens, \
         till exempel SCB, Lönestrukturstatistik 2024.",
);

pub(crate) const DEADWEIGHT: Said = (
    "Dödvikt",
    "Andel som hade hänt ändå, ett tal från 0 till 1, till exempel 0,3.",
);

pub(crate) const ATTRIBUTION: Said = (
    "Attribution",
    "Andel som beror på andra aktörer, från 0 till 1.",
);

pub(crate) const DISPLACEMENT: Said = (
    "Undanträngning",
    "Andel av effekten som flyttar problemet någon annanstans, från 0 till 1.",
);

pub(crate) const DROP_OFF: Said = (
    "Avtagande",
    "Hur mycket effekten minskar varje år efter det första, från 0 till 1.",
);

pub(crate) const INDICATOR_TAGS: Said = ("Taggar", "Ett ämnesord per rad, till exempel arbete.");

pub(crate) const METHOD_SUMMARY: Said = (
    "Sammanfattning",
    "Några meningar om metoden eller erfarenheten.",
);

pub(crate) const METHOD_DESCRIPTION: Said = (
    "Beskrivning",
    "Steg, förutsättningar, vad som fungerade och inte.",
);

pub(crate) const ABOUT: Said = (
    "Posten som besvaras",
    "Regionens nyckel, ett snedstreck och postens id (NODID/POSTID), som i postens adress. \
         Fylls i när du trycker på Svara med en erfarenhet på en post.",
);

pub(crate) const EXPERIENCE_TEXT: Said = (
    "Erfarenhet",
    "Vad ni gjorde med posten och vad ni lärde er. Första raden blir rubriken i listor.",
);

pub(crate) const EXPERIENCE_OUTCOME: Said = ("Utfall", "Hur det gick med idén hos er.");

/// The outcomes of an experience, by their JSON names, as a person chooses them.
pub(crate) const OUTCOMES: &[(&str, &str)] = &[
    ("tried", "Provat"),
    ("adapted", "Anpassat"),
    ("planned", "Planerat"),
    ("not-suitable", "Passade inte"),
];

pub(crate) const EXPERIENCE_TAGS: Said = ("Taggar", "Ett ämnesord per rad.");

pub(crate) const METHOD_TAGS: Said = ("Taggar", "Ett ämnesord per rad.");

pub(crate) const NAME: Said = ("Namn", "Forskarens namn.");

pub(crate) const AFFILIATION: Said = (
    "Lärosäte eller organisation",
    "Till exempel Lunds universitet.",
);

pub(crate) const FIELDS: Said = ("Forskningsområden", "Ett område per rad, minst ett.");

pub(crate) const EMAIL: Said = ("E-post", "Bara om forskaren samtyckt till att den visas.");

pub(crate) const PHONE: Said = ("Telefon", "Bara om forskaren samtyckt till att den visas.");

pub(crate) const CONSENT_GIVEN: Said = (
    "Forskaren har samtyckt till att listas",
    "Utan samtycke publiceras ingen kontakt.",
);

pub(crate) const CONSENT_DATE: Said = ("Samtyckets datum", "ÅÅÅÅ-MM-DD, dagen samtycket gavs.");

pub(crate) const CONSENT_METHOD: Said =
    ("Hur samtycket gavs", "Till exempel e-post eller blankett.");

pub(crate) const CONSENT_SCOPE: Said = (
    "Vad samtycket gäller",
    "Lämna tomt om det gäller att listas i kunskapsbanken.",
);

/// An SROI's year or report without its ratio.
pub(crate) const SROI_WITHOUT_RATIO: &str = "Ange SROI-kvoten, eller lämna alla SROI-fält tomma.";
/// A required field left empty.
pub(crate) const FILL_IN: &str = "Fyll i fältet.";
/// A year field that is not a year.
pub(crate) const NOT_A_YEAR: &str = "Ange året med fyra siffror, till exempel 2024.";
/// A number field that is not a number.
pub(crate) const NOT_A_NUMBER: &str = "Ange ett tal, till exempel 3,4.";

pub(crate) const EVENT_TITLE: Said = ("Titel", "Vad träffen heter, högst 200 tecken.");

pub(crate) const EVENT_START: Said = (
    "Start",
    "Datum och klockslag i svensk tid. En tid som finns två gånger natten då vintertiden börjar \
     räknas som den första (sommartid).",
);

pub(crate) const EVENT_END: Said = (
    "Slut",
    "Datum och klockslag i svensk tid. Lämna tomt om träffen slutar samma dag.",
);

pub(crate) const EVENT_PLACE: Said = (
    "Plats",
    "Adressen, till exempel Folkets hus, Storgatan 1, Lund. Ange plats, länk för att delta på \
     nätet, eller båda.",
);

pub(crate) const EVENT_ONLINE_URL: Said = (
    "Delta på nätet",
    "Webbadress till mötet på nätet, till exempel https://exempel.se/mote.",
);

pub(crate) const EVENT_ORGANISER: Said = ("Arrangör", "Vem som bjuder in.");

pub(crate) const EVENT_REGISTRATION_URL: Said = (
    "Anmälan",
    "Webbadress där man anmäler sig, om anmälan behövs.",
);

pub(crate) const EVENT_DESCRIPTION: Said = (
    "Beskrivning",
    "Program, för vem träffen är, vad som behövs för att delta.",
);

pub(crate) const EVENT_TAGS: Said = ("Taggar", "Ett ämnesord per rad.");

/// A wall-clock time that could not be placed in Swedish time.
pub(crate) fn local_time(e: crate::localtime::LocalTimeError) -> &'static str {
    match e {
        crate::localtime::LocalTimeError::Unreadable => {
            "Ange datum och klockslag, till exempel 2027-03-12 09:00."
        }
        crate::localtime::LocalTimeError::Skipped => {
            "Den tiden finns inte: klockan hoppar från 02:00 till 03:00 natten då sommartiden \
             börjar. Välj en annan tid."
        }
    }
}

/// What the protocol found wrong with a field, in Swedish (without the line of a list).
pub(crate) fn problem(e: &SchemaError) -> String {
    match &e.problem {
        Problem::Required => FILL_IN.to_string(),
        Problem::Length { min: _, max, got } if got > max => {
            format!("Högst {max} tecken; nu {got}.")
        }
        Problem::Length { min, .. } => format!("Minst {min} tecken."),
        Problem::Control => "Fältet innehåller tecken som inte kan visas (styrtecken).".into(),
        Problem::Count { max, got, .. } if got > max => format!("Högst {max} rader; nu {got}."),
        Problem::Count { min, .. } => {
            format!("Minst {min} {}.", if *min == 1 { "rad" } else { "rader" })
        }
        Problem::Url => {
            "Ange en fullständig webbadress som börjar med https:// (eller http://).".into()
        }
        Problem::Email => "Ange en e-postadress, till exempel namn@exempel.se.".into(),
        Problem::Phone => {
            "Ange ett telefonnummer med 5–20 siffror, till exempel +46 46 123 45 67.".into()
        }
        Problem::Date => "Ange datumet som ÅÅÅÅ-MM-DD, till exempel 2026-11-28.".into(),
        Problem::Positive => "Ange ett tal större än 0, till exempel 3,4.".into(),
        Problem::DateTime => "Ange datum och klockslag, till exempel 2027-03-12 09:00.".into(),
        Problem::EndBeforeStart => "Slutet kan inte vara före starten.".into(),
        Problem::PlaceOrOnline => {
            "Ange en plats eller en länk för att delta på nätet (eller båda).".into()
        }
        Problem::Year { min, max, .. } => format!("Ange ett år mellan {min} och {max}."),
        Problem::Consent => {
            "Forskaren måste ha samtyckt: kryssa i samtycket och ange dagen det gavs.".into()
        }
        Problem::Reference => "Ange posten som NODID/POSTID: regionens nyckel (64 tecken), ett \
             snedstreck och postens id (32 tecken), som i postens adress /post/…/…."
            .into(),
        Problem::NodeId => "Ange regionens nyckel: 64 tecken 0-9 och a-f, som `spindel status` \
             visar den."
            .into(),
        Problem::Choice { .. } => "Välj ett av alternativen.".into(),
        Problem::RegionName => format!("Namnet följer inte reglerna: {}", e.message),
        Problem::NotJson => "Posten är inte JSON.".into(),
        Problem::UnknownField => {
            format!("Okänt fält ”{}”.", e.field.as_deref().unwrap_or_default())
        }
        Problem::Fraction => "Ange ett tal från 0 till 1, till exempel 0,25.".into(),
        Problem::Amount { max } => format!("Ange ett belopp från 0 till {max} kronor."),
        Problem::Duplicate => "Samma post finns redan på en tidigare rad.".into(),
        Problem::Other => format!("Posten kunde inte läsas: {}", e.message),
    }
}

/// How a problem with the line of a list begins: `Rad 3: `.
pub(crate) const LINE: &str = "Rad ";

/// A problem with line `line` of a list.
pub(crate) fn on_line(line: usize, message: &str) -> String {
    format!("{LINE}{line}: {message}")
}

/// A problem with item `n` of a list in an imported file (where "line" is the file's).
pub(crate) fn on_item(n: &str, message: &str) -> String {
    format!("Punkt {n} i listan: {message}")
}

// A CSV file's cells.

/// `homeless` cells of a row beyond the header's columns, the first of them cell `first`.
pub(crate) fn cells_without_column(homeless: usize, first: usize) -> String {
    format!(
        "{homeless} {} utan kolumn (den första är cell {first}): rubrikraden har inget namn där.",
        if homeless == 1 { "cell" } else { "celler" }
    )
}

pub(crate) const LINE_BREAK_IN_ONE_LINE: &str =
    "Fältet är en rad men cellen har en radbrytning; saknas ett avslutande citattecken?";
pub(crate) const YES_OR_NO: &str = "Skriv ja eller nej.";
/// A checkbox's cell as a person may type it (in lower case): ticked, or not.
pub(crate) const YES_CELLS: &[&str] = &["ja", "j", "x", "1", "true", "sant", "yes", "on"];
pub(crate) const NO_CELLS: &[&str] = &["", "nej", "n", "0", "false", "falskt", "no"];
/// A ticked checkbox in a CSV template.
pub(crate) const YES: &str = "ja";
pub(crate) const BAD_RECORD_ID_CELL: &str = "Ange postens id, 32 tecken 0–9 och a–f (som i postens adress /post/…), eller lämna cellen tom för en ny post.";
