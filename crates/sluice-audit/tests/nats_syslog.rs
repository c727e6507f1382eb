//! The NATS JetStream and syslog sinks against real servers: `nats-server -js` and `rsyslogd`
//! (plain TCP and TLS), each started by the test on a free port in a temp dir and killed at the
//! end. A test whose server binary is not installed says so and passes without running.

use sluice_audit::config::{NatsSink as NatsConfig, SyslogSink as SyslogConfig};
use sluice_audit::sink::nats::NatsSink;
use sluice_audit::sink::syslog::SyslogSink;
use sluice_audit::{Sink, SinkError, SpooledEvent};
use sluice_core::{AuditEvent, Outcome};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NATS_SERVER: &str = "/usr/sbin/nats-server";
const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Scaffolding: temp dirs, ports, server processes, events.

/// Re-checks `done` until it gives a value; each check is itself a round trip (a connection
/// attempt, a file read, a process poll), so there is no sleep. After [`DEADLINE`], fails
/// showing `log`.
fn wait_until<T>(what: &str, log: &Path, mut done: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = done() {
            return value;
        }
        if Instant::now() >= deadline {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out: {what}\n{log_text}");
        }
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("sluice-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, killed on drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `cmd` (output to a new log file in `dir`), then waits until `port` accepts.
    fn start(cmd: &mut Command, dir: &Path, port: u16) -> Server {
        let log = dir.join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let out = std::fs::File::create(&log).unwrap();
        let stdout = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(out)
            .spawn()
            .unwrap();
        let mut server = Server { child, log };
        let addr = ([127, 0, 0, 1], port).into();
        wait_until("port open", &server.log, || {
            let exited = server.child.try_wait().unwrap();
            assert!(exited.is_none(), "server exited: {exited:?}");
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()
        });
        server
    }

    /// SIGTERM, and wait for the exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap();
    }

    fn log_contains(&self, text: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains(text))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn installed(binary: &str) -> bool {
    let ok = Path::new(binary).exists();
    if !ok {
        eprintln!("SKIPPED: {binary} is not installed");
    }
    ok
}

/// Events `range` (new ids on every call), odd ones successes and even ones failures.
fn events(range: std::ops::RangeInclusive<u64>) -> Vec<SpooledEvent> {
    let event = |seq: u64| {
        let outcome = [Outcome::Failure, Outcome::Success][(seq % 2) as usize];
        let mut ev = AuditEvent::new(uuid::Uuid::new_v4().to_string(), "auth.login", outcome);
        ev.reason = Some(format!("test \"event\" {seq} ]é"));
        let (id, ts_us, json) = (ev.id.clone(), ev.ts_us, serde_json::to_string(&ev).unwrap());
        SpooledEvent {
            seq,
            id,
            ts_us,
            json,
        }
    };
    range.map(event).collect()
}

fn concat(parts: &[&[SpooledEvent]]) -> Vec<SpooledEvent> {
    parts.concat()
}

// ---------------------------------------------------------------------------------------------
// NATS.

/// `nats-server -js` on `port`, storing in `dir/store`, with `extra` arguments.
fn start_nats(dir: &Path, port: u16, extra: &[&str]) -> Server {
    let mut cmd = Command::new(NATS_SERVER);
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"]);
    Server::start(cmd.arg(dir.join("store")).args(extra), dir, port)
}

fn nats_config(port: u16, stream: Option<&str>) -> NatsConfig {
    let (url, subject) = (format!("nats://127.0.0.1:{port}"), "sluice.audit".into());
    let stream = stream.map(Into::into);
    NatsConfig {
        url,
        subject,
        stream,
        token_env: None,
    }
}

/// A bare protocol client that reads the stream back.
struct RawNats {
    r: BufReader<TcpStream>,
    w: TcpStream,
    n: u32,
}

impl RawNats {
    fn connect(port: u16) -> RawNats {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(DEADLINE)).unwrap();
        let (w, r) = (sock.try_clone().unwrap(), BufReader::new(sock));
        let mut raw = RawNats { r, w, n: 0 };
        let mut info = String::new();
        raw.r.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO "), "{info}");
        let hello = "CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB _INBOX.raw.* 1\r\n";
        raw.w.write_all(hello.as_bytes()).unwrap();
        raw
    }

    /// Sends a request and returns the reply's JSON.
    fn request(&mut self, subject: &str, body: &str) -> serde_json::Value {
        self.n += 1;
        let reply_to = format!("_INBOX.raw.{}", self.n);
        let msg = format!("PUB {subject} {reply_to} {}\r\n{body}\r\n", body.len());
        self.w.write_all(msg.as_bytes()).unwrap();
        loop {
            let mut line = String::new();
            assert!(self.r.read_line(&mut line).unwrap() > 0, "server closed");
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts[0] {
                "PING" => self.w.write_all(b"PONG\r\n").unwrap(),
                "MSG" => {
                    let total: usize = parts[parts.len() - 1].parse().unwrap();
                    let mut buf = vec![0; total + 2];
                    self.r.read_exact(&mut buf).unwrap();
                    if parts[1] == reply_to {
                        return serde_json::from_slice(&buf[..total]).unwrap();
                    }
                }
                "-ERR" | "HMSG" => panic!("{line}"),
                _ => {}
            }
        }
    }

    /// Asserts the stream holds exactly `expected`, in order, each with its Nats-Msg-Id.
    fn assert_stream_holds(&mut self, stream: &str, expected: &[SpooledEvent]) {
        let info = self.request(&format!("$JS.API.STREAM.INFO.{stream}"), "");
        assert_eq!(info["state"]["messages"], expected.len(), "{info}");
        let first = info["state"]["first_seq"].as_u64().unwrap();
        for (seq, ev) in (first..).zip(expected) {
            let got = self.request(
                &format!("$JS.API.STREAM.MSG.GET.{stream}"),
                &format!("{{\"seq\":{seq}}}"),
            );
            let msg = &got["message"];
            assert_eq!(msg["subject"], "sluice.audit", "{got}");
            let text = |field: &str| String::from_utf8(base64(msg[field].as_str().unwrap()));
            assert_eq!(text("data").unwrap(), ev.json);
            let id = format!("Nats-Msg-Id: {}\r\n", ev.id);
            assert!(text("hdrs").unwrap().contains(&id), "{got}");
        }
    }
}

