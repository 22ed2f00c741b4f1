//! [`LocalLlm`]: the `local` chat provider, an honest offline responder.
//!
//! No network and no model weights: it answers only from what the agent knows, and says
//! so when it does not. Its knowledge is
//! - the *facts* of the system prompt: each sentence, list item or `Key: value` line,
//!   minus the instructions addressed to the agent ("You are…", "Always…", "Keep…"),
//! - optional knowledge *passages* ([`LocalLlm::with_passages`]), split into sentences.
//!
//! A user turn is handled in this order (all deterministic):
//! 1. nothing intelligible (empty, only fillers like "uh") → "Sorry, I didn't catch
//!    that. Could you say it again?";
//! 2. a goodbye ("bye", "that's all", or "no" right after "anything else?") → a reply
//!    that contains "Goodbye", so an agent's `endCallPhrases` can end the call;
//! 3. a question that the knowledge answers → the best sentence(s) by BM25
//!    ([`super::bm25`]) against the user's words, when they cover enough of the
//!    question's meaningful words (so one stray shared word is not an answer);
//! 4. greetings and thanks, with nothing else asked → a greeting / "you're welcome";
//! 5. anything else → "I'm sorry, I don't have that information."
//!
//! The reply streams as word tokens with no artificial delay. Ranking runs on a blocking
//! thread, since passages may be many.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::bm25::{self, Doc, Index};
use crate::providers::{ChatRequest, Llm, LlmEvent, LlmStream, ProviderError, Role};

const CHANNEL: usize = 64;

/// Asked for when the caller's turn held nothing usable.
pub const DIDNT_CATCH: &str = "Sorry, I didn't catch that. Could you say it again?";
/// Said when the knowledge has no answer.
pub const DONT_KNOW: &str = "I'm sorry, I don't have that information.";
/// Said on a goodbye; contains "goodbye" so end-call phrases trigger.
pub const GOODBYE: &str = "Thank you for calling. Goodbye!";
pub const WELCOME: &str = "You're welcome! Is there anything else I can help you with?";
pub const GREETING: &str = "Hello! How can I help you today?";

/// Share of the question's meaningful words (by idf) that an answer must contain.
const MIN_COVERAGE: f32 = 0.34;
/// A second sentence joins the answer when it scores this close to the first.
const SECOND_RATIO: f32 = 0.8;

/// A sentence of knowledge with its index terms.
#[derive(Debug, Clone)]
struct Fact {
    text: String,
    doc: Doc,
}

impl Fact {
    fn new(text: String) -> Self {
        let doc = Doc::new(&text);
        Self { text, doc }
    }
}

/// The offline responder. Cheap to clone (passages are shared).
#[derive(Debug, Clone, Default)]
pub struct LocalLlm {
    passages: Arc<Vec<Fact>>,
}

