//! The store Musubi runs itself when none is configured: an S3-compatible server (s3s-fs)
//! over `<data-dir>/files`, on a loopback port, with its own random keys checked on every
//! request like any other store would. Nothing to set up for the demo or a small deployment,
//! and the same aws-sdk-s3 code path as with an external store.

use crate::{random_hex, Settings};
use musubi_config::Secret;
use std::net::SocketAddr;
use std::path::Path;

/// A running embedded store; it stops when dropped.
pub struct Embedded {
    pub address: SocketAddr,
    settings: Settings,
    task: tokio::task::JoinHandle<()>,
}

impl Embedded {
    /// Serves the directory `root` (created if missing) on `127.0.0.1` at a free port.
    pub async fn start(root: &Path) -> std::io::Result<Self> {
        Self::start_at(root, "127.0.0.1:0".parse().expect("a loopback address")).await
    }

    /// Serves `root` at `bind` (a fixed port: to run the store as a separate process).
    pub async fn start_at(root: &Path, bind: SocketAddr) -> std::io::Result<Self> {
        let (key, secret) = (random_hex(12), random_hex(24));
        Self::start_with(root, bind, &key, &secret).await
    }

    /// Serves `root` at `bind`, accepting requests signed with `key` and `secret`.
    pub async fn start_with(
        root: &Path,
        bind: SocketAddr,
        key: &str,
        secret: &str,
    ) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(root).await?;
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
        let service = builder.build();
        let app = axum::Router::new().fallback_service(axum::error_handling::HandleError::new(
            service,
            |e: s3s::HttpError| async move {
                tracing::warn!(error = ?e, "embedded file store");
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "file store error",
                )
            },
        ));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let address = listener.local_addr()?;
        // Without TCP_NODELAY the last pieces of an object wait ~40 ms for the client's
        // delayed acknowledgement (Nagle): every file read paid it.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY on the file store");
            }
        });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the embedded file store stopped");
            }
        });
        Ok(Self {
            address,
            settings: Settings {
                endpoint: format!("http://{address}"),
                region: "us-east-1".to_owned(),
                bucket: "musubi".to_owned(),
                path_style: true,
                credentials: Some((key.to_owned(), Secret::new(secret))),
            },
            task,
        })
    }

    /// How to reach it.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stops serving (tests: the store going away mid-work).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.task.abort();
    }
}
