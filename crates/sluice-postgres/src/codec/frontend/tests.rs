use super::*;

#[test]
fn parses_startup_with_params() {
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0pg-demo\0database\0test\0\0");
    assert_eq!(
        StartupPacket::parse(&body),
        Ok(StartupPacket::Startup {
            minor: 0,
            params: vec![("user", "pg-demo"), ("database", "test")]
        })
    );
}

#[test]
fn rejects_unknown_version_and_truncated_startup() {
    assert!(StartupPacket::parse(&[0, 2, 0, 0]).is_err());
    let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0pg");
    assert_eq!(
        StartupPacket::parse(&body),
        Err(CodecError::Malformed("startup"))
    );
}

#[test]
fn parses_bind_with_null_and_text_params() -> Result<(), Box<dyn std::error::Error>> {
    let mut body = b"p1\0s1\0".to_vec();
    body.extend_from_slice(&[0, 0, 0, 2]); // 0 formats, 2 params
    body.extend_from_slice(&2i32.to_be_bytes());
    body.extend_from_slice(b"42");
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&[0, 1, 0, 1]); // 1 result format: binary
    let FrontendMessage::Bind(b) = FrontendMessage::parse(b'B', &body)? else {
        panic!("not a bind");
    };
    assert_eq!((b.portal, b.statement), ("p1", "s1"));
    assert_eq!(b.params, vec![Some(&b"42"[..]), None]);
    assert_eq!(b.result_formats, vec![1]);
    Ok(())
}

#[test]
fn garbage_is_refused_on_its_first_byte_and_oversized_control_messages_too() {
    assert_eq!(
        next_frontend(b"\x01"),
        Err(CodecError::UnknownType('\u{1}'))
    );
    assert_eq!(
        next_frontend(b"S\x00\x01\x00\x00"),
        Err(CodecError::Length(65536))
    );
    assert_eq!(next_frontend(b"Q\x00\x01\x00\x00"), Ok(None));
}

#[test]
fn unknown_type_is_an_error() {
    assert_eq!(
        FrontendMessage::parse(b'Z', b""),
        Err(CodecError::UnknownType('Z'))
    );
}
