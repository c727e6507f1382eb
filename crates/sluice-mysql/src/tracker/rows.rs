//! Where the values of a result row or a parameter block are, and masking them in place.

use super::Prepared;
use crate::codec::response::{Column, BINARY_CHARSET};
use crate::codec::values::{read_value, types, Field};
use crate::codec::wire::Reader;
use crate::codec::CodecError;
use sluice_mask::{mask_whole, MaskCounts, Masker};
use std::collections::HashMap;

/// The values of a text-protocol row of `n` columns (`None` for NULL).
pub(super) fn text_fields(payload: &[u8], n: usize) -> Result<Vec<Option<Field>>, CodecError> {
    let mut r = Reader::new(payload, "text row");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.lenenc_bytes()? {
            None => None,
            Some(v) => {
                let end = r.position();
                Some(Field {
                    range: end - v.len()..end,
                    kind: 253,
                    string: true,
                })
            }
        });
    }
    Ok(out)
}

/// The values of a binary-protocol row with `columns`.
pub(super) fn binary_fields(
    payload: &[u8],
    columns: &[Column],
) -> Result<Vec<Option<Field>>, CodecError> {
    let mut r = Reader::new(payload, "binary row");
    r.u8()?;
    let bitmap = r.bytes((columns.len() + 7 + 2) / 8)?;
    let mut out = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            out.push(None);
        } else {
            out.push(Some(read_value(&mut r, c.kind)?));
        }
    }
    Ok(out)
}

/// A parameter: (type, unsigned, value bytes).
pub(super) type Param = (u8, bool, Vec<u8>);

/// The parameters of a COM_STMT_EXECUTE block for statement `p` (`None` for NULL); values
/// sent as long data are taken from `long_data`. Remembers the types the block binds.
pub(super) fn parameters(
    block: &[u8],
    p: &mut Prepared,
    long_data: &HashMap<u16, Vec<u8>>,
) -> Result<Vec<Option<Param>>, CodecError> {
    let n = p.params as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(block, "execute parameters");
    let nulls = r.bytes(n.div_ceil(8))?;
    if r.u8()? == 1 {
        p.types.clear();
        for _ in 0..n {
            let kind = r.u8()?;
            let flags = r.u8()?;
            p.types.push((kind, flags & 0x80 != 0));
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (kind, unsigned) = p.types.get(i).copied().unwrap_or((types::NULL, false));
        if nulls[i / 8] & (1 << (i % 8)) != 0 {
            out.push(None);
        } else if let Some(data) = long_data.get(&(i as u16)) {
            out.push(Some((kind, unsigned, data.clone())));
        } else {
            let f = read_value(&mut r, kind)?;
            out.push(Some((kind, unsigned, block[f.range].to_vec())));
        }
    }
    Ok(out)
}

/// Whether the detectors leave a column alone: binary strings and BLOBs (`BINARY`,
/// `VARBINARY`, `BLOB`) hold bytes, not text, and editing them would corrupt files and
/// images. Column rules still mask them whole.
pub(super) fn raw_bytes(c: &Column) -> bool {
    c.charset == BINARY_CHARSET && matches!(c.kind, 15 | 249..=254)
}

/// Masks the string values of a row in place: whole for column-rule columns, through the
/// detectors otherwise (except raw-byte columns). Fixed-width binary numbers and dates are
/// left as they are.
pub(super) fn mask(
    payload: &mut [u8],
    fields: &[Option<Field>],
    columns: &[Column],
    whole: &[bool],
    masker: &Masker,
    counts: &mut MaskCounts,
) {
    for (i, f) in fields.iter().enumerate() {
        let Some(f) = f else { continue };
        if !f.string {
            continue;
        }
        let value = &mut payload[f.range.clone()];
        let whole = whole.get(i).copied().unwrap_or(false);
        if !whole && columns.get(i).is_some_and(raw_bytes) {
            continue;
        }
        if whole {
            if !value.is_empty() {
                mask_whole(value);
                counts.hit_column();
            }
        } else {
            masker.mask(value, counts);
        }
    }
}
