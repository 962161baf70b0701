//! The web config in force: loaded and checked at start-up, then read again when the file or
//! the certificate, key and CA files it names change (looked at, at most every
//! [`WEB_CONFIG_RELOAD_CHECK`], on a blocking thread started by the next connection or request),
//! so that a rotated certificate or password takes effect without a restart. A change that does
//! not load leaves the previous configuration in force and makes `/health` warn.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::http::{HeaderName, HeaderValue};
use ring::digest;
use rustls::ServerConfig;

use super::auth::Verifier;
use super::tls::{self, TlsFiles};
use super::web_config::{self, ClientAuth};
use crate::limits::{MAX_WEB_CONFIG_FILE, WEB_CONFIG_RELOAD_CHECK};
use crate::sync::Recover;
use crate::Error;

/// One loaded configuration.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The TLS server configuration, when TLS is on.
    pub(crate) tls: Option<Arc<ServerConfig>>,
    /// User name to bcrypt hash; empty: no basic auth.
    pub(crate) users: HashMap<String, String>,
    /// Headers added to every response.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether every client must present a verified certificate.
    pub(crate) requires_client_cert: bool,
    /// A digest of every byte it was made from: an unchanged set of files is not parsed again.
    fingerprint: [u8; 32],
}

/// The web config of one telemetry.
#[derive(Debug)]
pub(crate) struct WebState {
    path: PathBuf,
    current: RwLock<Arc<Loaded>>,
    last_check: Mutex<Instant>,
    reloading: AtomicBool,
    /// Why the last change could not be loaded (cleared by a successful load).
    problem: Mutex<Option<String>>,
    pub(crate) verifier: Verifier,
}

impl WebState {
    /// Loads `path` and every file it names.
    ///
    /// # Errors
    /// [`Error::WebConfig`] naming what is wrong.
    pub(crate) fn load(path: &Path) -> Result<Self, Error> {
        let loaded = load(path).map_err(|reason| Error::WebConfig {
            path: path.to_owned(),
            reason,
        })?;
        Ok(WebState {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(loaded)),
            last_check: Mutex::new(Instant::now()),
            reloading: AtomicBool::new(false),
            problem: Mutex::new(None),
            verifier: Verifier::new(),
        })
    }

    /// The configuration in force. When the files are due a look, starts one on a blocking
    /// thread (never waited for here: this connection or request uses what is in force now).
    pub(crate) fn current(self: &Arc<Self>) -> Arc<Loaded> {
        self.maybe_check();
        Arc::clone(&self.current.read().recover())
    }

    /// Why the last change could not be loaded, if it could not.
    pub(crate) fn problem(&self) -> Option<String> {
        self.problem.lock().recover().clone()
    }

    fn maybe_check(self: &Arc<Self>) {
        {
            let mut last = self.last_check.lock().recover();
            if last.elapsed() < WEB_CONFIG_RELOAD_CHECK {
                return;
            }
            *last = Instant::now();
        }
        if self.reloading.swap(true, Ordering::SeqCst) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.reloading.store(false, Ordering::SeqCst);
            return;
        };
        let state = Arc::clone(self);
        rt.spawn_blocking(move || {
            state.reload();
            state.reloading.store(false, Ordering::SeqCst);
        });
    }

    /// Reads the files again and swaps in what they say, if it changed and loads.
    pub(crate) fn reload(&self) {
        let before = self.current.read().recover().fingerprint;
        let outcome = read_and_fingerprint(&self.path).and_then(|(read, fingerprint)| {
            if fingerprint == before {
                return Ok(None);
            }
            build(read, fingerprint).map(Some)
        });
        match outcome {
            Ok(None) => {}
            Ok(Some(loaded)) => {
                let tls_was_on = self.current.read().recover().tls.is_some();
                if loaded.tls.is_some() != tls_was_on {
                    self.set_problem(
                        "TLS cannot be turned on or off while serving; restart to change it \
                         (the previous web config stays in force)"
                            .into(),
                    );
                    return;
                }
                *self.current.write().recover() = Arc::new(loaded);
                *self.problem.lock().recover() = None;
                tracing::info!(target: "dchat_telemetry", path = %self.path.display(), "web config reloaded");
            }
            Err(reason) => self.set_problem(format!(
                "{}: {reason} (the previous web config stays in force)",
                self.path.display()
            )),
        }
    }

    fn set_problem(&self, text: String) {
        let mut problem = self.problem.lock().recover();
        if problem.as_deref() != Some(&text) {
            tracing::warn!(target: "dchat_telemetry", "web config not reloaded: {text}");
            *problem = Some(text);
        }
    }
}

/// What the files said, before it is checked.
struct Read {
    config: web_config::WebConfig,
    tls_files: Option<TlsFiles>,
}

fn load(path: &Path) -> Result<Loaded, String> {
    let (read, fingerprint) = read_and_fingerprint(path)?;
    build(read, fingerprint)
}

fn read_and_fingerprint(path: &Path) -> Result<(Read, [u8; 32]), String> {
    let text = read_file(path, "the web config")?;
    let text = String::from_utf8(text).map_err(|_| "not UTF-8 text".to_owned())?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let config = web_config::parse(&text, dir)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(text.as_bytes());
    let tls_files = match &config.tls {
        None => None,
        Some(t) => {
            let files = TlsFiles {
                cert: read_file(&t.cert_file, "cert_file")?,
                key: read_file(&t.key_file, "key_file")?,
                ca: match &t.client_ca_file {
                    Some(p) => Some(read_file(p, "client_ca_file")?),
                    None => None,
                },
            };
            for part in [
                &files.cert,
                &files.key,
                files.ca.as_ref().unwrap_or(&Vec::new()),
            ] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part);
            }
            Some(files)
        }
    };
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(ctx.finish().as_ref());
    Ok((Read { config, tls_files }, fingerprint))
}

fn build(read: Read, fingerprint: [u8; 32]) -> Result<Loaded, String> {
    let Read { config, tls_files } = read;
    let (tls, requires_client_cert) = match (&config.tls, &tls_files) {
        (Some(settings), Some(files)) => (
            Some(tls::server_config(settings, files)?),
            settings.client_auth == ClientAuth::RequireAndVerify,
        ),
        _ => (None, false),
    };
    Ok(Loaded {
        tls,
        users: config.users.into_iter().collect(),
        headers: config.headers,
        requires_client_cert,
        fingerprint,
    })
}

/// Reads a file of at most [`MAX_WEB_CONFIG_FILE`] bytes.
fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_WEB_CONFIG_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if bytes.len() > MAX_WEB_CONFIG_FILE {
        return Err(format!(
            "{what} {}: larger than {MAX_WEB_CONFIG_FILE} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}
