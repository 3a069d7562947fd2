//! The headings, notices, banners and buttons the public pages and the editor say from Rust.

// ---- The public pages (`web`, `http`).

/// Headings of a page that could not be shown.
pub(crate) const BAD_ADDRESS: &str = "Felaktig adress";
pub(crate) const NO_SUCH_PAGE: &str = "Sidan finns inte";
pub(crate) const SOMETHING_WENT_WRONG: &str = "Något gick fel";

/// The node's store could not be read; `e` says why.
pub(crate) fn store_unreadable(e: &dyn std::fmt::Display) -> String {
    format!("Noden kunde inte läsa sitt lager: {e}")
}

pub(crate) const BAD_PAGE_NUMBER: &str = "”sida” ska vara ett sidnummer, 1 eller mer.";
pub(crate) const BAD_CURSOR: &str = "Sidmarkören är ogiltig. Börja om från första sidan.";

/// A search text longer than `max` characters.
pub(crate) fn search_text_too_long(max: usize) -> String {
    format!("Söktexten är längre än {max} tecken.")
}

/// The node's role in the page's header.
pub(crate) const ROLE_REGION: &str = "regional nod";
pub(crate) const ROLE_AGGREGATOR: &str = "nationell aggregator";

/// The page shown when a template fails; `message` is HTML-escaped.
pub(crate) fn template_failed(message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"sv\"><title>Fel</title><h1>{SOMETHING_WENT_WRONG}</h1><p>{message}</p></html>"
    )
}

pub(crate) const BAD_RECORD_ADDRESS_KEY: &str =
    "Adressen till posten är felaktig (regionens nyckel).";
pub(crate) const BAD_RECORD_ADDRESS_ID: &str = "Adressen till posten är felaktig (postens id).";
pub(crate) const NO_SUCH_RECORD_HERE: &str =
    "Posten finns inte här, eller så har regionen tagit bort den.";
pub(crate) const TOO_MANY_CONTACTS: &str = "För många sidor med kontaktuppgifter";
pub(crate) const TOO_MANY_CONTACTS_WAIT: &str = "Den här adressen har hämtat många forskares kontaktuppgifter på kort tid. Vänta en stund och ladda om sidan.";
pub(crate) const BAD_ANSWERS_PARAM: &str =
    "Parametern svar kan bara vara svar=alla (alla svar på posten).";
pub(crate) const NETWORK_UNREADABLE: &str =
    "Sökningen kunde inte göras: kontrollera sökorden, eller börja om från Nätverket.";
pub(crate) const NO_SUCH_REGION: &str = "Ingen region med den adressen är känd här.";
/// The search page's facets, by the parameter each sets.
pub(crate) const FACET_KIND: &str = "Typ";
pub(crate) const FACET_REGION: &str = "Region";
pub(crate) const FACET_TAG: &str = "Tagg";
pub(crate) const NOWHERE: &str =
    "Adressen leder ingenstans. Sök i kunskapsbanken eller se den nationella översikten.";

/// The HTTP API's answer to a method that would write.
pub(crate) const READ_ONLY_API: &str =
    "Bara GET och HEAD: kunskapsbanken går inte att ändra över HTTP.\n";

// ---- The editor (Redaktionen).

/// Said when the node could not read what a page needs, under a heading saying what.
pub(crate) const TRY_AGAIN_OR_READ_THE_LOG: &str =
    "Försök igen om en stund; står det kvar, be den som driver noden läsa loggen.";
pub(crate) const LOG_UNREADABLE: &str = "Loggen kunde inte läsas";
pub(crate) const POSTS_UNREADABLE: &str = "Posterna kunde inte läsas";
pub(crate) const NOWHERE_IN_THE_EDITOR: &str = "Adressen leder ingenstans i redaktionen.";
pub(crate) const NO_SUCH_KIND: &str = "Det finns ingen sådan typ av post.";
pub(crate) const NO_SUCH_PAGE_SO: &str = "Sidan finns inte så";

/// An editor page's address that cannot be read; `e` says why.
pub(crate) fn unreadable_address(e: &dyn std::fmt::Display) -> String {
    format!("Adressen går inte att läsa: {e}.")
}

/// A page of a list that is not there any more; `e` says why.
pub(crate) fn page_not_found(e: &dyn std::fmt::Display) -> String {
    format!("Sidan går inte att hitta ({e}); börja om från första sidan.")
}

/// The page shown when an editor template fails.
pub(crate) const EDITOR_PAGE_FAILED: &str =
    "<!doctype html><title>Fel</title><p>Sidan kunde inte visas.</p>";
/// `/logg?fore=` that is not a number.
pub(crate) const BEFORE_NOT_A_NUMBER: &str = "”fore” ska vara ett tal.";

pub(crate) const FORM_NOT_SENT: &str = "Formuläret gick inte att skicka";
pub(crate) const FORM_WITHOUT_TOKEN: &str = "Formuläret saknade en giltig säkerhetskod (det kan ha legat öppet för länge). Inget har sparats. Ladda om sidan och försök igen.";

// Logging in.
pub(crate) const LOGGED_OUT_TEXT_KEPT: &str =
    "Du hann bli utloggad. Det du skrev är sparat och kommer tillbaka ifyllt när du har loggat in.";
