use super::sftp::{FileRequest, Sftp};
use super::wire::{self, kind};
use super::{resolve, scp::Scp};

/// Builds one SFTP packet from its fields.
struct P(Vec<u8>);

impl P {
    fn new(kind: u8, id: u32) -> P {
        let mut v = vec![kind];
        v.extend_from_slice(&id.to_be_bytes());
        P(v)
    }
    fn u32(mut self, n: u32) -> P {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn u64(mut self, n: u64) -> P {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn s(mut self, b: &[u8]) -> P {
        self = self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
    fn done(self) -> Vec<u8> {
        let mut v = (self.0.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&self.0);
        v
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn frames_need_their_whole_length_and_a_sane_size() -> Result<(), Box<dyn std::error::Error>> {
    let packet = P::new(kind::CLOSE, 7).s(b"h").done();
    assert_eq!(wire::frame_len(&packet[..5])?, None);
    assert_eq!(wire::frame_len(&packet)?, Some(packet.len()));
    assert!(wire::frame_len(&[0xff, 0xff, 0xff, 0xff, 0]).is_err());
    assert!(wire::frame_len(&[0, 0, 0, 0]).is_err());
    Ok(())
}

#[test]
fn an_upload_is_judged_at_open_and_recorded_at_close_with_its_hash(
) -> Result<(), Box<dyn std::error::Error>> {
    let mut s = Sftp::new(3);
    // `realpath .` tells the home directory; relative paths resolve against it.
    assert_eq!(s.request(&P::new(kind::REALPATH, 1).s(b".").done()), None);
    assert_eq!(
        s.response(&P::new(kind::NAME, 1).u32(1).s(b"/home/ops").done()),
        None
    );
    let open = P::new(kind::OPEN, 2)
        .s(b"../ops/up.bin")
        .u32(0x1a)
        .u32(0)
        .done();
    assert_eq!(
        s.request(&open),
        Some(FileRequest {
            id: 2,
            op: "write",
            paths: vec!["/home/ops/up.bin".into()]
        })
    );
    assert_eq!(s.response(&P::new(kind::HANDLE, 2).s(b"H1").done()), None);
    for (i, chunk) in [&b"hello "[..], b"world"].iter().enumerate() {
        let offset = if i == 0 { 0 } else { 6 };
        let write = P::new(kind::WRITE, 3 + i as u32)
            .s(b"H1")
            .u64(offset)
            .s(chunk)
            .done();
        assert_eq!(s.request(&write), None);
        assert_eq!(
            s.response(
                &P::new(kind::STATUS, 3 + i as u32)
                    .u32(0)
                    .s(b"")
                    .s(b"")
                    .done()
            ),
            None
        );
    }
    s.request(&P::new(kind::CLOSE, 9).s(b"H1").done());
    let op = s
        .response(&P::new(kind::STATUS, 9).u32(0).s(b"").s(b"").done())
        .ok_or("missing")?;
    assert_eq!(
        (op.channel, op.op.as_str(), op.path.as_str()),
        (3, "write", "/home/ops/up.bin")
    );
    assert_eq!(op.bytes, 11);
    assert_eq!(
        op.sha256.as_deref(),
        Some(sha256_hex(b"hello world").as_str())
    );
    Ok(())
}

#[test]
fn a_download_hashes_the_data_answers_in_request_order() {
    let mut s = Sftp::new(1);
    let open = P::new(kind::OPEN, 1)
        .s(b"/etc/motd")
        .u32(0x01)
        .u32(0)
        .done();
    assert_eq!(s.request(&open).map(|r| r.op), Some("read"));
    s.response(&P::new(kind::HANDLE, 1).s(b"h").done());
    s.request(&P::new(kind::READ, 2).s(b"h").u64(0).u32(4).done());
    s.request(&P::new(kind::READ, 3).s(b"h").u64(4).u32(4).done());
    s.response(&P::new(kind::DATA, 2).s(b"abcd").done());
    s.response(&P::new(kind::DATA, 3).s(b"ef").done());
    // The channel ends with the file still open: it is recorded anyway.
    let ops = s.finish();
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (ops[0].bytes, ops[0].sha256.clone()),
        (6, Some(sha256_hex(b"abcdef")))
    );
}

#[test]
fn path_operations_carry_the_targets_answer() -> Result<(), Box<dyn std::error::Error>> {
    let mut s = Sftp::new(1);
    let rename = P::new(kind::RENAME, 4).s(b"/tmp/a").s(b"/tmp/b").done();
    let request = s.request(&rename).ok_or("missing")?;
    assert_eq!(
        (request.class(), request.text()),
        ("file_rename".into(), "rename /tmp/a /tmp/b".into())
    );
    let op = s
        .response(
            &P::new(kind::STATUS, 4)
                .u32(2)
                .s(b"No such file")
                .s(b"")
                .done(),
        )
        .ok_or("missing")?;
    assert_eq!(
        (op.op.as_str(), op.to.as_deref()),
        ("rename", Some("/tmp/b"))
    );
    assert_eq!(op.error.as_deref(), Some("No such file"));
    let ext = P::new(kind::EXTENDED, 5)
        .s(b"posix-rename@openssh.com")
        .s(b"x")
        .s(b"y")
        .done();
    assert_eq!(s.request(&ext).map(|r| r.op), Some("rename"));
    let mkdir = P::new(kind::MKDIR, 6).s(b"/etc/new").u32(0).done();
    let request = s.request(&mkdir).ok_or("missing")?;
    let refused = s.refused(&request, "denied");
    assert_eq!(
        (refused.op.as_str(), refused.error.as_deref()),
        ("mkdir", Some("denied"))
    );
    // A refused request gets no answer from the target; a stray one finishes nothing.
    assert_eq!(
        s.response(&P::new(kind::STATUS, 6).u32(0).s(b"").s(b"").done()),
        None
    );
    Ok(())
}

#[test]
fn the_gateways_refusal_is_a_status_packet() -> Result<(), Box<dyn std::error::Error>> {
    let packet = wire::status(9, wire::FX_PERMISSION_DENIED, "no");
    assert_eq!(wire::frame_len(&packet)?, Some(packet.len()));
    let mut p = wire::Packet::parse(&packet).ok_or("missing")?;
    assert_eq!((p.kind, p.id, p.body.u32()), (kind::STATUS, 9, Some(3)));
    assert_eq!(p.body.text().as_deref(), Some("no"));
    Ok(())
}

#[test]
fn paths_resolve_dots_and_the_home_directory() {
    assert_eq!(resolve(Some("/root"), "a/../b//c/."), "/root/b/c");
    assert_eq!(resolve(None, "/etc/../../etc/passwd"), "/etc/passwd");
    assert_eq!(resolve(None, "rel/x"), "rel/x");
}

#[test]
fn a_legacy_scp_upload_records_each_file() -> Result<(), Box<dyn std::error::Error>> {
    let mut scp = Scp::new(2, "scp -r -t /srv/in").ok_or("missing")?;
    assert!(scp.upload());
    let mut ops = Vec::new();
    for chunk in [
        &b"D0755 0 dir\n"[..],
        b"C0644 5 a.txt\n",
        b"hel",
        b"lo\0C0600 0 empty\n",
        b"\0E\n",
    ] {
        ops.extend(scp.feed(chunk));
    }
    let got: Vec<_> = ops.iter().map(|o| (o.path.as_str(), o.bytes)).collect();
    assert_eq!(got, [("/srv/in/dir/a.txt", 5), ("/srv/in/dir/empty", 0)]);
    assert_eq!(
        ops[0].sha256.as_deref(),
        Some(sha256_hex(b"hello").as_str())
    );
    assert_eq!(ops[0].op, "write");
    Ok(())
}

#[test]
fn a_legacy_scp_download_names_files_by_the_source_directory(
) -> Result<(), Box<dyn std::error::Error>> {
    let mut scp = Scp::new(2, "scp -f /var/log/syslog").ok_or("missing")?;
    assert!(!scp.upload());
    let ops = scp.feed(b"C0640 3 syslog\nabc\0");
    assert_eq!(
        (ops[0].op.as_str(), ops[0].path.as_str()),
        ("read", "/var/log/syslog")
    );
    assert!(Scp::new(2, "scp -v host").is_none());
    assert!(Scp::new(2, "scpx -t /tmp").is_none());
    assert!(Scp::new(2, "ls -t /tmp").is_none());
    Ok(())
}
