//! Audit delivery end to end: the gateway's sinks against real peers that go away and come
//! back. Every event must arrive, in order, none lost.

mod common;

use common::{wait_for, Gateway, TestDb};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Ids of the audit log as stored, in order.
fn audit_ids(gw: &Gateway) -> Vec<String> {
    gw.audit_log()
        .into_iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// A psql session running `n` statements, one at a time.
fn load(gw: &Gateway, token: &str, n: usize) -> Child {
    let script: String = (0..n).map(|i| format!("select {i};\n")).collect();
    gw.psql_script(token, &script)
}

#[test]
fn a_webhook_that_fails_then_recovers_gets_every_event_in_order() {
    let receiver = common::webhook::Receiver::failing_first(4);
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(
        &db,
        &format!(
            "audit:\n  sinks:\n    siem:\n      type: webhook\n      url: {}\n      batch: 50\n",
            receiver.url()
        ),
    ));
    let token = gw.service_account("engineering");
    assert!(load(&gw, &token, 120).wait().unwrap().success());
    gw.wait_ended_session("pg");
    let expected = audit_ids(&gw);
    assert!(expected.len() > 120, "{}", expected.len());
    let mut got: Vec<String> = Vec::new();
    while got.len() < expected.len() {
        let body = receiver
            .next_body(Duration::from_secs(60))
            .expect("the webhook sink retries until accepted");
        let batch = body.as_array().expect("a JSON array of events");
        assert!(batch.len() <= 50);
        for e in batch {
            let id = e["id"].as_str().unwrap().to_string();
            // At-least-once: a batch may come again after a failure, never out of order.
            if !got.contains(&id) {
                got.push(id);
            }
        }
    }
    assert_eq!(got, expected[..got.len()], "in order, none missing");
    let metrics = gw.cli_ok(&["metrics"]);
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_audit_sink_failures_total{sink=\"siem\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 4, "{metrics}");
}

/// `nats-server -js` on `port` with its store in `dir`.
fn nats_server(port: u16, dir: &std::path::Path) -> Child {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (Debian package nats-server) is installed");
    wait_for("nats-server listens", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    child
}

/// Messages in JetStream stream `stream`, asked over the plain NATS protocol.
fn stream_messages(port: u16, stream: &str) -> Option<u64> {
    let sock = TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut w = sock.try_clone().ok()?;
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let req = format!(
        "CONNECT {{\"verbose\":false}}\r\nSUB _INBOX.count 1\r\nPUB $JS.API.STREAM.INFO.{stream} _INBOX.count 0\r\n\r\n"
    );
    w.write_all(req.as_bytes()).ok()?;
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line.starts_with("PING") {
            w.write_all(b"PONG\r\n").ok()?;
        } else if line.starts_with("MSG ") {
            let len: usize = line.split_whitespace().last()?.parse().ok()?;
            let mut body = vec![0; len + 2];
            r.read_exact(&mut body).ok()?;
            let v: Value = serde_json::from_slice(&body[..len]).ok()?;
            return v["state"]["messages"].as_u64();
        }
    }
}

#[test]
fn a_nats_server_stopped_under_load_and_restarted_gets_every_event_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = std::env::temp_dir().join(common::unique("sluice-nats"));
    let mut nats = nats_server(port, &store);
    let stream = common::unique("AUDIT").replace('-', "_").to_uppercase();
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(
        &db,
        &format!(
            "audit:\n  sinks:\n    bus:\n      type: nats\n      url: nats://127.0.0.1:{port}\n      subject: sluice.audit.{s}\n      stream: {s}\n",
            s = stream.to_lowercase()
        ),
    ));
    let token = gw.service_account("engineering");
    let stream = stream.to_lowercase();
    wait_for(
        "the first events reach the stream",
        Duration::from_secs(20),
        || stream_messages(port, &stream).filter(|n| *n > 0),
    );

    // Under load: stop the server, let the sink fail, start it again.
    let mut busy = load(&gw, &token, 1500);
    let _ = Command::new("kill").arg(nats.id().to_string()).status();
    nats.wait().unwrap();
    // Events logged while the server is down: the sink must fail on them.
    let mut more = load(&gw, &token, 300);
    assert!(
        more.wait().unwrap().success(),
        "sessions go on while the sink is down"
    );
    wait_for(
        "the sink notices the outage",
        Duration::from_secs(30),
        || {
            let m = gw.cli_ok(&["metrics"]);
            m.lines()
                .find_map(|l| l.strip_prefix("sluice_audit_sink_failures_total{sink=\"bus\"} "))
                .filter(|n| *n != "0")
                .map(|_| ())
        },
    );
    let mut nats = nats_server(port, &store);
    assert!(busy.wait().unwrap().success());
    let mut stderr = String::new();
    busy.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.is_empty(), "{stderr}");

    // Everything logged arrives, exactly once (the stream de-duplicates by event id).
    gw.wait_ended_sessions(2);
    let total = audit_ids(&gw).len() as u64;
    assert!(total > 1800, "{total}");
    let arrived = wait_for("every event in the stream", Duration::from_secs(60), || {
        let n = stream_messages(port, &stream)?;
        let now = audit_ids(&gw).len() as u64;
        (n == now).then_some(n)
    });
    assert!(arrived >= total);
    let _ = nats.kill();
    let _ = nats.wait();
    let _ = std::fs::remove_dir_all(store);
}
