//! The server side of the tracker: the response state machine, one packet at a time.

use super::{Expect, Pending, Phase, Prepared, Tracker};
use crate::codec::response;
use crate::codec::wire::Reader;
use crate::codec::{status, CodecError};
use sluice_core::SessionEvent;
use std::collections::HashMap;

/// Length of an EOF packet's payload.
const EOF_LEN: usize = 5;

impl Tracker {
    /// Advances `p` by one packet; true when the response is complete.
    pub(super) fn step(
        &mut self,
        p: &mut Pending,
        payload: &mut [u8],
        now_us: i64,
        out: &mut Vec<SessionEvent>,
    ) -> Result<bool, CodecError> {
        let first = *payload
            .first()
            .ok_or(CodecError::Malformed("empty server packet"))?;
        let len = payload.len();
        match p.phase {
            Phase::Start => {
                if first == 0xFF {
                    let e = response::parse_err(payload)?;
                    self.finish_error(p, e, now_us, out);
                    return Ok(true);
                }
                match &p.expect {
                    Expect::Statistics => return Ok(true),
                    Expect::FieldList => {
                        return Ok(response::is_eof(first, len, self.deprecate_eof));
                    }
                    Expect::Prepare { .. } if first == 0x00 => {
                        let mut r = Reader::new(payload, "prepare answer");
                        r.u8()?;
                        let stmt = r.u32()?;
                        let columns = r.u16()?;
                        let params = r.u16()?;
                        p.prepared = Some((stmt, params));
                        self.store_prepared(p, stmt, params);
                        return Ok(self.after_prepare_counts(p, params, columns));
                    }
                    Expect::Fetch { .. } => {
                        p.phase = Phase::Rows;
                        return self.step(p, payload, now_us, out);
                    }
                    _ => {}
                }
                if first == 0x00 {
                    let ok = response::parse_ok(payload)?;
                    let more = ok.status & status::MORE_RESULTS_EXISTS != 0;
                    self.finish_ok(p, ok, now_us, out);
                    return Ok(!more);
                }
                if first == 0xFB {
                    return Err(CodecError::Malformed(
                        "LOCAL INFILE request the gateway did not allow",
                    ));
                }
                let n = Reader::new(payload, "column count").lenenc_int()?;
                p.phase = Phase::Columns(n);
                p.columns.clear();
                Ok(false)
            }
            Phase::Columns(left) => {
                p.columns.push(response::parse_column(payload)?);
                if left > 1 {
                    p.phase = Phase::Columns(left - 1);
                } else {
                    self.columns_known(p);
                    p.phase = if self.deprecate_eof {
                        Phase::Rows
                    } else {
                        Phase::ColumnsEof
                    };
                }
                Ok(false)
            }
            Phase::ColumnsEof => {
                let (_, st) = response::parse_eof(payload)?;
                p.phase = Phase::Rows;
                Ok(self.cursor_opened(p, st))
            }
            Phase::Rows => {
                if first == 0xFF {
                    let e = response::parse_err(payload)?;
                    self.finish_error(p, e, now_us, out);
                    return Ok(true);
                }
                if response::is_eof(first, len, self.deprecate_eof) {
                    // An opened cursor is announced by an EOF packet (5 bytes) even when EOF
                    // packets are otherwise deprecated; a result set's end is then an OK.
                    let st = if self.deprecate_eof && len != EOF_LEN {
                        response::parse_ok(payload)?.status
                    } else {
                        response::parse_eof(payload)?.1
                    };
                    if p.row_count == 0 && self.cursor_opened(p, st) {
                        return Ok(true);
                    }
                    self.finish_rows(p, now_us, out);
                    if st & status::MORE_RESULTS_EXISTS != 0 {
                        p.phase = Phase::Start;
                        return Ok(false);
                    }
                    return Ok(true);
                }
                self.row(p, payload)?;
                Ok(false)
            }
            Phase::PrepareParams { params, columns } => {
                if params > 1 {
                    p.phase = Phase::PrepareParams {
                        params: params - 1,
                        columns,
                    };
                    return Ok(false);
                }
                if !self.deprecate_eof {
                    p.phase = Phase::PrepareParamsEof { columns };
                    return Ok(false);
                }
                Ok(self.after_prepare_params(p, columns))
            }
            Phase::PrepareParamsEof { columns } => Ok(self.after_prepare_params(p, columns)),
            Phase::PrepareColumns(left) => {
                let column = response::parse_column(payload)?;
                if let Some(s) = p.prepared.and_then(|(id, _)| self.statements.get_mut(&id)) {
                    s.columns.push(column);
                }
                if left > 1 {
                    p.phase = Phase::PrepareColumns(left - 1);
                    return Ok(false);
                }
                if self.deprecate_eof {
                    return Ok(true);
                }
                p.phase = Phase::PrepareColumnsEof;
                Ok(false)
            }
            Phase::PrepareColumnsEof => Ok(true),
        }
    }

    fn store_prepared(&mut self, p: &Pending, stmt: u32, params: u16) {
        if let Expect::Prepare { text, review } = &p.expect {
            self.statements.insert(
                stmt,
                Prepared {
                    text: text.clone(),
                    params,
                    types: Vec::new(),
                    columns: Vec::new(),
                    long_data: HashMap::new(),
                    review: review.clone(),
                    whole: Vec::new(),
                    cursor: None,
                },
            );
        }
    }

    fn after_prepare_counts(&mut self, p: &mut Pending, params: u16, columns: u16) -> bool {
        if params > 0 {
            p.phase = Phase::PrepareParams { params, columns };
            return false;
        }
        self.after_prepare_params(p, columns)
    }

    fn after_prepare_params(&mut self, p: &mut Pending, columns: u16) -> bool {
        if columns == 0 {
            return true;
        }
        p.phase = Phase::PrepareColumns(columns);
        false
    }

    /// The result's columns are known: remember them for binary rows and column masks.
    fn columns_known(&mut self, p: &mut Pending) {
        p.whole = match &self.render.masker {
            Some(m) => p.columns.iter().map(|c| m.column_masked(&c.name)).collect(),
            None => Vec::new(),
        };
        if let Expect::Results { stmt: Some(id), .. } = p.expect {
            if let Some(s) = self.statements.get_mut(&id) {
                s.columns = p.columns.clone();
                s.whole = p.whole.clone();
            }
        }
    }

    /// An execution that opened a cursor ends after its column definitions; its rows come
    /// with COM_STMT_FETCH and are recorded as results of the same statement.
    fn cursor_opened(&mut self, p: &mut Pending, status: u16) -> bool {
        let Expect::Results {
            binary: true,
            stmt: Some(id),
        } = p.expect
        else {
            return false;
        };
        if status & status::CURSOR_EXISTS == 0 {
            return false;
        }
        p.rows.clear();
        if let Some(s) = self.statements.get_mut(&id) {
            s.cursor = p.query;
        }
        true
    }
}
