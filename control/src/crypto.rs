//! Secrets at rest and signatures: AES-256-GCM for stored provider keys and webhook secrets,
//! SHA-256 for API key hashes, HMAC-SHA256 for webhook signatures and live-session tokens.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::ids::random_bytes;

type HmacSha256 = Hmac<Sha256>;

/// The well-known development key; its use is logged as a warning at startup.
const DEV_KEY_MATERIAL: &str = "parley-development-secret-key-do-not-use-in-production";

/// The server's master secret: encrypts data at rest and signs short-lived tokens.
#[derive(Clone)]
pub struct Secrets {
    cipher: Aes256Gcm,
    token_key: [u8; 32],
}

impl Secrets {
    /// Builds from `PARLEY_SECRET_KEY`-style material: 64 hex chars or base64 of 32 bytes are
    /// used as the key directly; any other string is hashed into one. `None` selects the
    /// development key (callers warn about it).
    pub fn from_material(material: Option<&str>) -> Secrets {
        let material = material.unwrap_or(DEV_KEY_MATERIAL);
        let key: [u8; 32] = decode_key(material).unwrap_or_else(|| sha256(material.as_bytes()));
        let token_key = sha256(&[b"parley-token-key:".as_slice(), &key].concat());
        Secrets {
            cipher: Aes256Gcm::new(&key.into()),
            token_key,
        }
    }

    /// Encrypts to `v1:<base64(nonce ‖ ciphertext ‖ tag)>`.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce: [u8; 12] = random_bytes();
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1:{}", STANDARD.encode(out))
    }

    /// Decrypts what [`encrypt`](Self::encrypt) produced; `None` if it was produced under a
    /// different key or tampered with.
    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let raw = STANDARD.decode(stored.strip_prefix("v1:")?).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self.cipher.decrypt(Nonce::from_slice(nonce), ct).ok()?;
        String::from_utf8(pt).ok()
    }

    /// A signed, expiring token: `base64url(payload).hex(hmac)`.
    pub fn sign_token(&self, payload: &str) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload);
        let sig = hmac_hex(&self.token_key, body.as_bytes());
        format!("{body}.{sig}")
    }

    /// The payload of a token signed by [`sign_token`](Self::sign_token), if the signature holds.
    pub fn verify_token(&self, token: &str) -> Option<String> {
        let (body, sig) = token.split_once('.')?;
        let expected = hex::decode(sig).ok()?;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.token_key).ok()?;
        mac.update(body.as_bytes());
        mac.verify_slice(&expected).ok()?;
        String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }
}

fn decode_key(material: &str) -> Option<[u8; 32]> {
    let bytes = if material.len() == 64 {
        hex::decode(material).ok()?
    } else {
        STANDARD.decode(material).ok()?
    };
    bytes.try_into().ok()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The webhook signature: HMAC-SHA256 over `"{timestamp}.{body}"`, hex encoded. Binding the
/// timestamp into the MAC lets receivers reject replays of old deliveries.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_round_trip_and_wrong_key() {
        let a = Secrets::from_material(Some("one"));
        let b = Secrets::from_material(Some("two"));
        let ct = a.encrypt("sk-secret");
        assert!(!ct.contains("sk-secret"));
        assert_eq!(a.decrypt(&ct).as_deref(), Some("sk-secret"));
        assert_eq!(b.decrypt(&ct), None);
        assert_eq!(a.decrypt("v1:garbage"), None);
    }

    #[test]
    fn tokens_verify_only_untampered() {
        let s = Secrets::from_material(None);
        let t = s.sign_token("{\"a\":1}");
        assert_eq!(s.verify_token(&t).as_deref(), Some("{\"a\":1}"));
        let mut bad = t.clone();
        bad.insert(0, 'x');
        assert_eq!(s.verify_token(&bad), None);
    }
}
