//! A webhook receiver for tests: a real HTTP/1.1 listener that answers 200 and hands every
//! JSON body it receives to the test.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

/// The receiver; bodies arrive on `next`.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    rx: mpsc::Receiver<Value>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start() -> Receiver {
        Self::failing_first(0)
    }

    /// Listens on a free loopback port and answers the first `failures` requests with a 500
    /// (their bodies are not handed to the test).
    pub fn failing_first(failures: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut failures = failures;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(body) = read_request(&mut stream) else {
                    continue;
                };
                if failures > 0 {
                    failures -= 1;
                    let _ = stream.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown",
                    );
                    continue;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                if let Ok(v) = serde_json::from_slice(&body) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Receiver { addr, rx }
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The next body accepted, if one arrives within `timeout`.
    pub fn next_body(&self, timeout: Duration) -> Option<Value> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next body whose `sluice.status` is `status`, skipping others; panics after 20 s.
    pub fn next_with_status(&self, status: &str) -> Value {
        loop {
            let v = self
                .rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a webhook POST");
            if v["sluice"]["status"] == status {
                return v;
            }
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = None;
    let mut chunked = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let n = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.resize(length?, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some(body)
}
