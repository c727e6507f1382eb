//! Which groups hold which role on the gateway's API and console.

use serde::Deserialize;

/// Groups per role. An identity holds every role one of its groups is listed under; every
/// authenticated identity is a `user` (its own sessions and requests).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// Everything (the bootstrap token always is one).
    #[serde(default = "admin")]
    pub admin: Vec<String>,
    /// Reads sessions, recordings, the audit log, exports; changes nothing.
    #[serde(default = "auditor")]
    pub auditor: Vec<String>,
    /// Sees and decides reviews and access requests (those whose rule names no approver
    /// groups, besides the ones it names).
    #[serde(default = "approver")]
    pub approver: Vec<String>,
}

impl Default for RolesConfig {
    fn default() -> Self {
        RolesConfig {
            admin: admin(),
            auditor: auditor(),
            approver: approver(),
        }
    }
}

fn admin() -> Vec<String> {
    vec!["admin".into()]
}

fn auditor() -> Vec<String> {
    vec!["auditor".into()]
}

fn approver() -> Vec<String> {
    vec!["approver".into()]
}
