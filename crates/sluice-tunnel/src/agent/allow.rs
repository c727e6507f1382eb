//! The agent's allow-list: the only destinations it dials.

use ipnet::IpNet;
use std::net::IpAddr;

/// One allowed destination: an address block or a host name, and a port (or any port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRule {
    host: HostRule,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    Net(IpNet),
    Name(String),
}

/// Why an allow-list entry was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid allow entry {entry:?}: {why} (use host-or-CIDR:port, e.g. 10.0.0.0/8:5432, db.internal:5432, [fd00::/8]:*)")]
pub struct AllowError {
    entry: String,
    why: &'static str,
}

impl AllowRule {
    /// Parses `10.0.0.0/8:5432`, `127.0.0.1:*`, `db.internal:5432` or `[fd00::/8]:5432`.
    pub fn parse(entry: &str) -> Result<AllowRule, AllowError> {
        let err = |why| AllowError {
            entry: entry.to_string(),
            why,
        };
        let (host, port) = match entry.strip_prefix('[') {
            Some(rest) => {
                let (h, p) = rest.split_once("]:").ok_or_else(|| err("missing ]:port"))?;
                (h, p)
            }
            None => entry.rsplit_once(':').ok_or_else(|| err("missing :port"))?,
        };
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| err("bad port"))?,
            ),
        };
        let host = if let Ok(net) = host.parse::<IpNet>() {
            HostRule::Net(net)
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            HostRule::Net(IpNet::from(ip))
        } else if !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            HostRule::Name(host.to_ascii_lowercase())
        } else {
            return Err(err("bad host"));
        };
        Ok(AllowRule { host, port })
    }

    fn port_ok(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

/// All rules; empty allows nothing.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

impl AllowList {
    /// Parses each entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, AllowError> {
        Ok(AllowList {
            rules: entries
                .iter()
                .map(|e| AllowRule::parse(e.as_ref().trim()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when `host` (as the gateway named it), resolved to `ip`, may be dialed on `port`.
    /// A name rule matches the requested name; an address rule matches the address actually
    /// dialed, so a name cannot smuggle in an address outside the blocks.
    pub fn allows(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        self.rules.iter().any(|r| {
            r.port_ok(port)
                && match &r.host {
                    HostRule::Net(net) => net.contains(&ip),
                    HostRule::Name(n) => n.eq_ignore_ascii_case(host),
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_names_and_ports() -> Result<(), Box<dyn std::error::Error>> {
        let list = AllowList::parse(&[
            "10.0.0.0/8:5432",
            "127.0.0.1:*",
            "DB.internal:3306",
            "[::1]:22",
        ])?;
        let ip = |s: &str| s.parse::<IpAddr>();
        assert!(list.allows("10.1.2.3", ip("10.1.2.3")?, 5432));
        assert!(!list.allows("10.1.2.3", ip("10.1.2.3")?, 5433));
        assert!(list.allows("localhost", ip("127.0.0.1")?, 9));
        assert!(list.allows("db.internal", ip("192.168.1.1")?, 3306));
        assert!(!list.allows("db.internal", ip("192.168.1.1")?, 5432));
        assert!(!list.allows("evil.example", ip("192.168.1.1")?, 3306));
        assert!(list.allows("::1", ip("::1")?, 22));
        assert!(!list.allows("11.0.0.1", ip("11.0.0.1")?, 5432));
        assert!(AllowList::default().is_empty());
        for bad in [
            "10.0.0.0/8",
            "host:0",
            "host:x",
            "a b:1",
            "[::1:22",
            ":5432",
        ] {
            assert!(AllowRule::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
