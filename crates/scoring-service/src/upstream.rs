//! HTTP clients of the detection and embedding services.

use std::time::Duration;

use serde::Deserialize;

use crate::{Error, Result};

pub use service_kit::face::Face;

#[derive(Debug, Deserialize)]
struct Detected {
    faces: Vec<Face>,
}

#[derive(Debug, Deserialize)]
struct Embedded {
    embedding: Vec<f32>,
}

/// The two ML services.
#[derive(Clone, Debug)]
pub struct Upstream {
    http: reqwest::Client,
    detection: String,
    embedding: String,
    token: Option<service_kit::auth::ServiceToken>,
}

impl Upstream {
    /// Clients for the two base URLs, each call bounded by `timeout`,
    /// sending `token` (the shared service token) as a bearer token.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the client cannot be built.
    pub fn new(
        detection: &str,
        embedding: &str,
        timeout: Duration,
        token: Option<service_kit::auth::ServiceToken>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .map_err(|e| Error::Config(format!("http client: {e}")))?;
        let trim = |s: &str| s.trim_end_matches('/').to_owned();
        Ok(Self {
            http,
            detection: trim(detection),
            embedding: trim(embedding),
            token,
        })
    }

    async fn send(
        &self,
        service: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let request = match &self.token {
            Some(t) => request.header("authorization", t.header_value()),
            None => request,
        };
        let response = request.send().await.map_err(|e| Error::Upstream {
            service,
            detail: if e.is_timeout() {
                format!("timed out: {e}")
            } else {
                format!("unreachable: {e}")
            },
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Error::Unauthorized {
                service,
                status: status.as_u16(),
                fix: "give scoring the same SERVICE_TOKEN_FILE as the ML services",
            });
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::UpstreamRejected {
                service,
                status: status.as_u16(),
                body,
            });
        }
        Ok(response)
    }

    /// Faces in `image`.
    ///
    /// # Errors
    ///
    /// [`Error::Upstream`] when the service is unreachable or slow,
    /// [`Error::UpstreamRejected`] when it answers with an error.
    pub async fn detect(&self, image: Vec<u8>) -> Result<Vec<Face>> {
        let url = format!("{}/api/v1/detect", self.detection);
        let request = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(image);
        let response = self.send("face-detection", request).await?;
        let parsed: Detected = response.json().await.map_err(|e| Error::Upstream {
            service: "face-detection",
            detail: format!("unreadable answer: {e}"),
        })?;
        Ok(parsed.faces)
    }

    /// The embedding of the face at `landmarks` in `image`.
    ///
    /// # Errors
    ///
    /// As [`Upstream::detect`].
    pub async fn embed(&self, image: Vec<u8>, landmarks: &[[f32; 2]; 5]) -> Result<Vec<f32>> {
        let url = format!("{}/api/v1/embed", self.embedding);
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(image).file_name("image"),
            )
            .text(
                "landmarks",
                serde_json::to_string(landmarks).unwrap_or_default(),
            );
        let response = self
            .send("face-embedding", self.http.post(url).multipart(form))
            .await?;
        let parsed: Embedded = response.json().await.map_err(|e| Error::Upstream {
            service: "face-embedding",
            detail: format!("unreadable answer: {e}"),
        })?;
        Ok(parsed.embedding)
    }

    /// Whether each service answers its readiness probe: (detection, embedding).
    pub async fn ready(
        &self,
    ) -> (
        std::result::Result<String, String>,
        std::result::Result<String, String>,
    ) {
        let probe = |base: String| {
            let http = self.http.clone();
            async move {
                match http
                    .get(format!("{base}/api/ready"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => Ok(format!("{base} ready")),
                    Ok(r) => Err(format!("{base} answered {}", r.status())),
                    Err(e) => Err(format!("{base} unreachable: {e}")),
                }
            }
        };
        tokio::join!(probe(self.detection.clone()), probe(self.embedding.clone()))
    }
}
