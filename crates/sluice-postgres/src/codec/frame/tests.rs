use super::*;

#[test]
fn incomplete_then_complete() -> Result<(), Box<dyn std::error::Error>> {
    let msg = [b'Q', 0, 0, 0, 8, b's', b'e', b'l', 0];
    for cut in 0..msg.len() {
        assert_eq!(next_message(&msg[..cut]), Ok(None));
    }
    let f = next_message(&msg)?.ok_or("missing")?;
    assert_eq!((f.tag, f.body, f.len), (b'Q', &b"sel\0"[..], 9));
    Ok(())
}

#[test]
fn bad_lengths_are_errors() {
    assert!(next_message(&[b'Q', 0, 0, 0, 3]).is_err());
    assert!(next_message(&[b'Q', 0xff, 0xff, 0xff, 0xff]).is_err());
    assert!(next_startup(&[0, 0, 0, 4]).is_err());
    assert!(next_startup(&[0x7f, 0, 0, 0]).is_err());
}
