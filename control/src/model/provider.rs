//! Hosted providers whose credentials a tenant can store: the shape each one's keys have, how
//! a key is shown masked, and the cheap authenticated request that tells whether a key works.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Openai,
    Anthropic,
    Deepgram,
    Elevenlabs,
    Assemblyai,
    Google,
    Cohere,
    /// `ACCOUNT_SID:AUTH_TOKEN`.
    Twilio,
}

pub const ALL: &[Provider] = &[
    Provider::Openai,
    Provider::Anthropic,
    Provider::Deepgram,
    Provider::Elevenlabs,
    Provider::Assemblyai,
    Provider::Google,
    Provider::Cohere,
    Provider::Twilio,
];

/// How a probe request carries the key.
pub enum Auth {
    Bearer,
    /// `Authorization: Token KEY` (Deepgram).
    Token,
    /// `Authorization: KEY` (AssemblyAI).
    Raw,
    Header(&'static str),
    /// `?key=KEY` (Google).
    Query(&'static str),
    /// HTTP basic auth from `USER:PASSWORD`.
    Basic,
}

/// An authenticated, side-effect-free request that succeeds only with a valid key.
pub struct Probe {
    pub default_base: &'static str,
    /// Path under the base; `{user}` is replaced by the part of a `USER:PASSWORD` key before
    /// the colon.
    pub path: &'static str,
    pub auth: Auth,
    pub extra_headers: &'static [(&'static str, &'static str)],
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}
fn is_token_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Provider {
    pub fn parse(s: &str) -> Option<Provider> {
        ALL.iter().copied().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Deepgram => "deepgram",
            Provider::Elevenlabs => "elevenlabs",
            Provider::Assemblyai => "assemblyai",
            Provider::Google => "google",
            Provider::Cohere => "cohere",
            Provider::Twilio => "twilio",
        }
    }

    /// What this provider's keys look like, for error messages.
    pub fn format_hint(self) -> &'static str {
        match self {
            Provider::Openai => "`sk-` followed by 20–250 letters, digits, `-` or `_`",
            Provider::Anthropic => "`sk-ant-` followed by letters, digits, `-` or `_`",
            Provider::Deepgram => "40 hexadecimal characters",
            Provider::Elevenlabs => {
                "32 hexadecimal characters, or `sk_` followed by 32–64 hexadecimal characters"
            }
            Provider::Assemblyai => "32 hexadecimal characters",
            Provider::Google => "`AIza` followed by 35 letters, digits, `-` or `_`",
            Provider::Cohere => "40 letters and digits",
            Provider::Twilio => {
                "`ACCOUNT_SID:AUTH_TOKEN`: `AC` and 32 hexadecimal characters, a colon, 32 hexadecimal characters"
            }
        }
    }

    /// Whether `key` has this provider's key format.
    pub fn format_ok(self, key: &str) -> bool {
        let n = key.len();
        match self {
            Provider::Anthropic => key
                .strip_prefix("sk-ant-")
                .is_some_and(|r| (20..=250).contains(&r.len()) && is_token_chars(r)),
            Provider::Openai => {
                !key.starts_with("sk-ant-")
                    && key
                        .strip_prefix("sk-")
                        .is_some_and(|r| (20..=250).contains(&r.len()) && is_token_chars(r))
            }
            Provider::Deepgram => n == 40 && is_hex(key),
            Provider::Elevenlabs => {
                (n == 32 && is_hex(key))
                    || key
                        .strip_prefix("sk_")
                        .is_some_and(|r| (32..=64).contains(&r.len()) && is_hex(r))
            }
            Provider::Assemblyai => n == 32 && is_hex(key),
            Provider::Google => key
                .strip_prefix("AIza")
                .is_some_and(|r| r.len() == 35 && is_token_chars(r)),
            Provider::Cohere => n == 40 && key.bytes().all(|b| b.is_ascii_alphanumeric()),
            Provider::Twilio => key.split_once(':').is_some_and(|(sid, token)| {
                sid.len() == 34
                    && sid.starts_with("AC")
                    && is_hex(&sid[2..])
                    && token.len() == 32
                    && is_hex(token)
            }),
        }
    }

