//! `/graphql/ws` (graphql-transport-ws) routes a connection to its association like HTTP does.

use futures_util::{SinkExt, StreamExt};
use musubi_test_support::TestApp;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn first_reply(addr: std::net::SocketAddr, association: &str) -> Option<Message> {
    let mut req = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let init =
        serde_json::json!({"type": "connection_init", "payload": {"association": association}});
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the server answers connection_init")
        .map(|m| m.unwrap())
}

#[tokio::test]
async fn websocket_connection_is_routed_to_a_known_association_and_refused_otherwise() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let addr = app.serve().await;

    match first_reply(addr, "alpha").await {
        Some(Message::Text(t)) => assert!(t.contains("connection_ack"), "{t}"),
        other => panic!("expected connection_ack, got {other:?}"),
    }
    match first_reply(addr, "gamma").await {
        Some(Message::Close(Some(frame))) => {
            assert_ne!(u16::from(frame.code), 1000, "{frame:?}");
            assert!(frame.reason.contains("ASSOCIATION_NOT_FOUND"), "{frame:?}");
        }
        other => panic!("expected the connection to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_the_connection() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let addr = app.serve().await;
    let mut req = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // Well over the 64 KiB a client message may have.
    let padding = "x".repeat(200 * 1024);
    let init = serde_json::json!({
        "type": "connection_init",
        "payload": {"association": "alpha", "padding": padding},
    });
    let _ = ws.send(Message::Text(init.to_string().into())).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the server reacts");
    match answer {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
        Some(Ok(other)) => panic!("an oversized message was accepted: {other:?}"),
    }
}

#[tokio::test]
async fn a_client_flooding_its_live_connection_is_disconnected() {
    let app = TestApp::with_association("alpha", "アルファ医師会").await;
    let addr = app.serve().await;
    let mut req = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let init = serde_json::json!({"type": "connection_init", "payload": {"association": "alpha"}});
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let ping = serde_json::json!({"type": "ping"}).to_string();
    // Far more than a live client sends in a minute; the server stops reading and closes.
    for _ in 0..300 {
        if ws.send(Message::Text(ping.clone().into())).await.is_err() {
            break;
        }
    }
    let mut pongs = 0;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Text(t)) if t.contains("pong") => pongs += 1,
                Ok(Message::Close(_)) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        true
    })
    .await
    .expect("the server ends the connection");
    assert!(closed);
    assert!(
        pongs < 300,
        "only the allowance is answered ({pongs} pongs)"
    );
}

/// A live connection for `token` in `association`; its answer to `connection_init`.
async fn connect(
    addr: std::net::SocketAddr,
    association: &str,
    token: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Option<Message>,
) {
    let mut req = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let init = serde_json::json!({
        "type": "connection_init",
        "payload": {"association": association, "token": token},
    });
    ws.send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the server answers connection_init")
        .map(|m| m.unwrap());
    (ws, answer)
}

fn acked(m: &Option<Message>) -> bool {
    matches!(m, Some(Message::Text(t)) if t.contains("connection_ack"))
}

#[tokio::test]
async fn one_person_keeps_only_so_many_live_connections_open() {
    use musubi_test_support::demo::{HOST, NURSE, PHARMACIST};
    let app = TestApp::demo().await;
    let addr = app.serve().await;
    let nurse = app.demo_token(NURSE).await;
    let mut open = Vec::new();
    for i in 0..16 {
        let (ws, answer) = connect(addr, HOST, &nurse).await;
        assert!(acked(&answer), "connection {i}: {answer:?}");
        open.push(ws);
    }
    match connect(addr, HOST, &nurse).await.1 {
        Some(Message::Close(Some(frame))) => {
            assert!(frame.reason.contains("RATE_LIMITED"), "{frame:?}")
        }
        other => panic!("a 17th connection was not refused: {other:?}"),
    }
    // Someone else is not affected.
    let pharmacist = app.demo_token(PHARMACIST).await;
    assert!(acked(&connect(addr, HOST, &pharmacist).await.1));
    // Closing one gives its place back.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let mut again = false;
    for _ in 0..50 {
        if acked(&connect(addr, HOST, &nurse).await.1) {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again, "a closed connection's place comes back");
}