/// Standard base64 with padding (what JetStream uses in `STREAM.MSG.GET`).
fn base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn nats_jetstream_stores_every_event_once() {
    if !installed(NATS_SERVER) {
        return;
    }
    let (dir, port) = (temp_dir("nats"), free_port());
    let _server = start_nats(&dir.0, port, &[]);

    let (first, second, third) = (events(1..=3), events(4..=5), events(6..=505));
    let mut sink = NatsSink::new(&nats_config(port, Some("AUDIT"))).unwrap();
    sink.deliver(&first).unwrap();
    sink.deliver(&second).unwrap();
    // Offered again (as after a lost ack): JetStream de-duplicates by Nats-Msg-Id.
    sink.deliver(&first).unwrap();
    // A second sink finds the stream already there, and is de-duplicated as well.
    let mut again = NatsSink::new(&nats_config(port, Some("AUDIT"))).unwrap();
    again.deliver(&second).unwrap();
    again.deliver(&third).unwrap(); // a full pipelined batch

    let mut raw = RawNats::connect(port);
    raw.assert_stream_holds("AUDIT", &concat(&[&first, &second, &third]));
    let cfg = &raw.request("$JS.API.STREAM.INFO.AUDIT", "")["config"];
    assert_eq!(cfg["duplicate_window"], 120_000_000_000u64);
    assert_eq!(cfg["storage"], "file");
    assert_eq!(cfg["subjects"][0], "sluice.audit");
}

#[test]
fn nats_server_restart_loses_nothing() {
    if !installed(NATS_SERVER) {
        return;
    }
    let (dir, port) = (temp_dir("nats"), free_port());
    let server = start_nats(&dir.0, port, &[]);
    let mut sink = NatsSink::new(&nats_config(port, Some("AUDIT"))).unwrap();
    let (before, during, after) = (events(1..=3), events(4..=6), events(7..=8));
    sink.deliver(&before).unwrap();

    server.stop();
    assert!(sink.deliver(&during).is_err());
    assert!(matches!(sink.deliver(&during), Err(SinkError::Io(_))));

    // Same port, same store.
    let _server = start_nats(&dir.0, port, &[]);
    sink.deliver(&during).unwrap();
    sink.deliver(&after).unwrap();
    RawNats::connect(port).assert_stream_holds("AUDIT", &concat(&[&before, &during, &after]));
}

