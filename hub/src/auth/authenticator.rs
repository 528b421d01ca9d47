//! Token → caller. Answers are cached for [`CACHE_TTL`], unknown tokens included, so a call costs
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

/// Each token hash asked about: when, and who it was (`None`: nobody valid).
type Answers = HashMap<TokenHash, (Instant, Option<Arc<Caller>>)>;

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
        self.by_hash(TokenHash::of(token)).await
    }

    /// Whether a caller admitted by token still holds a valid one (for long streams).
    pub async fn still_valid(&self, caller: &Caller) -> Result<bool, DbError> {
        match &caller.credential {
            Credential::Token(hash) => Ok(self.by_hash(hash.clone()).await?.is_some()),
            Credential::Certificate | Credential::Nobody => Ok(true),
        }
    }

    async fn by_hash(&self, hash: TokenHash) -> Result<Option<Arc<Caller>>, DbError> {
        if let Some(answer) = self.cached(&hash) {
            return Ok(answer);
        }
        let key = hash.clone();
        let row = self
            .database
            .run(move |conn| crate::db::principals::by_token_hash(conn, key.as_str()))
            .await?;
        let answer = match row.filter(|row| row.revoked_at.is_none()) {
            Some(row) => {
                let principal = principals::principal(row)
                    .map_err(|error| DbError::Invalid(error.to_string()))?;
                Some(Arc::new(Caller {
                    name: principal.name,
                    role: principal.role,
                    collector_id: principal.collector_id,
                    credential: Credential::Token(hash.clone()),
                }))
            }
            None => None,
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (Instant::now(), answer.clone()));
        Ok(answer)
    }

    fn cached(&self, hash: &TokenHash) -> Option<Option<Arc<Caller>>> {
        self.lock()
            .get(hash)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, answer)| answer.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
