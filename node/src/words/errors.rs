//! A typed error as the Swedish sentence a person reads.

use crate::local::{Acted, MembershipRefusal, NodeError};
use crate::params::ParamError;
use crate::users::UserError;

use super::formats::wait_sv;

/// An account change that failed for want of the node (not of the person), in Swedish.
pub(crate) const ACCOUNT_NOT_CHANGED: &str = "Kontot kunde inte ändras; försök igen.";

/// An account error in Swedish.
pub(crate) fn account_error(e: &UserError) -> String {
    match e {
        UserError::BadName(_) => "Användarnamnet: 1–32 tecken, små bokstäver a–z, siffror, punkt, understreck och bindestreck, och det börjar med en bokstav.".into(),
        UserError::BadRole(_) => "Välj rollen redaktör eller administratör.".into(),
        UserError::Exists(n) => format!("Det finns redan ett konto {n}."),
        UserError::Unknown(n) => format!("Det finns inget konto {n}."),
        UserError::TooMany => "Noden har så många konton den kan ha; ta bort ett först.".into(),
        UserError::LastAdmin => "Den sista administratören kan inte tas bort; lägg till en till först.".into(),
        UserError::ShortPassword => format!("Lösenordet måste ha minst {} tecken.", crate::users::PASSWORD_CHARS_MIN),
        UserError::LongPassword => format!("Lösenordet får vara högst {} byte.", crate::users::PASSWORD_BYTES_MAX),
        UserError::WrongCurrentPassword => "Det nuvarande lösenordet stämmer inte.".into(),
        UserError::TooSoon(wait) => format!("För många fel lösenord. Vänta {} och försök igen.", wait_sv(*wait)),
        UserError::SamePassword => "Det nya lösenordet måste skilja sig från det nuvarande.".into(),
        other => format!("Kontot kunde inte ändras: {other}"),
    }
}

/// Why the node refused a write from the editor, in Swedish (an unexpected refusal is also
/// logged).
pub(crate) fn write_refused(e: &NodeError) -> String {
    match e {
        NodeError::RestoredRefused(_) => "Noden är återställd från en säkerhetskopia och aggregatorn tar inte emot den, så den kan inte komma ikapp och skriver inget. Inget sparades; den som driver noden ser varför i spindel status.".into(),
        NodeError::CatchingUp { .. } | NodeError::RestoredNotCaughtUp => {
            "Noden kommer just nu ikapp sin egen logg hos aggregatorn; inget sparades. Försök igen om en stund.".to_string()
        }
        NodeError::Deleted(_) => POST_REMOVED_FOR_GOOD.into(),
        NodeError::EarlierKeyRecord { .. } => "Posten publicerades under regionens tidigare nyckel, som inte skriver något mer, så den kan inte ändras härifrån; publicera en ny post i stället. För att ta bort den: beordra att den raderas under Medlemskap (er regions egen order räcker). Inget sparades.".into(),
        NodeError::ErasedByOrder(_) => "Posten är raderad på medlemmarnas order; en ny version av den skulle inte synas. Publicera en ny post i stället. Inget sparades.".into(),
        NodeError::Stale { current: None, .. } => "Posten togs bort medan formuläret var öppet, så ändringen publicerades inte. Vill du ha kvar texten: kopiera den till en ny post.".into(),
        NodeError::OtherCopy(_) => "En annan kopia av den här noden (samma nyckel) är ansluten till aggregatorn; den här noden publicerar ingenting så länge. Inget sparades. Be den som driver noden stoppa kopian som inte ska köras.".into(),
        NodeError::Membership(r) => membership_refusal(r),
        NodeError::OwnLogForked(_) => "Regionens logg har en gaffel (två olika poster med samma nummer); inget kan publiceras förrän den som driver noden har åtgärdat den. Inget sparades.".into(),
        other => {
            tracing::error!(error = %other, "a write from the editor failed");
            "Posten kunde inte sparas på grund av ett fel i noden. Inget sparades; be den som driver noden läsa dess logg.".into()
        }
    }
}