pub(crate) const WRONG_LOGIN: &str = "Fel användarnamn eller lösenord.";

/// Logins refused for a while; `wait` is how long, in Swedish.
pub(crate) fn logins_wait(wait: &str) -> String {
    format!(
        "För många misslyckade inloggningar till kontot eller från din adress. Vänta {wait} och försök igen. En webbläsare där du har loggat in förut släpps alltid fram; en administratör kan också ge dig ett nytt lösenord."
    )
}

pub(crate) const LOGIN_BROKEN: &str = "Inloggningen fungerar inte just nu";
pub(crate) const ACCOUNTS_UNREADABLE: &str =
    "Kontona kunde inte läsas. Be den som driver noden läsa loggen.";
pub(crate) const ADMINS_ONLY: &str = "Bara för administratörer";
pub(crate) const ADMINS_ONLY_WHY: &str = "Konton och logg hanteras av regionens administratörer.";

// Accounts.

/// An account made.
pub(crate) fn account_made(name: &str) -> String {
    format!("Kontot {name} är skapat.")
}

/// An account removed.
pub(crate) fn account_removed(name: &str) -> String {
    format!("Kontot {name} är borttaget.")
}

pub(crate) const NOT_YOUR_OWN_ACCOUNT: &str =
    "Du kan inte ta bort ditt eget konto här; be en annan administratör.";
pub(crate) const NEW_PASSWORDS_DIFFER: &str = "De två nya lösenorden är inte lika.";
pub(crate) const PASSWORD_CHANGED: &str =
    "Ditt lösenord är bytt. Andra inloggningar med kontot har avslutats.";

// Posts.

/// More posts chosen for removal than `max`.
pub(crate) fn too_many_chosen(max: usize) -> String {
    format!("Högst {max} poster åt gången; välj färre.")
}

pub(crate) const TOO_MANY_POSTS: &str = "För många poster";
pub(crate) const NOTHING_SAVED: &str = "Inget sparades";
pub(crate) const LOGGED_OUT_BEFORE_SENDING: &str = "Du blev utloggad innan formuläret skickades. Det du skrev finns kvar här; inget är publicerat ännu.";
pub(crate) const NO_SUCH_POST: &str = "Posten finns inte";
pub(crate) const REGION_HAS_NO_SUCH_POST: &str =
    "Regionen har ingen sådan post (den kan vara borttagen).";

/// A version in a post's history: removed, first published, or changed.
pub(crate) const VERSION_REMOVED: &str = "Borttagen";
pub(crate) const VERSION_PUBLISHED: &str = "Publicerad";
pub(crate) const VERSION_CHANGED: &str = "Ändrad";

/// The heading of a new post's form; `kind` is the kind in running text.
pub(crate) fn new_post(kind: &str) -> String {
    format!("Ny {kind}")
}

/// The heading of a post's edit form.
pub(crate) fn edit_post(title: &str) -> String {
    format!("Ändra ”{title}”")
}

// The calendar.

/// The name a calendar feed gives itself (`region`: a region's feed).
pub fn calendar_name(region: Option<&str>) -> String {
    match region {
        Some(r) => format!("Mötesplatser för social ekonomi: {r}"),
        None => "Mötesplatser för social ekonomi i Sverige".to_string(),
    }
}

/// The lines a feed adds below an event's description.
pub const FEED_REGISTRATION: &str = "Anmälan";
pub const FEED_ONLINE: &str = "Delta på nätet";
pub const FEED_ORGANISER: &str = "Arrangör";

/// A calendar page's parameter that cannot be read.
pub fn calendar_param_error(e: &crate::params::ParamError) -> String {
    match e {
        crate::params::ParamError::Unknown { name, .. } => {
            format!("Okänd parameter ”{name}”. Kalendern förstår region, tag och sida.")
        }
        crate::params::ParamError::Repeated(name) => {
            format!("Parametern ”{name}” står flera gånger.")
        }
        crate::params::ParamError::Malformed(_) => {
            "Adressens parametrar går inte att läsa.".to_string()
        }
    }
}

/// A page number out of range.
pub fn bad_page_number(max: usize) -> String {
    format!("Sidnumret ska vara ett heltal från 1 till {max}.")
}

// The Atom feed and the embed.

/// Who a feed says it is by (each entry names its region).
pub const FEED_AUTHOR: &str = "Kunskapsbanken för social ekonomi";

/// The title of the feed of these filters.
pub fn feed_title(
    kind: Option<&str>,
    region: Option<&str>,
    tag: Option<&str>,
    text: Option<&str>,
) -> String {
    let mut title = match kind {
        Some(k) => format!(
            "Kunskapsbanken: {}",
            super::formats::kind_label(k, true).to_lowercase()
        ),
        None => "Kunskapsbanken: det senaste".to_string(),
    };
    if let Some(r) = region {
        title.push_str(&format!(" från {r}"));
    }
    if let Some(t) = tag {
        title.push_str(&format!(" med taggen {t}"));
    }
    if let Some(q) = text {
        title.push_str(&format!(" som nämner \"{q}\""));
    }
    title
}

/// A `limit` of the embed that is not a number of records it shows.
pub(crate) fn embed_limit(max: usize) -> String {
    format!("Antalet poster (limit) är ett heltal från 1 till {max}.")
}
