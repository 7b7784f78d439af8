//! Where updates come from: a Releaser (the psvc protocol) or a static
//! HTTP mirror (nginx), tried in order.
//!
//! Both carry the same files: TUF metadata and consistent-snapshot target
//! files. Nothing a source says is trusted until tough has verified it
//! against the shipped `root.json`; a source only moves bytes.

use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::frame::Status;
use tokio::io::AsyncRead;
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// Largest metadata file fetched from a Releaser (tough's own cap for
/// targets metadata is 10 MiB).
pub const MAX_METADATA: usize = 16 << 20;

/// Why a source failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source string is not `vsoa://HOST:PORT` or `http(s)://…/`.
    #[error("bad update source {0:?} (vsoa://HOST:PORT or http://HOST:PORT/PATH/)")]
    Parse(String),
    /// The source cannot be reached or failed mid-way.
    #[error("{source_name}: {message}")]
    Unavailable {
        /// The source.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// The source does not have the file.
    #[error("{source_name}: no {file}")]
    NotFound {
        /// The source.
        source_name: String,
        /// The file.
        file: String,
    },
}

/// An update source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Releaser at `host:port`.
    Releaser {
        /// `host:port`.
        addr: String,
        /// Its password.
        password: Option<String>,
    },
    /// A static mirror: `<base>metadata/…` and `<base>targets/…`.
    Http {
        /// The base URL, ending with `/`.
        base: Url,
    },
}

impl FromStr for Source {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, SourceError> {
        let bad = || SourceError::Parse(s.to_owned());
        if let Some(rest) = s
            .strip_prefix("vsoa://")
            .or_else(|| s.strip_prefix("psvc://"))
        {
            let addr = rest.trim_end_matches('/');
            if addr.is_empty() || addr.contains('/') {
                return Err(bad());
            }
            return Ok(Source::Releaser {
                addr: addr.to_owned(),
                password: None,
            });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let with_slash = if s.ends_with('/') {
                s.to_owned()
            } else {
                format!("{s}/")
            };
            let base = Url::parse(&with_slash).map_err(|_| bad())?;
            return Ok(Source::Http { base });
        }
        Err(bad())
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Releaser { addr, .. } => write!(f, "vsoa://{addr}"),
            Source::Http { base } => write!(f, "{base}"),
        }
    }
}

/// Whether a download continues where asked or starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The bytes start at the requested offset.
    Ranged,
    /// The source ignored the offset: the bytes start at 0.
    FromStart,
}

/// A byte stream from a source.
pub type Body = Pin<Box<dyn AsyncRead + Send>>;

impl Source {
    /// With a password (Releaser sources).
    pub fn password(mut self, pw: Option<String>) -> Source {
        if let Source::Releaser { password, .. } = &mut self {
            *password = pw;
        }
        self
    }

    fn unavailable(&self, message: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable {
            source_name: self.to_string(),
            message: message.to_string(),
        }
    }

    /// Base URL of the metadata, for tough.
    ///
    /// # Errors
    /// The URL cannot be made.
    pub fn metadata_url(&self) -> Result<Url, SourceError> {
        self.url("metadata/")
    }

    /// Base URL of the target files, for tough.
    ///
    /// # Errors
    /// The URL cannot be made.
    pub fn targets_url(&self) -> Result<Url, SourceError> {
        self.url("targets/")
    }

    fn url(&self, dir: &str) -> Result<Url, SourceError> {
        match self {
            Source::Releaser { addr, .. } => {
                Url::parse(&format!("psvc://{addr}/{dir}")).map_err(|e| self.unavailable(e))
            }
            Source::Http { base } => base.join(dir).map_err(|e| self.unavailable(e)),
        }
    }

    /// The tough transport for this source.
    pub fn transport(&self, timeout: Duration) -> SourceTransport {
        SourceTransport(match self {
            Source::Releaser { .. } => Inner::Psvc(PsvcTransport {
                source: self.clone(),
                timeout,
            }),
            Source::Http { .. } => Inner::Http(Box::new(
                tough::HttpTransportBuilder::new()
                    .timeout(timeout)
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .tries(2)
                    .build(),
            )),
        })
    }

