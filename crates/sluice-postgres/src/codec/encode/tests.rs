use super::*;
use crate::codec::backend::BackendMessage;
use crate::codec::next_message;

#[test]
fn error_response_round_trips() -> Result<(), Box<dyn std::error::Error>> {
    let mut buf = BytesMut::new();
    error_response(&mut buf, "FATAL", "28P01", "bad token");
    let f = next_message(&buf)?.ok_or("missing")?;
    assert_eq!(f.len, buf.len());
    let BackendMessage::Error(e) = BackendMessage::parse(f.tag, f.body)? else {
        panic!("not an error");
    };
    assert_eq!(
        (e.severity, e.code, e.message),
        ("FATAL", "28P01", "bad token")
    );
    Ok(())
}
