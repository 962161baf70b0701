//! The web config file, in Prometheus exporter-toolkit's format (the `--web.config.file` of Go
//! exporters, checked by `promtool check web-config`): what it may say, and what this crate does
//! with each key. A key or value the crate does not implement is an error naming it, never
//! ignored.

use std::path::{Path, PathBuf};

use axum::http::{HeaderName, HeaderValue};

use super::yaml::{self, Entry, Node};
use crate::limits::{MAX_BCRYPT_COST, MAX_USERS};

/// A parsed web config (files it names not read yet).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct WebConfig {
    /// `tls_server_config`, when it turns TLS on.
    pub(crate) tls: Option<TlsSettings>,
    /// `basic_auth_users`: user name and bcrypt hash, in file order.
    pub(crate) users: Vec<(String, String)>,
    /// `http_server_config.headers`: added to every response.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

/// `tls_server_config`, paths resolved against the web config's directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TlsSettings {
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
    pub(crate) client_auth: ClientAuth,
    pub(crate) client_ca_file: Option<PathBuf>,
    pub(crate) min_version: TlsVersion,
    pub(crate) max_version: TlsVersion,
}

/// `client_auth_type`, of the values implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// `NoClientCert` (the default).
    None,
    /// `VerifyClientCertIfGiven`: a certificate is optional, and verified when given.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`.
    RequireAndVerify,
}

/// `min_version` / `max_version`, of the values implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// The response headers exporter-toolkit lets a web config set, and their allowed values
/// (none listed: any value).
const HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Parses `text`, the web config in `dir` (relative paths are taken from there, as
/// exporter-toolkit does). `Err` names the key, its line, and what is accepted.
pub(crate) fn parse(text: &str, dir: &Path) -> Result<WebConfig, String> {
    let Some(root) = yaml::parse(text)? else {
        return Ok(WebConfig::default());
    };
    let mut config = WebConfig::default();
    for e in map(&root, "the web config")? {
        match e.key.as_str() {
            "tls_server_config" => config.tls = tls(&e.value, dir)?,
            "http_server_config" => config.headers = http(&e.value)?,
            "basic_auth_users" => config.users = users(&e.value)?,
            other => {
                return Err(at(
                    e,
                    format!(
                        "unknown key {other:?}; the web config has tls_server_config, \
                         http_server_config and basic_auth_users"
                    ),
                ))
            }
        }
    }
    Ok(config)
}

fn at(e: &Entry, what: String) -> String {
    format!("line {}: {}: {what}", e.line, e.key)
}

/// The entries of a mapping (a null is an empty one).
fn map<'a>(node: &'a Node, what: &str) -> Result<&'a [Entry], String> {
    match node {
        Node::Map(entries) => Ok(entries),
        n if n.is_null() => Ok(&[]),
        _ => Err(format!("{what} must be a mapping")),
    }
}

/// A string value, as Go's YAML decoding reads one: any scalar's text, a null as empty.
fn string(e: &Entry) -> Result<String, String> {
    match &e.value {
        n if n.is_null() => Ok(String::new()),
        Node::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(at(e, "expected a string".into())),
    }
}

/// A boolean, in YAML 1.1's spellings (as Go's YAML decoding reads one).
fn boolean(e: &Entry) -> Result<bool, String> {
    match &e.value {
        Node::Scalar { text, plain: true } => match text.as_str() {
            "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
                Ok(true)
            }
            "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off"
            | "OFF" => Ok(false),
            _ => Err(at(e, format!("expected true or false, not {text:?}"))),
        },
        _ => Err(at(e, "expected true or false".into())),
    }
}

fn version(e: &Entry) -> Result<Option<TlsVersion>, String> {
    match string(e)?.as_str() {
        "" => Ok(None),
        "TLS12" => Ok(Some(TlsVersion::Tls12)),
        "TLS13" => Ok(Some(TlsVersion::Tls13)),
        v @ ("TLS10" | "TLS11") => Err(at(
            e,
            format!("{v} is not implemented: this server speaks TLS 1.2 and 1.3 (rustls); use TLS12 or TLS13"),
        )),
        v => Err(at(
            e,
            format!("unknown TLS version {v:?}: expected TLS12 or TLS13"),
        )),
    }
}

