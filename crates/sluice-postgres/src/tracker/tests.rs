//! Deterministic tests of the tracker: messages in, events out.

use super::*;
use crate::codec::frontend::Bind;

fn tracker(max_rows: usize) -> Tracker {
    Tracker::new(TrackerSettings {
        max_rows,
        max_value_len: 8,
    })
}

fn row(values: &[Option<&str>]) -> Vec<u8> {
    let mut b = (values.len() as i16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(s) => {
                b.extend_from_slice(&(s.len() as i32).to_be_bytes());
                b.extend_from_slice(s.as_bytes());
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    b
}

fn results(events: &[SessionEvent]) -> Vec<&QueryResult> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Result(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn simple_query_records_text_columns_rows_and_tag() {
    let mut t = tracker(10);
    let mut out = Vec::new();
    t.on_client(
        &FrontendMessage::Query("select 1 as a; select 2"),
        100,
        &mut out,
    );
    t.on_server(&BackendMessage::RowDescription(vec!["a"]), 110, &mut out);
    let r = row(&[Some("1")]);
    t.on_server(&BackendMessage::DataRow(&r), 111, &mut out);
    t.on_server(&BackendMessage::CommandComplete("SELECT 1"), 112, &mut out);
    t.on_server(
        &BackendMessage::RowDescription(vec!["?column?"]),
        113,
        &mut out,
    );
    let r = row(&[Some("2")]);
    t.on_server(&BackendMessage::DataRow(&r), 114, &mut out);
    t.on_server(&BackendMessage::CommandComplete("SELECT 1"), 115, &mut out);
    t.on_server(&BackendMessage::ReadyForQuery(b'I'), 116, &mut out);

    let SessionEvent::Query(q) = &out[0] else {
        panic!("first event is the query")
    };
    assert_eq!((q.id, &*q.text), (1, "select 1 as a; select 2"));
    let rs = results(&out);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].columns, vec!["a"]);
    assert_eq!(rs[0].rows, vec![vec![Some("1".to_string())]]);
    assert_eq!(rs[0].outcome.tags, vec!["SELECT 1"]);
    assert_eq!(rs[0].duration_us, 12);
    assert_eq!(rs[1].columns, vec!["?column?"]);
    assert!(t.expect.is_empty());
}

#[test]
fn extended_protocol_records_params_and_skips_after_error() {
    let mut t = tracker(10);
    let mut out = Vec::new();
    t.on_client(
        &FrontendMessage::Parse {
            name: "s",
            query: "select $1",
            param_types: vec![],
        },
        0,
        &mut out,
    );
    for portal in ["p1", "p2"] {
        t.on_client(
            &FrontendMessage::Bind(Bind {
                portal,
                statement: "s",
                param_formats: vec![],
                params: vec![Some(b"42"), None],
                result_formats: vec![],
            }),
            0,
            &mut out,
        );
        t.on_client(&FrontendMessage::Execute { portal }, 0, &mut out);
    }
    t.on_client(&FrontendMessage::Sync, 0, &mut out);
    let SessionEvent::Query(q) = &out[0] else {
        panic!("query expected")
    };
    assert_eq!(&*q.text, "select $1");
    assert_eq!(q.params, Some(vec![Some("42".to_string()), None]));

    t.on_server(&BackendMessage::ParseComplete, 1, &mut out);
    t.on_server(&BackendMessage::BindComplete, 1, &mut out);
    t.on_server(
        &BackendMessage::Error(crate::codec::backend::ErrorFields {
            severity: "ERROR",
            code: "22012",
            message: "division by zero",
        }),
        2,
        &mut out,
    );
    t.on_server(&BackendMessage::ReadyForQuery(b'I'), 3, &mut out);
    let rs = results(&out);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].query, 1);
    assert_eq!(
        rs[0].outcome.error.as_ref().map(|e| e.code.as_str()),
        Some("22012")
    );
    assert_eq!(rs[1].query, 2);
    assert!(rs[1].outcome.skipped);
    assert!(t.expect.is_empty());
}

#[test]
fn rows_beyond_the_cap_are_counted_not_recorded_and_values_are_cut() {
    let mut t = tracker(2);
    let mut out = Vec::new();
    t.on_client(&FrontendMessage::Query("select x"), 0, &mut out);
    let r = row(&[Some("0123456789")]);
    for _ in 0..5 {
        t.on_server(&BackendMessage::DataRow(&r), 0, &mut out);
    }
    t.on_server(&BackendMessage::CommandComplete("SELECT 5"), 0, &mut out);
    let rs = results(&out);
    assert_eq!(rs[0].rows.len(), 2);
    assert!(rs[0].rows_truncated);
    assert_eq!(rs[0].outcome.row_count, 5);
    assert_eq!(rs[0].rows[0][0].as_deref(), Some("01234567…(truncated)"));
}