impl LocalLlm {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds knowledge passages (e.g. a collection's documents); each is split into
    /// sentences and indexed once, here.
    pub fn with_passages<I, S>(mut self, passages: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all: Vec<Fact> = self.passages.as_ref().clone();
        for p in passages {
            all.extend(sentences(p.as_ref()).into_iter().map(Fact::new));
        }
        self.passages = Arc::new(all);
        self
    }

    /// The reply to a conversation (what [`Llm::start`] streams). Blocking but quick.
    pub fn reply(&self, req: &ChatRequest) -> String {
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let facts: Vec<Fact> = system
            .iter()
            .flat_map(|s| facts_of(s))
            .map(Fact::new)
            .collect();
        let user = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let last_assistant = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(|m| m.content.as_str())
            .unwrap_or("");
        respond(user, last_assistant, &facts, &self.passages)
    }
}

const FILLERS: &[&str] = &[
    "uh", "um", "er", "erm", "hmm", "mm", "ah", "oh", "eh", "huh", "mhm",
];
const GREETINGS: &[&str] = &[
    "hello",
    "hi",
    "hey",
    "hiya",
    "howdy",
    "greetings",
    "morning",
    "afternoon",
    "evening",
    "good",
];
const THANKS: &[&str] = &[
    "thanks",
    "thank",
    "thankyou",
    "cheers",
    "appreciate",
    "appreciated",
    "grateful",
];
const GOODBYE_WORDS: &[&str] = &["bye", "goodbye", "farewell", "byebye"];
const GOODBYE_PHRASES: &[&str] = &[
    "see you",
    "that's all",
    "that is all",
    "that's it",
    "that is it",
    "nothing else",
    "have a good day",
    "have a nice day",
    "talk to you later",
    "hang up",
    "i'm done",
    "i am done",
    "all set",
    "no more questions",
];
const NEGATIVES: &[&str] = &["no", "nope", "nah", "not"];
/// Words that may surround a greeting/thanks/goodbye without asking anything.
const POLITE: &[&str] = &[
    "you", "very", "much", "so", "a", "lot", "there", "again", "for", "your", "help", "the", "all",
    "that's", "it", "and", "ok", "okay", "great", "alright", "right", "yes", "yeah", "that", "is",
    "i", "we", "nice", "day", "have", "to", "good", "fine", "sure", "perfect",
];

fn respond(user: &str, last_assistant: &str, facts: &[Fact], passages: &[Fact]) -> String {
    let words = bm25::words(user);
    let meaningful: Vec<&String> = words
        .iter()
        .filter(|w| !FILLERS.contains(&w.as_str()))
        .collect();
    if meaningful.is_empty() {
        return DIDNT_CATCH.into();
    }
    let lower = words.join(" ");
    let has = |set: &[&str]| meaningful.iter().any(|w| set.contains(&w.as_str()));
    let phrase = GOODBYE_PHRASES.iter().any(|p| contains_phrase(&lower, p));
    let offered_more = {
        let a = last_assistant.to_lowercase();
        a.contains("anything else") || a.contains("something else")
    };
    let only = |extra: &[&[&str]]| {
        meaningful.iter().all(|w| {
            POLITE.contains(&w.as_str())
                || FILLERS.contains(&w.as_str())
                || extra.iter().any(|s| s.contains(&w.as_str()))
        })
    };
    if has(GOODBYE_WORDS)
        || phrase
        || (offered_more && has(NEGATIVES) && only(&[NEGATIVES, THANKS]))
    {
        return GOODBYE.into();
    }

    if let Some(answer) = lookup(user, facts, passages) {
        return answer;
    }
    if has(THANKS) && only(&[THANKS, GREETINGS]) {
        return WELCOME.into();
    }
    if has(GREETINGS) && only(&[GREETINGS]) && !(meaningful.len() == 1 && meaningful[0] == "good") {
        return GREETING.into();
    }
    if only(&[NEGATIVES]) {
        // "okay", "yes", "great": an acknowledgement, not a question.
        return "All right. What else can I help you with?".into();
    }
    DONT_KNOW.into()
}

fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    let h = format!(" {haystack} ");
    h.contains(&format!(" {phrase} "))
}

/// The best answer from facts and passages, if one covers enough of the question.
fn lookup(question: &str, facts: &[Fact], passages: &[Fact]) -> Option<String> {
    let all: Vec<&Fact> = facts.iter().chain(passages.iter()).collect();
    if all.is_empty() {
        return None;
    }
    let index = Index::new(all.iter().map(|f| &f.doc).collect());
    let hits = index.search(question);
    let best = *hits.first()?;
    if best.coverage < MIN_COVERAGE {
        return None;
    }
    let mut answer = spoken(&all[best.doc].text);
    if let Some(second) = hits.get(1) {
        if second.score >= best.score * SECOND_RATIO && second.coverage >= MIN_COVERAGE {
            let s = spoken(&all[second.doc].text);
            if s != answer {
                answer.push(' ');
                answer.push_str(&s);
            }
        }
    }
    Some(answer)
}

