//! A Confluent Schema Registry client (the REST API Confluent's registry, Karapace,
//! Redpanda and Apicurio's `ccompat` endpoint share): register or look up a subject's
//! schema, fetch a schema by id, with local caches in the converter and basic or bearer
//! authentication.

use std::time::Duration;

use base64::Engine as _;
use connect_core::properties::Scope;
use serde_json::{json, Value as Json};

use crate::error::AvroError;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// None.
    None,
    /// HTTP basic (`basic.auth.credentials.source=USER_INFO`, `basic.auth.user.info`).
    Basic {
        /// `user:password`.
        user_info: String,
    },
    /// A bearer token (`bearer.auth.credentials.source=STATIC_TOKEN`, `bearer.auth.token`).
    Bearer {
        /// The token.
        token: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach logs or errors.
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic { .. } => "Basic(<redacted>)",
            Auth::Bearer { .. } => "Bearer(<redacted>)",
        })
    }
}

impl Auth {
    fn header(&self) -> Option<String> {
        match self {
            Auth::None => None,
            Auth::Basic { user_info } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(user_info)
            )),
            Auth::Bearer { token } => Some(format!("Bearer {token}")),
        }
    }
}

/// Registry endpoints and credentials (`schema.registry.url` and the auth keys).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Base URLs, tried in order (`schema.registry.url`, comma-separated).
    pub urls: Vec<String>,
    /// Authentication.
    pub auth: Auth,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RegistryConfig {
    /// One registry without authentication.
    pub fn new(url: impl Into<String>) -> Self {
        RegistryConfig {
            urls: vec![url.into()],
            auth: Auth::None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Sets the authentication.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Reads Confluent's keys from a converter's scope (`value.converter.` + key).
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, AvroError> {
        let urls: Vec<String> = scope
            .list("schema.registry.url")
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect();
        if urls.is_empty() {
            return Err(AvroError::Config {
                key: scope.key("schema.registry.url"),
                message: "is required".to_owned(),
            });
        }
        for u in &urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(AvroError::Config {
                    key: scope.key("schema.registry.url"),
                    message: format!("`{u}` is not an http(s) URL"),
                });
            }
        }
        let basic = scope.get("basic.auth.credentials.source");
        let bearer = scope.get("bearer.auth.credentials.source");
        let auth = match (basic, bearer) {
            (Some(_), Some(_)) => {
                return Err(AvroError::Config {
                    key: scope.key("bearer.auth.credentials.source"),
                    message: "set either basic or bearer authentication, not both".to_owned(),
                })
            }
            (Some("USER_INFO"), None) => Auth::Basic {
                user_info: scope
                    .get("basic.auth.user.info")
                    .ok_or_else(|| AvroError::Config {
                        key: scope.key("basic.auth.user.info"),
                        message: "is required with basic.auth.credentials.source=USER_INFO"
                            .to_owned(),
                    })?
                    .to_owned(),
            },
            (Some(other), None) => {
                return Err(AvroError::Config {
                    key: scope.key("basic.auth.credentials.source"),
                    message: format!("`{other}` is not supported (USER_INFO is)"),
                })
            }
            (None, Some("STATIC_TOKEN")) => Auth::Bearer {
                token: scope
                    .get("bearer.auth.token")
                    .ok_or_else(|| AvroError::Config {
                        key: scope.key("bearer.auth.token"),
                        message: "is required with bearer.auth.credentials.source=STATIC_TOKEN"
                            .to_owned(),
                    })?
                    .to_owned(),
            },
            (None, Some(other)) => {
                return Err(AvroError::Config {
                    key: scope.key("bearer.auth.credentials.source"),
                    message: format!("`{other}` is not supported (STATIC_TOKEN is)"),
                })
            }
            (None, None) => Auth::None,
        };
        let timeout_ms: u64 = scope
            .parse_or("schema.registry.request.timeout.ms", 30_000)
            .map_err(|e| AvroError::Config {
                key: scope.key("schema.registry.request.timeout.ms"),
                message: e.to_string(),
            })?;
        Ok(RegistryConfig {
            urls,
            auth,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

/// A blocking client of the registry's REST API.
#[derive(Debug)]
pub struct RegistryClient {
    config: RegistryConfig,
    agent: ureq::Agent,
}

impl RegistryClient {
    /// A client for `config`.
    pub fn new(config: RegistryConfig) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        RegistryClient { config, agent }
    }

    /// Registers `schema` (Avro JSON) under `subject`, or finds it there; its global id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<i32, AvroError> {
        let body = json!({ "schema": schema }).to_string();
        let path = format!("/subjects/{}/versions", encode(subject));
        let reply = self.request("POST", &path, Some(&body), subject)?;
        id_of(&reply, subject)
    }

    /// The id of `schema` if it is already registered under `subject`
    /// (`auto.register.schemas=false`).
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<i32, AvroError> {
        let body = json!({ "schema": schema }).to_string();
        let path = format!("/subjects/{}", encode(subject));
        let reply = self.request("POST", &path, Some(&body), subject)?;
        id_of(&reply, subject)
    }

    /// The schema (Avro JSON text) with this global id.
    pub fn schema_by_id(&self, id: i32) -> Result<String, AvroError> {
        let what = format!("schema id {id}");
        let reply = self.request("GET", &format!("/schemas/ids/{id}"), None, &what)?;
        reply
            .get("schema")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .ok_or_else(|| AvroError::Registry {
                retryable: false,
                message: format!("{what}: the registry's reply has no `schema`: {reply}"),
            })
    }

    /// One request, on each URL in turn while they are unreachable.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        what: &str,
    ) -> Result<Json, AvroError> {
        let mut last = None;
        for base in &self.config.urls {
            let url = format!("{base}{path}");
            let auth = self.config.auth.header();
            let result = match method {
                "GET" => {
                    let mut req = self.agent.get(&url).header("Accept", CONTENT_TYPE);
                    if let Some(a) = &auth {
                        req = req.header("Authorization", a);
                    }
                    req.call()
                }
                _ => {
                    let mut req = self
                        .agent
                        .post(&url)
                        .header("Accept", CONTENT_TYPE)
                        .header("Content-Type", CONTENT_TYPE);
                    if let Some(a) = &auth {
                        req = req.header("Authorization", a);
                    }
                    req.send(body.unwrap_or_default())
                }
            };
            let mut response = match result {
                Ok(r) => r,
                Err(e) => {
                    last = Some(AvroError::Registry {
                        retryable: true,
                        message: format!("{what}: registry {base} unreachable: {e}"),
                    });
                    continue;
                }
            };
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            let json: Json = serde_json::from_str(&text).unwrap_or(Json::String(text));
            if (200..300).contains(&status) {
                return Ok(json);
            }
            let message = json
                .get("message")
                .and_then(Json::as_str)
                .map_or_else(|| json.to_string(), str::to_owned);
            let error = AvroError::Registry {
                retryable: status >= 500 || status == 429,
                message: match status {
                    401 | 403 => format!(
                        "{what}: the registry refused the credentials (HTTP {status}): {message}; check basic.auth.* / bearer.auth.*"
                    ),
                    409 => format!(
                        "{what}: the schema is incompatible with the subject's earlier versions (HTTP 409): {message}"
                    ),
                    _ => format!("{what}: HTTP {status} from {base}: {message}"),
                },
            };
            if status >= 500 {
                last = Some(error);
                continue;
            }
            return Err(error);
        }
        Err(last.expect("at least one URL"))
    }
}

fn id_of(reply: &Json, subject: &str) -> Result<i32, AvroError> {
    reply
        .get("id")
        .and_then(Json::as_i64)
        .and_then(|id| i32::try_from(id).ok())
        .ok_or_else(|| AvroError::Registry {
            retryable: false,
            message: format!("subject `{subject}`: the registry's reply has no schema id: {reply}"),
        })
}

/// Percent-encodes a subject for a URL path.
fn encode(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