/// Why a membership act was refused, in Swedish (a key by its first 16 characters).
pub(crate) fn membership_refusal(r: &MembershipRefusal) -> String {
    let short = |k: &spindel_protocol::NodeId| k.to_hex()[..16].to_string();
    match r {
        MembershipRefusal::NoCharter => "Nätverket har ingen stadga, så det finns inget medlemskap att besluta om. Nodens operatör antar stadgan med spindel charter adopt.".into(),
        MembershipRefusal::NotAMember => "Er region är inte medlem i nätverket, så dess beslut räknas inte.".into(),
        MembershipRefusal::BadKey { .. } => ACT_NODE_ID.into(),
        MembershipRefusal::AlreadyMember { region, .. } => format!("Nyckeln är redan regionen {region}s; en nyckel får stöd en gång."),
        MembershipRefusal::FormerKey { region, .. } => format!("Nyckeln har varit regionen {region}s och kan inte komma tillbaka. En ny nyckel för regionen får stöd som ersättare."),
        MembershipRefusal::ReplacesUnknown { key } => format!("Nyckeln {} som ska ersättas hör inte till någon region.", short(key)),
        MembershipRefusal::ReplacesOtherName { region, .. } => format!("Nyckeln som ska ersättas är regionen {region}s, så den nya nyckeln behåller det namnet."),
        MembershipRefusal::NameHeld { name, .. } => format!("Namnet {name} hör redan till en region, för alltid. En ny nyckel för den regionen får stöd som ersättare."),
        MembershipRefusal::EndorsedTwice { name, .. } => format!("Er region har redan gett {name} sitt stöd; det räknas en gång."),
        MembershipRefusal::RevokedTwice { .. } => "Er region har redan begärt att det medlemskapet upphör; det räknas en gång.".into(),
        MembershipRefusal::RevokeFormer { region, .. } => format!("Nyckeln är inte längre medlem för {region}; det finns inget att begära."),
        MembershipRefusal::RevokeStranger { key } => format!("Nyckeln {} är inte medlem i nätverket; det finns inget att begära.", short(key)),
        MembershipRefusal::TookEffect { .. } => "Beslutet har redan fått verkan och ligger kvar: att ta bort det skulle ändra vem som är medlem. Ett medlemskap upphör bara om medlemmarna begär det.".into(),
        MembershipRefusal::AggregatorRotates => "En aggregators nyckel byts inte: regionerna har den i sina inställningar.".into(),
        MembershipRefusal::HandingOver { .. } => "Regionen byter nyckel just nu, och den gamla nyckeln skriver inget mer. Noden går över till den nya nyckeln så snart aggregatorn har tagit emot bytet; försök igen om en stund. Inget sparades.".into(),
        MembershipRefusal::KeyRotated { region, .. } => format!("Den här nodens nyckel har lämnat över regionen {region} till en ny nyckel och skriver inget mer. Regionen drivs av noden som har den nya nyckeln. Inget sparades."),
        MembershipRefusal::KeyEnded { region } => format!("Den här nodens nyckel är inte längre medlemsnyckel för {region}: det den skriver når ingen, inte heller att ta bort en post. En post tas bort genom medlemmarnas raderingsorder. Inget sparades."),
        MembershipRefusal::NextKeyUsed { .. } | MembershipRefusal::NoHandover => "Nyckelbytet kunde inte göras; den som driver noden ser varför i spindel status.".into(),
        MembershipRefusal::BadRecord { .. } => ERASE_RECORD.into(),
        MembershipRefusal::UptoWithoutReplaces | MembershipRefusal::UptoBeyond { .. } => "Den sista posten som ska stå kvar anges bara för en nyckel som ersätts, och bara en som noden har.".into(),
        MembershipRefusal::EraseUnknown { .. } => "Posten finns inte här. Ange regionens nod-id och postens id så som de står i postens adress.".into(),
        MembershipRefusal::EraseAct { .. } => "Posten är ett medlemsbeslut; ett sådant tas tillbaka av den region som fattade det. En raderingsorder gäller poster i kunskapsbanken.".into(),
        MembershipRefusal::ErasedAlready { .. } => "Posten är redan raderad på medlemmarnas order.".into(),
        MembershipRefusal::OrderedTwice { .. } => "Er region har redan skrivit under den raderingsordern; den räknas en gång.".into(),
    }
}

/// A withdrawal of an act that is not one of this region's pending ones.
pub(crate) const WITHDRAW_UNKNOWN: &str = "Det beslutet väntar inte längre: det har fått verkan eller dragits tillbaka redan. Listan nedan visar hur det står nu.";

