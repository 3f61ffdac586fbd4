//! Just enough of an HTTP/1.1 client for the demo to talk to the proxy as a
//! browser configured with it would: absolute-form GETs, CONNECT, and a
//! response read to the end of its connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response read whole from a `Connection: close` exchange.
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// `GET url` through the proxy at `proxy`, in absolute form, as a browser
/// configured with a proxy sends it.
pub fn http_get(proxy: SocketAddr, url: &str) -> Result<HttpResponse, String> {
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let mut stream = connect(proxy)?;
    write!(
        stream,
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to the proxy: {e}"))?;
    read_response(stream)
}

pub fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| format!("cannot set a timeout: {e}"))?;
    Ok(stream)
}

/// Reads a response to the end of the connection and splits its head from
/// its body (a chunked body is decoded).
pub fn read_response(mut stream: impl Read) -> Result<HttpResponse, String> {
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read the response: {e}"))?;
    let end = find(&raw, b"\r\n\r\n").ok_or("the response has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {head:?}"))?;
    let body = &raw[end + 4..];
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse { status, head, body })
}

/// Reads a response head (up to the blank line) byte by byte, leaving the
/// body in the stream.
pub fn read_head(stream: &mut impl Read) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return Err("the connection closed in the response head".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("cannot read the response head: {e}")),
        }
        if head.len() > 64 * 1024 {
            return Err("the response head is too long".into());
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or("a chunk size line has no end")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("a chunk is cut short")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("a chunk has no end")?;
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_response_is_decoded() {
        let raw: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n";
        let response = read_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"hello!");
    }

    #[test]
    fn a_cut_chunk_or_a_headless_reply_is_an_error() {
        let cut: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nhello";
        assert!(read_response(cut).is_err());
        assert!(read_response(&b"garbage"[..]).is_err());
    }

    #[test]
    fn the_head_is_read_without_the_body() {
        let mut raw: &[u8] = b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nbody";
        assert_eq!(
            read_head(&mut raw).unwrap(),
            "HTTP/1.1 200 OK\r\nX: y\r\n\r\n"
        );
        assert_eq!(raw, b"body");
    }
}
