use super::*;

#[test]
fn the_quickstart_config_is_valid() {
    let text = include_str!("../../../../examples/quickstart.yaml");
    let cfg = Config::parse(text, "quickstart.yaml").unwrap();
    assert_eq!(cfg.connections()[0].name.0, "pg-demo");
    assert_eq!(cfg.grants()[0].group, "engineering");
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
