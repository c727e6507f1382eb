use super::*;

#[test]
fn parses_error_fields() -> Result<(), Box<dyn std::error::Error>> {
    let body = b"SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0\0";
    let BackendMessage::Error(f) = BackendMessage::parse(b'E', body)? else {
        panic!("not an error");
    };
    assert_eq!(
        (f.severity, f.code, f.message),
        ("ERROR", "42P01", "relation \"x\" does not exist")
    );
    Ok(())
}

#[test]
fn parses_data_row_with_null() {
    let mut body = vec![0, 2];
    body.extend_from_slice(&1i32.to_be_bytes());
    body.push(b'7');
    body.extend_from_slice(&(-1i32).to_be_bytes());
    assert_eq!(data_row_values(&body), Ok(vec![Some(&b"7"[..]), None]));
    assert!(data_row_values(&body[..5]).is_err());
}
