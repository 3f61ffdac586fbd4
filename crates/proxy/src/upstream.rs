//! Reaching origins: DNS with a timeout, the address policy on every
//! resolved address, connects with a timeout, and the connector that feeds
//! hyper-util's pooled client.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::acl::{self, Denied};

/// The socket address a response came from; the connector puts it in the
/// response's extensions for the access log.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamAddr(pub SocketAddr);

/// Why an origin could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("resolving {host} took longer than {timeout:?}")]
    ResolveTimeout { host: String, timeout: Duration },
    #[error("{0}")]
    Forbidden(Denied),
    #[error("cannot connect to {host} ({addr}): {source}")]
    Connect {
        host: String,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("connecting to {host} took longer than {timeout:?}")]
    ConnectTimeout { host: String, timeout: Duration },
    #[error("the target {0:?} has no host")]
    NoHost(String),
}

impl ConnectError {
    /// The status the client gets: a refusal is 403, a timeout 504, the rest
    /// 502.
    pub fn status(&self) -> StatusCode {
        match self {
            ConnectError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConnectError::ResolveTimeout { .. } | ConnectError::ConnectTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ConnectError::NoHost(_) => StatusCode::BAD_REQUEST,
            ConnectError::Resolve { .. } | ConnectError::Connect { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Resolves and connects, applying the address policy to each address.
#[derive(Debug, Clone)]
pub struct Dialer {
    pub dns_timeout: Duration,
    pub connect_timeout: Duration,
    pub allow_loopback: bool,
}

impl Dialer {
    /// Connects to the first allowed address of `host` that answers.
    pub async fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> Result<(TcpStream, SocketAddr), ConnectError> {
        let addrs = self.resolve(host, port).await?;
        let mut denied = None;
        let mut last = None;
        for addr in addrs {
            if let Err(why) = acl::check_address(addr.ip(), self.allow_loopback) {
                denied.get_or_insert(why);
                continue;
            }
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    return Ok((tcp, addr));
                }
                Ok(Err(source)) => {
                    last = Some(ConnectError::Connect {
                        host: host.to_owned(),
                        addr,
                        source,
                    })
                }
                Err(_) => {
                    last = Some(ConnectError::ConnectTimeout {
                        host: host.to_owned(),
                        timeout: self.connect_timeout,
                    })
                }
            }
        }
        Err(last
            .or(denied.map(ConnectError::Forbidden))
            .unwrap_or_else(|| ConnectError::Resolve {
                host: host.to_owned(),
                reason: "no addresses".into(),
            }))
    }

    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let lookup = tokio::net::lookup_host((host, port));
        match tokio::time::timeout(self.dns_timeout, lookup).await {
            Ok(Ok(addrs)) => Ok(addrs.collect()),
            Ok(Err(e)) => Err(ConnectError::Resolve {
                host: host.to_owned(),
                reason: e.to_string(),
            }),
            Err(_) => Err(ConnectError::ResolveTimeout {
                host: host.to_owned(),
                timeout: self.dns_timeout,
            }),
        }
    }
}

/// The host of a URI as a resolver takes it: no brackets around IPv6.
pub fn bare_host(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// hyper-util's connector: dials through [`Dialer`] and records the address.
#[derive(Debug, Clone)]
pub struct Connector {
    dialer: Arc<Dialer>,
    /// How long an origin may take none of the bytes sent to it.
    write_stall: Duration,
}

impl Connector {
    pub fn new(dialer: Arc<Dialer>, write_stall: Duration) -> Connector {
        Connector {
            dialer,
            write_stall,
        }
    }
}

/// An origin took none of the bytes sent to it (a request body, mostly) for
/// too long. Without this bound, a request abandoned while its body is stuck
/// would keep its connection, and the client's, forever: hyper flushes what
/// it holds before it closes.
#[derive(Debug, thiserror::Error)]
#[error("took no request body for {0:?}")]
pub struct OriginStalled(pub Duration);

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dialer = self.dialer.clone();
        let write_stall = self.write_stall;
        Box::pin(async move {
            let host = bare_host(&uri).ok_or_else(|| ConnectError::NoHost(uri.to_string()))?;
            let port = uri.port_u16().unwrap_or(80);
            let (tcp, addr) = dialer.dial(&host, port).await?;
            Ok(UpstreamIo {
                io: TokioIo::new(tcp),
                addr,
                write_stall,
                stalled_since: None,
            })
        })
    }
}

/// A connection to an origin that remembers its address, and fails a write
/// that the origin leaves waiting for `write_stall`.
#[derive(Debug)]
pub struct UpstreamIo {
    io: TokioIo<TcpStream>,
    addr: SocketAddr,
    write_stall: Duration,
    /// Armed while a write waits for the origin to take bytes.
    stalled_since: Option<Pin<Box<Sleep>>>,
}

impl UpstreamIo {
    /// Passes a write's outcome on, unless the origin has taken nothing for
    /// `write_stall`.
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if outcome.is_ready() {
            self.stalled_since = None;
            return outcome;
        }
        let stall = self.write_stall;
        let timer = self
            .stalled_since
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if timer.as_mut().poll(cx).is_ready() {
            let stalled = OriginStalled(stall);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, stalled)));
        }
        Poll::Pending
    }
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        Connected::new().extra(UpstreamAddr(self.addr))
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch_write(cx, outcome)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch_write(cx, outcome)
    }
}

/// Finds an [`OriginStalled`] inside an error from hyper-util's client,
/// where it travels as the payload of an `io::Error`.
pub fn find_origin_stalled<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a OriginStalled> {
    let mut current = Some(error);
    while let Some(e) = current {
        let payload = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref());
        if let Some(stalled) = payload.and_then(|p| p.downcast_ref::<OriginStalled>()) {
            return Some(stalled);
        }
        current = e.source();
    }
    None
}

/// Finds our own connect error inside an error from hyper-util's client.
pub fn find_connect_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ConnectError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<ConnectError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialer(allow_loopback: bool) -> Dialer {
        Dialer {
            dns_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            allow_loopback,
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let refused = dialer(false)
            .dial("127.0.0.1", port)
            .await
            .expect_err("refused");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let (_, addr) = dialer(true).dial("127.0.0.1", port).await.expect("dials");
        assert_eq!(addr.port(), port);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_bad_gateway() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let error = dialer(true)
            .dial("127.0.0.1", port)
            .await
            .expect_err("closed");
        assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
        assert!(error.to_string().contains("cannot connect"), "{error}");
    }

    #[test]
    fn bare_hosts_lose_brackets_and_case() {
        let uri: Uri = "http://[::1]:8080/x".parse().expect("uri");
        assert_eq!(bare_host(&uri).as_deref(), Some("::1"));
        let uri: Uri = "http://Example.COM./".parse().expect("uri");
        assert_eq!(bare_host(&uri).as_deref(), Some("example.com"));
    }
}
