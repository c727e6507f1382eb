//! Decision rules.

use super::*;
use sluice_core::IdentityKind;

fn who(name: &str, groups: &[&str]) -> Identity {
    Identity {
        name: name.into(),
        kind: IdentityKind::ServiceAccount,
        subject: None,
        issuer: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        token_id: None,
    }
}

fn review(required: u32) -> Review {
    Review {
        id: "rv-1".into(),
        kind: ReviewKind::Command,
        status: ReviewStatus::Pending,
        requester: "alice".into(),
        requester_groups: vec!["dev".into(), "security".into()],
        connection: "pg".into(),
        session_id: None,
        rule: Some("writes".into()),
        reason: "r".into(),
        statement: None,
        approver_groups: vec!["security".into()],
        approvals_required: required,
        approvals: vec![],
        denial: None,
        created_us: 0,
        deadline_us: 100,
        decided_us: None,
        access_secs: None,
        access_until_us: None,
    }
}

#[test]
fn approvals_need_the_group_other_people_and_the_count() -> Result<(), Box<dyn std::error::Error>> {
    let mut r = review(2);
    let alice = who("alice", &["security"]);
    assert!(matches!(
        apply_decision(&mut r, &alice, false, true, None, 1),
        Err(DecideError::SelfApproval)
    ));
    let dev = who("dave", &["dev"]);
    assert!(matches!(
        apply_decision(&mut r, &dev, false, true, None, 1),
        Err(DecideError::NotApprover(_))
    ));
    let admin = who("root", &["admin"]);
    assert!(matches!(
        apply_decision(&mut r, &admin, false, true, None, 1),
        Err(DecideError::NotApprover(_))
    ));
    let bob = who("bob", &["security"]);
    apply_decision(&mut r, &bob, false, true, None, 1)?;
    assert_eq!(r.status, ReviewStatus::Pending);
    assert!(matches!(
        apply_decision(&mut r, &bob, false, true, None, 2),
        Err(DecideError::AlreadyApproved(_))
    ));
    apply_decision(&mut r, &who("carol", &["security"]), false, true, None, 3)?;
    assert_eq!(r.status, ReviewStatus::Approved);
    assert_eq!(r.approvers(), ["bob", "carol"]);
    assert!(matches!(
        apply_decision(&mut r, &who("erin", &["security"]), false, false, None, 4),
        Err(DecideError::Closed { .. })
    ));
    Ok(())
}

#[test]
fn one_denial_closes_and_the_deadline_is_final() -> Result<(), Box<dyn std::error::Error>> {
    let mut r = review(2);
    apply_decision(
        &mut r,
        &who("bob", &["security"]),
        false,
        false,
        Some("no".into()),
        1,
    )?;
    assert_eq!(r.status, ReviewStatus::Denied);
    assert_eq!(r.denial.as_ref().map(|d| d.by.as_str()), Some("bob"));
    let mut late = review(1);
    assert!(matches!(
        apply_decision(
            &mut late,
            &who("bob", &["security"]),
            false,
            true,
            None,
            100
        ),
        Err(DecideError::Closed {
            status: "expired",
            ..
        })
    ));
    Ok(())
}

#[test]
fn without_approver_groups_admins_decide() {
    let mut r = review(1);
    r.approver_groups.clear();
    assert!(may_decide(&r, &who("bob", &["security"]), false).is_err());
    assert!(may_decide(&r, &who("root", &["admin"]), true).is_ok());
}

#[test]
fn approved_access_runs_for_the_asked_time() -> Result<(), Box<dyn std::error::Error>> {
    let mut r = review(1);
    r.kind = ReviewKind::Access;
    r.access_secs = Some(60);
    apply_decision(&mut r, &who("bob", &["security"]), false, true, None, 10)?;
    assert_eq!(r.access_until_us, Some(10 + 60_000_000));
    Ok(())
}
