//! A TCP proxy in front of the receiver that holds every chunk, in either direction, for a
//! random (seeded) time: a slow function, so that a kill can land while a request is on its
//! way, after the function accepted it but before the agent read the answer, and so on.
//! When the receiver refuses connections, so does the proxy (it closes the accepted one).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct DelayProxy {
    addr: SocketAddr,
    /// (min, max) delay per chunk in milliseconds, packed as min << 32 | max.
    delay: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pack(min_ms: u32, max_ms: u32) -> u64 {
    (u64::from(min_ms) << 32) | u64::from(max_ms.max(min_ms))
}

impl DelayProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream`; `seed` fixes every delay drawn.
    pub async fn start(upstream: SocketAddr, seed: u64) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let delay = Arc::new(AtomicU64::new(pack(0, 0)));
        let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        let d = delay.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (d, rng) = (d.clone(), rng.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return; // the receiver refuses: so do we (drop the client)
                    };
                    let seeds = {
                        let mut r = rng.lock().unwrap_or_else(|p| p.into_inner());
                        (r.u64(..), r.u64(..))
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pump(cr, sw, d.clone(), seeds.0));
                    let down = tokio::spawn(pump(sr, cw, d, seeds.1));
                    let _ = tokio::join!(up, down);
                });
            }
        });
        DelayProxy { addr, delay, task }
    }

    /// Every chunk waits between `min_ms` and `max_ms` before it is passed on.
    pub fn set_delay(&self, min_ms: u32, max_ms: u32) {
        self.delay.store(pack(min_ms, max_ms), Ordering::SeqCst);
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn pump<R, W>(mut from: R, mut to: W, delay: Arc<AtomicU64>, seed: u64)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let packed = delay.load(Ordering::SeqCst);
        let (min, max) = (packed >> 32, packed & 0xffff_ffff);
        let wait = rng.u64(min..=max);
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