    async fn client(&self, timeout: Duration) -> Result<Client, SourceError> {
        let Source::Releaser { addr, password } = self else {
            return Err(self.unavailable("not a Releaser"));
        };
        let mut options = ClientOptions::new(addr.clone())
            .connect_timeout(timeout)
            .request_timeout(timeout);
        if let Some(pw) = password {
            options = options.password(pw);
        }
        Client::connect(options)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// Sends `report` to a Releaser (`/release/report`).
    ///
    /// # Errors
    /// Not a Releaser source, unreachable, or the report was refused.
    pub async fn report(
        &self,
        report: &crate::release::releaser::Report,
        timeout: Duration,
    ) -> Result<(), SourceError> {
        let client = self.client(timeout).await?;
        let rpc = Rpc::set("/release/report")
            .json(report)
            .map_err(|e| self.unavailable(e))?
            .timeout(timeout);
        let reply = client.rpc(rpc).await.map_err(|e| self.unavailable(e));
        client.close();
        let reply = reply?;
        if reply.status != Status::OK {
            return Err(self.unavailable(format!(
                "report refused, status {}: {}",
                reply.status.0,
                String::from_utf8_lossy(&reply.param)
            )));
        }
        Ok(())
    }

    /// Opens the repository file `dir/name` (`dir` is `metadata` or
    /// `targets`) from byte `offset`.
    ///
    /// # Errors
    /// The source is unreachable or has no such file.
    pub async fn open(
        &self,
        dir: &str,
        name: &str,
        offset: u64,
        timeout: Duration,
    ) -> Result<(Body, Resume), SourceError> {
        match self {
            Source::Releaser { .. } => {
                let client = self.client(timeout).await?;
                let kind = if dir == "metadata" {
                    "metadata"
                } else {
                    "file"
                };
                let rpc = Rpc::get("/release/file")
                    .json(&serde_json::json!({ "kind": kind, "name": name, "offset": offset }))
                    .map_err(|e| self.unavailable(e))?
                    .timeout(timeout);
                let reply = client.rpc(rpc).await.map_err(|e| self.unavailable(e))?;
                if reply.status == Status::INVALID_URL {
                    return Err(SourceError::NotFound {
                        source_name: self.to_string(),
                        file: format!("{dir}/{name}"),
                    });
                }
                if reply.status != Status::OK {
                    return Err(self.unavailable(format!(
                        "status {}: {}",
                        reply.status.0,
                        String::from_utf8_lossy(&reply.param)
                    )));
                }
                let stream = client
                    .open_stream(&reply)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                // The stream is independent of the RPC connection.
                client.close();
                Ok((Box::pin(stream), Resume::Ranged))
            }
            Source::Http { base } => {
                let url = base
                    .join(&format!("{dir}/{name}"))
                    .map_err(|e| self.unavailable(e))?;
                let client = reqwest::Client::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .read_timeout(timeout)
                    .build()
                    .map_err(|e| self.unavailable(e))?;
                let mut request = client.get(url.clone());
                if offset > 0 {
                    request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
                }
                let response = request.send().await.map_err(|e| self.unavailable(e))?;
                let resume = match response.status() {
                    reqwest::StatusCode::PARTIAL_CONTENT => Resume::Ranged,
                    reqwest::StatusCode::OK => {
                        if offset > 0 {
                            Resume::FromStart
                        } else {
                            Resume::Ranged
                        }
                    }
                    reqwest::StatusCode::NOT_FOUND => {
                        return Err(SourceError::NotFound {
                            source_name: self.to_string(),
                            file: format!("{dir}/{name}"),
                        });
                    }
                    other => return Err(self.unavailable(format!("{url}: HTTP {other}"))),
                };
                let body =
                    futures::TryStreamExt::map_err(response.bytes_stream(), std::io::Error::other);
                Ok((Box::pin(tokio_util::io::StreamReader::new(body)), resume))
            }
        }
    }
}

/// tough's transport for a [`Source`].
#[derive(Debug, Clone)]
pub struct SourceTransport(Inner);

#[derive(Debug, Clone)]
enum Inner {
    Psvc(PsvcTransport),
    Http(Box<tough::HttpTransport>),
}

#[tough::async_trait]
impl Transport for SourceTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        match &self.0 {
            Inner::Psvc(t) => t.fetch(url).await,
            Inner::Http(t) => t.fetch(url).await,
        }
    }
}

/// tough's transport over the psvc protocol: `psvc://HOST:PORT/metadata/F`
/// is the Releaser's `/release/file` stream of metadata `F`.
#[derive(Debug, Clone)]
struct PsvcTransport {
    source: Source,
    timeout: Duration,
}

#[tough::async_trait]
impl Transport for PsvcTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        let other = |e: SourceError| {
            TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e)
        };
        let path = url.path().trim_start_matches('/');
        let (dir, name) = path.split_once('/').ok_or_else(|| {
            TransportError::new(TransportErrorKind::UnsupportedUrlScheme, url.as_str())
        })?;
        let (mut body, _) = match self.source.open(dir, name, 0, self.timeout).await {
            Ok(b) => b,
            Err(SourceError::NotFound { .. }) => {
                return Err(TransportError::new(
                    TransportErrorKind::FileNotFound,
                    url.as_str(),
                ));
            }
            Err(e) => return Err(other(e)),
        };
        // Metadata is small: read it whole (bounded), then hand tough one chunk.
        let mut buf = Vec::new();
        let mut limited = tokio::io::AsyncReadExt::take(&mut body, MAX_METADATA as u64 + 1);
        tokio::time::timeout(
            self.timeout,
            tokio::io::AsyncReadExt::read_to_end(&mut limited, &mut buf),
        )
        .await
        .map_err(|_| other(self.source.unavailable("timed out")))?
        .map_err(|e| other(self.source.unavailable(e)))?;
        if buf.len() > MAX_METADATA {
            return Err(other(self.source.unavailable(format!(
                "{name} is larger than {MAX_METADATA} bytes"
            ))));
        }
        let chunk: Result<Bytes, TransportError> = Ok(Bytes::from(buf));
        Ok(Box::pin(futures::stream::once(async move { chunk })))
    }
}