#[test]
fn nats_idle_connection_closed_by_the_server_is_replaced() {
    if !installed(NATS_SERVER) {
        return;
    }
    let (dir, port) = (temp_dir("nats"), free_port());
    // The server pings every 100 ms and drops a client that leaves one ping unanswered.
    let conf = dir.0.join("nats.conf");
    std::fs::write(&conf, "ping_interval: \"100ms\"\nping_max: 1\n").unwrap();
    let server = start_nats(&dir.0, port, &["-D", "-c", conf.to_str().unwrap()]);
    let mut sink = NatsSink::new(&nats_config(port, Some("AUDIT"))).unwrap();
    let (first, second) = (events(1..=2), events(3..=4));
    sink.deliver(&first).unwrap();
    wait_until("stale connection", &server.log, || {
        server.log_contains("Stale Connection").then_some(())
    });
    // The first delivery after idling succeeds: the sink notices and reconnects.
    sink.deliver(&second).unwrap();
    RawNats::connect(port).assert_stream_holds("AUDIT", &concat(&[&first, &second]));
}

#[test]
fn nats_subject_without_stream_is_refused() {
    if !installed(NATS_SERVER) {
        return;
    }
    let (dir, port) = (temp_dir("nats"), free_port());
    let _server = start_nats(&dir.0, port, &[]);
    let mut sink = NatsSink::new(&nats_config(port, None)).unwrap();
    let err = sink.deliver(&events(1..=2)).unwrap_err();
    let no_responders = matches!(&err, SinkError::Refused(why) if why.contains("no responders"));
    assert!(no_responders, "{err}");
    // Once a sink with `stream` has created it, the same sink succeeds.
    let mut creator = NatsSink::new(&nats_config(port, Some("AUDIT"))).unwrap();
    creator.deliver(&events(3..=3)).unwrap();
    sink.deliver(&events(1..=2)).unwrap();
}

