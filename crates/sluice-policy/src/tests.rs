//! Rule matching and verdict precedence.

use crate::*;

fn guard(yaml_rules: Vec<RuleConfig>) -> Guard {
    let config = GuardConfig {
        rules: yaml_rules,
        approvers: vec!["security".into()],
        ..GuardConfig::default()
    };
    match Guard::new(&config) {
        Ok(g) => g,
        Err(e) => panic!("the test's rules compile: {e}"),
    }
}

fn rule(name: &str, action: Action, m: MatchConfig) -> RuleConfig {
    RuleConfig {
        name: name.into(),
        action,
        reason: None,
        groups: vec![],
        matches: m,
        approvers: vec![],
        approvals: None,
    }
}

fn facts(classes: &[&str], tables: &[&str], functions: &[&str]) -> StatementFacts {
    StatementFacts {
        classes: classes.iter().map(|s| s.to_string()).collect(),
        tables: tables.iter().map(|s| s.to_string()).collect(),
        functions: functions.iter().map(|s| s.to_string()).collect(),
        ..StatementFacts::default()
    }
}

fn check(g: &Guard, stmts: &[StatementFacts]) -> Verdict {
    g.check(
        &Command {
            text: "x",
            normalized: "x",
            statements: stmts,
            unparsable: None,
        },
        &["engineering".to_string()],
    )
}

#[test]
fn deny_beats_review_and_any_statement_counts() {
    let g = guard(vec![
        rule(
            "review-deletes",
            Action::Review,
            MatchConfig {
                statements: vec!["delete".into()],
                ..Default::default()
            },
        ),
        rule(
            "no-drop",
            Action::Deny,
            MatchConfig {
                statements: vec!["drop_table".into()],
                ..Default::default()
            },
        ),
    ]);
    assert_eq!(
        check(&g, &[facts(&["select"], &["t"], &[])]),
        Verdict::Allow
    );
    let Verdict::Review(hit) = check(&g, &[facts(&["delete"], &["t"], &[])]) else {
        panic!("review")
    };
    assert_eq!(hit.rule, "review-deletes");
    assert_eq!(hit.approvers, vec!["security".to_string()]);
    let Verdict::Deny(hit) = check(
        &g,
        &[
            facts(&["delete"], &[], &[]),
            facts(&["drop_table"], &[], &[]),
        ],
    ) else {
        panic!("deny")
    };
    assert_eq!(hit.rule, "no-drop");
}

#[test]
fn matchers_combine_with_and() {
    let g = guard(vec![rule(
        "no-deletes-on-audit",
        Action::Deny,
        MatchConfig {
            statements: vec!["delete".into()],
            tables: vec!["audit.*".into()],
            ..Default::default()
        },
    )]);
    assert!(matches!(
        check(&g, &[facts(&["delete"], &["audit.log"], &[])]),
        Verdict::Deny(_)
    ));
    assert_eq!(
        check(&g, &[facts(&["delete"], &["public.log"], &[])]),
        Verdict::Allow
    );
    assert_eq!(
        check(&g, &[facts(&["select"], &["audit.log"], &[])]),
        Verdict::Allow
    );
}

#[test]
fn unqualified_names_match_any_schema() {
    let g = guard(vec![rule(
        "no-kill",
        Action::Deny,
        MatchConfig {
            functions: vec!["pg_terminate_backend".into()],
            ..Default::default()
        },
    )]);
    assert!(matches!(
        check(
            &g,
            &[facts(
                &["select"],
                &[],
                &["pg_catalog.pg_terminate_backend"]
            )]
        ),
        Verdict::Deny(_)
    ));
    assert!(matches!(
        check(&g, &[facts(&["select"], &[], &["PG_TERMINATE_BACKEND"])]),
        Verdict::Deny(_)
    ));
}

#[test]
fn group_scoped_rules_and_unparsable_default() {
    let mut r = rule(
        "interns",
        Action::Deny,
        MatchConfig {
            statements: vec!["update".into()],
            ..Default::default()
        },
    );
    r.groups = vec!["interns".into()];
    let g = guard(vec![r]);
    assert_eq!(check(&g, &[facts(&["update"], &[], &[])]), Verdict::Allow);
    let v = g.check(
        &Command {
            text: "SELEC 1",
            normalized: "",
            statements: &[],
            unparsable: Some("syntax error"),
        },
        &[],
    );
    assert!(matches!(v, Verdict::Deny(h) if h.rule == "unparsable"));
}

