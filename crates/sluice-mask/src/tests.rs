//! What each detector masks, and what it must leave alone.

use crate::{CustomDetector, Detector, MaskConfig, MaskCounts, Masker};

fn all() -> Masker {
    match Masker::new(&MaskConfig::default()) {
        Ok(m) => m,
        Err(e) => panic!("the default config compiles: {e}"),
    }
}

fn masked(m: &Masker, s: &str) -> (String, MaskCounts) {
    let mut counts = MaskCounts::default();
    let out = m.mask_str(s, &mut counts).unwrap_or_else(|| s.to_string());
    (out, counts)
}

fn check(input: &str, expected: &str, detector: &str) {
    let (out, counts) = masked(&all(), input);
    assert_eq!(out, expected, "masking {input:?}");
    assert_eq!(out.len(), input.len(), "masks keep length");
    let names = counts.by_name(&[]);
    assert!(
        names.contains_key(detector),
        "{detector} fired on {input:?}: {names:?}"
    );
}

fn untouched(input: &str) {
    let (out, counts) = masked(&all(), input);
    assert_eq!(
        out,
        input,
        "nothing to mask in {input:?}: {:?}",
        counts.by_name(&[])
    );
}

#[test]
fn card_numbers_keep_the_last_four_digits() {
    check("4111 1111 1111 1111", "**** **** **** 1111", "card_number");
    check(
        "card: 4111-1111-1111-1111.",
        "card: ****-****-****-1111.",
        "card_number",
    );
    check("5555555555554444", "************4444", "card_number");
    untouched("4111111111111112");
    untouched("order 1234567890123");
}

#[test]
fn emails_keep_their_domain() {
    check(
        "alice.smith@example.com",
        "*****.*****@example.com",
        "email",
    );
    check(
        "to: bob@corp.example.org.",
        "to: ***@corp.example.org.",
        "email",
    );
    untouched("user@localhost");
    untouched("a @ b");
}

#[test]
fn phones_ssns_and_ibans() {
    check("+44 20 7946 0958", "+** ** **** 0958", "phone");
    check("call 415-555-0132", "call ***-***-0132", "phone");
    check("(415) 555-0132", "(***) ***-0132", "phone");
    check("ssn 123-45-6789", "ssn ***-**-6789", "us_ssn");
    untouched("000-12-3456");
    check(
        "GB82 WEST 1234 5698 7654 32",
        "GB** **** **** **** **54 32",
        "iban",
    );
    check("DE89370400440532013000", "DE****************3000", "iban");
    untouched("DE89370400440532013001");
    untouched("2024-01-15 10:30:00");
    untouched("version 1.2.3");
}

#[test]
fn tokens_and_keys_keep_their_prefix() {
    check(
        "AKIAIOSFODNN7EXAMPLE",
        "AKIA****************",
        "aws_access_key",
    );
    check(
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = ****************************************",
        "aws_secret_key",
    );
    check(
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghp_************************************",
        "github_token",
    );
    check(
        "glpat-abcdefghij0123456789",
        "glpat-********************",
        "gitlab_token",
    );
    check(
        "xoxb-1234567890-abcdefghij",
        "xoxb-**********-**********",
        "slack_token",
    );
    untouched("ghp_short");
}

#[test]
fn jwts_bearer_tokens_and_passwords() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let (out, counts) = masked(&all(), jwt);
    assert!(out.starts_with("eyJ*****"));
    assert_eq!(out.matches('.').count(), 2);
    assert!(!out.contains("IUzI1NiJ9"));
    assert!(counts.by_name(&[]).contains_key("jwt"));
    check(
        "Authorization: Bearer abcdef123456",
        "Authorization: Bearer ************",
        "bearer_token",
    );
    check(
        "postgres://app:s3cret@db:5432/x",
        "postgres://app:******@db:5432/x",
        "password",
    );
    check(
        "host=db password=s3cret user=x",
        "host=db password=****** user=x",
        "password",
    );
    untouched("https://example.com/path");
}

#[test]
fn pem_private_keys_lose_their_body() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
    let (out, counts) = masked(&all(), pem);
    assert!(out.starts_with("-----BEGIN PRIVATE KEY-----\n****"));
    assert!(!out.contains("MIIE"));
    assert!(out.contains("-----END PRIVATE KEY-----"));
    assert!(counts.by_name(&[]).contains_key("private_key"));
}

#[test]
fn selection_custom_detectors_and_columns() -> Result<(), Box<dyn std::error::Error>> {
    let m = Masker::new(&MaskConfig {
        detectors: Some(vec![Detector::Email]),
        columns: vec!["*password*".into()],
        custom: vec![CustomDetector {
            name: "employee_id".into(),
            regex: r"EMP-\d{6}".into(),
        }],
        mask_client: true,
    })?;
    let (out, counts) = masked(&m, "EMP-123456 4111111111111111 x@example.com");
    assert_eq!(out, "********** 4111111111111111 *@example.com");
    assert_eq!(
        counts.by_name(m.custom_names()).get("employee_id"),
        Some(&1)
    );
    assert!(m.column_masked("user_password"));
    assert!(!m.column_masked("username"));
    assert!(Masker::new(&MaskConfig {
        custom: vec![CustomDetector {
            name: "bad".into(),
            regex: "(".into()
        }],
        ..MaskConfig::default()
    })
    .is_err());
    Ok(())
}
