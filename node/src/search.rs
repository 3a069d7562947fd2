//! The full-text index: tantivy, with Swedish and English stemming.
//!
//! Derived data. Every visible record is one document with its text analysed twice: once by
//! the Swedish pipeline (lower-case, Swedish stop words, Swedish Snowball stemmer) and once by
//! the English one. A query word matches if either stem matches; all words must match.
//! There is deliberately no ASCII folding before the Swedish stemmer: it would turn å ä ö into
//! a a o and break Swedish stemming ("föreningarna" must find "förening").
//!
//! The store's generation (count of applied entries) is written as the commit payload; when the
//! index is missing, unreadable or its generation differs from the store's, the store rebuilds
//! it from the log ([`crate::store::Store::open`]).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use spindel_protocol::NodeId;
use spindel_protocol::entry::RecordId;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, StopWordFilter, TextAnalyzer, Token,
    TokenFilter, TokenStream, Tokenizer,
};
use tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument,
    Term,
};

/// Memory budget of the index writer (tantivy's minimum is 15 MB).
const WRITER_HEAP_BYTES: usize = 32 * 1024 * 1024;
/// Tokens longer than this are dropped (they are not words).
const TOKEN_BYTES_MAX: usize = 60;

pub type SearchError = tantivy::TantivyError;

/// One change to apply: index `text` under `key`, or remove `key` when `text` is `None`.
#[derive(Debug, Clone)]
pub struct DocChange {
    pub key: String,
    /// The record's update time; text hits come back ordered by it without a store read.
    pub updated_ms: u64,
    pub text: Option<String>,
}

/// One text hit: the record's author and id, and its update time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub author: NodeId,
    pub record: RecordId,
    pub updated_ms: u64,
}

/// The key a record has in the index: its author and id in hex, `AUTHOR/RECORD`.
pub fn doc_key(author: &NodeId, record: &RecordId) -> String {
    format!("{}/{}", author.to_hex(), record.to_hex())
}

/// The author and id a [`doc_key`] names (`None`: not one).
fn parse_doc_key(key: &[u8]) -> Option<(NodeId, RecordId)> {
    let (author_hex, rest) = key.split_at_checked(64)?;
    let record_hex = rest.strip_prefix(b"/")?;
    let (mut author, mut record) = (NodeId([0; 32]), RecordId([0; 16]));
    unhex(author_hex, &mut author.0)?;
    unhex(record_hex, &mut record.0)?;
    Some((author, record))
}

/// Each byte's value as a lower-case hex digit, or `0xff` (what `doc_key` writes).
const HEX_DIGITS: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// `src` (lower-case hex, twice as long as `dst`) into `dst`; `None` if it is not that. One
/// table lookup a digit: a search decodes a key per hit.
fn unhex(src: &[u8], dst: &mut [u8]) -> Option<()> {
    if src.len() != dst.len() * 2 {
        return None;
    }
    let mut bad = 0u8;
    for (out, pair) in dst.iter_mut().zip(src.chunks_exact(2)) {
        let (hi, lo) = (HEX_DIGITS[pair[0] as usize], HEX_DIGITS[pair[1] as usize]);
        bad |= hi | lo;
        *out = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0xf0 == 0).then_some(())
}

/// Collects every matching document's key and update time from the fast fields: a segment's
/// key ordinals are sorted and read from its dictionary in one pass (a lookup each would open
/// a dictionary block per hit).
struct KeyCollector;

struct SegmentKeys {
    keys: Option<StrColumn>,
    updated: Column<u64>,
    /// (key ordinal, update time) of each hit.
    found: Vec<(u64, u64)>,
}

impl Collector for KeyCollector {
    type Fruit = Vec<Hit>;
    type Child = SegmentKeys;

