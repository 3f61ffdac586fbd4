//! The per-client-address connection cap (`max_connections_per_client`):
//! one address cannot take every connection slot of the proxy port, and a
//! client over its cap gets a short 429 instead of a slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a refused client gets to read its answer before it is cut.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The connections open per client address.
#[derive(Debug)]
pub struct ClientCap {
    limit: usize,
    // A standard mutex: it is held for one map update, never across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place in the cap.
#[derive(Debug)]
pub struct ClientSlot {
    cap: Arc<ClientCap>,
    ip: IpAddr,
}

impl ClientCap {
    pub fn new(limit: usize) -> Arc<ClientCap> {
        Arc::new(ClientCap {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when that
    /// address already holds `limit` connections.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            cap: self.clone(),
            ip,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Answers a client over its cap with 429 and closes, without reading its
/// request: it holds no connection slot meanwhile. Its unread bytes are
/// drained for a moment, so that the answer is not lost to a TCP reset.
pub async fn refuse(mut tcp: TcpStream, limit: usize) {
    let body = format!(
        "429 Too Many Requests: this address already has {limit} connections open to the \
         proxy (max_connections_per_client)\n"
    );
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let linger = async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_cap_and_a_dropped_slot_frees_a_place() {
        let cap = ClientCap::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = cap.admit(a).expect("first");
        let _second = cap.admit(mapped).expect("second, the same address");
        assert!(cap.admit(a).is_none(), "a third from the same address");
        let _other = cap.admit(b).expect("another address");
        drop(first);
        assert!(cap.admit(a).is_some(), "a place was freed");
    }
}
