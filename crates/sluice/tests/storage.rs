//! Recordings in S3-compatible object storage, against a real S3 API server (moto, PyPI
//! `moto[server]`): archived after the session ends, read back and verified from the bucket,
//! tampering in the bucket caught, deleted by retention, and a bucket that goes away reported.

mod common;

use common::{wait_for, Gateway, TestDb};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A moto S3 server on a free port, killed on drop.
struct S3 {
    child: Child,
    endpoint: String,
}

impl S3 {
    fn start() -> S3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (PyPI moto[server]) is installed by test.sh");
        wait_for("moto listens", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs boto3 against the server (an independent S3 client); its stdout.
    fn boto(&self, code: &str) -> String {
        let script = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{code}\n",
            self.endpoint
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn recordings_round_trip_through_s3_and_tampering_there_is_caught() {
    let s3 = S3::start();
    let bucket = common::unique("rec").replace('_', "-").to_lowercase();
    s3.boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    std::env::set_var("SLUICE_TEST_S3_KEY", "test");
    std::env::set_var("SLUICE_TEST_S3_SECRET", "test");
    let db = TestDb::new();
    let storage = format!(
        "storage:\n  type: s3\n  bucket: {bucket}\n  endpoint: {}\n  allow_http: true\n  access_key_env: SLUICE_TEST_S3_KEY\n  secret_key_env: SLUICE_TEST_S3_SECRET\nretention:\n  default: 30d\n",
        s3.endpoint
    );
    let gw = Gateway::start(&common::config(&db, &storage));
    let token = gw.service_account("engineering");
    assert!(gw
        .psql(&token, "select 'kept in the bucket'")
        .status
        .success());
    let id = gw.wait_ended_session("pg");
    let key = wait_for("the recording is archived", Duration::from_secs(30), || {
        let s: Vec<Value> = gw.sessions();
        s.iter().find(|s| s["id"] == id.as_str())?["archive"]
            .as_str()
            .map(str::to_string)
    });
    assert_eq!(key, format!("recordings/{id}.rec"));
    // In the bucket (seen by another client), and no longer in the database.
    let listed = s3.boto(&format!(
        "print([o['Key'] for o in s3.list_objects_v2(Bucket='{bucket}')['Contents']])"
    ));
    assert!(listed.contains(&key), "{listed}");
    let conn = sluice_store::schema::open_existing(&gw.data().join("sluice.db")).unwrap();
    assert!(sluice_store::recordings::events(&conn, &id)
        .unwrap()
        .is_empty());
    // Read back from the bucket: replay and verification work as before.
    let events = gw.events(&id);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "query" && e["text"] == "select 'kept in the bucket'"),
        "{events:?}"
    );
    let key_file = gw.data().join("signing/ed25519.pub");
    let ok = gw.cli_ok(&["verify", &id, "--public-key", key_file.to_str().unwrap()]);
    assert!(ok.contains("ok:"), "{ok}");
    gw.wait_audit("archiving is audited", |e| {
        e["action"] == "recording.archived" && e["session_id"] == id.as_str()
    });

    // Someone with bucket access edits the recording: verification names the event.
    let original = s3.boto(&format!(
        "sys.stdout.write(s3.get_object(Bucket='{bucket}', Key='{key}')['Body'].read().decode())"
    ));
    let edited = original.replacen("kept in the bucket", "kept in the bucker", 1);
    assert_ne!(original, edited);
    s3.boto(&format!(
        "s3.put_object(Bucket='{bucket}', Key='{key}', Body={:?}.encode())",
        edited
    ));
    let out = gw.cli(&["verify", &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match its hash"), "{err}");

    // Retention deletes the object too.
    conn.execute(
        "UPDATE sessions SET ended_us = ended_us - 40 * 86400000000 WHERE id = ?1",
        [&id],
    )
    .unwrap();
    let run = gw.cli_ok(&["retention", "run"]);
    assert!(run.contains("deleted 1"), "{run}");
    let left = s3.boto(&format!(
        "print(s3.list_objects_v2(Bucket='{bucket}').get('KeyCount'))"
    ));
    assert_eq!(left.trim(), "0");
}

#[test]
fn a_bucket_that_goes_away_is_a_clear_error_and_the_gateway_carries_on() {
    let s3 = S3::start();
    let bucket = common::unique("gone").replace('_', "-").to_lowercase();
    s3.boto(&format!("s3.create_bucket(Bucket='{bucket}')"));
    std::env::set_var("SLUICE_TEST_S3_KEY", "test");
    std::env::set_var("SLUICE_TEST_S3_SECRET", "test");
    let db = TestDb::new();
    let gw = Gateway::start(&common::config(
        &db,
        &format!(
            "storage:\n  type: s3\n  bucket: {bucket}\n  endpoint: {}\n  allow_http: true\n  access_key_env: SLUICE_TEST_S3_KEY\n  secret_key_env: SLUICE_TEST_S3_SECRET\n",
            s3.endpoint
        ),
    ));
    let token = gw.service_account("engineering");
    assert!(gw.psql(&token, "select 1").status.success());
    let id = gw.wait_ended_session("pg");
    wait_for("archived", Duration::from_secs(30), || {
        gw.sessions().iter().find(|s| s["id"] == id.as_str())?["archive"]
            .as_str()
            .map(|_| ())
    });
    drop(s3);
    let out = gw.cli(&["sessions", "export", &id, "--format", "jsonl"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("archived recording") && err.contains("502"),
        "{err}"
    );
    // New sessions are recorded (in the database until the bucket is back).
    assert!(gw.psql(&token, "select 2").status.success());
    gw.wait_ended_sessions(2);
    wait_for(
        "the archive job reports the bucket down",
        Duration::from_secs(60),
        || {
            gw.log()
                .contains("recording not archived; retrying later")
                .then_some(())
        },
    );
}
