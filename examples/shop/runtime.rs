//! Where the shop's AMP pages load the AMP runtime from, and a small server for a local
//! copy of it (`--amp-runtime DIR`), so that the real amp-form runs without internet.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Where both sites serve a local runtime: `/amp-runtime/v0.js`, `/amp-runtime/v0/...`.
pub const RUNTIME_PATH: &str = "/amp-runtime";

/// The files a page of the shop loads (the runtime and the two extensions it uses).
pub const REQUIRED: [&str; 3] = ["v0.js", "v0/amp-form-0.1.js", "v0/amp-mustache-0.2.js"];

/// Runtime files bigger than this are not what we mean to serve.
const FILE_LIMIT: u64 = 4 * 1024 * 1024;

/// Which AMP runtime the pages load.
#[derive(Debug, Clone)]
pub enum Runtime {
    /// `https://cdn.ampproject.org`: valid AMP pages, needs internet.
    Cdn,
    /// A local build, served by the origin and by the cache under [`RUNTIME_PATH`].
    Local(Arc<RuntimeFiles>),
    /// The small stand-in for amp-form (`--offline`).
    StandIn,
}

impl Runtime {
    pub fn describe(&self) -> String {
        match self {
            Runtime::Cdn => "AMP runtime from https://cdn.ampproject.org".into(),
            Runtime::Local(files) => format!("AMP runtime from {}", files.dir),
            Runtime::StandIn => "offline: local amp-form stand-in, not the AMP runtime".into(),
        }
    }
}

/// The `.js` files of a runtime directory, read once at start (a few hundred KiB), so that
/// a request can only ever get one of them: no path from a URL touches the file system.
#[derive(Debug)]
pub struct RuntimeFiles {
    dir: String,
    files: BTreeMap<String, Bytes>,
}

impl RuntimeFiles {
    /// Reads `dir` and its `v0/` folder; fails when one of [`REQUIRED`] is missing.
    pub fn load(dir: &Path) -> Result<RuntimeFiles, String> {
        let mut files = BTreeMap::new();
        for sub in ["", "v0"] {
            let folder = dir.join(sub);
            let entries = std::fs::read_dir(&folder)
                .map_err(|e| format!("--amp-runtime: cannot read {}: {e}", folder.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
                if !is_file || !name.ends_with(".js") {
                    continue;
                }
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if size > FILE_LIMIT {
                    return Err(format!("--amp-runtime: {} is too big", path.display()));
                }
                let body = std::fs::read(&path)
                    .map_err(|e| format!("--amp-runtime: cannot read {}: {e}", path.display()))?;
                let key = if sub.is_empty() {
                    name.to_owned()
                } else {
                    format!("{sub}/{name}")
                };
                files.insert(key, Bytes::from(body));
            }
        }
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|f| !files.contains_key(*f))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "--amp-runtime: {} has no {} (save them from https://cdn.ampproject.org, same paths)",
                dir.display(),
                missing.join(", ")
            ));
        }
        Ok(RuntimeFiles {
            dir: dir.display().to_string(),
            files,
        })
    }
}

/// `GET /amp-runtime/{*file}` on both sites. The runtime also asks for extensions the page
/// did not list (`amp-auto-lightbox`): those get a harmless 404.
pub async fn serve(
    State(files): State<Arc<RuntimeFiles>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    match files.files.get(&file) {
        Some(body) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=300"),
                // Public scripts; the runtime may load extensions with `crossorigin`.
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            body.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not part of this AMP runtime\n").into_response(),
    }
}
