//! A schema registry for tests and benchmarks (feature `test-utils`).
//!
//! No registry server installs on the development machine: Karapace is not on PyPI (404
//! from pypi.org/simple/karapace), and Confluent's and Apicurio's registries are JVM
//! services distributed through Maven repositories it cannot reach. [`Registry`] is an
//! HTTP/1.1 server on 127.0.0.1 answering the exchanges of Confluent's API reference
//! (register under a subject, look up, fetch by id, global ids shared by identical
//! schemas, 401 and 404 errors with their `error_code`s), recording every request.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request the registry received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET` or `POST`.
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    /// Schema text → global id.
    ids: HashMap<String, i32>,
    /// Subject → ids registered under it.
    subjects: HashMap<String, Vec<i32>>,
    seen: Vec<Seen>,
}

/// A schema registry on 127.0.0.1 speaking Confluent's REST API.
pub struct Registry {
    /// Its base URL.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Registry {
    /// Starts one; with `required_auth`, requests without that `Authorization` header get 401.
    pub fn start(required_auth: Option<&str>) -> Registry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let required = required_auth.map(str::to_owned);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let state = shared.clone();
                let required = required.clone();
                std::thread::spawn(move || serve(conn, &state, required.as_deref()));
            }
        });
        Registry { url, state }
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The latest schema registered under `subject`.
    pub fn schema_of(&self, subject: &str) -> serde_json::Value {
        let state = self.state.lock().unwrap();
        let id = *state.subjects[subject].last().unwrap();
        let text = state.ids.iter().find(|(_, i)| **i == id).unwrap().0;
        serde_json::from_str(text).unwrap()
    }
}

/// Serves the requests of one keep-alive connection.
fn serve(conn: std::net::TcpStream, state: &Mutex<State>, required: Option<&str>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let (mut length, mut authorization) = (0usize, None);
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => authorization = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let (status, reply) = answer(
            state,
            &method,
            &path,
            &body,
            authorization.clone(),
            required,
        );
        let reply = reply.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
    }
}

fn answer(
    state: &Mutex<State>,
    method: &str,
    path: &str,
    body: &[u8],
    authorization: Option<String>,
    required: Option<&str>,
) -> (u16, serde_json::Value) {
    use serde_json::json;
    let mut s = state.lock().unwrap();
    s.seen.push(Seen {
        method: method.to_owned(),
        path: path.to_owned(),
        authorization: authorization.clone(),
    });
    if required.is_some() && authorization.as_deref() != required {
        return (401, json!({"error_code": 401, "message": "Unauthorized"}));
    }
    let schema = || -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["schema"].as_str().unwrap().to_owned()
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["subjects", subject, "versions"]) => {
            let text = schema();
            // Parsing is the registry's first check: invalid Avro is refused with 42201.
            if apache_avro::Schema::parse_str(&text).is_err() {
                return (
                    422,
                    json!({"error_code": 42201, "message": "Invalid schema"}),
                );
            }
            let next = s.ids.len() as i32 + 1;
            let id = *s.ids.entry(text).or_insert(next);
            let versions = s.subjects.entry((*subject).to_owned()).or_default();
            if !versions.contains(&id) {
                versions.push(id);
            }
            (200, json!({"id": id}))
        }
        ("POST", ["subjects", subject]) => {
            let text = schema();
            match (s.subjects.get(*subject), s.ids.get(&text)) {
                (None, _) => (
                    404,
                    json!({"error_code": 40401, "message": "Subject not found."}),
                ),
                (Some(v), Some(id)) if v.contains(id) => (
                    200,
                    json!({"subject": subject, "version": 1, "id": id, "schema": text}),
                ),
                _ => (
                    404,
                    json!({"error_code": 40403, "message": "Schema not found"}),
                ),
            }
        }
        ("GET", ["schemas", "ids", id]) => {
            let id: i32 = id.parse().unwrap();
            match s.ids.iter().find(|(_, i)| **i == id) {
                Some((text, _)) => (200, json!({"schema": text})),
                None => (
                    404,
                    json!({"error_code": 40403, "message": "Schema not found"}),
                ),
            }
        }
        _ => (
            404,
            json!({"error_code": 404, "message": "HTTP 404 Not Found"}),
        ),
    }
}
