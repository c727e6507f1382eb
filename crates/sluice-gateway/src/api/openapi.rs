//! The OpenAPI 3.1 document of the API, made from the route table ([`ENDPOINTS`]) at each
//! request: every path, method, path and query parameter, summary, request and answer
//! bodies (JSON Schema 2020-12 derived from the Rust types with `schemars`), and the roles
//! that may call it (`x-sluice-roles`, also spelled out in the description).

use super::endpoints::{Access, ENDPOINTS};
use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(build())
}

/// Schema generators: bodies are read (the deserializing view of a type: defaults make
/// fields optional), answers are written (the serializing view).
fn generators() -> (SchemaGenerator, SchemaGenerator) {
    let settings = || {
        SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
    };
    (
        settings().for_deserialize().into_generator(),
        settings().for_serialize().into_generator(),
    )
}

/// A query type's properties as OpenAPI query parameters.
fn query_params(make: super::endpoints::SchemaFn) -> Vec<Value> {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .for_deserialize()
        .into_generator();
    let schema = make(&mut g).to_value();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let mut p = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": prop,
            });
            if let Some(d) = prop.get("description") {
                p["description"] = d.clone();
            }
            p
        })
        .collect()
}

/// The document.
pub fn build() -> Value {
    let (mut reads, mut writes) = generators();
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut params: Vec<Value> = e
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
                "2XX": { "description": "Success." },
                "400": { "description": "Invalid request.", "content": error_content() },
                "404": { "description": "Not found.", "content": error_content() },
            },
        });
        if let Some(q) = e.query {
            params.extend(query_params(q));
        }
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(body) = e.body {
            op["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": body(&mut reads).to_value() } },
            });
        }
        if let Some(answer) = e.answer {
            op["responses"]["2XX"]["content"] =
                json!({ "application/json": { "schema": answer(&mut writes).to_value() } });
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
    let mut schemas = writes.take_definitions(true);
    for (name, schema) in reads.take_definitions(true) {
        schemas.entry(name).or_insert(schema);
    }
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] }),
    );
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
            "schemas": schemas,
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
        // Bodies and answers are described by schemas from the types, and every reference
        // resolves to a component.
        let add = &doc["paths"]["/api/v1/connections"]["post"];
        assert_eq!(
            add["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ConnectionConfig"
        );
        let list = &doc["paths"]["/api/v1/sessions"]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"has_denials") && names.contains(&"cursor"),
            "{names:?}"
        );
        let row = &doc["components"]["schemas"]["SessionRow"];
        assert!(row["properties"]["identity"].is_object(), "{row}");
        let text = doc.to_string();
        for (i, _) in text.match_indices("\"$ref\":\"") {
            let rest = &text[i + 8..];
            let target = &rest[..rest.find('"').unwrap()];
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(doc["components"]["schemas"][name].is_object(), "{target}");
        }
    }
}
