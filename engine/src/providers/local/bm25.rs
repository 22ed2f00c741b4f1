//! Okapi BM25 ranking over short texts, with the tokenizer the offline responder uses.
//!
//! Small on purpose: the documents are an agent's facts and knowledge passages (tens to a
//! few thousand sentences), so a plain inverted count per query is fast enough and keeps
//! the ranking easy to follow.

use std::collections::{HashMap, HashSet};

/// BM25 term-frequency saturation.
pub const K1: f32 = 1.2;
/// BM25 length normalisation.
pub const B: f32 = 0.75;

/// Words that carry no topic: function words and the fillers callers wrap questions in
/// ("can you tell me", "I would like to know").
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "been",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "for",
    "from",
    "get",
    "give",
    "had",
    "has",
    "have",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "if",
    "in",
    "is",
    "it",
    "its",
    "just",
    "know",
    "let",
    "like",
    "me",
    "my",
    "of",
    "on",
    "or",
    "our",
    "please",
    "she",
    "should",
    "so",
    "tell",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "to",
    "too",
    "um",
    "uh",
    "us",
    "want",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "i'm",
    "i'd",
    "what's",
    "it's",
    "you're",
    "we're",
    "that's",
    "there's",
    "need",
    "wanted",
    "wondering",
    "okay",
    "ok",
    "well",
    "also",
    "really",
    "very",
    "much",
    "some",
    "s",
];

fn is_stop(w: &str) -> bool {
    STOP_WORDS.contains(&w)
}

/// Light suffix stripping so "hours"/"hour" and "opening"/"open" meet. Deliberately
/// conservative: it only has to make query and document forms agree.
pub fn stem(w: &str) -> String {
    let w = w.strip_suffix("'s").unwrap_or(w);
    let n = w.len();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..n - 3]);
    }
    if n > 5 && w.ends_with("ing") {
        return w[..n - 3].to_string();
    }
    if n > 4 && w.ends_with("ed") && !w.ends_with("eed") {
        return w[..n - 2].to_string();
    }
    if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        return w[..n - 1].to_string();
    }
    w.to_string()
}

/// Lower-cased words (letters, digits, inner apostrophes), stop words kept.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let inner_apostrophe = (c == '\'' || c == '’')
            && !cur.is_empty()
            && chars.peek().is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner_apostrophe {
            if inner_apostrophe {
                cur.push('\'');
            } else {
                cur.extend(c.to_lowercase());
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Index terms of a text: words, stop words dropped, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !is_stop(w))
        .map(|w| stem(&w))
        .collect()
}

/// A tokenized document.
#[derive(Debug, Clone)]
pub struct Doc {
    tf: HashMap<String, u32>,
    len: u32,
}

impl Doc {
    pub fn new(text: &str) -> Self {
        let t = terms(text);
        let mut tf = HashMap::new();
        for w in &t {
            *tf.entry(w.clone()).or_insert(0) += 1;
        }
        Self {
            tf,
            len: t.len() as u32,
        }
    }
}

/// A BM25 index over documents borrowed from elsewhere.
#[derive(Debug)]
pub struct Index<'a> {
    docs: Vec<&'a Doc>,
    df: HashMap<&'a str, u32>,
    avg_len: f32,
}

/// One ranked document: its position in the index, its score, and how much of the
/// query it covers (matched idf / total idf of the query's known terms, 0..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: usize,
    pub score: f32,
    pub coverage: f32,
}

impl<'a> Index<'a> {
    pub fn new(docs: Vec<&'a Doc>) -> Self {
        let mut df: HashMap<&str, u32> = HashMap::new();
        let mut total = 0u64;
        for d in &docs {
            total += d.len as u64;
            for t in d.tf.keys() {
                *df.entry(t.as_str()).or_insert(0) += 1;
            }
        }
        let avg_len = if docs.is_empty() {
            1.0
        } else {
            (total as f32 / docs.len() as f32).max(1.0)
        };
        Self { docs, df, avg_len }
    }

    /// BM25's idf (the "plus one" form, never negative).
    pub fn idf(&self, term: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.df.get(term).copied().unwrap_or(0) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// Documents matching at least one query term, best first (ties: earlier first).
    pub fn search(&self, query: &str) -> Vec<Hit> {
        let q: Vec<String> = {
            let mut seen = HashSet::new();
            terms(query)
                .into_iter()
                .filter(|t| seen.insert(t.clone()))
                .collect()
        };
        let known_idf: f32 = q
            .iter()
            .filter(|t| self.df.contains_key(t.as_str()))
            .map(|t| self.idf(t))
            .sum();
        // Terms the index has never seen still count against coverage: a question about
        // something absent from the knowledge is not answered by a stray shared word.
        let unknown = q
            .iter()
            .filter(|t| !self.df.contains_key(t.as_str()))
            .count() as f32;
        let all_idf = known_idf + unknown * self.idf("\u{0}");
        let mut hits = Vec::new();
        for (i, d) in self.docs.iter().enumerate() {
            let mut score = 0.0;
            let mut matched = 0.0;
            for t in &q {
                let Some(&f) = d.tf.get(t) else { continue };
                let idf = self.idf(t);
                let f = f as f32;
                score +=
                    idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * d.len as f32 / self.avg_len));
                matched += idf;
            }
            if score > 0.0 {
                hits.push(Hit {
                    doc: i,
                    score,
                    coverage: if all_idf > 0.0 {
                        matched / all_idf
                    } else {
                        0.0
                    },
                });
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_lowercases_and_drops_stop_words() {
        assert_eq!(
            words("What's YOUR opening-hours?"),
            vec!["what's", "your", "opening", "hours"]
        );
        assert_eq!(terms("What are your opening hours?"), vec!["open", "hour"]);
    }

    #[test]
    fn ranks_the_matching_document_first() {
        let docs: Vec<Doc> = [
            "We are open from nine to five on weekdays.",
            "Our office is at 12 Harbour Street.",
            "Refunds take five business days.",
        ]
        .iter()
        .map(|t| Doc::new(t))
        .collect();
        let idx = Index::new(docs.iter().collect());
        let hits = idx.search("where is your office");
        assert_eq!(hits[0].doc, 1);
        assert!(hits[0].coverage > 0.99);
        let hits = idx.search("how long do refunds take");
        assert_eq!(hits[0].doc, 2);
        assert!(idx.search("weather tomorrow").is_empty());
    }
}