#[test]
fn described_columns_attach_to_later_executions() {
    let mut t = tracker(5);
    let mut out = Vec::new();
    t.on_client(
        &FrontendMessage::Parse {
            name: "s",
            query: "select a from t",
            param_types: vec![],
        },
        0,
        &mut out,
    );
    t.on_client(
        &FrontendMessage::Describe {
            kind: b'S',
            name: "s",
        },
        0,
        &mut out,
    );
    t.on_client(&FrontendMessage::Sync, 0, &mut out);
    t.on_server(&BackendMessage::ParseComplete, 0, &mut out);
    t.on_server(&BackendMessage::ParameterDescription, 0, &mut out);
    t.on_server(&BackendMessage::RowDescription(vec!["a"]), 0, &mut out);
    t.on_server(&BackendMessage::ReadyForQuery(b'I'), 0, &mut out);
    t.on_client(
        &FrontendMessage::Bind(Bind {
            portal: "",
            statement: "s",
            param_formats: vec![],
            params: vec![],
            result_formats: vec![1],
        }),
        0,
        &mut out,
    );
    t.on_client(&FrontendMessage::Execute { portal: "" }, 0, &mut out);
    t.on_client(&FrontendMessage::Sync, 0, &mut out);
    t.on_server(&BackendMessage::BindComplete, 0, &mut out);
    let r = row(&[Some("\x01")]);
    t.on_server(&BackendMessage::DataRow(&r), 0, &mut out);
    t.on_server(&BackendMessage::CommandComplete("SELECT 1"), 0, &mut out);
    let rs = results(&out);
    assert_eq!(rs[0].columns, vec!["a"]);
    assert_eq!(rs[0].rows[0][0].as_deref(), Some("\\x01"));
}

#[test]
fn a_refused_query_behind_begin_reports_the_status_begin_left() {
    let mut t = tracker(10);
    let mut out = Vec::new();
    // BEGIN is forwarded; the next query is refused before the server has answered BEGIN.
    t.on_client(&FrontendMessage::Query("begin"), 1, &mut out);
    let refused = FrontendMessage::Query("drop table t");
    t.refuse(
        &refused,
        &Refusal {
            code: "42501",
            rule: "r".into(),
            message: "no".into(),
            hint: String::new(),
        },
        2,
        &mut out,
    );
    let mut early = Vec::new();
    assert!(
        !t.take_synthetic(&mut early),
        "the answer waits behind BEGIN's"
    );
    t.on_server(&BackendMessage::CommandComplete("BEGIN"), 3, &mut out);
    t.on_server(&BackendMessage::ReadyForQuery(b'T'), 4, &mut out);
    let mut answer = Vec::new();
    assert!(t.take_synthetic(&mut answer));
    // ErrorResponse, then ReadyForQuery in transaction ('T'), not the idle status of before.
    assert_eq!(&answer[answer.len() - 6..], b"Z\0\0\0\x05T");
}

#[test]
fn a_refused_execution_is_recorded_with_its_parameters_and_answered_up_to_sync() {
    let mut t = tracker(10);
    let mut out = Vec::new();
    t.on_client(
        &FrontendMessage::Parse {
            name: "s",
            query: "select $1",
            param_types: vec![],
        },
        0,
        &mut out,
    );
    t.on_client(&FrontendMessage::Sync, 0, &mut out);
    t.on_server(&BackendMessage::ParseComplete, 0, &mut out);
    t.on_server(&BackendMessage::ReadyForQuery(b'I'), 0, &mut out);
    t.on_client(
        &FrontendMessage::Bind(Bind {
            portal: "",
            statement: "s",
            param_formats: vec![],
            params: vec![Some(b"7")],
            result_formats: vec![],
        }),
        0,
        &mut out,
    );
    out.clear();
    let refusal = Refusal {
        code: "53000",
        rule: "audit.fail_closed".into(),
        message: "no audit".into(),
        hint: String::new(),
    };
    t.refuse(
        &FrontendMessage::Execute { portal: "" },
        &refusal,
        1,
        &mut out,
    );
    let SessionEvent::Query(q) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(&*q.text, "select $1");
    assert_eq!(q.params, Some(vec![Some("7".to_string())]));
    assert!(
        matches!(&out[1], SessionEvent::Guard { action, rule, .. } if action == "denied" && rule == "audit.fail_closed")
    );
    assert_eq!(
        results(&out)[0]
            .outcome
            .error
            .as_ref()
            .map(|e| e.code.as_str()),
        Some("53000")
    );
}
