//! The closed-loop HTTP load generator.
//!
//! It has to leave the two cores to the service: every request is serialised before the clock
//! starts, the connections run on one thread of their own (a current-thread runtime), and a
//! response is only parsed far enough (with `httparse`) to read its status and length.
//! It costs 14–20 µs of CPU per request (the bench prints it per phase).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use secrecy::SecretString;
use shopify_sync::shopify;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::raw::{SHOP, customer_body};

/// Signed `customers/update` requests for customers `first..first + count`, whole HTTP/1.1
/// requests ready to write.
pub fn requests(address: SocketAddr, first: usize, count: usize) -> Vec<Vec<u8>> {
    let secret = SecretString::from("bench-secret");
    (first..first + count)
        .map(|i| {
            let body = customer_body(i as i64);
            let signature = shopify::sign(&body, &secret);
            let mut request = format!(
                "POST /webhooks/shopify HTTP/1.1\r\n\
                 host: {address}\r\n\
                 content-type: application/json\r\n\
                 content-length: {}\r\n\
                 x-shopify-hmac-sha256: {signature}\r\n\
                 x-shopify-topic: customers/update\r\n\
                 x-shopify-shop-domain: {SHOP}\r\n\
                 x-shopify-webhook-id: bench-{i}\r\n\
                 x-shopify-api-version: 2026-10\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            request
        })
        .collect()
}

/// What a closed-loop run measured.
pub struct Load {
    /// Of every request, all answered 200.
    pub latencies: Vec<Duration>,
    pub took: Duration,
}

/// Closed loop: `connections` keep-alive connections, each sending the next request as soon as
/// the last one was answered; any answer but 200 ends the run with an error.
pub async fn run(
    address: SocketAddr,
    connections: usize,
    requests: Vec<Vec<u8>>,
) -> anyhow::Result<Load> {
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(closed_loop(address, connections, requests))
    })
    .await?
}

async fn closed_loop(
    address: SocketAddr,
    connections: usize,
    requests: Vec<Vec<u8>>,
) -> anyhow::Result<Load> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let mut streams = Vec::new();
    for _ in 0..connections {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for stream in streams {
        tasks.spawn(client(stream, requests.clone(), next.clone()));
    }
    let mut latencies = Vec::with_capacity(requests.len());
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    Ok(Load {
        latencies,
        took: started.elapsed(),
    })
}

async fn client(
    mut stream: TcpStream,
    requests: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    let mut buffer = Vec::with_capacity(1024);
    while let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
        let sent = Instant::now();
        stream.write_all(request).await?;
        buffer.clear();
        let status = loop {
            anyhow::ensure!(
                stream.read_buf(&mut buffer).await? > 0,
                "the receiver closed the connection"
            );
            if let Some(status) = complete_response(&buffer)? {
                break status;
            }
        };
        anyhow::ensure!(status == 200, "the receiver answered {status}");
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

/// The status of the response in `buffer` once all of it (head and body) has arrived.
fn complete_response(buffer: &[u8]) -> anyhow::Result<Option<u16>> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(buffer)? else {
        return Ok(None);
    };
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .context("a response without content-length")?;
    let length: usize = std::str::from_utf8(length.value)?.trim().parse()?;
    Ok((buffer.len() >= head + length).then(|| response.code.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_complete_only_with_its_whole_body() {
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(complete_response(full).unwrap(), Some(200));
        assert_eq!(complete_response(&full[..full.len() - 1]).unwrap(), None);
        assert_eq!(complete_response(&full[..10]).unwrap(), None);
        let refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(complete_response(refused).unwrap(), Some(401));
    }
}
