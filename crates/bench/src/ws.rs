//! A minimal graphql-transport-ws client: connect, `connection_init` with a bearer token, one
//! `events` subscription, then count what arrives until told to stop.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the web pages' live.js asks for, badge counts included.
const SUBSCRIPTION: &str =
    "subscription { events { id kind groupId topicId actorId unread { total } } }";
const SUB_ID: &str = "1";
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Shared by every subscription of a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub errors: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Counters {
    pub fn error(&self, message: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.samples.lock() {
            if s.len() < crate::stats::MAX_ERROR_SAMPLES {
                let m = message();
                if !s.contains(&m) {
                    s.push(m);
                }
            }
        }
    }

    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// `http://host:port` → `ws://host:port/graphql/ws`.
pub fn endpoint(target: &str) -> String {
    let base = target.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{base}/graphql/ws")
}

/// An acknowledged connection with the `events` subscription started.
pub struct Subscription {
    ws: Ws,
}

impl Subscription {
    /// Connects, authenticates with `token` and subscribes; `Err` says why not.
    pub async fn open(url: &str, token: &str) -> Result<Self, String> {
        let mut req = url.into_client_request().map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_static("graphql-transport-ws"),
        );
        // Thousands of idle connections: the default 128 KiB buffers each would cost the
        // driver hundreds of megabytes on a machine it shares with the server.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio::time::timeout(
            ACK_WAIT,
            tokio_tungstenite::connect_async_with_config(req, Some(config), true),
        )
        .await
        .map_err(|_| "connect: timeout".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
        let mut sub = Self { ws };
        let init = serde_json::json!({"type": "connection_init", "payload": {"token": token}});
        sub.send(&init).await?;
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, sub.ws.next())
                .await
                .map_err(|_| "no connection_ack within 10 s".to_owned())?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t)
                        .map_err(|e| format!("invalid JSON before ack: {e}"))?;
                    match v["type"].as_str() {
                        Some("connection_ack") => break,
                        Some("ping") => sub.pong().await?,
                        _ => return Err(format!("expected connection_ack, got {t}")),
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(format!(
                        "closed before ack: {}",
                        f.map(|f| f.reason.to_string()).unwrap_or_default()
                    ))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("before ack: {e}")),
                None => return Err("closed before ack".to_owned()),
            }
        }
        let subscribe = serde_json::json!({
            "type": "subscribe",
            "id": SUB_ID,
            "payload": {"query": SUBSCRIPTION, "variables": {}},
        });
        sub.send(&subscribe).await?;
        Ok(sub)
    }

    async fn send(&mut self, v: &Value) -> Result<(), String> {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    async fn pong(&mut self) -> Result<(), String> {
        self.ws
            .send(Message::Text(r#"{"type":"pong"}"#.into()))
            .await
            .map_err(|e| format!("send pong: {e}"))
    }

    /// Counts `next` messages until `stop` turns true, then completes and closes. Anything
    /// else the server says about the subscription, or a close before `stop`, is an error.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, counters: Arc<Counters>) {
        loop {
            let msg = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                m = self.ws.next() => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Err(e) = self.on_text(&t, &counters).await {
                        counters.error(|| e);
                        return;
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    counters.error(|| {
                        format!(
                            "closed by the server: {}",
                            f.map(|f| format!("{} {}", f.code, f.reason))
                                .unwrap_or_default()
                        )
                    });
                    return;
                }
                // WebSocket pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    counters.error(|| format!("connection: {e}"));
                    return;
                }
                None => {
                    counters.error(|| "connection ended".to_owned());
                    return;
                }
            }
        }
        let _ = self
            .ws
            .send(Message::Text(
                format!(r#"{{"type":"complete","id":"{SUB_ID}"}}"#).into(),
            ))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.ws.close(None)).await;
    }

    /// `Err` ends the subscription.
    async fn on_text(&mut self, text: &str, counters: &Counters) -> Result<(), String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        match v["type"].as_str() {
            Some("next") => {
                // Errors in the stream (e.g. the session ended) end the subscription.
                if v["payload"].get("errors").is_some() {
                    return Err(format!("next with errors: {}", v["payload"]["errors"]));
                }
                counters.events.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Some("ping") => self.pong().await,
            Some("pong") => Ok(()),
            Some("error") => Err(format!("error: {}", v["payload"])),
            Some("complete") => Err("completed by the server".to_owned()),
            _ => Err(format!("unexpected message: {text}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_from_base_url() {
        assert_eq!(
            endpoint("http://127.0.0.1:8090/"),
            "ws://127.0.0.1:8090/graphql/ws"
        );
        assert_eq!(endpoint("https://x.example"), "wss://x.example/graphql/ws");
    }
}
