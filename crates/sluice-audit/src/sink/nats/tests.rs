use super::wire::*;
use super::*;
use std::net::TcpListener;
use std::thread;

/// What a scripted server thread fails with (sent back across `join`).
type ServerError = Box<dyn std::error::Error + Send + Sync>;

/// Waits for a scripted server thread and hands back what it recorded.
fn join<T>(
    server: thread::JoinHandle<Result<T, ServerError>>,
) -> Result<T, Box<dyn std::error::Error>> {
    let served = server.join().map_err(|_| "the server thread panicked")?;
    served.map_err(|e| -> Box<dyn std::error::Error> { e })
}

fn cfg(url: &str) -> config::NatsSink {
    config::NatsSink {
        url: url.into(),
        subject: "sluice.audit".into(),
        stream: None,
        token_env: None,
    }
}

fn event(seq: u64) -> SpooledEvent {
    SpooledEvent {
        seq,
        id: format!("ev-{seq}"),
        ts_us: 1_700_000_000_000_000,
        json: format!(r#"{{"id":"ev-{seq}","action":"auth.success"}}"#),
    }
}

#[test]
fn urls() {
    assert_eq!(
        parse_url("nats://127.0.0.1:4223"),
        Ok(("127.0.0.1".into(), 4223))
    );
    assert_eq!(
        parse_url("nats://nats.example"),
        Ok(("nats.example".into(), 4222))
    );
    assert_eq!(
        parse_url("nats://nats.example/"),
        Ok(("nats.example".into(), 4222))
    );
    assert_eq!(parse_url("nats://[::1]:4224"), Ok(("::1".into(), 4224)));
    assert_eq!(parse_url("nats://[::1]"), Ok(("::1".into(), 4222)));
    for bad in [
        "tls://host:4222",
        "host:4222",
        "nats://",
        "nats://:4222",
        "nats://host:0",
        "nats://host:99999",
        "nats://host:port",
        "nats://user:pw@host:4222",
        "nats://host:4222/path",
        "nats://[::1:4222",
    ] {
        assert!(parse_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn subjects_and_stream_names() {
    assert!(valid_subject("sluice.audit"));
    assert!(valid_subject("audit"));
    for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "a\tb"] {
        assert!(!valid_subject(bad), "{bad:?}");
    }
    assert!(valid_stream_name("AUDIT"));
    assert!(valid_stream_name("sluice-audit_1"));
    for bad in ["", "A.B", "A*", "A>", "A B", "a/b", "a\\b"] {
        assert!(!valid_stream_name(bad), "{bad:?}");
    }
}

#[test]
fn new_checks_config_and_reads_the_token() {
    assert!(NatsSink::new(&cfg("nats://127.0.0.1:4222")).is_ok());
    let mut bad = cfg("nats://127.0.0.1:4222");
    bad.subject = "a.*".into();
    assert!(matches!(NatsSink::new(&bad), Err(SinkError::Config(_))));
    let mut bad = cfg("nats://127.0.0.1:4222");
    bad.stream = Some("A.B".into());
    assert!(matches!(NatsSink::new(&bad), Err(SinkError::Config(_))));
    let mut bad = cfg("nats://127.0.0.1:4222");
    bad.token_env = Some("SLUICE_TEST_NATS_TOKEN_SURELY_UNSET".into());
    assert!(matches!(NatsSink::new(&bad), Err(SinkError::Config(_))));
    let mut with_token = cfg("nats://127.0.0.1:4222");
    with_token.token_env = Some("PATH".into()); // always set
    let sink = NatsSink::new(&with_token);
    assert!(sink.is_ok_and(|s| s.token.is_some()));
}

#[test]
fn control_lines() {
    let op = |line: &str| parse_control(line).map(|(op, _)| op);
    assert_eq!(
        op("INFO {\"max_payload\":1048576}\r\n"),
        Ok(Op::Info("{\"max_payload\":1048576}".into()))
    );
    assert_eq!(op("PING\r\n"), Ok(Op::Ping));
    assert_eq!(op("pong\r\n"), Ok(Op::Pong));
    assert_eq!(op("+OK\r\n"), Ok(Op::Ok));
    assert_eq!(
        op("-ERR 'Authorization Violation'\r\n"),
        Ok(Op::Err("Authorization Violation".into()))
    );
    assert_eq!(parse_control("PING\r\n").map(|(_, len)| len), Ok(0));
    let msg = |subject: &str, hdr_len| {
        let subject = subject.to_string();
        Op::Msg(InboxMsg {
            subject,
            hdr_len,
            body: Vec::new(),
        })
    };
    assert_eq!(
        parse_control("MSG _INBOX.x.1 1 27\r\n"),
        Ok((msg("_INBOX.x.1", 0), 27))
    );
    assert_eq!(
        parse_control("MSG a.b 1 reply.to 5\r\n"),
        Ok((msg("a.b", 0), 5))
    );
    assert_eq!(
        parse_control("HMSG _INBOX.x.2 1 16 16\r\n"),
        Ok((msg("_INBOX.x.2", 16), 16))
    );
    assert_eq!(
        parse_control("HMSG a 1 r 10 30\r\n"),
        Ok((msg("a", 10), 30))
    );
    assert!(parse_control("HMSG a 1 31 30\r\n").is_err()); // headers longer than the whole
    assert!(parse_control("MSG a 1\r\n").is_err());
    assert!(parse_control("MSG a 1 r x\r\n").is_err());
    assert!(parse_control("HELLO\r\n").is_err());
}

#[test]
fn replies_are_classified_by_status() {
    let body = b"{}";
    assert_eq!(classify_reply(b"", body), Reply::Payload(body));
    assert_eq!(
        classify_reply(b"NATS/1.0\r\nX: y\r\n\r\n", body),
        Reply::Payload(body)
    );
    assert_eq!(
        classify_reply(b"NATS/1.0 503\r\n\r\n", b""),
        Reply::NoResponders
    );
    assert_eq!(
        classify_reply(b"NATS/1.0 408 Request Timeout\r\n\r\n", b""),
        Reply::Status(408, "Request Timeout".into())
    );
}

#[test]
fn pub_acks() {
    assert_eq!(
        parse_pub_ack(br#"{"stream":"AUDIT","seq":7}"#),
        Ok(PubAck {
            stream: "AUDIT".into(),
            seq: 7,
            duplicate: false
        })
    );
    assert_eq!(
        parse_pub_ack(br#"{"stream":"AUDIT","domain":"hub","seq":7,"duplicate":true}"#),
        Ok(PubAck {
            stream: "AUDIT".into(),
            seq: 7,
            duplicate: true
        })
    );
    let refused = parse_pub_ack(
        br#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#,
    );
    assert!(refused.is_err_and(|e| e.contains("maximum messages exceeded") && e.contains("10077")));
    assert!(parse_pub_ack(b"not json").is_err());
    assert!(parse_pub_ack(br#"{"type":"io.nats.jetstream.api.v1.stream_info_response"}"#).is_err());
}

#[test]
fn reply_indexes() {
    let inbox = "_INBOX.abc";
    assert_eq!(reply_index("_INBOX.abc.10", inbox, 10, 3), Some(0));
    assert_eq!(reply_index("_INBOX.abc.12", inbox, 10, 3), Some(2));
    assert_eq!(reply_index("_INBOX.abc.13", inbox, 10, 3), None);
    assert_eq!(reply_index("_INBOX.abc.9", inbox, 10, 3), None);
    assert_eq!(reply_index("_INBOX.abcd.10", inbox, 10, 3), None);
    assert_eq!(reply_index("_INBOX.other.10", inbox, 10, 3), None);
    assert_eq!(reply_index("_INBOX.abc.x", inbox, 10, 3), None);
}

#[test]
fn headers_and_connect_options() -> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(
        msg_id_headers("0b6c1e8e-1"),
        "NATS/1.0\r\nNats-Msg-Id: 0b6c1e8e-1\r\n\r\n"
    );
    assert_eq!(msg_id_headers("bad\r\nid"), "NATS/1.0\r\n\r\n");
    let plain: serde_json::Value = serde_json::from_str(&connect_json(None))?;
    assert_eq!(plain["headers"], true);
    assert_eq!(plain["no_responders"], true);
    assert_eq!(plain["verbose"], false);
    assert!(plain.get("auth_token").is_none());
    let token = Secret::new("s3cret".to_string());
    let with: serde_json::Value = serde_json::from_str(&connect_json(Some(&token)))?;
    assert_eq!(with["auth_token"], "s3cret");
    Ok(())
}

type FakeServer = (u16, thread::JoinHandle<Result<Vec<String>, ServerError>>);

/// A scripted server: INFO, PONG to the PING, then for each HPUB of the batch the reply
/// produced by `ack(n)` (with a server PING first, which the client must answer).
fn fake_server(ack: fn(usize) -> String) -> Result<FakeServer, Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let handle = thread::spawn(move || -> Result<Vec<String>, ServerError> {
        let (sock, _) = listener.accept()?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut w = sock.try_clone()?;
        let mut r = BufReader::new(sock);
        w.write_all(b"INFO {\"server_id\":\"x\",\"headers\":true,\"max_payload\":1048576}\r\n")?;
        let mut lines = Vec::new();
        let mut line = String::new();
        let mut published = 0;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                break;
            }
            lines.push(line.trim_end().to_string());
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.first().copied() {
                Some("PING") => w.write_all(b"PONG\r\n")?,
                Some("HPUB") => {
                    let total: usize = parts[4].parse()?;
                    let mut body = vec![0; total + 2];
                    r.read_exact(&mut body)?;
                    lines.push(String::from_utf8_lossy(&body).trim_end().to_string());
                    if published == 0 {
                        w.write_all(b"PING\r\n")?;
                    }
                    let reply = ack(published);
                    let msg = format!("MSG {} 1 {}\r\n{reply}\r\n", parts[2], reply.len());
                    w.write_all(msg.as_bytes())?;
                    published += 1;
                }
                _ => {}
            }
        }
        Ok(lines)
    });
    Ok((port, handle))
}

#[test]
fn batch_is_pipelined_and_acked_by_a_scripted_server() -> Result<(), Box<dyn std::error::Error>> {
    let (port, server) = fake_server(|n| format!(r#"{{"stream":"AUDIT","seq":{}}}"#, n + 1))?;
    let mut sink = NatsSink::new(&cfg(&format!("nats://127.0.0.1:{port}")))?;
    let batch: Vec<_> = (1..=3).map(event).collect();
    sink.deliver(&batch)?;
    drop(sink);
    let lines = join(server)?;
    assert!(lines[0].starts_with("CONNECT {"), "{lines:?}");
    assert_eq!(lines[1], "PING");
    assert!(lines[2].starts_with("SUB _INBOX.") && lines[2].ends_with(".* 1"));
    let hpubs: Vec<_> = lines.iter().filter(|l| l.starts_with("HPUB ")).collect();
    assert_eq!(hpubs.len(), 3);
    assert!(hpubs[0].starts_with("HPUB sluice.audit _INBOX."));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("NATS/1.0\r\nNats-Msg-Id: ev-2\r\n\r\n{")));
    // The client answered the server's PING.
    assert!(
        lines.iter().filter(|l| *l == "PONG").count() >= 1,
        "{lines:?}"
    );
    Ok(())
}

#[test]
fn one_negative_ack_refuses_the_batch() -> Result<(), Box<dyn std::error::Error>> {
    let (port, server) = fake_server(|n| match n {
        1 => r#"{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}"#
            .into(),
        n => format!(r#"{{"stream":"AUDIT","seq":{}}}"#, n + 1),
    })?;
    let mut sink = NatsSink::new(&cfg(&format!("nats://127.0.0.1:{port}")))?;
    let batch: Vec<_> = (1..=3).map(event).collect();
    let err = sink.deliver(&batch).unwrap_err();
    assert!(
        matches!(&err, SinkError::Refused(why) if why.contains("event 2") && why.contains("maximum messages")),
        "{err}"
    );
    assert!(sink.conn.is_none(), "the connection is dropped on error");
    drop(sink);
    join(server)?;
    Ok(())
}

#[test]
fn oversized_event_is_refused_before_sending() -> Result<(), Box<dyn std::error::Error>> {
    let (port, server) = fake_server(|_| r#"{"stream":"AUDIT","seq":1}"#.into())?;
    let mut sink = NatsSink::new(&cfg(&format!("nats://127.0.0.1:{port}")))?;
    let mut big = event(1);
    big.json = format!("\"{}\"", "x".repeat(1024 * 1024));
    let err = sink.deliver(&[big]).unwrap_err();
    assert!(
        matches!(&err, SinkError::Refused(why) if why.contains("max_payload")),
        "{err}"
    );
    drop(sink);
    let lines = join(server)?;
    assert!(!lines.iter().any(|l| l.starts_with("HPUB")));
    Ok(())
}

#[test]
fn unreachable_server_is_an_io_error() -> Result<(), Box<dyn std::error::Error>> {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut sink = NatsSink::new(&cfg(&format!("nats://127.0.0.1:{port}")))?;
    assert!(matches!(sink.deliver(&[event(1)]), Err(SinkError::Io(_))));
    Ok(())
}

#[test]
fn pings_that_came_while_idle_are_answered_before_the_next_batch(
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (pinged, on_ping) = std::sync::mpsc::channel();
    let server = thread::spawn(move || -> Result<Vec<String>, ServerError> {
        let (sock, _) = listener.accept()?;
        sock.set_nodelay(true)?;
        let mut w = sock.try_clone()?;
        let mut r = BufReader::new(sock);
        w.write_all(b"INFO {\"headers\":true}\r\n")?;
        let (mut lines, mut line, mut acked) = (Vec::new(), String::new(), 0);
        while {
            line.clear();
            r.read_line(&mut line)? > 0
        } {
            let parts: Vec<String> = line.split_whitespace().map(String::from).collect();
            lines.push(parts[0].clone());
            match parts[0].as_str() {
                "PING" => w.write_all(b"PONG\r\n")?,
                "HPUB" => {
                    let mut body = vec![0; parts[4].parse::<usize>()? + 2];
                    r.read_exact(&mut body)?;
                    acked += 1;
                    let ack = format!("{{\"stream\":\"S\",\"seq\":{acked}}}");
                    let mut msg = format!("MSG {} 1 {}\r\n{ack}\r\n", parts[2], ack.len());
                    if acked == 1 {
                        // While the client is idle, the server pings it.
                        msg.push_str("PING\r\n");
                    }
                    w.write_all(msg.as_bytes())?;
                    if acked == 1 {
                        pinged.send(())?;
                    }
                }
                _ => {}
            }
        }
        Ok(lines)
    });
    let mut sink = NatsSink::new(&cfg(&format!("nats://127.0.0.1:{port}")))?;
    sink.deliver(&[event(1)])?;
    on_ping.recv()?;
    sink.deliver(&[event(2)])?;
    drop(sink);
    let lines = join(server)?;
    assert_eq!(lines, ["CONNECT", "PING", "SUB", "HPUB", "PONG", "HPUB"]);
    Ok(())
}
