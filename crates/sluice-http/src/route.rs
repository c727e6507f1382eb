//! Which HTTP connection a request is for: by its `Host` (without the port), or by the first
//! path prefix it falls under. Anything else belongs to the gateway's own API.

use sluice_core::{Connection, Protocol};
use sluice_pipeline::Catalog;

/// A request matched to a connection.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The connection.
    pub connection: Connection,
    /// The prefix removed from the path (`""` for host routes).
    pub prefix: String,
}

impl Matched {
    /// The path the service sees: the request's without the prefix (never empty).
    pub fn inner_path<'a>(&self, path: &'a str) -> &'a str {
        match path.get(self.prefix.len()..) {
            Some("") | None => "/",
            Some(rest) => rest,
        }
    }
}

/// The connection `host` (a `Host` header or URI authority) and `path` are for.
pub fn find(catalog: &Catalog, host: Option<&str>, path: &str) -> Option<Matched> {
    let host = host.map(strip_port);
    let mut by_prefix: Option<Matched> = None;
    for c in catalog.connections() {
        if c.protocol != Protocol::Http {
            continue;
        }
        let Some(h) = &c.http else { continue };
        if let (Some(name), Some(host)) = (&h.hostname, host) {
            if name.eq_ignore_ascii_case(host) {
                return Some(Matched {
                    connection: c.clone(),
                    prefix: String::new(),
                });
            }
        }
        if let Some(prefix) = &h.path_prefix {
            let under = path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            let longer = by_prefix
                .as_ref()
                .is_none_or(|m| m.prefix.len() < prefix.len());
            if under && longer {
                by_prefix = Some(Matched {
                    connection: c.clone(),
                    prefix: prefix.clone(),
                });
            }
        }
    }
    by_prefix
}

/// `host:port` → `host`, `[::1]:8443` → `[::1]`.
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_not_part_of_the_name() {
        assert_eq!(strip_port("app.example:8443"), "app.example");
        assert_eq!(strip_port("[::1]:8443"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("app"), "app");
    }

    #[test]
    fn the_prefix_is_cut_from_the_path() {
        let m = Matched {
            connection: Connection {
                name: sluice_core::ConnectionName("x".into()),
                protocol: Protocol::Http,
                host: "127.0.0.1".into(),
                port: 80,
                database: None,
                username: None,
                credential: sluice_core::TargetCredential::None,
                via: None,
                ssh: None,
                command: None,
                http: None,
                kubernetes: None,
                from_config: true,
            },
            prefix: "/app".into(),
        };
        assert_eq!(m.inner_path("/app"), "/");
        assert_eq!(m.inner_path("/app/x/y"), "/x/y");
    }
}
