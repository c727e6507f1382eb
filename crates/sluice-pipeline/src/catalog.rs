//! Connections and grants as one lookup: the config file's plus those added at runtime.

use crate::policy::ConnectionPolicy;
use sluice_core::{Connection, Grant, Identity};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A snapshot of connections and grants. Replaced whole on change, so a session sees one
/// consistent view.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    connections: BTreeMap<String, Connection>,
    grants: Vec<Grant>,
    policies: BTreeMap<String, Arc<ConnectionPolicy>>,
}

impl Catalog {
    /// Builds a catalog; a runtime entry never shadows a config entry of the same name.
    pub fn new(
        config_connections: Vec<Connection>,
        config_grants: Vec<Grant>,
        runtime_connections: Vec<Connection>,
        runtime_grants: Vec<Grant>,
    ) -> Catalog {
        let mut connections = BTreeMap::new();
        for c in runtime_connections.into_iter().chain(config_connections) {
            connections.insert(c.name.0.clone(), c);
        }
        let mut grants = config_grants;
        for g in runtime_grants {
            if !grants
                .iter()
                .any(|x| x.group == g.group && x.connection == g.connection)
            {
                grants.push(g);
            }
        }
        Catalog {
            connections,
            grants,
            policies: BTreeMap::new(),
        }
    }

    /// Attaches compiled policies, by connection name.
    pub fn with_policies(mut self, policies: BTreeMap<String, Arc<ConnectionPolicy>>) -> Catalog {
        self.policies = policies;
        self
    }

    /// The policies, by connection name (kept when the catalog is rebuilt).
    pub fn policies(&self) -> &BTreeMap<String, Arc<ConnectionPolicy>> {
        &self.policies
    }

    /// The policy of `connection`, if it has one.
    pub fn policy(&self, connection: &str) -> Option<Arc<ConnectionPolicy>> {
        self.policies.get(connection).cloned()
    }

    /// The connection named `name`.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.get(name)
    }

    /// All connections, by name.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections.values()
    }

    /// All grants.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The grant that lets `identity` open `connection`, if any.
    pub fn grant_for(&self, identity: &Identity, connection: &str) -> Option<&Grant> {
        self.grants
            .iter()
            .find(|g| g.connection.0 == connection && identity.in_group(&g.group))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{ConnectionName, IdentityKind, Protocol, TargetCredential};

    fn conn(name: &str, from_config: bool) -> Connection {
        Connection {
            name: ConnectionName(name.into()),
            protocol: Protocol::Postgres,
            host: "h".into(),
            port: if from_config { 1 } else { 2 },
            database: None,
            username: None,
            credential: TargetCredential::None,
            via: None,
            ssh: None,
            command: None,
            http: None,
            kubernetes: None,
            from_config,
        }
    }

    #[test]
    fn grants_follow_groups_and_config_wins() {
        let cat = Catalog::new(
            vec![conn("db", true)],
            vec![Grant {
                group: "eng".into(),
                connection: ConnectionName("db".into()),
                from_config: true,
            }],
            vec![conn("db", false)],
            vec![],
        );
        assert_eq!(cat.connection("db").map(|c| c.port), Some(1));
        let mut id = Identity {
            name: "a".into(),
            kind: IdentityKind::ServiceAccount,
            subject: None,
            issuer: None,
            groups: vec!["eng".into()],
            token_id: None,
        };
        assert!(cat.grant_for(&id, "db").is_some());
        id.groups = vec!["ops".into()];
        assert!(cat.grant_for(&id, "db").is_none());
    }
}
