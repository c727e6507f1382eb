//! The OpenAPI 3.1 document of the API, made from the route table ([`ENDPOINTS`]) at each
//! request: every path, method, path parameter, summary, and the roles that may call it
//! (`x-sluice-roles`, also spelled out in the description).

use super::endpoints::{Access, ENDPOINTS};
use axum::Json;
use serde_json::{json, Map, Value};

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(build())
}

/// The document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
            })
            .collect();
        let who = match e.access {
            Access::Public => "No credential.".to_string(),
            Access::Agent => "An agent (enrollment token or its key's proof).".to_string(),
            _ => format!("Roles: {}.", e.access.roles().join(", ")),
        };
        let mut op = json!({
            "operationId": operation_id(e.method, e.path),
            "summary": e.summary,
            "description": who,
            "tags": [e.tag],
            "x-sluice-roles": e.access.roles(),
            "responses": {
                "200": { "description": "Success." },
                "400": { "description": "Invalid request.", "content": error_content() },
                "404": { "description": "Not found.", "content": error_content() },
            },
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        match e.access {
            Access::Public | Access::Agent => op["security"] = json!([]),
            _ => {
                op["responses"]["401"] =
                    json!({ "description": "No valid credential.", "content": error_content() });
                op["responses"]["403"] = json!({ "description": "The caller's roles do not allow it.", "content": error_content() });
            }
        }
        let entry = paths
            .entry(e.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sluice",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The sluice gateway's REST API. Roles come from groups: admin (everything), auditor (reads everything, changes nothing), approver (reviews and access requests), user (every identity: its own sessions and requests).",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "A gateway token, or a JWT of a trusted identity provider." }
            },
            "schemas": {
                "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] }
            }
        },
        "paths": paths,
    })
}

fn error_content() -> Value {
    json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } })
}

/// `get /api/v1/sessions/{id}/events` → `get_sessions_id_events`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for seg in path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
    {
        id.push('_');
        id.extend(seg.chars().filter(|c| !matches!(c, '{' | '}')).map(|c| {
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '_'
            }
        }));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_documented_once() {
        let doc = build();
        let mut seen = std::collections::HashSet::new();
        for e in ENDPOINTS {
            assert!(
                seen.insert((e.method, e.path)),
                "{} {} twice",
                e.method,
                e.path
            );
            let op = &doc["paths"][e.path][e.method];
            assert_eq!(op["summary"], e.summary, "{} {}", e.method, e.path);
        }
        let ids: std::collections::HashSet<String> = ENDPOINTS
            .iter()
            .map(|e| operation_id(e.method, e.path))
            .collect();
        assert_eq!(ids.len(), ENDPOINTS.len(), "operation ids are unique");
        assert_eq!(doc["openapi"], "3.1.0");
        let op = &doc["paths"]["/api/v1/sessions/{id}/kill"]["post"];
        assert_eq!(op["x-sluice-roles"], json!(["admin"]));
        assert_eq!(op["parameters"][0]["name"], "id");
    }
}
