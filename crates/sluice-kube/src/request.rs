//! What a Kubernetes API request is about, read from its method, path and query the way the
//! API server reads it: verb, API group and version, resource, subresource, namespace and
//! name. Paths outside `/api` and `/apis/GROUP/VERSION` (`/version`, `/openapi/v3`) are
//! non-resource requests.

/// The meaning of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// (the API server's verbs); non-resource requests use the method in lower case.
    pub verb: String,
    /// API group (`""` for the core group, `apps`, …).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Resource (`pods`), empty for non-resource requests.
    pub resource: String,
    /// Subresource (`exec`, `log`, `status`, `scale`).
    pub subresource: String,
    /// Namespace, when the request is namespaced.
    pub namespace: String,
    /// Object name, when the request names one.
    pub name: String,
}

/// Subresources that open a stream to a container.
pub const CONNECT: &[&str] = &["exec", "attach", "portforward"];

impl RequestInfo {
    /// Reads `method`, `path` (without the gateway's prefix) and `query`.
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> RequestInfo {
        let method = method.to_ascii_lowercase();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let (group, version, mut rest) = match parts.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => {
                return RequestInfo {
                    verb: method,
                    ..RequestInfo::default()
                }
            }
        };
        if rest.is_empty() {
            // Discovery of a group version.
            return RequestInfo {
                verb: method,
                group: group.into(),
                version: version.into(),
                ..RequestInfo::default()
            };
        }
        let mut info = RequestInfo {
            group: group.into(),
            version: version.into(),
            ..RequestInfo::default()
        };
        let mut watch_path = false;
        if rest.first() == Some(&"watch") {
            watch_path = true;
            rest = &rest[1..];
        }
        if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
            info.namespace = rest[1].into();
            rest = &rest[2..];
        } else if rest.first() == Some(&"namespaces") && rest.len() == 2 {
            // The namespace object itself.
            info.namespace = rest[1].into();
        }
        info.resource = rest.first().copied().unwrap_or_default().into();
        info.name = rest.get(1).copied().unwrap_or_default().into();
        info.subresource = rest.get(2).copied().unwrap_or_default().into();
        let watch_query = query.is_some_and(|q| {
            q.split('&')
                .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
        });
        let named = !info.name.is_empty();
        info.verb = match method.as_str() {
            "get" | "head" if watch_path || watch_query => "watch",
            "get" | "head" if named => "get",
            "get" | "head" => "list",
            "post" => "create",
            "put" => "update",
            "patch" => "patch",
            "delete" if named => "delete",
            "delete" => "deletecollection",
            other => other,
        }
        .to_string();
        info
    }

    /// Whether the request names a resource (as opposed to `/version`, discovery).
    pub fn is_resource(&self) -> bool {
        !self.resource.is_empty()
    }

    /// Whether the request opens a stream to a container (`exec`, `attach`, `portforward`
    /// of a pod).
    pub fn is_connect(&self) -> bool {
        self.resource == "pods" && CONNECT.contains(&self.subresource.as_str())
    }

    /// The statement classes rules match: the verb, and for streams to a container the
    /// subresource (`exec`, `attach`, `portforward`), which the API server files under
    /// `create`/`get`.
    pub fn classes(&self) -> Vec<String> {
        let mut classes = vec![self.verb.clone()];
        if self.is_connect() {
            classes.push(self.subresource.clone());
        }
        classes
    }

    /// The names rules match this request's resource by: `pods`, `pods/exec`, and with the
    /// group `deployments.apps`, `deployments.apps/scale`.
    pub fn resources(&self) -> Vec<String> {
        if !self.is_resource() {
            return Vec::new();
        }
        let sub = |r: String| match self.subresource.as_str() {
            "" => r,
            s => format!("{r}/{s}"),
        };
        let mut out = vec![sub(self.resource.clone())];
        if !self.group.is_empty() {
            out.push(sub(format!("{}.{}", self.resource, self.group)));
        }
        out
    }

    /// The recorded form.
    pub fn recorded(&self) -> sluice_core::KubeRequest {
        sluice_core::KubeRequest {
            verb: self.verb.clone(),
            group: self.group.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// A short human form for recordings and reviews: `delete nodes node-1`,
    /// `exec pods/web -n default`.
    pub fn summary(&self) -> String {
        let connect = self.is_connect();
        let mut s = match connect {
            true => self.subresource.clone(),
            false => self.verb.clone(),
        };
        if !self.is_resource() {
            return s;
        }
        s.push(' ');
        s.push_str(&self.resource);
        if !self.group.is_empty() {
            s.push('.');
            s.push_str(&self.group);
        }
        if !self.name.is_empty() {
            s.push(' ');
            s.push_str(&self.name);
        }
        if !self.subresource.is_empty() && !connect {
            s.push('/');
            s.push_str(&self.subresource);
        }
        let own_namespace = self.resource == "namespaces" && self.name == self.namespace;
        if !self.namespace.is_empty() && !own_namespace {
            s.push_str(" -n ");
            s.push_str(&self.namespace);
        }
        s
    }
}

/// The values of `key` in a query string, percent-decoded (`+` is a space).
pub fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: &str, path: &str, q: Option<&str>) -> RequestInfo {
        RequestInfo::parse(m, path, q)
    }

    #[test]
    fn core_and_group_resources() {
        let r = p("DELETE", "/api/v1/nodes/node-1", None);
        assert_eq!(
            (r.verb.as_str(), r.resource.as_str(), r.name.as_str()),
            ("delete", "nodes", "node-1")
        );
        assert_eq!(r.resources(), vec!["nodes"]);
        assert_eq!(r.summary(), "delete nodes node-1");

        let r = p("GET", "/apis/apps/v1/namespaces/prod/deployments", None);
        assert_eq!((r.verb.as_str(), r.namespace.as_str()), ("list", "prod"));
        assert_eq!(r.resources(), vec!["deployments", "deployments.apps"]);

        let r = p(
            "PATCH",
            "/apis/apps/v1/namespaces/prod/deployments/web/scale",
            None,
        );
        assert_eq!(r.verb, "patch");
        assert_eq!(
            r.resources(),
            vec!["deployments/scale", "deployments.apps/scale"]
        );

        let r = p("DELETE", "/api/v1/namespaces/prod/pods", None);
        assert_eq!(r.verb, "deletecollection");
    }

    #[test]
    fn watches_and_namespaces() {
        let r = p(
            "GET",
            "/api/v1/namespaces/default/pods",
            Some("watch=true&resourceVersion=1"),
        );
        assert_eq!(r.verb, "watch");
        let r = p("GET", "/api/v1/watch/namespaces/default/pods/web", None);
        assert_eq!((r.verb.as_str(), r.name.as_str()), ("watch", "web"));
        let r = p("DELETE", "/api/v1/namespaces/kube-system", None);
        assert_eq!(
            (
                r.verb.as_str(),
                r.resource.as_str(),
                r.name.as_str(),
                r.namespace.as_str()
            ),
            ("delete", "namespaces", "kube-system", "kube-system")
        );
        assert_eq!(r.summary(), "delete namespaces kube-system");
    }

    #[test]
    fn streams_to_containers() {
        let r = p(
            "GET",
            "/api/v1/namespaces/default/pods/web/exec",
            Some("command=sh"),
        );
        assert!(r.is_connect());
        assert_eq!(r.classes(), vec!["get", "exec"]);
        assert_eq!(r.resources(), vec!["pods/exec"]);
        assert_eq!(r.summary(), "exec pods web -n default");
        assert!(!p("GET", "/api/v1/namespaces/default/pods/web/log", None).is_connect());
    }

    #[test]
    fn exec_commands_are_decoded() {
        let q = Some("command=sh&command=-c&command=echo+hi%3B%20ls%2F&stdin=true&command=%zz");
        assert_eq!(
            query_values(q, "command"),
            vec!["sh", "-c", "echo hi; ls/", "%zz"]
        );
        assert!(query_values(None, "command").is_empty());
    }

    #[test]
    fn non_resource_requests() {
        for path in [
            "/version",
            "/api",
            "/apis",
            "/openapi/v3",
            "/api/v1",
            "/apis/apps/v1",
        ] {
            let r = p("GET", path, None);
            assert!(!r.is_resource(), "{path}");
            assert_eq!(r.verb, "get");
            assert!(r.resources().is_empty());
        }
    }
}
