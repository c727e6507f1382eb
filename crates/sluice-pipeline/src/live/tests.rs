//! Stops reach sessions that register after the block.

use super::*;

#[test]
fn a_session_registering_after_a_block_is_stopped_at_once() {
    let live = LiveSessions::default();
    let before = live.register("s1", "mallory", "pg");
    assert_eq!(live.block("mallory"), vec!["s1".to_string()]);
    assert_eq!(
        before.stop.borrow().as_ref().map(|s| s.reason),
        Some(EndReason::IdentityBlocked)
    );
    let late = live.register("s2", "mallory", "pg");
    assert_eq!(
        late.stop.borrow().as_ref().map(|s| s.reason),
        Some(EndReason::IdentityBlocked)
    );
    let other = live.register("s3", "alice", "pg");
    assert!(other.stop.borrow().is_none());
    live.unblock("mallory");
    let after = live.register("s4", "mallory", "pg");
    assert!(after.stop.borrow().is_none());
}