    /// The part of a key that is safe to show: the provider's public prefix (and the Twilio
    /// account SID's start), then `…` and the last four characters.
    pub fn mask(self, key: &str) -> String {
        let prefix = match self {
            Provider::Anthropic if key.starts_with("sk-ant-") => "sk-ant-",
            Provider::Openai if key.starts_with("sk-proj-") => "sk-proj-",
            Provider::Openai if key.starts_with("sk-") => "sk-",
            Provider::Elevenlabs if key.starts_with("sk_") => "sk_",
            Provider::Google if key.starts_with("AIza") => "AIza",
            Provider::Twilio if key.starts_with("AC") => "AC",
            _ => "",
        };
        format!("{prefix}…{}", last4(key))
    }

    pub fn probe(self) -> Probe {
        let p = |default_base, path, auth| Probe {
            default_base,
            path,
            auth,
            extra_headers: &[],
        };
        match self {
            Provider::Openai => p("https://api.openai.com", "/v1/models", Auth::Bearer),
            Provider::Anthropic => Probe {
                extra_headers: &[("anthropic-version", "2023-06-01")],
                ..p(
                    "https://api.anthropic.com",
                    "/v1/models",
                    Auth::Header("x-api-key"),
                )
            },
            Provider::Deepgram => p("https://api.deepgram.com", "/v1/projects", Auth::Token),
            Provider::Elevenlabs => p(
                "https://api.elevenlabs.io",
                "/v1/user",
                Auth::Header("xi-api-key"),
            ),
            Provider::Assemblyai => p(
                "https://api.assemblyai.com",
                "/v2/transcript?limit=1",
                Auth::Raw,
            ),
            Provider::Google => p(
                "https://generativelanguage.googleapis.com",
                "/v1beta/models",
                Auth::Query("key"),
            ),
            Provider::Cohere => p("https://api.cohere.com", "/v1/models", Auth::Bearer),
            Provider::Twilio => p(
                "https://api.twilio.com",
                "/2010-04-01/Accounts/{user}.json",
                Auth::Basic,
            ),
        }
    }
}

/// The last four characters (fewer for very short strings, which never pass a format check).
pub fn last4(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let hex40 = "0123456789abcdef0123456789abcdef01234567";
        let hex32 = "0123456789abcdef0123456789abcdef";
        assert!(Provider::Openai.format_ok("sk-proj-abcdefghijklmnopqrstuvwxyz012345"));
        assert!(!Provider::Openai.format_ok("sk-short"));
        assert!(!Provider::Openai.format_ok("sk-ant-api03-abcdefghijklmnopqrstuvwxyz"));
        assert!(Provider::Anthropic.format_ok("sk-ant-api03-abcdefghijklmnopqrstuvwxyz"));
        assert!(Provider::Deepgram.format_ok(hex40));
        assert!(!Provider::Deepgram.format_ok(hex32));
        assert!(!Provider::Deepgram.format_ok(&hex40.replace('a', "g")));
        assert!(Provider::Elevenlabs.format_ok(hex32));
        assert!(Provider::Elevenlabs.format_ok(&format!("sk_{hex40}abcdef01")));
        assert!(!Provider::Elevenlabs.format_ok(hex40));
        assert!(Provider::Google.format_ok("AIzaSyA-1234567890abcdefghijklmnopqrstu"));
        assert!(Provider::Twilio.format_ok(&format!("AC{hex32}:{hex32}")));
        assert!(!Provider::Twilio.format_ok(hex32));
        assert_eq!(
            Provider::Openai.mask("sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
            "sk-proj-…2345"
        );
        assert_eq!(Provider::Deepgram.mask(hex40), "…4567");
        assert_eq!(Provider::parse("deepgram"), Some(Provider::Deepgram));
        assert_eq!(Provider::parse("nope"), None);
    }
}
