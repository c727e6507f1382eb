//! The tracker fed with bytes: a multi-result COM_QUERY with masking, a prepared
//! statement's prepare, execute (binary row) and close, and a cursor's fetches.

use super::*;
use crate::codec::packet::put_packet;
use crate::codec::status;
use crate::codec::wire::{put_lenenc, put_lenenc_str};
use sluice_mask::MaskConfig;

fn tracker(deprecate_eof: bool) -> Tracker {
    let mut t = Tracker::new(
        TrackerSettings {
            max_rows: 10,
            max_value_len: 100,
        },
        if deprecate_eof {
            caps::DEPRECATE_EOF
        } else {
            0
        },
    );
    let config = MaskConfig {
        columns: vec!["*secret*".into()],
        ..MaskConfig::default()
    };
    let masker = match Masker::new(&config) {
        Ok(m) => m,
        Err(e) => panic!("the test's masking config compiles: {e}"),
    };
    t.set_masker(Some(Arc::new(masker)));
    t
}

fn column(name: &str, kind: u8, charset: u16) -> Vec<u8> {
    let mut c = Vec::new();
    for part in ["def", "db", "t", "t"] {
        put_lenenc_str(&mut c, part.as_bytes());
    }
    put_lenenc_str(&mut c, name.as_bytes());
    put_lenenc_str(&mut c, name.as_bytes());
    put_lenenc(&mut c, 0x0C);
    c.extend_from_slice(&charset.to_le_bytes());
    c.extend_from_slice(&100u32.to_le_bytes());
    c.push(kind);
    c.extend_from_slice(&0u16.to_le_bytes());
    c.push(0);
    c.extend_from_slice(&[0, 0]);
    c
}

fn eof(status: u16) -> Vec<u8> {
    let mut e = vec![0xFE, 0, 0];
    e.extend_from_slice(&status.to_le_bytes());
    e
}

/// COM_STMT_PREPARE's OK: statement id, column and parameter counts.
fn prepare_ok(stmt: u32, columns: u16, params: u16) -> Vec<u8> {
    let mut ok = vec![0];
    ok.extend_from_slice(&stmt.to_le_bytes());
    ok.extend_from_slice(&columns.to_le_bytes());
    ok.extend_from_slice(&params.to_le_bytes());
    ok.extend_from_slice(&[0, 0, 0]);
    ok
}

/// Feeds `payloads` as server packets; returns the bytes as the client gets them.
fn feed(t: &mut Tracker, payloads: &[Vec<u8>], out: &mut Vec<SessionEvent>) -> Vec<Vec<u8>> {
    payloads
        .iter()
        .map(|p| {
            let mut raw = Vec::new();
            put_packet(&mut raw, 1, p);
            if let Err(e) = t.on_server(&mut raw, 10, out) {
                panic!("the tracker refused a valid packet: {e}");
            }
            raw[4..].to_vec()
        })
        .collect()
}

#[test]
fn multi_result_query_is_masked_in_place_and_recorded_per_result() {
    let mut t = tracker(false);
    let mut out = Vec::new();
    t.on_command(
        &Command::Query(b"SELECT card, secret FROM t; SELECT 1"),
        1,
        &mut out,
    );
    let mut row = Vec::new();
    put_lenenc_str(&mut row, b"4111 1111 1111 1111");
    put_lenenc_str(&mut row, b"hunter2");
    let sent = feed(
        &mut t,
        &[
            vec![2],
            column("card", 253, 45),
            column("secret", 253, 45),
            eof(status::MORE_RESULTS_EXISTS),
            row,
            eof(status::MORE_RESULTS_EXISTS),
            vec![1],
            column("1", 8, 63),
            eof(0),
            vec![1, b'1'],
            eof(0),
        ],
        &mut out,
    );
    assert!(t.idle());
    assert_eq!(&sent[4][1..20], b"**** **** **** 1111");
    assert_eq!(&sent[4][21..], b"*******");
    let results: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Result(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0].rows,
        vec![vec![
            Some("**** **** **** 1111".into()),
            Some("*******".into())
        ]]
    );
    assert_eq!(results[1].rows, vec![vec![Some("1".into())]]);
}

