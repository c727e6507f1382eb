//! What makes a pod dangerous to exec into or to create, read from its spec: a privileged
//! container, a container running as root, a `hostPath` volume, the host's network, PID or
//! IPC namespace. Pod templates of workloads (Deployments, Jobs, CronJobs, …) are read the
//! same way.

use serde_json::Value;

/// A privileged container, or one adding `SYS_ADMIN`/`ALL` capabilities.
pub const PRIVILEGED: &str = "privileged";
/// A container that runs as UID 0: `runAsUser: 0`, or no `runAsNonRoot: true` and no
/// non-zero `runAsUser` (the image decides, and images mostly run as root).
pub const ROOT: &str = "root";
/// A `hostPath` volume.
pub const HOST_PATH: &str = "host_path";
/// `hostNetwork`, `hostPID` or `hostIPC`.
pub const HOST_NAMESPACES: &str = "host_namespaces";

/// The pod spec inside `object`: a Pod's `spec`, a workload's `spec.template.spec`, a
/// CronJob's `spec.jobTemplate.spec.template.spec`.
pub fn pod_spec(object: &Value) -> Option<&Value> {
    let spec = object.get("spec")?;
    if spec.get("containers").is_some() {
        return Some(spec);
    }
    if let Some(s) = spec.pointer("/template/spec") {
        return Some(s);
    }
    spec.pointer("/jobTemplate/spec/template/spec")
}

/// The risks of a pod spec, in a stable order.
pub fn risks(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let containers: Vec<&Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k)?.as_array())
        .flatten()
        .collect();
    let privileged = containers.iter().any(|c| {
        let sc = c.get("securityContext");
        let flag = sc
            .and_then(|s| s.get("privileged"))
            .and_then(Value::as_bool)
            == Some(true);
        let caps = sc
            .and_then(|s| s.pointer("/capabilities/add"))
            .and_then(Value::as_array)
            .is_some_and(|a| {
                a.iter().filter_map(Value::as_str).any(|c| {
                    matches!(
                        c.to_ascii_uppercase().as_str(),
                        "SYS_ADMIN" | "CAP_SYS_ADMIN" | "ALL"
                    )
                })
            });
        flag || caps
    });
    if privileged {
        out.push(PRIVILEGED.to_string());
    }
    let pod_sc = spec.get("securityContext");
    let root = containers.is_empty()
        || containers.iter().any(|c| {
            let sc = c.get("securityContext");
            let user = sc
                .and_then(|s| s.get("runAsUser"))
                .or_else(|| pod_sc.and_then(|s| s.get("runAsUser")))
                .and_then(Value::as_i64);
            let non_root = sc
                .and_then(|s| s.get("runAsNonRoot"))
                .or_else(|| pod_sc.and_then(|s| s.get("runAsNonRoot")))
                .and_then(Value::as_bool);
            match user {
                Some(0) => true,
                Some(_) => false,
                None => non_root != Some(true),
            }
        });
    if root {
        out.push(ROOT.to_string());
    }
    let host_path = spec
        .get("volumes")
        .and_then(Value::as_array)
        .is_some_and(|v| v.iter().any(|v| v.get("hostPath").is_some()));
    if host_path {
        out.push(HOST_PATH.to_string());
    }
    let host_ns = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .any(|k| spec.get(*k).and_then(Value::as_bool) == Some(true));
    if host_ns {
        out.push(HOST_NAMESPACES.to_string());
    }
    out
}

/// Whether requests on `resource` (of `group`) carry a pod spec in their body.
pub fn carries_pod_spec(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        ("", "pods")
            | ("", "replicationcontrollers")
            | ("", "podtemplates")
            | (
                "apps",
                "deployments" | "statefulsets" | "daemonsets" | "replicasets"
            )
            | ("batch", "jobs" | "cronjobs")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_restricted_pod_has_no_risk() {
        let pod = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000},
            "containers": [{"name": "app", "image": "app"}]
        }});
        assert!(risks(pod_spec(&pod).unwrap_or(&Value::Null)).is_empty());
    }

    #[test]
    fn each_risk_is_named() {
        let pod = json!({"spec": {
            "hostPID": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "app", "securityContext": {"privileged": true}}]
        }});
        assert_eq!(
            risks(pod_spec(&pod).unwrap_or(&Value::Null)),
            vec![PRIVILEGED, ROOT, HOST_PATH, HOST_NAMESPACES]
        );
        let caps = json!({"containers": [{"name": "a", "securityContext": {"runAsUser": 5, "capabilities": {"add": ["SYS_ADMIN"]}}}]});
        assert_eq!(risks(&caps), vec![PRIVILEGED]);
        // The container's own user wins over the pod's.
        let root = json!({"securityContext": {"runAsUser": 1000}, "containers": [{"name": "a", "securityContext": {"runAsUser": 0}}]});
        assert_eq!(risks(&root), vec![ROOT]);
    }

    #[test]
    fn workload_templates_are_read() {
        let d = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "a", "securityContext": {"privileged": true, "runAsUser": 1}}]}}}});
        assert_eq!(
            risks(pod_spec(&d).unwrap_or(&Value::Null)),
            vec![PRIVILEGED]
        );
        let cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostNetwork": true, "containers": [{"name": "a", "securityContext": {"runAsNonRoot": true}}]}}}}}});
        assert_eq!(
            risks(pod_spec(&cj).unwrap_or(&Value::Null)),
            vec![HOST_NAMESPACES]
        );
    }
}
