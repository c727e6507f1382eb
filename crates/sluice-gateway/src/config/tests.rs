use super::*;

#[test]
fn the_quickstart_config_is_valid() -> Result<(), Box<dyn std::error::Error>> {
    let text = include_str!("../../../../examples/quickstart.yaml");
    let cfg = Config::parse(text, "quickstart.yaml")?;
    assert_eq!(cfg.connections()[0].name.0, "pg-demo");
    assert_eq!(cfg.grants()[0].group, "engineering");
    Ok(())
}

#[test]
fn unknown_keys_are_reported_with_their_line() {
    let err = Config::parse("listeners:\n  postgres:\n    adress: 1\n", "c.yaml").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("c.yaml: "), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("adress"), "{msg}");
}

#[test]
fn invalid_policies_are_reported_with_their_connection() {
    let base = "connections:\n  - name: db\n    type: postgres\n    host: h\n    port: 1\n";
    let empty = format!("{base}    guardrails:\n      rules:\n        - name: r\n          action: deny\n          match: {{}}\n");
    let err = Config::parse(&empty, "c.yaml").unwrap_err().to_string();
    assert!(
        err.starts_with("c.yaml: connections[0]: guardrails: rule \"r\" has an empty match"),
        "{err}"
    );
    let regex = format!("{base}    masking:\n      custom: [{{name: x, regex: '('}}]\n");
    let err = Config::parse(&regex, "c.yaml").unwrap_err().to_string();
    assert!(
        err.contains("masking: custom detector \"x\": invalid regex"),
        "{err}"
    );
    let detector = format!("{base}    masking:\n      detectors: [tarot]\n");
    let err = Config::parse(&detector, "c.yaml").unwrap_err().to_string();
    assert!(
        err.contains("unknown variant `tarot`") && err.contains("line"),
        "{err}"
    );
}

#[test]
fn grants_must_name_a_known_connection() {
    let err = Config::parse("grants:\n  - group: g\n    connection: nope\n", "c.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "c.yaml: grants[0]: grant refers to unknown connection \"nope\""
    );
}

#[test]
fn invalid_audit_settings_are_reported_where_they_are() {
    let err = |yaml: &str| Config::parse(yaml, "c.yaml").unwrap_err().to_string();
    assert_eq!(
        err("audit:\n  sinks:\n    s:\n      type: syslog\n      address: nohostport\n"),
        "c.yaml: audit.sinks.s: address must be host:port"
    );
    assert_eq!(
        err("audit:\n  sinks:\n    s:\n      type: syslog\n      address: h:6514\n      tls: true\n"),
        "c.yaml: audit.sinks.s: tls: true needs ca_file (the CA that signs the collector's certificate)"
    );
    assert_eq!(
        err("audit:\n  sinks:\n    n:\n      type: nats\n      url: http://x\n      subject: a\n"),
        "c.yaml: audit.sinks.n: url must start with nats://"
    );
    assert_eq!(
        err("audit:\n  sinks:\n    w:\n      type: webhook\n"),
        "c.yaml: audit.sinks.w: url or url_env is required"
    );
    assert_eq!(
        err("audit:\n  sinks:\n    file:\n      type: stdout\n"),
        "c.yaml: audit.sinks.file: the name `file` is taken by audit.file; rename the sink or set audit.file: null"
    );
    let unknown = err("audit:\n  sinks:\n    k:\n      type: kafka\n");
    assert!(
        unknown.contains("unknown variant `kafka`") && unknown.contains("line"),
        "{unknown}"
    );
    assert_eq!(
        err("retention:\n  default: forever\n"),
        "c.yaml: retention.default: invalid duration \"forever\" (e.g. 60s, 90d)"
    );
    assert_eq!(
        err("audit:\n  checkpoint_interval: 0s\n"),
        "c.yaml: audit.checkpoint_interval: invalid duration \"0s\" (e.g. 60s, 90d)"
    );
    assert_eq!(
        err("audit:\n  signing_key_file: k.pem\n  signing_key_env: K\n"),
        "c.yaml: audit: set signing_key_file or signing_key_env, not both"
    );
    let ok = Config::parse(
        "audit:\n  sinks:\n    n:\n      type: nats\n      url: nats://127.0.0.1:4222\n      subject: sluice.audit\n      stream: AUDIT\nretention:\n  default: 90d\nstorage:\n  type: s3\n  bucket: b\n",
        "c.yaml",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

#[test]
fn ssh_ciphers_are_checked_against_what_the_gateway_offers(
) -> Result<(), Box<dyn std::error::Error>> {
    let config = |ciphers: &str| {
        format!("listeners:\n  postgres:\n    address: 127.0.0.1:0\n  ssh:\n    address: 127.0.0.1:0\n    ciphers: {ciphers}\n")
    };
    Config::parse(
        &config("[chacha20-poly1305@openssh.com, aes256-ctr]"),
        "c.yaml",
    )?;
    let err = Config::parse(&config("[3des-cbc]"), "c.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("c.yaml: listeners.ssh.ciphers: unsupported cipher \"3des-cbc\""),
        "{err}"
    );
    let err = Config::parse(&config("[]"), "c.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("name at least one cipher"), "{err}");
    Ok(())
}

#[test]
fn kubernetes_connections_need_a_credential() -> Result<(), Box<dyn std::error::Error>> {
    let base = "connections:\n  - name: k\n    type: kubernetes\n    host: h\n    port: 6443\n";
    let err = |yaml: &str| match Config::parse(yaml, "c.yaml") {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    };
    assert!(err(base).contains("needs a credential"), "{}", err(base));
    let half = format!("{base}    kubernetes: {{ client_cert_file: /c.pem }}\n");
    assert!(err(&half).contains("go together"), "{}", err(&half));
    let elsewhere = "connections:\n  - name: db\n    type: postgres\n    host: h\n    port: 1\n    kubernetes: {}\n";
    assert!(
        err(elsewhere).contains("for connections of type kubernetes"),
        "{}",
        err(elsewhere)
    );
    let prefix = "connections:\n  - name: w\n    type: http\n    host: h\n    port: 1\n    http: { path_prefix: /kube/x }\n";
    assert!(err(prefix).contains("/kube"), "{}", err(prefix));
    let ok =
        format!("{base}    password_env: KUBE_TOKEN\n    kubernetes: {{ impersonate: true }}\n");
    let cfg = Config::parse(&ok, "c.yaml")?;
    let c = &cfg.connections()[0];
    assert_eq!(c.protocol, sluice_core::Protocol::Kubernetes);
    assert!(c.kubernetes.as_ref().is_some_and(|k| k.impersonate));
    Ok(())
}