/// A fact as a spoken sentence: list markers gone, `Key: value` kept as is, a final
/// full stop added.
fn spoken(fact: &str) -> String {
    let t = fact.trim().trim_start_matches(['-', '*', '•']).trim();
    let mut s = t.to_string();
    if !s.ends_with(['.', '!', '?']) {
        s.push('.');
    }
    s
}

/// Sentences of a text: split at line breaks and at `.`/`!`/`?` followed by a space and
/// a capital, a digit or a list marker (so "e.g. this" and "$2.50" stay whole).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut start = 0;
        for i in 0..chars.len() {
            let end = matches!(chars[i], '.' | '!' | '?')
                && i + 2 < chars.len()
                && chars[i + 1] == ' '
                && (chars[i + 2].is_uppercase()
                    || chars[i + 2].is_ascii_digit()
                    || matches!(chars[i + 2], '-' | '*' | '•'));
            if end {
                out.push(chars[start..=i].iter().collect::<String>());
                start = i + 2;
            }
        }
        if start < chars.len() {
            out.push(chars[start..].iter().collect::<String>());
        }
    }
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| bm25::words(s).len() >= 2)
        .collect()
}

/// Sentence openings that instruct the agent rather than state a fact.
const INSTRUCTION_STARTS: &[&str] = &[
    "you are",
    "you're",
    "your role",
    "your job",
    "your task",
    "your name is",
    "act as",
    "always",
    "never",
    "do not",
    "don't",
    "be ",
    "keep",
    "answer",
    "respond",
    "reply",
    "speak",
    "use ",
    "avoid",
    "only",
    "if the caller",
    "if the user",
    "when the caller",
    "when the user",
    "greet",
    "ask",
    "make sure",
    "remember",
    "you must",
    "you should",
    "you can",
    "you will",
    "the following",
    "here are",
    "facts:",
    "knowledge:",
];

/// The facts of a system prompt (see the module docs).
fn facts_of(system: &str) -> Vec<String> {
    sentences(system)
        .into_iter()
        .filter(|s| {
            let l = s.trim_start_matches(['-', '*', '•', ' ']).to_lowercase();
            !INSTRUCTION_STARTS.iter().any(|p| l.starts_with(p))
        })
        .collect()
}

impl Llm for LocalLlm {
    fn name(&self) -> &str {
        "local"
    }

    fn start(&self, req: ChatRequest) -> Result<LlmStream, ProviderError> {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        let me = self.clone();
        tokio::spawn(async move {
            let job = tokio::task::spawn_blocking(move || me.reply(&req));
            let reply = tokio::select! {
                _ = c.cancelled() => return,
                r = job => match r {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(LlmEvent::Error(ProviderError::Failed {
                            provider: "local".into(),
                            message: format!("responder thread: {e}"),
                        })).await;
                        return;
                    }
                },
            };
            for w in reply.split_inclusive(' ') {
                if c.is_cancelled() || tx.send(LlmEvent::Token(w.to_string())).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(LlmEvent::Done).await;
        });
        Ok(LlmStream { events: rx, cancel })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_skip_instructions() {
        let f = facts_of(
            "You are Ava, the assistant of Acme Bank. Keep answers short.\n\
             Our branches open at 9 am. - Cards can be frozen in the app.\nPhone: 555 0100",
        );
        assert_eq!(
            f,
            vec![
                "Our branches open at 9 am.",
                "- Cards can be frozen in the app.",
                "Phone: 555 0100"
            ]
        );
    }

    #[test]
    fn sentences_keep_abbreviations_and_prices() {
        assert_eq!(
            sentences("It costs $2.50 a month, e.g. for cards. Fees apply."),
            vec!["It costs $2.50 a month, e.g. for cards.", "Fees apply."]
        );
    }
}
