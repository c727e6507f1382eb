//! Roles on the API: `admin` (everything), `auditor` (reads sessions, recordings, the audit
//! log and the catalog; changes nothing), `approver` (reviews and access requests), `user`
//! (every authenticated identity: its own sessions and requests). Roles come from groups
//! (`roles:` in the config); the bootstrap token and the `admin` group are always admins.

use crate::config::RolesConfig;
use serde::Serialize;
use sluice_core::Identity;

/// The roles an identity holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RoleSet {
    /// Everything.
    pub admin: bool,
    /// Reads everything, changes nothing.
    pub auditor: bool,
    /// Decides reviews and access requests.
    pub approver: bool,
}

impl RoleSet {
    /// Whether the identity may read everything (admins, auditors).
    pub fn reads_all(&self) -> bool {
        self.admin || self.auditor
    }

    /// Whether the identity decides reviews that name no approver group.
    pub fn default_approver(&self) -> bool {
        self.admin || self.approver
    }

    /// The role names, `user` included.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (held, name) in [
            (self.admin, "admin"),
            (self.auditor, "auditor"),
            (self.approver, "approver"),
        ] {
            if held {
                v.push(name);
            }
        }
        v.push("user");
        v
    }
}

/// The role configuration.
#[derive(Clone, Debug, Default)]
pub struct Roles(RolesConfig);

impl Roles {
    /// Roles from the config's groups.
    pub fn new(config: RolesConfig) -> Roles {
        Roles(config)
    }

    /// The roles of `who`.
    pub fn of(&self, who: &Identity) -> RoleSet {
        let any = |groups: &[String]| groups.iter().any(|g| who.in_group(g));
        RoleSet {
            admin: who.is_admin() || any(&self.0.admin),
            auditor: any(&self.0.auditor),
            approver: any(&self.0.approver),
        }
    }
}