    fn for_segment(&self, _: u32, reader: &SegmentReader) -> tantivy::Result<SegmentKeys> {
        let fast = reader.fast_fields();
        Ok(SegmentKeys {
            keys: fast.str("key")?,
            updated: fast.u64("updated_ms")?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<std::io::Result<Vec<Hit>>>) -> tantivy::Result<Vec<Hit>> {
        let mut out = Vec::new();
        for fruit in fruits {
            out.append(&mut fruit?);
        }
        Ok(out)
    }
}

impl SegmentCollector for SegmentKeys {
    type Fruit = std::io::Result<Vec<Hit>>;

    fn collect(&mut self, doc: DocId, _: Score) {
        if let Some(ord) = self.keys.as_ref().and_then(|k| k.term_ords(doc).next()) {
            self.found.push((ord, self.updated.first(doc).unwrap_or(0)));
        }
    }

    fn harvest(mut self) -> std::io::Result<Vec<Hit>> {
        let Some(keys) = self.keys else {
            return Ok(Vec::new());
        };
        self.found.sort_unstable();
        let mut out = Vec::with_capacity(self.found.len());
        let mut times = self.found.iter().map(|(_, t)| *t);
        keys.dictionary()
            .sorted_ords_to_term_cb(self.found.iter().map(|(o, _)| *o), |bytes| {
                if let (Some((author, record)), Some(updated_ms)) =
                    (parse_doc_key(bytes), times.next())
                {
                    out.push(Hit {
                        author,
                        record,
                        updated_ms,
                    });
                }
                Ok(())
            })?;
        Ok(out)
    }
}

/// How the index's background work goes, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexHealth {
    /// Changes applied to the store, not yet committed to the index.
    pub changes_pending: u64,
    /// Segments that held deleted documents at the last check (their words are still in the
    /// index).
    pub segments_with_deletes: u64,
    /// Merges that took deleted documents out.
    pub merges: u64,
    /// Failed commits, and failed merges (or checks for one).
    pub commit_failures: u64,
    pub merge_failures: u64,
}

/// The full-text index of one node.
pub struct SearchIndex {
    index: Index,
    /// When segments holding deleted documents were last merged away.
    last_expunge: Mutex<Option<std::time::Instant>>,
    reader: IndexReader,
    /// `None` after a failed commit dropped it (the next use opens a new one) and while
    /// dropping.
    writer: Mutex<Option<IndexWriter>>,
    segments_with_deletes: AtomicU64,
    merges: AtomicU64,
    merge_failures: AtomicU64,
    key: Field,
    updated: Field,
    body_sv: Field,
    body_en: Field,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

/// The index's two languages: tantivy's name of each (for its stop words) and its Snowball
/// stemmer.
const SWEDISH: (Language, rust_stemmers::Algorithm) =
    (Language::Swedish, rust_stemmers::Algorithm::Swedish);
const ENGLISH: (Language, rust_stemmers::Algorithm) =
    (Language::English, rust_stemmers::Algorithm::English);

fn analyzer((language, algorithm): (Language, rust_stemmers::Algorithm)) -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(TOKEN_BYTES_MAX))
        .filter(LowerCaser);
    let stemmer = CachedStemmer(algorithm);
    match StopWordFilter::new(language) {
        Some(stop) => builder.filter(stop).filter(stemmer).build(),
        None => builder.filter(stemmer).build(),
    }
}

/// Words whose stems one analyzer remembers: a fixed table, a word's slot chosen by its hash,
/// a new word taking the slot of the one before it. Its memory is this many short words,
/// allocated once.
pub const STEM_CACHE_SLOTS: usize = 8 * 1024;
/// Texts an analyzer stems before it makes its table: a query (a few words, a fresh analyzer
/// each) never pays for one; a segment being written makes it at its second document.
pub const STEM_CACHE_AFTER_TEXTS: usize = 1;

/// The Snowball stemmer of tantivy's `Stemmer` filter, remembering the stems of recent words:
/// a record's words are mostly common ones, and stemming a word costs far more than finding
/// it in the table. The stems are exactly the stemmer's. The table lives as long as the
/// analyzer (tantivy clones one per segment being written, and one per query).
#[derive(Clone, Copy)]
struct CachedStemmer(rust_stemmers::Algorithm);

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        let algorithm = self.0;
        CachedStemmerFilter {
            algorithm,
            inner,
            texts: 0,
            stems: Vec::new(),
        }
    }
}

/// One slot of the table: a word and its stem (both empty while unused).
#[derive(Default)]
struct StemSlot {
    word: String,
    stem: String,
}

struct CachedStemmerFilter<T> {
    algorithm: rust_stemmers::Algorithm,
    inner: T,
    /// Texts analysed so far.
    texts: usize,
    /// [`STEM_CACHE_SLOTS`] slots once [`STEM_CACHE_AFTER_TEXTS`] texts were analysed; empty
    /// before (each word is stemmed).
    stems: Vec<StemSlot>,
}

