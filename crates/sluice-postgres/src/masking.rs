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
mod tests;
