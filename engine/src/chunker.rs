//! Sentence chunking of a streamed LLM reply: text goes to TTS a sentence at a time, so
//! the first sentence is spoken while the model is still writing the rest.

/// Accumulates tokens and hands out complete sentences.
#[derive(Debug, Default)]
pub struct SentenceChunker {
    buf: String,
}

/// A sentence ends at `.`, `!`, `?` (or `;`, `:`) followed by white space, and is at
/// least this long, so "Dr. Smith" or "3.5" rarely split and one-word sentences wait
/// for company.
const MIN_SENTENCE_CHARS: usize = 12;

impl SentenceChunker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token; returns the sentences it completed.
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.buf.push_str(token);
        let mut out = Vec::new();
        loop {
            let bytes = self.buf.as_bytes();
            let mut cut = None;
            for i in 0..bytes.len().saturating_sub(1) {
                if matches!(bytes[i], b'.' | b'!' | b'?' | b';' | b':')
                    && bytes[i + 1].is_ascii_whitespace()
                    && self.buf[..=i].trim().chars().count() >= MIN_SENTENCE_CHARS
                {
                    cut = Some(i + 1);
                    break;
                }
            }
            match cut {
                Some(i) => {
                    let sentence = self.buf[..i].trim().to_string();
                    self.buf.drain(..i);
                    if !sentence.is_empty() {
                        out.push(sentence);
                    }
                }
                None => return out,
            }
        }
    }

    /// The rest, at the end of the reply.
    pub fn finish(&mut self) -> Option<String> {
        let rest = self.buf.trim().to_string();
        self.buf.clear();
        (!rest.is_empty()).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences_as_tokens_arrive() {
        let mut c = SentenceChunker::new();
        let mut out = Vec::new();
        for t in [
            "Hello ", "there, ", "caller. ", "How ", "can I ", "help? ", "Bye",
        ] {
            out.extend(c.push(t));
        }
        assert_eq!(out, vec!["Hello there, caller.", "How can I help?"]);
        assert_eq!(c.finish().as_deref(), Some("Bye"));
        assert_eq!(c.finish(), None);
    }

    #[test]
    fn short_fragments_and_numbers_do_not_split() {
        let mut c = SentenceChunker::new();
        assert!(c.push("Dr. Smith costs 3.5 dollars").is_empty());
        assert_eq!(c.push(". Next"), vec!["Dr. Smith costs 3.5 dollars."]);
    }
}
