//! The demo's origin site: a few pages and a server-sent-events stream for
//! the proxy to carry, served from a thread of xtask itself.
//!
//! It speaks just enough HTTP/1.1 for the demo (one request per connection,
//! answered with `Connection: close`); it is a stand-in for the web, not a
//! web server.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// The body of `/hello`.
pub const HELLO: &str = "hello from the backroom demo origin\n";

/// How long a lockstep event stream waits for the reader to confirm the
/// last event before it gives up.
const LOCKSTEP_WAIT: Duration = Duration::from_secs(20);

/// A running origin. Its thread lives as long as xtask.
pub struct Origin {
    pub addr: SocketAddr,
    acks: Arc<Acks>,
}

/// How many lockstep events the reader has confirmed.
#[derive(Default)]
struct Acks {
    seen: Mutex<u64>,
    changed: Condvar,
}

impl Origin {
    pub fn start() -> Result<Origin, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("the origin cannot listen: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the origin has no address: {e}"))?;
        let acks = Arc::new(Acks::default());
        let shared = Arc::clone(&acks);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let acks = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(stream, &acks);
                });
            }
        });
        Ok(Origin { addr, acks })
    }

    /// Tells a lockstep stream that its reader has seen event `n`, so it may
    /// send the next one.
    pub fn ack(&self, n: u64) {
        let mut seen = self
            .acks
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *seen = (*seen).max(n);
        self.acks.changed.notify_all();
    }
}

/// Answers one request.
fn serve(stream: TcpStream, acks: &Acks) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers matter to nobody here; read past them.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut out = stream;
    match (method, path) {
        ("GET", "/") => respond(&mut out, "200 OK", "text/html", INDEX),
        ("GET", "/hello") => respond(&mut out, "200 OK", "text/plain", HELLO),
        ("GET", "/events") => events(&mut out, query, acks),
        ("GET", _) => respond(&mut out, "404 Not Found", "text/plain", "no such page\n"),
        _ => respond(
            &mut out,
            "405 Method Not Allowed",
            "text/plain",
            "the demo origin only answers GET\n",
        ),
    }
}

const INDEX: &str = "<!doctype html>\n<title>backroom demo origin</title>\n\
<h1>The backroom demo origin</h1>\n\
<p><a href=\"/hello\">/hello</a> is plain text; \
<a href=\"/events\">/events</a> is a server-sent-events clock.</p>\n";

fn respond(out: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// `/events`: a server-sent-events stream in chunked encoding, one event per
/// chunk. `count=N` stops after N events (forever otherwise); `lockstep`
/// sends event N+1 only once the reader has confirmed event N through
/// [`Origin::ack`], which proves each event crossed the proxy on its own;
/// otherwise there is one event a second.
fn events(out: &mut TcpStream, query: &str, acks: &Acks) -> std::io::Result<()> {
    let count = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("count="))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    let lockstep = query.split('&').any(|pair| pair == "lockstep");
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    out.flush()?;
    for n in 1..=count {
        let event = format!("id: {n}\ndata: tick {n}\n\n");
        write!(out, "{:x}\r\n{event}\r\n", event.len())?;
        out.flush()?;
        if n == count {
            break;
        }
        if lockstep {
            if !acks.wait_for(n) {
                break;
            }
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    write!(out, "0\r\n\r\n")?;
    out.flush()
}

impl Acks {
    /// Waits until event `n` has been confirmed; false if it never is.
    fn wait_for(&self, n: u64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let (seen, _) = self
            .changed
            .wait_timeout_while(seen, LOCKSTEP_WAIT, |seen| *seen < n)
            .unwrap_or_else(PoisonError::into_inner);
        *seen >= n
    }
}
