//! Another site that shows a cache page the way AMP viewers do: in an iframe sandboxed with
//! `allow-top-navigation-by-user-activation`, so the page may navigate the top window only
//! right after the shopper's own click. Served by a tiny axum server inside the test, on
//! [`VIEWER_HOST`] (`*.localhost` resolves to loopback in the browsers).

use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::task::JoinHandle;

/// The viewer's site: `viewer.localhost` shares no registrable domain with the shop
/// (`shop.localhost`) or the cache (`*.cache.localhost`).
pub const VIEWER_HOST: &str = "viewer.localhost";

/// The sandbox AMP viewers give the cache page's iframe.
pub const VIEWER_SANDBOX: &str = "allow-scripts allow-same-origin allow-forms \
                                  allow-top-navigation-by-user-activation allow-popups";

/// The running viewer; stopped on drop.
#[derive(Debug)]
pub struct ViewerServer {
    port: u16,
    task: JoinHandle<()>,
}

#[derive(Debug, Deserialize)]
struct Show {
    src: String,
}

impl ViewerServer {
    /// Starts the viewer on a free loopback port, on the test's own runtime.
    pub async fn start() -> ViewerServer {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the viewer");
        let port = listener.local_addr().expect("the viewer's port").port();
        let app = Router::new().route("/viewer", get(viewer_page));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve the viewer");
        });
        ViewerServer { port, task }
    }

    /// The viewer page showing `page` (a cache page URL) in its sandboxed iframe.
    pub fn showing(&self, page: &str) -> String {
        let src: String = form_urlencoded::byte_serialize(page.as_bytes()).collect();
        format!("http://{VIEWER_HOST}:{}/viewer?src={src}", self.port)
    }
}

impl Drop for ViewerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET /viewer?src=<url>`: a header of the viewer's own and the page in a sandboxed iframe.
/// Only http(s) URLs are framed; the URL is escaped for the attribute.
async fn viewer_page(Query(show): Query<Show>) -> Html<String> {
    let src = if show.src.starts_with("https://") || show.src.starts_with("http://") {
        show.src
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    } else {
        "about:blank".to_owned()
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Viewer</title></head>\n\
         <body style=\"margin:0\"><p>A viewer on another site</p>\n\
         <iframe src=\"{src}\" sandbox=\"{VIEWER_SANDBOX}\" style=\"width:100%;height:520px;border:0\"></iframe>\n\
         </body></html>\n"
    ))
}