#[test]
fn nats_token_authentication() {
    if !installed(NATS_SERVER) {
        return;
    }
    let (dir, port) = (temp_dir("nats"), free_port());
    let _server = start_nats(&dir.0, port, &["--auth", "s3cret-token"]);
    let (good, bad) = (
        format!("SLUICE_IT_TOKEN_{port}"),
        format!("SLUICE_IT_BAD_{port}"),
    );
    std::env::set_var(&good, "s3cret-token");
    std::env::set_var(&bad, "wrong");

    let mut cfg = nats_config(port, Some("AUDIT"));
    cfg.token_env = Some(bad);
    let err = NatsSink::new(&cfg)
        .unwrap()
        .deliver(&events(1..=1))
        .unwrap_err();
    let refused = matches!(&err, SinkError::Refused(why) if why.contains("Authorization"));
    assert!(refused, "{err}");
    cfg.token_env = Some(good);
    NatsSink::new(&cfg)
        .unwrap()
        .deliver(&events(1..=1))
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Syslog.

/// rsyslogd on `port`, writing each message raw to `raw.log` and as rsyslog parsed it (RFC 5424
/// fields, `|`-separated) to `parsed.log` in `dir`. Only our TCP input is loaded: no imuxsock
/// (there is no /dev/log here), no imklog.
fn start_rsyslog(dir: &Path, port: u16, tls: bool) -> Server {
    let d = dir.display();
    let (global_tls, module_tls) = match tls {
        true => (
            format!(
                " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" \
                 DefaultNetstreamDriverCertFile=\"{d}/server.pem\" \
                 DefaultNetstreamDriverKeyFile=\"{d}/server.key\""
            ),
            " StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\"",
        ),
        false => (String::new(), ""),
    };
    let fields = "%pri%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|\
                  %structured-data%|%msg%";
    let conf = format!(
        "global(workDirectory=\"{d}\" maxMessageSize=\"64k\"{global_tls})
        module(load=\"imtcp\"{module_tls})
        template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")
        template(name=\"parsed\" type=\"string\" string=\"{fields}\\n\")
        ruleset(name=\"out\") {{
          action(type=\"omfile\" file=\"{d}/raw.log\" template=\"raw\")
          action(type=\"omfile\" file=\"{d}/parsed.log\" template=\"parsed\")
        }}
        input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")\n"
    );
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(RSYSLOGD);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"));
    Server::start(&mut cmd, dir, port)
}

fn syslog_config(port: u16) -> SyslogConfig {
    SyslogConfig {
        address: format!("127.0.0.1:{port}"),
        tls: false,
        ca_file: None,
        server_name: None,
        app_name: "sluice".into(),
        facility: 10,
    }
}

/// Waits until `file` in `dir` has at least `n` lines and returns them.
fn wait_for_lines(dir: &Path, file: &str, n: usize, server: &Server) -> Vec<String> {
    wait_until(&format!("{n} lines in {file}"), &server.log, || {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        (lines.len() >= n).then_some(lines)
    })
}

/// RFC 5424 timestamp of microseconds since the epoch, computed with `date`.
fn expected_timestamp(ts_us: i64) -> String {
    let at = format!("@{}", ts_us.div_euclid(1_000_000));
    let cmd = Command::new("date")
        .args(["-u", "-d", &at, "+%Y-%m-%dT%H:%M:%S"])
        .output();
    let secs = String::from_utf8(cmd.unwrap().stdout).unwrap();
    format!("{}.{:06}Z", secs.trim(), ts_us.rem_euclid(1_000_000))
}

/// Checks what rsyslog received (raw) and how it parsed it, against the events sent.
fn assert_syslog_holds(dir: &Path, server: &Server, expected: &[SpooledEvent]) {
    let raw = wait_for_lines(dir, "raw.log", expected.len(), server);
    let parsed = wait_for_lines(dir, "parsed.log", expected.len(), server);
    assert_eq!(raw.len(), expected.len(), "{raw:#?}");
    let pid = std::process::id().to_string();
    for ((raw, parsed), ev) in raw.iter().zip(&parsed).zip(expected) {
        let audit: AuditEvent = serde_json::from_str(&ev.json).unwrap();
        let success = audit.outcome == Outcome::Success;
        let (pri, outcome) = if success {
            ("85", "success")
        } else {
            ("84", "failure")
        };
        let ts = expected_timestamp(audit.ts_us);
        assert!(raw.starts_with(&format!("<{pri}>1 {ts} ")), "{raw}");
        assert!(raw.ends_with(&format!("] {}", ev.json)), "{raw}");
        let fields: Vec<&str> = parsed.splitn(8, '|').collect();
        assert_eq!(fields.len(), 8, "{parsed}");
        assert_eq!(fields[..2], [pri, ts.as_str()]);
        assert_ne!(fields[2], "");
        assert_eq!(fields[3..6], ["sluice", pid.as_str(), "auth.login"]);
        let id = &ev.id;
        let sd = format!(r#"[sluice@32473 id="{id}" action="auth.login" outcome="{outcome}"]"#);
        assert_eq!(fields[6..], [sd.as_str(), ev.json.as_str()]);
    }
}

#[test]
fn syslog_messages_are_rfc5424() {
    if !installed(RSYSLOGD) {
        return;
    }
    let (dir, port) = (temp_dir("syslog"), free_port());
    let server = start_rsyslog(&dir.0, port, false);
    let mut sink = SyslogSink::new(&syslog_config(port)).unwrap();
    let sent = events(1..=4);
    sink.deliver(&sent[..1]).unwrap();
    sink.deliver(&sent[1..]).unwrap();
    assert_syslog_holds(&dir.0, &server, &sent);
}

#[test]
fn syslog_tcp_reconnects_after_collector_restart() {
    if !installed(RSYSLOGD) {
        return;
    }
    let (dir, port) = (temp_dir("syslog"), free_port());
    let server = start_rsyslog(&dir.0, port, false);
    let mut sink = SyslogSink::new(&syslog_config(port)).unwrap();
    let (first, second, during) = (events(1..=3), events(4..=5), events(6..=7));
    sink.deliver(&first).unwrap();
    sink.deliver(&second).unwrap();
    wait_for_lines(&dir.0, "raw.log", 5, &server);

    // The collector goes away: the sink notices the closed connection and fails.
    server.stop();
    assert!(matches!(sink.deliver(&during), Err(SinkError::Io(_))));
    // Back on the same port: the retry goes through on a new connection.
    let server = start_rsyslog(&dir.0, port, false);
    sink.deliver(&during).unwrap();
    let lines = wait_for_lines(&dir.0, "raw.log", 7, &server);
    assert_eq!(lines.len(), 7, "{lines:#?}");
    for ev in concat(&[&first, &second, &during]) {
        assert_eq!(lines.iter().filter(|l| l.ends_with(&ev.json)).count(), 1);
    }
}

/// A CA (`{prefix}ca.pem`) and a server certificate for `localhost` and 127.0.0.1
/// (`{prefix}server.pem`, `.key`), made with `openssl`.
fn make_certs(dir: &Path, prefix: &str) {
    let script = format!(
        "set -e
        ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
        openssl req -x509 -days 2 $ec -keyout {prefix}ca.key -out {prefix}ca.pem \
          -subj /CN={prefix}ca -addext basicConstraints=critical,CA:TRUE \
          -addext keyUsage=critical,keyCertSign
        openssl req $ec -keyout {prefix}server.key -out {prefix}server.csr -subj /CN=localhost
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE
        keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' > {prefix}ext.cnf
        openssl x509 -req -in {prefix}server.csr -CA {prefix}ca.pem -CAkey {prefix}ca.key \
          -CAcreateserial -out {prefix}server.pem -days 2 -extfile {prefix}ext.cnf"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output();
    let out = out.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl: {stderr}");
}

#[test]
fn syslog_tls_to_rsyslog() {
    if !installed(RSYSLOGD) {
        return;
    }
    let (dir, port) = (temp_dir("syslog-tls"), free_port());
    make_certs(&dir.0, ""); // the collector's
    make_certs(&dir.0, "other-"); // an unrelated CA
    let server = start_rsyslog(&dir.0, port, true);

    let mut cfg = syslog_config(port);
    cfg.tls = true;
    cfg.ca_file = Some(dir.0.join("ca.pem"));
    cfg.server_name = Some("localhost".into());
    let mut sink = SyslogSink::new(&cfg).unwrap();
    let sent = events(1..=3);
    sink.deliver(&sent[..2]).unwrap();
    sink.deliver(&sent[2..]).unwrap();
    assert_syslog_holds(&dir.0, &server, &sent);

    // Not trusted: another CA, or a name the certificate does not carry.
    let mut wrong_ca = cfg.clone();
    wrong_ca.ca_file = Some(dir.0.join("other-ca.pem"));
    let err = SyslogSink::new(&wrong_ca).unwrap().deliver(&events(9..=9));
    assert!(matches!(err, Err(SinkError::Io(_))), "{err:?}");
    let mut wrong_name = cfg.clone();
    wrong_name.server_name = Some("elsewhere.example".into());
    let err = SyslogSink::new(&wrong_name)
        .unwrap()
        .deliver(&events(9..=9));
    assert!(matches!(err, Err(SinkError::Io(_))), "{err:?}");

    // The collector restarts: the sink notices the closed TLS connection and reconnects.
    server.stop();
    let during = events(4..=4);
    assert!(sink.deliver(&during).is_err());
    let server = start_rsyslog(&dir.0, port, true);
    sink.deliver(&during).unwrap();
    // Without server_name, the name checked is the address's host (an IP in the certificate).
    cfg.server_name = None;
    let after = events(5..=5);
    SyslogSink::new(&cfg).unwrap().deliver(&after).unwrap();
    let lines = wait_for_lines(&dir.0, "raw.log", 5, &server);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for ev in concat(&[&sent, &during, &after]) {
        assert_eq!(lines.iter().filter(|l| l.ends_with(&ev.json)).count(), 1);
    }
}
