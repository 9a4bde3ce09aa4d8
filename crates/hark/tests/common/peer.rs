//! A web server of the test's own on loopback, standing in for the outside world hark
//! talks to: it serves the shared audio clips (`GET /audio/{name}`) for fetches by URL and
//! records every request to `/hooks/…` (webhook receivers), answering each with the next
//! status queued by the test (204 once the queue is empty).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::{any, get};

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    answers: Mutex<VecDeque<u16>>,
}

pub struct Peer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    pub async fn start() -> Peer {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/audio/{name}", get(serve_clip))
            .route("/hooks/{*rest}", any(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Peer { base, shared, task }
    }

    /// The next receiver answers are these statuses, in order.
    pub fn answer_with(&self, statuses: &[u16]) {
        self.shared.answers.lock().unwrap().extend(statuses);
    }

    /// Every request the receivers got so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until the receivers have got `n` requests (or panics after `limit`).
    pub async fn wait_for(&self, n: usize, limit: std::time::Duration) -> Vec<Received> {
        let started = std::time::Instant::now();
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < limit,
                "{} of {n} webhook requests after {limit:?}",
                got.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_clip(Path(name): Path<String>) -> Result<Vec<u8>, StatusCode> {
    if name.contains('/') || name.starts_with('.') {
        return Err(StatusCode::NOT_FOUND);
    }
    std::fs::read(super::shared_audio(&name)).map_err(|_| StatusCode::NOT_FOUND)
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    shared.received.lock().unwrap().push(Received {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
        body: body.to_vec(),
    });
    let next = shared.answers.lock().unwrap().pop_front().unwrap_or(204);
    StatusCode::from_u16(next).unwrap_or(StatusCode::NO_CONTENT)
}
