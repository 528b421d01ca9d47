//! Token (or registered client certificate) → caller. Answers are cached for [`CACHE_TTL`], unknown tokens included, so a call costs
//! a hash and a map lookup, not a query, and a revocation made anywhere (the CLI, another hub)
//! is honoured everywhere within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::token::{self, TokenHash};
use crate::auth::{Caller, Credential, principals};
use crate::db::{Database, DbError};

/// How long an answer about a token is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Cached answers kept at most (garbage tokens cannot grow the cache without bound).
const CACHE_MAX: usize = 10_000;

/// What a caller presented.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Token(TokenHash),
    /// A client certificate's subject (verified by TLS against `--client-ca`).
    Certificate(String),
}

/// Each credential asked about: when, and who it was (`None`: nobody valid).
type Answers = HashMap<Key, (Instant, Option<Arc<Caller>>)>;

#[derive(Clone)]
pub struct Authenticator {
    database: Database,
    cache: Arc<Mutex<Answers>>,
}

impl Authenticator {
    pub fn new(database: Database) -> Authenticator {
        Authenticator {
            database,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The caller holding `token`, or `None` for a token that is malformed, unknown or revoked.
    pub async fn caller(&self, token: &str) -> Result<Option<Arc<Caller>>, DbError> {
        if !token::well_formed(token) {
            return Ok(None);
        }
        self.look_up(Key::Token(TokenHash::of(token))).await
    }

    /// The principal a verified client certificate naming `subject` speaks as, or `None` when
    /// no principal registered it (or it was revoked).
    pub async fn certificate(&self, subject: &str) -> Result<Option<Arc<Caller>>, DbError> {
        self.look_up(Key::Certificate(subject.to_owned())).await
    }

    /// Whether a caller admitted by token or certificate still holds a valid one (for long
    /// streams).
    pub async fn still_valid(&self, caller: &Caller) -> Result<bool, DbError> {
        let key = match &caller.credential {
            Credential::Token(hash) => Key::Token(hash.clone()),
            Credential::Certificate(subject) => Key::Certificate(subject.clone()),
            Credential::Nobody => return Ok(true),
        };
        Ok(self.look_up(key).await?.is_some())
    }

    async fn look_up(&self, key: Key) -> Result<Option<Arc<Caller>>, DbError> {
        if let Some(answer) = self.cached(&key) {
            return Ok(answer);
        }
        let asked = key.clone();
        let row = self
            .database
            .run(move |conn| match &asked {
                Key::Token(hash) => crate::db::principals::by_token_hash(conn, hash.as_str()),
                Key::Certificate(subject) => {
                    crate::db::principals::by_certificate_subject(conn, subject)
                }
            })
            .await?;
        let answer = match row.filter(|row| row.revoked_at.is_none()) {
            Some(row) => {
                let principal = principals::principal(row)
                    .map_err(|error| DbError::Invalid(error.to_string()))?;
                let credential = match &key {
                    Key::Token(hash) => Credential::Token(hash.clone()),
                    Key::Certificate(subject) => Credential::Certificate(subject.clone()),
                };
                Some(Arc::new(Caller {
                    name: principal.name,
                    role: principal.role,
                    collector_id: principal.collector_id,
                    credential,
                }))
            }
            None => None,
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), answer.clone()));
        Ok(answer)
    }

    fn cached(&self, key: &Key) -> Option<Option<Arc<Caller>>> {
        self.lock()
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, answer)| answer.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