impl<T: Clone> Clone for CachedStemmerFilter<T> {
    /// A clone starts with nothing remembered.
    fn clone(&self) -> Self {
        CachedStemmerFilter {
            algorithm: self.algorithm,
            inner: self.inner.clone(),
            texts: 0,
            stems: Vec::new(),
        }
    }
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        if self.stems.is_empty() && self.texts >= STEM_CACHE_AFTER_TEXTS {
            self.stems.resize_with(STEM_CACHE_SLOTS, StemSlot::default);
        }
        self.texts = self.texts.saturating_add(1);
        CachedStemStream {
            tail: self.inner.token_stream(text),
            stemmer: rust_stemmers::Stemmer::create(self.algorithm),
            stems: &mut self.stems,
        }
    }
}

/// The slot of `word`: FNV-1a of its bytes.
fn stem_slot(word: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h as usize) % STEM_CACHE_SLOTS
}

struct CachedStemStream<'a, S> {
    tail: S,
    stemmer: rust_stemmers::Stemmer,
    stems: &'a mut [StemSlot],
}

impl<S: TokenStream> TokenStream for CachedStemStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        let Some(slot) = self.stems.get_mut(stem_slot(&token.text)) else {
            // No table yet: stem without remembering.
            token.text = self.stemmer.stem(&token.text).into_owned();
            return true;
        };
        if slot.word != token.text || slot.word.is_empty() {
            let stem = self.stemmer.stem(&token.text);
            slot.stem.clear();
            slot.stem.push_str(&stem);
            slot.word.clear();
            slot.word.push_str(&token.text);
        }
        token.text.clear();
        token.text.push_str(&slot.stem);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

struct Fields {
    key: Field,
    updated: Field,
    body_sv: Field,
    body_en: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // Fast fields: hits are read from columns, never from the compressed document store.
    let key = b.add_text_field("key", STRING | FAST);
    let updated = b.add_u64_field("updated_ms", FAST);
    let text = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::Basic),
        )
    };
    let body_sv = b.add_text_field("body_sv", text("spindel_sv"));
    let body_en = b.add_text_field("body_en", text("spindel_en"));
    (
        b.build(),
        Fields {
            key,
            updated,
            body_sv,
            body_en,
        },
    )
}

