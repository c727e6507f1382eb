use super::*;
use std::io::BufRead;
use std::net::TcpListener;

fn cfg(address: &str) -> config::SyslogSink {
    config::SyslogSink {
        address: address.into(),
        tls: false,
        ca_file: None,
        server_name: None,
        app_name: "sluice".into(),
        facility: 10,
    }
}

fn header() -> Header {
    Header {
        facility: 10,
        hostname: "gw1".into(),
        app_name: "sluice".into(),
        procid: 42,
    }
}

fn event(
    seq: u64,
    action: &str,
    outcome: Outcome,
) -> Result<SpooledEvent, Box<dyn std::error::Error>> {
    let mut ev = AuditEvent::new(format!("ev-{seq}"), action, outcome);
    ev.ts_us = 1_700_000_000_123_456;
    Ok(SpooledEvent {
        seq,
        id: ev.id.clone(),
        ts_us: ev.ts_us,
        json: serde_json::to_string(&ev)?,
    })
}

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(civil_from_days(11_017), (2000, 3, 1));
    assert_eq!(civil_from_days(19_722), (2023, 12, 31));
    assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    // Every day for a few centuries round-trips through a naive day count.
    let mut days = civil_days_from(1600, 1, 1);
    for year in 1600..2400 {
        for month in 1..=12u32 {
            for day in 1..=days_in_month(year, month) {
                assert_eq!(civil_from_days(days), (year, month, day));
                days += 1;
            }
        }
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01, counted naively (for checking `civil_from_days`).
fn civil_days_from(year: i64, month: u32, day: u32) -> i64 {
    let mut days = 0i64;
    for y in year..1970 {
        days -= (1..=12)
            .map(|m| i64::from(days_in_month(y, m)))
            .sum::<i64>();
    }
    days += (1..month)
        .map(|m| i64::from(days_in_month(year, m)))
        .sum::<i64>();
    days + i64::from(day) - 1
}

#[test]
fn timestamps() {
    assert_eq!(
        rfc3339_micros(0).as_deref(),
        Some("1970-01-01T00:00:00.000000Z")
    );
    assert_eq!(
        rfc3339_micros(1_700_000_000_123_456).as_deref(),
        Some("2023-11-14T22:13:20.123456Z")
    );
    assert_eq!(
        rfc3339_micros(-1).as_deref(),
        Some("1969-12-31T23:59:59.999999Z")
    );
    assert_eq!(
        rfc3339_micros(951_782_400_000_001).as_deref(),
        Some("2000-02-29T00:00:00.000001Z")
    );
    assert_eq!(
        rfc3339_micros(253_402_300_799_999_999).as_deref(),
        Some("9999-12-31T23:59:59.999999Z")
    );
    assert_eq!(rfc3339_micros(253_402_300_800_000_000), None);
    assert_eq!(rfc3339_micros(i64::MIN), None);
    assert_eq!(rfc3339_micros(i64::MAX), None);
}

#[test]
fn escaping_and_msgid() {
    assert_eq!(sd_escape("plain"), "plain");
    assert_eq!(sd_escape(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
    assert_eq!(sd_escape("é["), "é[");
    assert_eq!(msg_id("auth.failure"), "auth.failure");
    assert_eq!(msg_id("a b\tc"), "a_b_c");
    assert_eq!(msg_id("é"), "_");
    assert_eq!(msg_id(""), "-");
    assert_eq!(msg_id(&"x".repeat(40)), "x".repeat(32));
}

#[test]
fn framing() {
    let mut out = Vec::new();
    frame("<85>1 - - - - - - hé", &mut out);
    frame("x", &mut out);
    assert_eq!(out, "21 <85>1 - - - - - - hé1 x".as_bytes());
}

#[test]
fn messages() -> Result<(), Box<dyn std::error::Error>> {
    let ok = event(1, "session.start", Outcome::Success)?;
    assert_eq!(
        format_message(&header(), &ok),
        format!(
            "<85>1 2023-11-14T22:13:20.123456Z gw1 sluice 42 session.start \
             [sluice@32473 id=\"ev-1\" action=\"session.start\" outcome=\"success\"] {}",
            ok.json
        )
    );
    let failed = event(2, "auth.failure", Outcome::Failure)?;
    let msg = format_message(&header(), &failed);
    assert!(msg.starts_with("<84>1 "), "{msg}");
    assert!(msg.contains(
        " auth.failure [sluice@32473 id=\"ev-2\" action=\"auth.failure\" outcome=\"failure\"] {"
    ));
    assert!(msg.ends_with(&failed.json));

    let odd = event(3, "we\"ird] act\\ion", Outcome::Success)?;
    let msg = format_message(&header(), &odd);
    assert!(msg.contains(r#"action="we\"ird\] act\\ion""#), "{msg}");
    assert!(msg.contains(" we\"ird]_act\\ion [sluice@"), "{msg}");

    let not_audit = SpooledEvent {
        seq: 4,
        id: "x]".into(),
        ts_us: 0,
        json: "{}".into(),
    };
    assert_eq!(
        format_message(&header(), &not_audit),
        "<85>1 1970-01-01T00:00:00.000000Z gw1 sluice 42 - [sluice@32473 id=\"x\\]\"] {}"
    );
    Ok(())
}

#[test]
fn config_checks() -> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(split_host("logs.example:6514"), Some("logs.example"));
    assert_eq!(split_host("[::1]:514"), Some("::1"));
    assert_eq!(split_host("::1:514"), None);
    assert_eq!(split_host("host"), None);
    assert_eq!(split_host(":514"), None);
    assert_eq!(split_host("host:x"), None);
    assert_eq!(header_hostname("gw-1.example"), "gw-1.example");
    assert_eq!(header_hostname(""), "-");
    assert_eq!(header_hostname("a b"), "-");

    assert!(SyslogSink::new(&cfg("127.0.0.1:514")).is_ok());
    let mut bad = cfg("127.0.0.1");
    assert!(matches!(SyslogSink::new(&bad), Err(SinkError::Config(_))));
    bad = cfg("127.0.0.1:514");
    bad.facility = 24;
    assert!(matches!(SyslogSink::new(&bad), Err(SinkError::Config(_))));
    bad = cfg("127.0.0.1:514");
    bad.app_name = "two words".into();
    assert!(matches!(SyslogSink::new(&bad), Err(SinkError::Config(_))));
    bad = cfg("127.0.0.1:514");
    bad.tls = true;
    assert!(matches!(SyslogSink::new(&bad), Err(SinkError::Config(_))));
    bad.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(SyslogSink::new(&bad), Err(SinkError::Config(_))));
    let not_pem = std::env::temp_dir().join(format!("sluice-syslog-{}.pem", std::process::id()));
    std::fs::write(&not_pem, "not a certificate\n")?;
    bad.ca_file = Some(not_pem.clone());
    let err = SyslogSink::new(&bad);
    std::fs::remove_file(&not_pem)?;
    assert!(matches!(err, Err(SinkError::Config(_))));
    Ok(())
}

/// Reads one octet-counted frame.
fn read_frame(r: &mut impl BufRead) -> Result<String, Box<dyn std::error::Error>> {
    let mut len = Vec::new();
    r.read_until(b' ', &mut len)?;
    let len: usize = std::str::from_utf8(&len[..len.len() - 1])?.parse()?;
    let mut msg = vec![0; len];
    r.read_exact(&mut msg)?;
    Ok(String::from_utf8(msg)?)
}

#[test]
fn plain_tcp_delivery_and_reconnect_after_collector_close() -> Result<(), Box<dyn std::error::Error>>
{
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let mut sink = SyslogSink::new(&cfg(&addr))?;
    let batch: Vec<_> = (1..=2)
        .map(|n| event(n, "auth.success", Outcome::Success))
        .collect::<Result<_, _>>()?;
    sink.deliver(&batch)?;

    let (first, _) = listener.accept()?;
    first.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut r = io::BufReader::new(first);
    for ev in &batch {
        let msg = read_frame(&mut r)?;
        assert!(msg.starts_with("<85>1 "), "{msg}");
        assert!(msg.ends_with(&ev.json));
    }
    // The collector closes the connection (on loopback the FIN arrives with the close); the
    // next batch notices and goes to a new connection instead of the dead one.
    drop(r);
    let next = [event(3, "auth.failure", Outcome::Failure)?];
    sink.deliver(&next)?;
    let (second, _) = listener.accept()?;
    second.set_read_timeout(Some(IO_TIMEOUT))?;
    let msg = read_frame(&mut io::BufReader::new(second))?;
    assert!(
        msg.starts_with("<84>1 ") && msg.ends_with(&next[0].json),
        "{msg}"
    );
    Ok(())
}

#[test]
fn refused_connection_is_an_io_error() -> Result<(), Box<dyn std::error::Error>> {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.to_string()
    };
    let mut sink = SyslogSink::new(&cfg(&addr))?;
    let batch = [event(1, "auth.success", Outcome::Success)?];
    assert!(matches!(sink.deliver(&batch), Err(SinkError::Io(_))));
    Ok(())
}
