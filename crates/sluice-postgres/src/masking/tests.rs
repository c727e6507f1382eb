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
fn masks_values_in_place_and_whole_columns() -> Result<(), Box<dyn std::error::Error>> {
    let m = Masker::new(&MaskConfig {
        columns: vec!["*password*".into()],
        ..MaskConfig::default()
    })?;
    let mut body = row(&[
        Some(b"4111111111111111"),
        None,
        Some(b"hunter2"),
        Some(b"bob"),
    ]);
    let before = body.len();
    let mut counts = MaskCounts::default();
    assert!(data_row(
        &mut body,
        &[false, false, true, false],
        &m,
        &mut counts
    )?);
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
    Ok(())
}

#[test]
fn truncated_rows_are_errors() -> Result<(), Box<dyn std::error::Error>> {
    let m = Masker::new(&MaskConfig::default())?;
    let mut body = row(&[Some(b"abc")]);
    body.truncate(body.len() - 1);
    assert!(data_row(&mut body, &[], &m, &mut MaskCounts::default()).is_err());
    Ok(())
}