#[test]
fn invalid_rules_are_rejected() {
    assert!(matches!(
        Guard::new(&GuardConfig {
            rules: vec![rule("empty", Action::Deny, MatchConfig::default())],
            ..Default::default()
        }),
        Err(GuardError::EmptyMatch(_))
    ));
    assert!(matches!(
        Guard::new(&GuardConfig {
            rules: vec![rule(
                "re",
                Action::Deny,
                MatchConfig {
                    regex: Some("(".into()),
                    ..Default::default()
                }
            )],
            ..Default::default()
        }),
        Err(GuardError::Regex { .. })
    ));
}

#[test]
fn path_globs_keep_single_stars_within_a_segment() {
    let g = guard(vec![rule(
        "no-etc-writes",
        Action::Deny,
        MatchConfig {
            statements: vec!["file_write".into()],
            paths: vec!["/etc/**".into(), "/srv/*.key".into()],
            ..Default::default()
        },
    )]);
    let write = |path: &str| StatementFacts {
        paths: vec![path.to_string()],
        ..facts(&["file_write"], &[], &[])
    };
    for denied in ["/etc/passwd", "/etc/ssh/sshd_config", "/srv/tls.key"] {
        assert!(
            matches!(check(&g, &[write(denied)]), Verdict::Deny(_)),
            "{denied}"
        );
    }
    for allowed in ["/etc", "/etcetera/x", "/srv/a/tls.key", "/tmp/etc/passwd"] {
        assert_eq!(check(&g, &[write(allowed)]), Verdict::Allow, "{allowed}");
    }
    let read = StatementFacts {
        paths: vec!["/etc/passwd".into()],
        ..facts(&["file_read"], &[], &[])
    };
    assert_eq!(check(&g, &[read]), Verdict::Allow);
}

#[test]
fn kubernetes_matchers_need_every_condition() {
    let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let g = guard(vec![
        rule(
            "no-node-delete",
            Action::Deny,
            MatchConfig {
                statements: strs(&["delete"]),
                resources: strs(&["nodes"]),
                ..MatchConfig::default()
            },
        ),
        rule(
            "no-privileged-exec",
            Action::Deny,
            MatchConfig {
                statements: strs(&["exec"]),
                pod_risks: strs(&["privileged", "host_path"]),
                ..MatchConfig::default()
            },
        ),
        rule(
            "review-prod",
            Action::Review,
            MatchConfig {
                namespaces: strs(&["prod-*"]),
                names: strs(&["db-*"]),
                ..MatchConfig::default()
            },
        ),
    ]);
    assert!(g.uses_pod_risks());
    let k = |classes: &[&str], resources: &[&str], ns: &str, name: &str, risks: &[&str]| {
        StatementFacts {
            classes: strs(classes),
            resources: strs(resources),
            namespaces: strs(&[ns]),
            names: strs(&[name]),
            pod_risks: strs(risks),
            ..StatementFacts::default()
        }
    };
    let rule_of = |v: Verdict| match v {
        Verdict::Allow => "allow".to_string(),
        Verdict::Deny(h) | Verdict::Review(h) => h.rule.clone(),
    };
    let n = |facts| rule_of(check(&g, &[facts]));
    assert_eq!(
        n(k(&["delete"], &["nodes"], "", "node-1", &[])),
        "no-node-delete"
    );
    assert_eq!(
        n(k(&["delete"], &["nodes/status"], "", "node-1", &[])),
        "allow"
    );
    assert_eq!(n(k(&["get"], &["nodes"], "", "node-1", &[])), "allow");
    assert_eq!(
        n(k(
            &["get", "exec"],
            &["pods/exec"],
            "a",
            "web",
            &["root", "host_path"]
        )),
        "no-privileged-exec"
    );
    assert_eq!(
        n(k(&["get", "exec"], &["pods/exec"], "a", "web", &["root"])),
        "allow"
    );
    assert_eq!(
        n(k(
            &["patch"],
            &["deployments.apps"],
            "prod-eu",
            "db-main",
            &[]
        )),
        "review-prod"
    );
    assert_eq!(
        n(k(&["patch"], &["deployments.apps"], "prod-eu", "web", &[])),
        "allow"
    );
    // Kubernetes matchers alone are a valid rule; an empty match is still refused.
    assert!(Guard::new(&GuardConfig {
        rules: vec![rule("empty", Action::Deny, MatchConfig::default())],
        ..GuardConfig::default()
    })
    .is_err());
}