#[test]
fn prepared_statement_rows_and_parameters() -> Result<(), Box<dyn std::error::Error>> {
    let mut t = tracker(true);
    let mut out = Vec::new();
    t.on_command(
        &Command::StmtPrepare(b"SELECT n, card FROM t WHERE id = ?"),
        1,
        &mut out,
    );
    let ok = prepare_ok(7, 2, 1);
    feed(
        &mut t,
        &[
            ok,
            column("?", 253, 63),
            column("n", 3, 63),
            column("card", 253, 45),
        ],
        &mut out,
    );
    assert!(t.idle());
    // Execute with one LONGLONG parameter, 42.
    let mut params = vec![0, 1, 8, 0];
    params.extend_from_slice(&42u64.to_le_bytes());
    t.on_command(
        &Command::StmtExecute {
            id: 7,
            flags: 0,
            params: &params,
        },
        2,
        &mut out,
    );
    let mut row = vec![0, 0];
    row.extend_from_slice(&(-3i32).to_le_bytes());
    put_lenenc_str(&mut row, b"4111 1111 1111 1111");
    let mut end = vec![0xFE, 0, 0];
    end.extend_from_slice(&0u16.to_le_bytes());
    end.extend_from_slice(&0u16.to_le_bytes());
    let sent = feed(
        &mut t,
        &[
            vec![2],
            column("n", 3, 63),
            column("card", 253, 45),
            row,
            end,
        ],
        &mut out,
    );
    assert!(t.idle());
    assert_eq!(&sent[3][7..], b"**** **** **** 1111");
    let query = out.iter().find_map(|e| match e {
        SessionEvent::Query(q) => Some(q),
        _ => None,
    });
    let q = query.ok_or("missing")?;
    assert_eq!(&*q.text, "SELECT n, card FROM t WHERE id = ?");
    assert_eq!(q.params, Some(vec![Some("42".into())]));
    let result = out.iter().find_map(|e| match e {
        SessionEvent::Result(r) => Some(r),
        _ => None,
    });
    assert_eq!(
        result.ok_or("missing")?.rows,
        vec![vec![Some("-3".into()), Some("**** **** **** 1111".into())]]
    );
    t.on_command(&Command::StmtClose(7), 3, &mut out);
    assert!(!t.statements.contains_key(&7));
    Ok(())
}

#[test]
fn a_cursor_ends_its_execution_even_with_deprecated_eof_and_fetches_are_its_results(
) -> Result<(), Box<dyn std::error::Error>> {
    let mut t = tracker(true);
    let mut out = Vec::new();
    t.on_command(
        &Command::StmtPrepare(b"SELECT n, secret FROM t"),
        1,
        &mut out,
    );
    let ok = prepare_ok(9, 2, 0);
    feed(
        &mut t,
        &[ok, column("n", 3, 63), column("secret", 253, 45)],
        &mut out,
    );
    assert!(t.idle());
    t.on_command(
        &Command::StmtExecute {
            id: 9,
            flags: 1,
            params: &[],
        },
        2,
        &mut out,
    );
    // Opening a cursor: column definitions, then an EOF packet saying so (sent even though
    // EOF packets are otherwise deprecated), and no rows.
    feed(
        &mut t,
        &[
            vec![2],
            column("n", 3, 63),
            column("secret", 253, 45),
            eof(status::CURSOR_EXISTS),
        ],
        &mut out,
    );
    assert!(t.idle(), "the execution's answer ends at the cursor's EOF");
    t.on_command(&Command::StmtFetch { id: 9, rows: 2 }, 3, &mut out);
    let mut row = vec![0, 0];
    row.extend_from_slice(&5i32.to_le_bytes());
    put_lenenc_str(&mut row, b"hunter2");
    let sent = feed(
        &mut t,
        &[row, eof(status::CURSOR_EXISTS | status::LAST_ROW_SENT)],
        &mut out,
    );
    assert!(t.idle());
    assert_eq!(
        &sent[0][7..],
        b"*******",
        "column rules apply to fetched rows"
    );
    let query = out
        .iter()
        .find_map(|e| match e {
            SessionEvent::Query(q) => Some(q.id),
            _ => None,
        })
        .ok_or("missing")?;
    let results: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Result(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].query, query);
    assert_eq!(
        results[0].rows,
        vec![vec![Some("5".into()), Some("*******".into())]]
    );
    Ok(())
}
