//! A simulator's HTTP server on a free port of 127.0.0.1.

use crate::Shared;
use axum::Router;
use std::net::SocketAddr;
use std::sync::MutexGuard;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; it stops on [`Server::shutdown`], [`Server::stop`] or drop.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    base_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `router` on a free port of 127.0.0.1 (the router's state is already attached).
    pub async fn start(router: Router) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Server {
            addr,
            base_url: format!("http://{addr}"),
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Asks the server to stop (open connections finish) without waiting for it.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server and waits until it has.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running simulator: its state and the server that answers from it. The handle every
/// simulator hands to its tests wraps one.
#[derive(Debug)]
pub struct Running<T> {
    state: Shared<T>,
    server: Server,
}

impl<T: Send + 'static> Running<T> {
    /// Serves `routes` on a free port of 127.0.0.1, each handler seeing `state`.
    pub async fn start(state: T, routes: Router<Shared<T>>) -> std::io::Result<Running<T>> {
        let state = Shared::new(state);
        let server = Server::start(routes.with_state(state.clone())).await?;
        Ok(Running { state, server })
    }

    /// The state, for inspection and failure injection.
    pub fn state(&self) -> MutexGuard<'_, T> {
        self.state.lock()
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        self.server.base_url()
    }

    /// Asks the server to stop without waiting for it.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// Stops the server and waits until it has.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::routing::get;

    async fn get_status(url: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = url.trim_start_matches("http://");
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await?;
        Ok(answer.lines().next().unwrap_or_default().to_string())
    }

    #[tokio::test]
    async fn serves_on_loopback_until_shut_down() {
        let server = Server::start(Router::new().route("/", get(|| async { "hi" })))
            .await
            .unwrap();
        let url = server.base_url().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert_eq!(get_status(&url).await.unwrap(), "HTTP/1.1 200 OK");
        server.shutdown().await;
        assert!(
            get_status(&url).await.is_err(),
            "still listening after shutdown"
        );
    }

    #[tokio::test]
    async fn handlers_and_the_handle_share_the_state() {
        async fn count(axum::extract::State(n): axum::extract::State<Shared<u32>>) -> String {
            let mut n = n.lock();
            *n += 1;
            n.to_string()
        }
        let sim = Running::start(0u32, Router::new().route("/", get(count)))
            .await
            .unwrap();
        assert_eq!(get_status(sim.base_url()).await.unwrap(), "HTTP/1.1 200 OK");
        assert_eq!(*sim.state(), 1);
        *sim.state() = 10;
        get_status(sim.base_url()).await.unwrap();
        assert_eq!(*sim.state(), 11);
        sim.shutdown().await;
    }
}