/// A pending act withdrawn.
pub(crate) fn withdrawn(kind: &str, about: &str) -> String {
    match kind {
        "endorsement" => format!("Stödet för {about} är tillbakadraget."),
        "revocation" => format!("Begäran om att {about}s medlemskap upphör är tillbakadragen."),
        _ => "Raderingsordern är tillbakadragen.".into(),
    }
}

/// A record field of an erasure order that does not hold `AUTHOR/RECORD_ID`.
pub(crate) const ERASE_RECORD: &str = "Ange postens adress som NOD-ID/POST-ID: regionens nod-id (64 tecken) och postens id (32 tecken), siffror och bokstäverna a–f, så som de står i postens adress.";

/// A node id field that does not hold one.
pub(crate) const ACT_NODE_ID: &str = "Ange regionens nod-id: 64 tecken, siffror och bokstäverna a–f (regionen ser det med spindel id).";
/// A region name field that does not hold one.
pub(crate) const ACT_NAME: &str =
    "Ange regionens namn i nätverket: 1–32 tecken, a–z, 0–9 och bindestreck.";

/// A revocation's reason, missing or too long.
pub(crate) fn act_reason(max: usize) -> String {
    format!("Skriv ett skäl, högst {max} tecken. Det syns för alla regioner.")
}

/// A membership act published, and what it counts for now.
pub(crate) fn act_done(a: &Acted) -> String {
    match (a.kind.as_str(), a.done) {
        ("erasure", true) => {
            let day = |at: &str| at.get(..10).unwrap_or(at).to_string();
            format!(
                "Ordern är publicerad, och posten döljs nu på varje nod. Varje nod raderar dess innehåll för gott när ordern har stått sig{}. Ordern och skälet syns för alla regioner.",
                a.held_until
                    .as_deref()
                    .map(|h| format!(" (här: {})", day(h)))
                    .unwrap_or_default()
            )
        }
        ("erasure", false) => format!(
            "Ordern är publicerad: {} av {} medlemmar har skrivit under. Posten raderas när {} har gjort det.",
            a.counted, a.threshold, a.threshold
        ),
        ("endorsement", true) => format!(
            "Stödet är publicerat, och {} är nu medlem i nätverket.",
            a.name
        ),
        ("endorsement", false) => format!(
            "Stödet är publicerat: {} av {} medlemmar har gett {} sitt stöd.",
            a.counted, a.threshold, a.name
        ),
        (_, true) => format!(
            "Begäran är publicerad, och {} är inte längre medlem.",
            a.name
        ),
        (_, false) => format!(
            "Begäran är publicerad: {} av {} medlemmar har begärt att {}s medlemskap upphör.",
            a.counted, a.threshold, a.name
        ),
    }
}

/// A removed post, which nothing publishes again.
pub(crate) const POST_REMOVED_FOR_GOOD: &str = "Posten är borttagen och kan inte publiceras igen.";

/// A search address's parameters the page refused, in Swedish.
pub(crate) fn param_error(e: &ParamError) -> String {
    match e {
        ParamError::Unknown { name, known: [] } => {
            format!("Okänd parameter ”{name}”. Sidan tar inga parametrar.")
        }
        ParamError::Unknown { name, known } => {
            let (last, rest) = known.split_last().unwrap_or((&"", &[]));
            let names = if rest.is_empty() {
                last.to_string()
            } else {
                format!("{} och {last}", rest.join(", "))
            };
            format!("Okänd parameter ”{name}”. Sidan förstår {names}.")
        }
        ParamError::Repeated(name) => format!("Parametern ”{name}” står flera gånger."),
        ParamError::Malformed(_) => "Adressens parametrar går inte att läsa.".to_string(),
    }
}

/// A region the embed's address names that no region here is called.
pub(crate) fn embed_unknown_region(region: &str, known: &str) -> String {
    format!("Ingen region heter ”{region}” här. Regionerna heter: {known}.")
}

/// A kind in a search address that is none of the four.
pub(crate) fn unknown_kind(k: &str) -> String {
    let kinds: Vec<&str> = spindel_protocol::record::Kind::KNOWLEDGE
        .iter()
        .map(|k| k.as_str())
        .collect();
    let (last, rest) = kinds.split_last().unwrap_or((&"", &[]));
    format!(
        "Okänd posttyp ”{k}”. Välj {} eller {last}.",
        rest.join(", ")
    )
}
