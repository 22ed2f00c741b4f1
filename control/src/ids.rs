//! Resource ids: `<prefix>_<12 hex ms timestamp><20 hex random>`.
//!
//! The timestamp leads so that ids sort in creation order; cursor pagination orders by id and
//! can therefore use the last id of a page as the cursor without a separate sort key.

/// Random bytes from the OS. Failure of the OS RNG is unrecoverable for a server that mints
/// secrets, so it aborts loudly rather than minting weak ids.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("OS random number generator unavailable");
    buf
}

/// A new time-ordered id with the given prefix (`agt`, `task`, `call`, …).
pub fn new_id(prefix: &str) -> String {
    let ms = crate::timestamps::now_ms() as u64 & 0xFFFF_FFFF_FFFF;
    let rand: [u8; 10] = random_bytes();
    format!("{prefix}_{ms:012x}{}", hex::encode(rand))
}

/// Whether `s` looks like an id minted by [`new_id`] with this prefix. Lets handlers answer
/// 404 for garbage ids without a database round trip.
pub fn looks_like(prefix: &str, s: &str) -> bool {
    s.len() == prefix.len() + 33
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()] == b'_'
        && s[prefix.len() + 1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_and_validate() {
        let a = new_id("agt");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("agt");
        assert!(a < b);
        assert!(looks_like("agt", &a));
        assert!(!looks_like("agt", "agt_xyz"));
        assert!(!looks_like("task", &a));
    }
}
