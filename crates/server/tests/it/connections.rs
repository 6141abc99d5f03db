//! The listener's limits, from a raw TCP client: a slow request head is cut, a trickled body gets a 408, connections
//! past the caps are refused in the documented error shape at once, and established ones keep working.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{fast_config, start_with};

async fn read_all(tcp: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_request_head_that_never_finishes_is_cut_at_the_header_timeout() {
    let mut config = fast_config();
    config.connections.header_read_timeout = Duration::from_millis(300);
    let gw = start_with(config, &[("ok", &["m"])]).await;
    let mut tcp = TcpStream::connect(addr(&gw.url)).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"GET /api/ping HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    // The connection is closed by the server (EOF) well before the test's own bound.
    let _ = read_all(&mut tcp, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(addr(&gw.url)).await.unwrap();
    idle.write_all(b"GET /api/ping HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_all(&mut idle, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn a_trickled_body_gets_a_408_in_the_error_shape() {
    let mut config = fast_config();
    config.body_read_timeout = Duration::from_millis(300);
    let gw = start_with(config, &[("ok", &["m"])]).await;
    let mut tcp = TcpStream::connect(addr(&gw.url)).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{{\r\n",
        gw.key
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_all(&mut tcp, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn connections_past_the_caps_are_refused_at_once_and_held_ones_keep_working() {
    let mut config = fast_config();
    config.connections.max_connections = 3;
    config.connections.max_per_address = 2;
    let gw = start_with(config, &[("ok", &["m"])]).await;
    let ping = b"GET /api/ping HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(addr(&gw.url)).await.unwrap();
        tcp.write_all(ping).await.unwrap();
        let mut buf = [0u8; 12];
        tcp.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(tcp);
    }
    // A third connection from the same address is over the per-address cap.
    let mut third = TcpStream::connect(addr(&gw.url)).await.unwrap();
    let answer = read_all(&mut third, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.contains(r#""code":"too_many_connections_from_address""#),
        "{answer}"
    );
    // Closing one frees its place.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut tcp = TcpStream::connect(addr(&gw.url)).await.unwrap();
        tcp.write_all(ping).await.unwrap();
        let mut buf = [0u8; 12];
        if tcp.read_exact(&mut buf).await.is_ok() && &buf == b"HTTP/1.1 200" {
            again = Some(tcp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a freed place was never given again");
    gw.stop().await;
}
