//! A small graphql-transport-ws client for tests of `/graphql/ws`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// One open connection, acknowledged by the server.
pub struct GqlWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server said about one subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A `next` message's payload (`{"data": …}` or `{"errors": …}`).
    Next(Value),
    /// An `error` message's payload (a list of GraphQL errors): the subscription did not start.
    Error(Value),
    /// The server ended the subscription.
    Complete,
    /// The connection closed.
    Closed,
}

impl GqlWs {
    /// Connects to `ws://{addr}/graphql/ws`, sends `connection_init` with `payload` (e.g.
    /// `{"token": …}`) and waits for `connection_ack`. `Err` holds the close reason or the
    /// unexpected message.
    pub async fn connect(addr: impl std::fmt::Display, payload: Value) -> Result<Self, String> {
        Self::connect_with_headers(addr, payload, &[]).await
    }

    /// [`GqlWs::connect`] with extra upgrade headers (e.g. `Origin`, `Cookie`).
    pub async fn connect_with_headers(
        addr: impl std::fmt::Display,
        payload: Value,
        headers: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut req = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        req.headers_mut().insert(
            "sec-websocket-protocol",
            http::HeaderValue::from_static("graphql-transport-ws"),
        );
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            let value = http::HeaderValue::from_str(v).map_err(|e| e.to_string())?;
            req.headers_mut().insert(name, value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| e.to_string())?;
        let mut client = Self { ws };
        client
            .send(json!({"type": "connection_init", "payload": payload}))
            .await;
        match client.recv(Duration::from_secs(10)).await {
            Some(Ok(m)) if m["type"] == "connection_ack" => Ok(client),
            Some(Ok(m)) => Err(m.to_string()),
            Some(Err(reason)) => Err(reason),
            None => Err("no answer to connection_init".to_owned()),
        }
    }

    async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send on the WebSocket");
    }

    /// The next protocol message (answering pings on the way); `Err` with the close reason
    /// when the connection closes; `None` on timeout.
    async fn recv(&mut self, wait: Duration) -> Option<Result<Value, String>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match msg {
                None => return Some(Err("closed".to_owned())),
                Some(Err(e)) => return Some(Err(e.to_string())),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON from the server");
                    if v["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Some(Ok(v));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Err(frame.map(|f| f.reason.to_string()).unwrap_or_default()))
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Starts a subscription under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "type": "subscribe",
            "id": id,
            "payload": {"query": query, "variables": variables},
        }))
        .await;
    }

    /// Stops a subscription.
    pub async fn stop(&mut self, id: &str) {
        self.send(json!({"type": "complete", "id": id})).await;
    }

    /// The next reply for subscription `id` within `wait` (replies for other ids are
    /// dropped); `None` on timeout.
    pub async fn next_reply(&mut self, id: &str, wait: Duration) -> Option<Reply> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                Err(_) => return Some(Reply::Closed),
                Ok(m) if m["id"] != id => continue,
                Ok(m) => match m["type"].as_str() {
                    Some("next") => return Some(Reply::Next(m["payload"].clone())),
                    Some("error") => return Some(Reply::Error(m["payload"].clone())),
                    Some("complete") => return Some(Reply::Complete),
                    _ => continue,
                },
            }
        }
    }

    /// The `data` of the next `next` message for `id`; panics on anything else or a timeout.
    pub async fn next_data(&mut self, id: &str, wait: Duration) -> Value {
        match self.next_reply(id, wait).await {
            Some(Reply::Next(p)) if p["errors"].is_null() => p["data"].clone(),
            other => panic!("expected data for subscription {id}, got {other:?}"),
        }
    }

    /// Every reply for `id` during `wait` (for asserting that nothing, or nothing of a kind,
    /// arrives).
    pub async fn replies_during(&mut self, id: &str, wait: Duration) -> Vec<Reply> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_reply(id, left).await {
                Some(r) => {
                    let end = matches!(r, Reply::Closed);
                    out.push(r);
                    if end {
                        return out;
                    }
                }
                None => return out,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
