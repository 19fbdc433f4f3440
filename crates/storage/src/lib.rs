//! Files in S3-compatible object storage, through one path: aws-sdk-s3.
//!
//! Operators point Musubi at MinIO, Ceph, SeaweedFS, a Japanese cloud's object store or AWS
//! itself ([`Settings`]); without a store configured, Musubi runs one in process over the data
//! directory ([`embedded`]), so the demo, the tests and production exercise the same client
//! code. Checksums are sent and checked only where a store requires them, and addressing is
//! path-style by default: both are what third-party stores accept most widely.
//!
//! Keys are chosen by the caller and must reveal nothing about a patient (see the domain's
//! files module: `a/<association id>/<random id>`).

pub mod embedded;

use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use musubi_config::Secret;
use std::path::Path;
use std::time::Duration;

/// Where the files are kept.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://s3.example.jp`; the store's address as Musubi reaches it.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Static keys; `None`: the standard AWS chain (environment, profile files, web identity
    /// on Kubernetes, container and instance metadata).
    pub credentials: Option<(String, Secret)>,
}

/// A store that could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer in time: worth trying again later.
    #[error("the file store is unavailable: {0}")]
    Unavailable(String),
    #[error("no such object")]
    NotFound,
    #[error("the file store refused: {0}")]
    Refused(String),
    #[error("reading the file to store failed: {0}")]
    Local(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// An object being read: its bytes as they arrive, and its length when the store said.
pub struct Download {
    pub body: ByteStream,
    pub length: Option<u64>,
}

impl Download {
    /// The bytes as a stream, for an HTTP response body: piece by piece as the store sends
    /// them, never the whole object in memory.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self.body, |mut body| async move {
            match body.next().await {
                Some(Ok(chunk)) => Some((Ok(chunk), body)),
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), body)),
                None => None,
            }
        })
    }
}

/// The bucket Musubi keeps its files in. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    bucket: String,
}

impl Store {
    /// A client for `settings`. With no static keys, the standard AWS chain is loaded (which
    /// may read files and the network: call once at start-up).
    pub async fn connect(settings: &Settings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut builder = match &settings.credentials {
            Some((key, secret)) => aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(Credentials::new(
                    key,
                    secret.expose(),
                    None,
                    None,
                    "musubi-settings",
                )),
            None => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http.clone())
                    .region(Region::new(settings.region.clone()))
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        builder = builder
            .http_client(http)
            .endpoint_url(settings.endpoint.trim_end_matches('/'))
            .region(Region::new(settings.region.clone()))
            .force_path_style(settings.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // A phone on a slow line uploads through Musubi, which spools first: the store
            // itself is never the slow party, but do not give up on a busy one too early.
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(Duration::from_secs(30))
                    .build(),
            )
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        Self {
            client: Client::from_conf(builder.build()),
            bucket: settings.bucket.clone(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket unless it exists (the embedded store, a fresh test store). Stores
    /// where Musubi may not create buckets answer "exists" or "denied" to the check: both are
    /// fine as long as writing works.
    pub async fn ensure_bucket(&self) -> StoreResult<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => {
                match self
                    .client
                    .create_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => match classify(e) {
                        // Another replica created it meanwhile.
                        StoreError::Refused(m) if m.contains("BucketAlready") => Ok(()),
                        other => Err(other),
                    },
                }
            }
            Err(e) => match classify(e) {
                StoreError::Refused(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Stores the file at `path` under `key`. Read from disk, so a failed attempt is retried
    /// by the client without holding the file in memory.
    pub async fn put_path(&self, key: &str, path: &Path, content_type: &str) -> StoreResult<()> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError::Local(e.to_string()))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Stores a small object held in memory (previews, thumbnails).
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        content_type: &str,
    ) -> StoreResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Starts reading `key`: the bytes stream as the caller consumes them.
    pub async fn get(&self, key: &str) -> StoreResult<Download> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(classify)?;
        Ok(Download {
            length: out.content_length.and_then(|n| u64::try_from(n).ok()),
            body: out.body,
        })
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> StoreResult<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    /// Removes `key`; removing what is not there is not an error (a sweep may run twice).
    pub async fn delete(&self, key: &str) -> StoreResult<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// A URL that reads `key` for `ttl` (at most a week) with the given
    /// `Content-Disposition`, for a redirect issued after the permission check. It works only
    /// where the browser can reach the store at the configured endpoint.
    pub async fn presigned_get(
        &self,
        key: &str,
        ttl: Duration,
        disposition: &str,
        content_type: &str,
    ) -> StoreResult<String> {
        let config =
            PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Refused(e.to_string()))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_disposition(disposition)
            .response_content_type(content_type)
            .presigned(config)
            .await
            .map_err(classify)?;
        Ok(request.uri().to_owned())
    }
}

type Failure<E> = SdkError<E, aws_sdk_s3::config::http::HttpResponse>;

/// Whether the store answered "no such bucket / key" (404), as opposed to failing. HEAD
/// answers carry no error code, only the status.
fn is_not_found<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &Failure<E>) -> bool {
    match e {
        SdkError::ServiceError(s) => {
            matches!(
                s.err().code(),
                Some("NoSuchKey" | "NoSuchBucket" | "NotFound")
            ) || s.raw().status().as_u16() == 404
        }
        _ => false,
    }
}

fn classify<E>(e: Failure<E>) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
        }
        SdkError::ServiceError(s) => match s.err().code() {
            Some("NoSuchKey" | "NoSuchBucket" | "NotFound") => StoreError::NotFound,
            Some("ServiceUnavailable" | "SlowDown" | "InternalError") => {
                StoreError::Unavailable(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
            }
            _ => StoreError::Refused(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()),
        },
        _ => StoreError::Refused(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()),
    }
}

/// A random printable key of `bytes` bytes of entropy (embedded store credentials).
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source");
    hex::encode(buf)
}
