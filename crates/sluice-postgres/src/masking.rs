//! Masking of server messages, in place: DataRow values, COPY TO lines, error and notice
//! texts, notification payloads. Masks keep every value's length, so no message is re-framed
//! and a binary value keeps its size.

use crate::codec::CodecError;
use sluice_mask::{mask_whole, MaskCounts, Masker};

/// Masks the values of a DataRow body. Columns flagged in `whole` (a column-name rule) are
/// masked entirely; every other value goes through the detectors. Returns whether anything
/// changed.
pub fn data_row(
    body: &mut [u8],
    whole: &[bool],
    masker: &Masker,
    counts: &mut MaskCounts,
) -> Result<bool, CodecError> {
    let short = || CodecError::Malformed("DataRow");
    if body.len() < 2 {
        return Err(short());
    }
    let n = i16::from_be_bytes([body[0], body[1]]).max(0) as usize;
    let mut at = 2;
    let mut changed = false;
    for i in 0..n {
        let len_bytes = body.get(at..at + 4).ok_or_else(short)?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        at += 4;
        if len < 0 {
            continue;
        }
        let end = at
            .checked_add(len as usize)
            .filter(|e| *e <= body.len())
            .ok_or_else(short)?;
        let value = &mut body[at..end];
        if whole.get(i).copied().unwrap_or(false) {
            if !value.is_empty() {
                mask_whole(value);
                counts.hit_column();
                changed = true;
            }
        } else {
            changed |= masker.mask(value, counts);
        }
        at = end;
    }
    Ok(changed)
}

/// Masks a text message body (CopyData line, ErrorResponse/NoticeResponse fields,
/// NotificationResponse): the detectors run over the bytes; NUL separators stay.
pub fn text(body: &mut [u8], masker: &Masker, counts: &mut MaskCounts) -> bool {
    masker.mask(body, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mask::MaskConfig;

    fn row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = (values.len() as i16).to_be_bytes().to_vec();
        for v in values {
            match v {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v);
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        b
    }

    #[test]
    fn masks_values_in_place_and_whole_columns() {
        let m = Masker::new(&MaskConfig {
            columns: vec!["*password*".into()],
            ..MaskConfig::default()
        })
        .expect("compiles");
        let mut body = row(&[
            Some(b"4111111111111111"),
            None,
            Some(b"hunter2"),
            Some(b"bob"),
        ]);
        let before = body.len();
        let mut counts = MaskCounts::default();
        assert!(data_row(&mut body, &[false, false, true, false], &m, &mut counts).unwrap());
        assert_eq!(body.len(), before);
        assert_eq!(
            body,
            row(&[
                Some(b"************1111"),
                None,
                Some(b"*******"),
                Some(b"bob")
            ])
        );
        assert_eq!(counts.total(), 2);
    }

    #[test]
    fn truncated_rows_are_errors() {
        let m = Masker::new(&MaskConfig::default()).expect("compiles");
        let mut body = row(&[Some(b"abc")]);
        body.truncate(body.len() - 1);
        assert!(data_row(&mut body, &[], &m, &mut MaskCounts::default()).is_err());
    }
}
