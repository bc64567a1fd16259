//! Qdrant over its REST API: one 512-d cosine collection, one point per user.
//!
//! Qdrant point ids must be integers or UUIDs, so a user id becomes the UUID
//! made of the first 16 bytes of its sha256; the id itself is kept in the
//! payload and returned by searches.

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::{Error, Result};

/// Embedding length.
pub const DIM: usize = 512;

/// A Qdrant collection.
#[derive(Debug)]
pub struct Qdrant {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
    collection: String,
    created: OnceCell<()>,
}

/// A nearest user.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Similar {
    /// Their user id.
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Cosine similarity.
    pub similarity: f32,
}

/// The point id of a user id.
pub fn point_id(user_id: &str) -> String {
    let h = Sha256::digest(user_id.as_bytes());
    let x: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

impl Qdrant {
    /// A client for `base` (e.g. http://qdrant:6333) and `collection`.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        api_key: Option<String>,
        collection: &str,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            collection: collection.to_owned(),
            created: OnceCell::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.api_key {
            request = request.header("api-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| Error::Upstream {
            service: "qdrant",
            detail: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized {
                service: "qdrant",
                status,
                fix: if self.api_key.is_some() {
                    "the API key is wrong: set QDRANT_API_KEY_FILE (or QDRANT_API_KEY) to the key Qdrant was started with"
                } else {
                    "Qdrant requires an API key: set QDRANT_API_KEY_FILE (or QDRANT_API_KEY)"
                },
            });
        }
        let value = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn ensure_collection(&self) -> Result<()> {
        self.created
            .get_or_try_init(|| async {
                let path = format!("/collections/{}", self.collection);
                let (status, _) = self.call(reqwest::Method::GET, &path, None).await?;
                if status == 200 {
                    return Ok(());
                }
                let body = json!({"vectors": {"size": DIM, "distance": "Cosine"}});
                match self.call(reqwest::Method::PUT, &path, Some(body)).await? {
                    (200, _) => Ok(()),
                    (status, body) => Err(Error::UpstreamRejected {
                        service: "qdrant",
                        status,
                        body: body.to_string(),
                    }),
                }
            })
            .await
            .map(|_| ())
    }

    /// Stores (or replaces) the embedding of `user_id`.
    ///
    /// # Errors
    ///
    /// [`Error::Upstream`]/[`Error::UpstreamRejected`] when Qdrant fails.
    pub async fn upsert(&self, user_id: &str, embedding: &[f32]) -> Result<()> {
        self.ensure_collection().await?;
        let body = json!({"points": [{"id": point_id(user_id), "vector": embedding, "payload": {"userId": user_id}}]});
        let path = format!("/collections/{}/points?wait=true", self.collection);
        match self.call(reqwest::Method::PUT, &path, Some(body)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(Error::UpstreamRejected {
                service: "qdrant",
                status,
                body: body.to_string(),
            }),
        }
    }

    /// The `limit` users nearest to `user_id`; `None` when the user is unknown.
    ///
    /// # Errors
    ///
    /// [`Error::Upstream`]/[`Error::UpstreamRejected`] when Qdrant fails.
    pub async fn similar(&self, user_id: &str, limit: usize) -> Result<Option<Vec<Similar>>> {
        self.ensure_collection().await?;
        let path = format!("/collections/{}/points", self.collection);
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({"ids": [point_id(user_id)], "with_vector": true})),
            )
            .await?;
        if status != 200 {
            return Err(Error::UpstreamRejected {
                service: "qdrant",
                status,
                body: body.to_string(),
            });
        }
        let Some(vector) = body["result"].get(0).map(|p| p["vector"].clone()) else {
            return Ok(None);
        };
        let search = json!({"vector": vector, "limit": limit + 1, "with_payload": true});
        let path = format!("/collections/{}/points/search", self.collection);
        let (status, body) = self
            .call(reqwest::Method::POST, &path, Some(search))
            .await?;
        if status != 200 {
            return Err(Error::UpstreamRejected {
                service: "qdrant",
                status,
                body: body.to_string(),
            });
        }
        let hits = body["result"].as_array().cloned().unwrap_or_default();
        Ok(Some(
            hits.iter()
                .filter_map(|h| {
                    let user = h["payload"]["userId"].as_str()?;
                    let similarity = h["score"].as_f64()? as f32;
                    (user != user_id).then(|| Similar {
                        user_id: user.to_owned(),
                        similarity,
                    })
                })
                .take(limit)
                .collect(),
        ))
    }

    /// Whether Qdrant answers.
    pub async fn ping(&self) -> std::result::Result<String, String> {
        match self.call(reqwest::Method::GET, "/collections", None).await {
            Ok((200, _)) => Ok(format!(
                "{} reachable",
                service_kit::secrets::redact_url(&self.base)
            )),
            Ok((status, _)) => Err(format!(
                "{} answered {status}",
                service_kit::secrets::redact_url(&self.base)
            )),
            Err(e) => Err(service_kit::secrets::redact(&e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::point_id;

    #[test]
    fn point_ids_are_stable_uuids() {
        let id = point_id("user-1");
        assert_eq!(id.len(), 36);
        assert_eq!(id, point_id("user-1"));
        assert_ne!(id, point_id("user-2"));
        assert_eq!(id.matches('-').count(), 4);
    }
}