fn tls(node: &Node, dir: &Path) -> Result<Option<TlsSettings>, String> {
    let mut cert = String::new();
    let mut key = String::new();
    let mut auth = String::new();
    let mut ca = String::new();
    let mut min = None;
    let mut max = None;
    let mut versions_line = None;
    for e in map(node, "tls_server_config")? {
        match e.key.as_str() {
            "cert_file" => cert = string(e)?,
            "key_file" => key = string(e)?,
            "client_auth_type" => auth = string(e)?,
            "client_ca_file" => ca = string(e)?,
            "min_version" => {
                min = version(e)?;
                versions_line = versions_line.or(Some(e));
            }
            "max_version" => {
                max = version(e)?;
                versions_line = versions_line.or(Some(e));
            }
            k @ ("cipher_suites" | "curve_preferences" | "prefer_server_cipher_suites") => {
                return Err(at(
                    e,
                    format!(
                        "{k} is not implemented: rustls' own choice applies (TLS 1.3 and 1.2 \
                         with ECDHE and AEAD ciphers only); remove the key"
                    ),
                ))
            }
            other => {
                return Err(at(
                    e,
                    format!(
                        "unknown key {other:?} in tls_server_config; it has cert_file, key_file, \
                         client_auth_type, client_ca_file, min_version and max_version"
                    ),
                ))
            }
        }
    }
    let min_version = min.unwrap_or(TlsVersion::Tls12);
    let max_version = max.unwrap_or(TlsVersion::Tls13);
    if cert.is_empty() && key.is_empty() && auth.is_empty() && ca.is_empty() {
        // exporter-toolkit serves plain HTTP then, and would ignore the versions.
        if let Some(e) = versions_line {
            return Err(at(
                e,
                "has no effect without cert_file and key_file (TLS is off); remove it or \
                 configure TLS"
                    .into(),
            ));
        }
        return Ok(None);
    }
    if cert.is_empty() {
        return Err("tls_server_config: missing cert_file".into());
    }
    if key.is_empty() {
        return Err("tls_server_config: missing key_file".into());
    }
    if min_version > max_version {
        return Err(format!(
            "tls_server_config: min_version {} is above max_version {}",
            min_version.name(),
            max_version.name()
        ));
    }
    let client_auth = match auth.as_str() {
        "" | "NoClientCert" => ClientAuth::None,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
        v @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert") => {
            return Err(format!(
                "tls_server_config: client_auth_type {v} is not implemented: a client \
                 certificate that is not verified authenticates nobody; use \
                 RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file"
            ))
        }
        v => {
            return Err(format!(
                "tls_server_config: invalid client_auth_type {v:?}: expected NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ))
        }
    };
    match (client_auth, ca.is_empty()) {
        (ClientAuth::None, false) => {
            return Err(
                "tls_server_config: client_ca_file is set without a client_auth_type \
                        (it would verify nothing): set client_auth_type to \
                        RequireAndVerifyClientCert or VerifyClientCertIfGiven"
                    .into(),
            )
        }
        (ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify, true) => {
            return Err(format!(
                "tls_server_config: client_auth_type {auth} needs client_ca_file (the CA that \
                 signs client certificates)"
            ))
        }
        _ => {}
    }
    Ok(Some(TlsSettings {
        cert_file: dir.join(cert),
        key_file: dir.join(key),
        client_auth,
        client_ca_file: (!ca.is_empty()).then(|| dir.join(ca)),
        min_version,
        max_version,
    }))
}

fn http(node: &Node) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    for e in map(node, "http_server_config")? {
        match e.key.as_str() {
            "http2" => {
                if boolean(e)? {
                    return Err(at(
                        e,
                        "HTTP/2 is not implemented: this endpoint speaks HTTP/1.1 (as \
                         Prometheus scrapes); set http2: false or remove the key"
                            .into(),
                    ));
                }
            }
            "headers" => {
                for h in map(&e.value, "http_server_config.headers")? {
                    let Some((name, allowed)) = HEADERS.iter().find(|(n, _)| *n == h.key) else {
                        return Err(at(
                            h,
                            format!(
                                "this HTTP header can not be configured; the allowed ones are {}",
                                HEADERS
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    };
                    let value = string(h)?;
                    if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                        return Err(at(
                            h,
                            format!("invalid value {value:?}: expected one of {allowed:?}"),
                        ));
                    }
                    let value = HeaderValue::from_str(&value)
                        .map_err(|_| at(h, format!("{value:?} is not a valid header value")))?;
                    headers.push((HeaderName::from_static_lowercase(name), value));
                }
            }
            other => {
                return Err(at(
                    e,
                    format!(
                        "unknown key {other:?} in http_server_config; it has http2 and headers"
                    ),
                ))
            }
        }
    }
    Ok(headers)
}

fn users(node: &Node) -> Result<Vec<(String, String)>, String> {
    let entries = map(node, "basic_auth_users")?;
    if entries.len() > MAX_USERS {
        return Err(format!(
            "basic_auth_users: {} users; at most {MAX_USERS}",
            entries.len()
        ));
    }
    let mut users = Vec::with_capacity(entries.len());
    for e in entries {
        if e.key.contains(':') {
            return Err(at(
                e,
                "a user name with ':' can never log in with basic auth".into(),
            ));
        }
        let hash = string(e)?;
        let parts: bcrypt::HashParts = hash.parse().map_err(|err| {
            at(
                e,
                format!(
                    "the password must be a bcrypt hash (htpasswd -nbBC 10 USER PASSWORD): {err}"
                ),
            )
        })?;
        if parts.get_cost() > MAX_BCRYPT_COST {
            return Err(at(
                e,
                format!(
                    "bcrypt cost {} is above {MAX_BCRYPT_COST}: every new connection's first \
                     check would take seconds of CPU; hash it again with a lower cost (10 is \
                     usual)",
                    parts.get_cost()
                ),
            ));
        }
        users.push((e.key.clone(), hash));
    }
    Ok(users)
}

/// A header name from the allow-list above.
trait FromStaticLowercase {
    fn from_static_lowercase(name: &str) -> HeaderName;
}

impl FromStaticLowercase for HeaderName {
    fn from_static_lowercase(name: &str) -> HeaderName {
        // UNWRAP: the names of HEADERS are valid header names (a unit test parses each).
        HeaderName::from_bytes(name.as_bytes()).expect("a valid header name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A bcrypt hash of "secret" at cost 4.
    const HASH: &str = "$2b$04$E.lIMSKdpAbMqzaqpy7YgOzSu2zCkR99IW/sVw0E2HXxV8p0q4w0W";

    fn ok(text: &str) -> WebConfig {
        parse(text, Path::new("/etc/dchat")).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/dchat")).unwrap_err()
    }

    #[test]
    fn the_allowed_header_names_parse() {
        for (name, _) in HEADERS {
            let _ = HeaderName::from_static_lowercase(name);
        }
    }

    #[test]
    fn a_full_config() {
        let c = ok(&format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             min_version: TLS13\nhttp_server_config:\n  http2: false\n  headers:\n    \
             X-Frame-Options: deny\nbasic_auth_users:\n  prometheus: {HASH}\n"
        ));
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/dchat/tls.crt"));
        assert_eq!(tls.key_file, Path::new("/abs/tls.key"));
        assert_eq!(
            tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/dchat/ca.crt"))
        );
        assert_eq!(tls.client_auth, ClientAuth::RequireAndVerify);
        assert_eq!(tls.min_version, TlsVersion::Tls13);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert_eq!(c.users, vec![("prometheus".to_owned(), HASH.to_owned())]);
        assert_eq!(c.headers[0].0, "x-frame-options");
    }

    #[test]
    fn empty_configs_and_auth_without_tls() {
        assert_eq!(ok(""), WebConfig::default());
        assert_eq!(
            ok("tls_server_config:\nbasic_auth_users:\n"),
            WebConfig::default()
        );
        let c = ok(&format!("basic_auth_users:\n  a: {HASH}\n  b: '{HASH}'\n"));
        assert!(c.tls.is_none());
        assert_eq!(c.users.len(), 2);
    }

    #[test]
    fn unimplemented_keys_and_values_are_named() {
        for (text, says) in [
            ("rate_limit:\n  interval: 1s\n", "unknown key \"rate_limit\""),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites is not implemented"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  curve_preferences: [X25519]\n", "curve_preferences is not implemented"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  prefer_server_cipher_suites: true\n", "prefer_server_cipher_suites"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n", "TLS10 is not implemented"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  max_version: TLS11\n", "TLS11 is not implemented"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n", "unknown TLS version"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n", "above max_version"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: c\n", "RequireAnyClientCert is not implemented"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n", "invalid client_auth_type"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n", "without a client_auth_type"),
            ("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
            ("tls_server_config:\n  key_file: b\n", "missing cert_file"),
            ("tls_server_config:\n  cert_file: a\n", "missing key_file"),
            ("tls_server_config:\n  min_version: TLS13\n", "no effect without cert_file"),
            ("tls_server_config:\n  cert: inline\n", "unknown key \"cert\""),
            ("http_server_config:\n  http2: true\n", "HTTP/2 is not implemented"),
            ("http_server_config:\n  http2: maybe\n", "expected true or false"),
            ("http_server_config:\n  headers:\n    Server: x\n", "can not be configured"),
            ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value"),
            ("http_server_config:\n  timeout: 5s\n", "unknown key \"timeout\""),
            ("basic_auth_users:\n  alice: hunter2\n", "bcrypt hash"),
            ("basic_auth_users:\n  'a:b': x\n", "':'"),
            ("basic_auth_users: [alice]\n", "must be a mapping"),
            ("tls_server_config:\n  cert_file: [a]\n", "expected a string"),
        ] {
            let e = err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
        let high = "$2b$15$E.lIMSKdpAbMqzaqpy7YgOzSu2zCkR99IW/sVw0E2HXxV8p0q4w0W";
        assert!(err(&format!("basic_auth_users:\n  a: {high}\n")).contains("cost 15"));
    }

    #[test]
    fn errors_give_the_line() {
        let e = err("basic_auth_users:\n\ntls_server_config:\n  cert_file: a\n  nope: 1\n");
        assert!(e.starts_with("line 5: nope:"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "[a-z_:&*!\\[\\]{},'\"\\-|> \n#~$0-9A-Z]{0,160}") {
            let _ = parse(&s, Path::new("/"));
        }

        #[test]
        fn never_panics_on_near_configs(
            key in prop::sample::select(vec!["cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version", "http2", "headers", "x"]),
            value in "[ -~]{0,40}",
        ) {
            let _ = parse(&format!("tls_server_config:\n  {key}: {value}\nhttp_server_config:\n  {key}: {value}\nbasic_auth_users:\n  {key}: {value}\n"), Path::new("/"));
        }
    }
}
