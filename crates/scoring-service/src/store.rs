//! Redis: the result cache and the score histogram.
//!
//! Redis is optional at run time: every call is bounded by a short timeout
//! and a failure is returned to the caller, who answers uncached and reports
//! `degraded` readiness. The connection is made lazily and dropped on error,
//! so the service picks Redis up again when it comes back.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig, IntoConnectionInfo};
use tokio::sync::Mutex;

use crate::percentile::{self, BUCKETS};
use crate::{Error, Result};

/// Key of the histogram hash.
pub const HISTOGRAM_KEY: &str = "aurum:score:histogram";

/// The cache key of an image: its sha256.
pub fn cache_key(sha256_hex: &str) -> String {
    format!("aurum:score:v1:{sha256_hex}")
}

/// A lazily connected Redis.
#[derive(Debug)]
pub struct Store {
    client: redis::Client,
    timeout: Duration,
    ttl: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Store {
    /// A store for `url` (password from `password` when given); connects on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL.
    pub fn new(
        url: &str,
        password: Option<&str>,
        timeout: Duration,
        ttl: Duration,
    ) -> Result<Self> {
        // Never print the URL as given: it may hold the password.
        let shown = service_kit::secrets::redact_url(url);
        let bad = |e: redis::RedisError| {
            Error::Config(format!(
                "REDIS_URL {shown:?} is not a redis:// URL ({}); use redis://host:port/db, with the password in REDIS_PASSWORD_FILE",
                service_kit::secrets::redact(&e.to_string())
            ))
        };
        let mut info = url.into_connection_info().map_err(bad)?;
        if let Some(p) = info.redis_settings().password() {
            service_kit::secrets::register(p);
        }
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(bad)?;
        Ok(Self {
            client,
            timeout,
            ttl,
            conn: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let c = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| Error::Redis("connect timed out".into()))?
        .map_err(|e| Error::Redis(e.to_string()))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `op` on a connection, dropping the connection if it fails.
    async fn with<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                *self.conn.lock().await = None;
                Err(Error::Redis(e.to_string()))
            }
            Err(_) => {
                *self.conn.lock().await = None;
                Err(Error::Redis("command timed out".into()))
            }
        }
    }

    /// PING.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis is unreachable.
    pub async fn ping(&self) -> Result<()> {
        self.with(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    /// The cached JSON for `key`, if any.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis is unreachable.
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_owned();
        self.with(|mut c| async move { c.get::<_, Option<String>>(key).await })
            .await
    }

    /// Caches `value` under `key` for the configured TTL.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis is unreachable.
    pub async fn put(&self, key: &str, value: &str) -> Result<()> {
        let (key, value, ttl) = (key.to_owned(), value.to_owned(), self.ttl.as_secs().max(1));
        self.with(|mut c| async move { c.set_ex::<_, _, ()>(key, value, ttl).await })
            .await
    }

    /// Adds `score` to the histogram and returns the histogram after it.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis is unreachable.
    pub async fn record(&self, score: f32) -> Result<[u64; BUCKETS]> {
        let field = percentile::bucket(score).to_string();
        self.with(|mut c| async move {
            let (_, pairs): (i64, Vec<(String, u64)>) = redis::pipe()
                .atomic()
                .hincr(HISTOGRAM_KEY, field, 1)
                .hgetall(HISTOGRAM_KEY)
                .query_async(&mut c)
                .await?;
            Ok(percentile::from_pairs(pairs))
        })
        .await
    }

    /// The histogram as it is.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when Redis is unreachable.
    pub async fn histogram(&self) -> Result<[u64; BUCKETS]> {
        self.with(|mut c| async move {
            let pairs: Vec<(String, u64)> = c.hgetall(HISTOGRAM_KEY).await?;
            Ok(percentile::from_pairs(pairs))
        })
        .await
    }
}