impl Drop for SearchIndex {
    /// Waits for tantivy's merge threads, so nothing writes into the index after the node is
    /// gone.
    fn drop(&mut self) {
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = writer
            && let Err(e) = writer.wait_merging_threads()
        {
            tracing::warn!(error = %e, "full-text index merge did not finish cleanly");
        }
    }
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if missing. Returns the index and the generation
    /// it was last committed at (`None`: new, or no readable payload).
    pub fn open(dir: &Path) -> Result<(SearchIndex, Option<u64>), SearchError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(directory, schema)?;
        // tantivy's default merge policy keeps the segment count down; `expunge_deletes`
        // merges away every segment that still holds a deleted document.
        index.tokenizers().register("spindel_sv", analyzer(SWEDISH));
        index.tokenizers().register("spindel_en", analyzer(ENGLISH));
        let generation = index
            .load_metas()?
            .payload
            .and_then(|p| p.parse::<u64>().ok());
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok((
            SearchIndex {
                index,
                last_expunge: Mutex::new(None),
                reader,
                writer: Mutex::new(Some(writer)),
                segments_with_deletes: AtomicU64::new(0),
                merges: AtomicU64::new(0),
                merge_failures: AtomicU64::new(0),
                key: fields.key,
                updated: fields.updated,
                body_sv: fields.body_sv,
                body_en: fields.body_en,
            },
            generation,
        ))
    }

    /// The index writer, opened anew if a failure dropped the last one.
    fn writer<'a>(
        &self,
        slot: &'a mut Option<IndexWriter>,
    ) -> Result<&'a mut IndexWriter, SearchError> {
        let writer = match slot.take() {
            Some(writer) => writer,
            None => {
                let writer = self.index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
                tracing::info!("full-text index writer opened again");
                writer
            }
        };
        Ok(slot.insert(writer))
    }

    /// Applies changes and commits them with `generation` as the payload. On failure nothing
    /// of them is committed and the writer is dropped (an I/O error in an indexing thread
    /// leaves tantivy's writer dead for good); the next call opens a new one, so the caller
    /// can apply the same changes again once the cause is gone.
    pub fn apply(&self, changes: &[DocChange], generation: u64) -> Result<(), SearchError> {
        let mut guard = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let committed = self.commit(&mut guard, changes, generation);
        if committed.is_err() {
            // Dropping the writer discards what it holds uncommitted and releases its lock.
            guard.take();
        }
        drop(guard);
        committed?;
        self.reader.reload()?;
        Ok(())
    }

    fn commit(
        &self,
        slot: &mut Option<IndexWriter>,
        changes: &[DocChange],
        generation: u64,
    ) -> Result<(), SearchError> {
        let writer = self.writer(slot)?;
        for change in changes {
            writer.delete_term(Term::from_field_text(self.key, &change.key));
            if let Some(text) = &change.text {
                let mut doc = TantivyDocument::default();
                doc.add_text(self.key, &change.key);
                doc.add_u64(self.updated, change.updated_ms);
                doc.add_text(self.body_sv, text);
                doc.add_text(self.body_en, text);
                writer.add_document(doc)?;
            }
        }
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&generation.to_string());
        prepared.commit()?;
        Ok(())
    }

    /// Counts of the background work (the commit failures are the caller's).
    pub fn health(&self) -> IndexHealth {
        IndexHealth {
            segments_with_deletes: self.segments_with_deletes.load(Ordering::Relaxed),
            merges: self.merges.load(Ordering::Relaxed),
            merge_failures: self.merge_failures.load(Ordering::Relaxed),
            ..IndexHealth::default()
        }
    }

    /// Merges every segment that holds deleted (or replaced) documents into a new segment
    /// without them, and removes the old segment files: until then a deleted document's terms
    /// stay in its segment. Runs at most once per `min_interval_ms` (0: now, if needed).
    /// Returns whether a merge ran. A failure (the process out of descriptors, a full disk) is
    /// counted and returned, and the next call tries again whatever the interval.
    pub fn expunge_deletes(&self, min_interval_ms: u64) -> Result<bool, SearchError> {
        {
            let mut last = self
                .last_expunge
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(t) = *last
                && t.elapsed() < std::time::Duration::from_millis(min_interval_ms)
            {
                return Ok(false);
            }
            *last = Some(std::time::Instant::now());
        }
        let merged = self.merge_deletes();
        match &merged {
            Ok(true) => {
                self.merges.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(_) => {
                self.merge_failures.fetch_add(1, Ordering::Relaxed);
                self.retry_expunge();
            }
        }
        merged
    }

    /// The next [`SearchIndex::expunge_deletes`] runs whatever its interval.
    fn retry_expunge(&self) {
        *self
            .last_expunge
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    fn merge_deletes(&self) -> Result<bool, SearchError> {
        let with_deletes: Vec<_> = self
            .index
            .searchable_segment_metas()?
            .into_iter()
            .filter(|m| m.has_deletes())
            .map(|m| m.id())
            .collect();
        self.segments_with_deletes
            .store(with_deletes.len() as u64, Ordering::Relaxed);
        if with_deletes.is_empty() {
            return Ok(false);
        }
        let merge = {
            let mut guard = self
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.writer(&mut guard)?.merge(&with_deletes)
        };
        // The merge runs on tantivy's merge thread: commits (and the store's writes waiting
        // on them) go on meanwhile. Its end also removes the files no segment uses any more.
        match merge.wait() {
            Ok(_) => {}
            Err(tantivy::TantivyError::InvalidArgument(e)) => {
                // The segments changed meanwhile: most often tantivy's own merge policy merged
                // one of them (its merge drops the deleted documents too). Not a failure; the
                // next call looks again.
                self.retry_expunge();
                tracing::debug!(error = %e, "merging deleted documents away did not run; retried");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
        self.reader.reload()?;
        self.segments_with_deletes.store(0, Ordering::Relaxed);
        tracing::debug!(
            segments = with_deletes.len(),
            "merged deleted documents out of the full-text index"
        );
        Ok(true)
    }

    /// Whether any segment's term dictionary holds `word` (by its Swedish or English stem),
    /// deleted documents included: what the erasure promise is about, where a search, which
    /// skips deleted documents, cannot tell.
    pub fn holds_word(&self, word: &str) -> Result<bool, SearchError> {
        self.reader.reload()?;
        let searcher = self.reader.searcher();
        for (field, tokenizer) in [(self.body_sv, "spindel_sv"), (self.body_en, "spindel_en")] {
            let Some(mut analyzer) = self.index.tokenizers().get(tokenizer) else {
                continue;
            };
            let mut stems = Vec::new();
            let mut stream = analyzer.token_stream(word);
            while let Some(token) = stream.next() {
                stems.push(token.text.clone());
            }
            for segment in searcher.segment_readers() {
                let terms = segment.inverted_index(field)?;
                for stem in &stems {
                    if terms.terms().get(stem.as_bytes())?.is_some() {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Drops every document (before a rebuild).
    pub fn clear(&self) -> Result<(), SearchError> {
        let mut guard = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.writer(&mut guard)?.delete_all_documents()?;
        Ok(())
    }

    /// The keys of every document matching all words of `text` (each word by its Swedish or
    /// its English stem). `None` when the text has no searchable word (only stop words or
    /// punctuation): the caller decides what that means.
    pub fn search(&self, text: &str) -> Result<Option<Vec<Hit>>, SearchError> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            // A word that is a stop word in either language ("och", "the") is skipped.
            let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            let mut stop_word = false;
            for (field, tokenizer) in [(self.body_sv, "spindel_sv"), (self.body_en, "spindel_en")] {
                let Some(mut analyzer) = self.index.tokenizers().get(tokenizer) else {
                    continue;
                };
                let mut stream = analyzer.token_stream(word);
                let mut produced = false;
                while let Some(token) = stream.next() {
                    produced = true;
                    let term = Term::from_field_text(field, &token.text);
                    alternatives.push((
                        Occur::Should,
                        Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    ));
                }
                stop_word |= !produced;
            }
            if !stop_word && !alternatives.is_empty() {
                clauses.push((Occur::Must, Box::new(BooleanQuery::new(alternatives))));
            }
        }
        if clauses.is_empty() {
            return Ok(None);
        }
        let query = BooleanQuery::new(clauses);
        Ok(Some(self.reader.searcher().search(&query, &KeyCollector)?))
    }

    /// Number of documents in the last committed state.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document key of test record `name` (one letter), and back.
    fn test_key(name: &str) -> String {
        doc_key(&NodeId([name.as_bytes()[0]; 32]), &RecordId([0; 16]))
    }

    fn test_name(hit: Hit) -> String {
        char::from(hit.author.0[0]).to_string()
    }

    /// The tokens `analyzer` makes of `text`.
    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyzer
            .token_stream(text)
            .process(&mut |t| out.push(t.text.clone()));
        out
    }

    /// The remembering stemmer gives exactly tantivy's own Snowball stems, in both languages:
    /// for words seen before and new ones, across many texts through one analyzer (as a
    /// segment is written), and past [`STEM_CACHE_SLOTS`] distinct words, where new words take
    /// the slots of old ones.
    #[test]
    fn remembered_stems_are_the_stemmers_own_also_past_the_cache_bound() {
        let texts: Vec<String> = [
            "Föreningarna i regionen startade kooperativ; FÖRENINGEN lär sig av föreningar.",
            "Social enterprises are running cooperatives and learning from running them.",
            "Läxhjälp för nyanlända ungdomar, studiecirklar och bygdegårdarnas mötesplatser.",
            "Föreningarna i regionen startade kooperativ; FÖRENINGEN lär sig av föreningar.",
        ]
        .into_iter()
        .map(String::from)
        .chain(
            (0..4 * STEM_CACHE_SLOTS)
                .collect::<Vec<_>>()
                .chunks(500)
                .map(|c| {
                    c.iter()
                        .map(|i| format!("ordningarna{i} runnings{i}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                }),
        )
        .chain(["föreningarna running".to_string()])
        .collect();
        for pair in [SWEDISH, ENGLISH] {
            let language = pair.0;
            let builder = || {
                TextAnalyzer::builder(SimpleTokenizer::default())
                    .filter(RemoveLongFilter::limit(TOKEN_BYTES_MAX))
                    .filter(LowerCaser)
                    .filter(StopWordFilter::new(language).unwrap())
            };
            let mut theirs = builder()
                .filter(tantivy::tokenizer::Stemmer::new(language))
                .build();
            let mut ours = analyzer(pair);
            let mut words = 0;
            for text in &texts {
                let expected = tokens(&mut theirs, text);
                words += expected.len();
                assert_eq!(
                    tokens(&mut ours, text),
                    expected,
                    "{language:?}: {text:.80}"
                );
            }
            assert!(words > 8 * STEM_CACHE_SLOTS, "{words}");
        }
        let mut sv = analyzer(SWEDISH);
        assert_eq!(tokens(&mut sv, "föreningarna"), ["förening"]);
        // A query's analyzer (one text) makes no table; what it remembers later stays
        // within the table, which is filled.
        let mut filter = CachedStemmer(ENGLISH.1).transform(SimpleTokenizer::default());
        filter
            .token_stream("running cooperatives")
            .process(&mut |_| {});
        assert!(filter.stems.is_empty());
        for text in &texts {
            filter.token_stream(text).process(&mut |_| {});
        }
        assert_eq!(filter.stems.len(), STEM_CACHE_SLOTS);
        let used = filter.stems.iter().filter(|s| !s.word.is_empty()).count();
        assert!(used > STEM_CACHE_SLOTS / 2, "{used}");
    }

    #[test]
    fn a_doc_key_reads_back_and_anything_else_is_refused() {
        let (a, r) = (NodeId([0xa7; 32]), RecordId([0x1f; 16]));
        let key = doc_key(&a, &r);
        assert_eq!(parse_doc_key(key.as_bytes()), Some((a, r)));
        for bad in [
            key.replace('a', "A"),
            key.replace('/', ":"),
            key[..key.len() - 2].to_string(),
            format!("{key}0"),
            key.replacen('7', "g", 1),
        ] {
            assert_eq!(parse_doc_key(bad.as_bytes()), None, "{bad}");
        }
    }

    fn stems(language: (Language, rust_stemmers::Algorithm), text: &str) -> Vec<String> {
        let mut a = analyzer(language);
        let mut s = a.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = s.next() {
            out.push(t.text.clone());
        }
        out
    }

    #[test]
    fn swedish_inflections_share_a_stem_and_keep_a_ring() {
        assert_eq!(stems(SWEDISH, "föreningarna"), stems(SWEDISH, "förening"));
        assert_eq!(stems(SWEDISH, "Föreningar"), stems(SWEDISH, "förening"));
        // å ä ö survive: no ASCII folding before the stemmer.
        assert!(stems(SWEDISH, "näringsliv")[0].contains('ä'));
        // Stop words vanish.
        assert!(stems(SWEDISH, "och").is_empty());
        assert_eq!(
            stems(ENGLISH, "associations"),
            stems(ENGLISH, "association")
        );
    }

    /// Whether any segment's term dictionary (Swedish field) still holds `word`'s stem,
    /// deleted documents included.
    fn holds_term(index: &SearchIndex, word: &str) -> bool {
        let stem = stems(SWEDISH, word).remove(0);
        index.reader.reload().unwrap();
        let searcher = index.reader.searcher();
        searcher.segment_readers().iter().any(|segment| {
            segment
                .inverted_index(index.body_sv)
                .unwrap()
                .terms()
                .get(stem.as_bytes())
                .unwrap()
                .is_some()
        })
    }

    #[test]
    fn a_deleted_documents_words_leave_the_term_dictionaries_when_merged_away() {
        let dir = tempfile::tempdir().unwrap();
        let (index, _) = SearchIndex::open(dir.path()).unwrap();
        let doc = |key: &str, text: Option<&str>| DocChange {
            key: test_key(key),
            updated_ms: 1,
            text: text.map(str::to_string),
        };
        // Two documents in one segment, so deleting one cannot drop the segment whole.
        index
            .apply(
                &[
                    doc("a", Some("Kanariefågel Qxzvbnmxq")),
                    doc("b", Some("Bertil Grannsson metod")),
                ],
                1,
            )
            .unwrap();
        index.apply(&[doc("a", None)], 2).unwrap();
        assert!(index.search("qxzvbnmxq").unwrap().unwrap().is_empty());
        assert!(
            holds_term(&index, "qxzvbnmxq"),
            "a deleted document's words stay until a merge (the test would be blind)"
        );
        assert!(index.expunge_deletes(0).unwrap());
        assert!(!holds_term(&index, "qxzvbnmxq"));
        assert!(!holds_term(&index, "kanariefågel"));
        assert!(holds_term(&index, "grannsson"));
        assert_eq!(index.search("metod").unwrap().unwrap().len(), 1);
        // The public check says what the term dictionaries say, and the merge was counted.
        assert!(!index.holds_word("Qxzvbnmxq").unwrap());
        assert!(index.holds_word("Grannsson").unwrap());
        let health = index.health();
        assert_eq!(
            (
                health.merges,
                health.merge_failures,
                health.segments_with_deletes
            ),
            (1, 0, 0)
        );
        // Nothing left to merge; the interval is respected.
        assert!(!index.expunge_deletes(0).unwrap());
        index.apply(&[doc("b", None)], 3).unwrap();
        assert!(!index.expunge_deletes(60_000).unwrap());
    }

    /// A commit that fails (here: the index directory is gone for a while; in the field, the
    /// process out of descriptors) leaves tantivy's writer unusable: `apply` drops it, the
    /// next call opens a new one, and the same changes then commit whole. A merge that fails
    /// meanwhile is counted and runs again at the next call, whatever the interval.
    #[test]
    fn a_failed_commit_or_merge_succeeds_when_tried_again_after_the_cause_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("index");
        let (index, _) = SearchIndex::open(&dir).unwrap();
        let doc = |key: &str, text: Option<&str>| DocChange {
            key: test_key(key),
            updated_ms: 1,
            text: text.map(str::to_string),
        };
        index
            .apply(
                &[
                    doc("a", Some("Bertil metod")),
                    doc("c", Some("Cecilia metod")),
                ],
                1,
            )
            .unwrap();
        let away = tmp.path().join("away");
        std::fs::rename(&dir, &away).unwrap();
        let changes = [doc("b", Some("Kanariefågel Qxzvbnmxq")), doc("a", None)];
        assert!(index.apply(&changes, 2).is_err());
        assert!(
            index.apply(&changes, 2).is_err(),
            "no new writer while the directory is gone"
        );
        std::fs::rename(&away, &dir).unwrap();
        index.apply(&changes, 2).unwrap();
        let keys = |q: &str| -> Vec<String> {
            index
                .search(q)
                .unwrap()
                .unwrap_or_default()
                .into_iter()
                .map(test_name)
                .collect()
        };
        assert_eq!(keys("qxzvbnmxq"), ["b"]);
        assert!(keys("bertil").is_empty());
        assert_eq!(keys("cecilia"), ["c"]);
        // The deletion of "a" waits for its merge; the merge fails while the directory is
        // away, and is counted.
        std::fs::rename(&dir, &away).unwrap();
        assert!(index.expunge_deletes(60_000).is_err());
        assert_eq!(index.health().merge_failures, 1);
        std::fs::rename(&away, &dir).unwrap();
        assert!(
            index.expunge_deletes(60_000).unwrap(),
            "tried again at once after a failure"
        );
        assert!(!index.holds_word("bertil").unwrap());
        assert_eq!(index.health().segments_with_deletes, 0);
        drop(index);
        let (_, generation) = SearchIndex::open(&dir).unwrap();
        assert_eq!(generation, Some(2));
    }

    #[test]
    fn search_add_replace_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (index, generation) = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(generation, None);
        index
            .apply(
                &[
                    DocChange {
                        key: test_key("a"),
                        updated_ms: 1,
                        text: Some("Integration i föreningar".into()),
                    },
                    DocChange {
                        key: test_key("b"),
                        updated_ms: 2,
                        text: Some("Social enterprises and associations".into()),
                    },
                ],
                2,
            )
            .unwrap();
        let hits = |q: &str| {
            let mut v: Vec<String> = index
                .search(q)
                .unwrap()
                .unwrap_or_default()
                .into_iter()
                .map(test_name)
                .collect();
            v.sort();
            v
        };
        assert_eq!(hits("föreningarna"), ["a"]);
        assert_eq!(hits("association"), ["b"]);
        assert_eq!(hits("föreningarna integration"), ["a"]);
        assert_eq!(hits("integration och föreningar"), ["a"]);
        assert!(hits("föreningarna enterprise").is_empty());
        assert_eq!(index.search("och !!").unwrap(), None);
        index
            .apply(
                &[
                    DocChange {
                        key: test_key("a"),
                        updated_ms: 3,
                        text: Some("Läxhjälp".into()),
                    },
                    DocChange {
                        key: test_key("b"),
                        updated_ms: 3,
                        text: None,
                    },
                ],
                4,
            )
            .unwrap();
        assert!(hits("förening").is_empty());
        assert!(hits("association").is_empty());
        assert_eq!(hits("läxhjälpen"), ["a"]);
        assert_eq!(index.search("läxhjälp").unwrap().unwrap()[0].updated_ms, 3);
        drop(index);
        let (index, generation) = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(generation, Some(4));
        assert_eq!(index.len(), 1);
    }
}
