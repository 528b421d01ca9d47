//! Tokens: `shub_` and 64 hex digits (32 random bytes from the operating system). The database
//! keeps only their SHA-256: a token carries 256 bits of chance, so no one can search for the
//! token behind a hash, and a slow password hash (bcrypt, argon2) would buy nothing but cost
//! on every cache miss; a plain digest also makes the hash itself the lookup key.

use std::fmt;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

pub const PREFIX: &str = "shub_";
const RANDOM_BYTES: usize = 32;

/// A token in clear. Not `Debug`/`Display`: it is shown once, by `expose`, and nowhere else.
pub struct Token(String);

impl Token {
    /// A new random token.
    pub fn generate() -> Result<Token, ring::error::Unspecified> {
        Ok(Token(format!("{PREFIX}{}", random_hex()?)))
    }

    /// The token text, to hand to the operator once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

/// The SHA-256 of a token, as stored: lower-case hex.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(hex(digest(&SHA256, token.as_bytes()).as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.0[..8])
    }
}

/// 32 bytes from the operating system as 64 hex digits (a token's secret, a session's id).
pub fn random_hex() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; RANDOM_BYTES];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Whether `text` has the shape of a token (so garbage costs no lookup).
pub fn well_formed(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 2 * RANDOM_BYTES && rest.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Why an `authorization` header was not a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerProblem {
    Missing,
    Malformed,
}

/// The token of an `authorization: Bearer TOKEN` header value.
pub fn bearer(header: Option<&[u8]>) -> Result<&str, BearerProblem> {
    let header = header.ok_or(BearerProblem::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| BearerProblem::Malformed)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(BearerProblem::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(BearerProblem::Malformed);
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_well_formed_and_hash_to_hex() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
        assert!(well_formed(a.expose()), "{}", a.expose().len());
        assert_eq!(a.hash().as_str().len(), 64);
        assert_ne!(a.hash(), b.hash());
        assert!(!a.hash().as_str().contains(&a.expose()[PREFIX.len()..]));
        // The known SHA-256 of "abc".
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!well_formed("shub_xyz"));
        assert!(!well_formed("Bearer"));
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some(b"bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(BearerProblem::Missing));
        assert_eq!(bearer(Some(b"Basic abc")), Err(BearerProblem::Malformed));
        assert_eq!(bearer(Some(b"Bearer")), Err(BearerProblem::Malformed));
        assert_eq!(bearer(Some(b"abc")), Err(BearerProblem::Malformed));
    }
}
