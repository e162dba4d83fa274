//! Link previews (`url_enrichment`, `GET /og`): the first link of a message becomes an
//! attachment from the page's Open Graph, Twitter-card and oEmbed metadata. One port,
//! [`LinkPreviews`], and its web adapter [`WebPreviews`], which fetches with a time limit, a
//! size cap and at most five redirects, and never connects to a private, loopback, link-local
//! or otherwise internal address (every hop's host is resolved and checked, and the connection
//! goes to the checked address), unless `CHAT_URL_PREVIEW_ALLOW` lists it (for tests).

use async_trait::async_trait;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Map, Value};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a whole preview (every hop) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a page read for its metadata.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
/// Why a link to an internal address is refused.
const NOT_PUBLIC: &str = "the link's host is not on the public internet";
/// The longest URL previewed.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreviewError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait LinkPreviews: Send + Sync {
    /// The attachment `url` previews as (`og_scrape_url`, `title`, `text`, `image_url`, ...).
    async fn preview(&self, url: &str) -> Result<Map<String, Value>, PreviewError>;
}

/// Addresses a preview may reach although they are internal (tests): single addresses or
/// `address/prefix` ranges.
#[derive(Clone, Debug, Default)]
pub struct Allowed(Vec<(IpAddr, u8)>);

impl Allowed {
    pub fn parse(spec: &str) -> Result<Allowed, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (ip, bits) = match s.split_once('/') {
                    Some((ip, bits)) => (ip, Some(bits)),
                    None => (s, None),
                };
                let ip: IpAddr = ip.parse().map_err(|_| format!("{s:?} is not an address"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    Some(b) => b
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= max)
                        .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
                    None => max,
                };
                Ok((ip, bits))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Allowed)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - *bits as u32).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - *bits as u32).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

/// Whether an address is on the public internet (not loopback, private, link-local, shared,
/// documentation, multicast, unspecified, or an IPv4 address wrapped in IPv6 that is one).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064)
        }
    }
}

/// Resolves names for the preview client, keeping only the addresses it may reach.
#[derive(Clone)]
struct GuardedResolver {
    allowed: Arc<Allowed>,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()) || allowed.contains(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    NOT_PUBLIC,
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>,
    Empty<Bytes>,
>;

/// Previews from the web. The HTTP client (and its root certificates) is made at first use.
pub struct WebPreviews {
    client: tokio::sync::OnceCell<Client>,
    allowed: Arc<Allowed>,
}

impl WebPreviews {
    pub fn new(allowed: Allowed) -> WebPreviews {
        WebPreviews {
            client: tokio::sync::OnceCell::new(),
            allowed: Arc::new(allowed),
        }
    }

    async fn client(&self) -> Result<&Client, PreviewError> {
        self.client
            .get_or_try_init(|| async {
                let mut http = HttpConnector::new_with_resolver(GuardedResolver {
                    allowed: self.allowed.clone(),
                });
                http.enforce_http(false);
                http.set_connect_timeout(Some(FETCH_TIMEOUT));
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_native_roots()
                    .map_err(|e| {
                        PreviewError::Unavailable(format!("no TLS root certificates: {e}"))
                    })?
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Ok(
                    hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(https),
                )
            })
            .await
    }

    /// `CHAT_URL_PREVIEW_ALLOW`: internal addresses previews may reach (tests).
    pub fn from_env() -> Result<WebPreviews, String> {
        let allowed = match std::env::var("CHAT_URL_PREVIEW_ALLOW") {
            Ok(spec) => {
                Allowed::parse(&spec).map_err(|e| format!("CHAT_URL_PREVIEW_ALLOW: {e}"))?
            }
            Err(_) => Allowed::default(),
        };
        Ok(WebPreviews::new(allowed))
    }

    /// GET `url`, following redirects: the final URL, its media type and up to the cap of body.
    async fn fetch(&self, url: &str) -> Result<(String, String, Vec<u8>), PreviewError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|_| PreviewError::Refused("not a valid link".into()))?;
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => return Err(PreviewError::Refused("only web links are previewed".into())),
            }
            let host = uri.host().unwrap_or("").trim_matches(['[', ']']);
            // Addresses written in the link skip the resolver: check them here.
            if let Ok(ip) = host.parse::<IpAddr>() {
                if !is_public(ip) && !self.allowed.contains(ip) {
                    return Err(PreviewError::Refused(NOT_PUBLIC.into()));
                }
            }
            let request = hyper::Request::get(uri)
                .header(
                    "user-agent",
                    "Mozilla/5.0 (compatible; chat-link-preview/1.0)",
                )
                .header(
                    "accept",
                    "text/html,application/xhtml+xml,application/json,image/*;q=0.8",
                )
                .body(Empty::new())
                .map_err(|e| PreviewError::Refused(e.to_string()))?;
            let res = self.client().await?.request(request).await.map_err(|e| {
                let mut detail = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    detail = s.to_string();
                    source = s.source();
                }
                if detail == NOT_PUBLIC {
                    PreviewError::Refused(detail)
                } else {
                    PreviewError::Unavailable(format!("the link could not be fetched: {detail}"))
                }
            })?;
            let status = res.status();
            if status.is_redirection() {
                let location = res
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        PreviewError::Unavailable("a redirect without a target".into())
                    })?;
                url = join(&url, location);
                continue;
            }
            if !status.is_success() {
                return Err(PreviewError::Unavailable(format!(
                    "the link answered {}",
                    status.as_u16()
                )));
            }
            let kind = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let mut body = res.into_body();
            let mut bytes = Vec::new();
            while bytes.len() < MAX_PAGE_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            bytes.extend_from_slice(&data);
                        }
                    }
                    Some(Err(e)) => return Err(PreviewError::Unavailable(e.to_string())),
                    None => break,
                }
            }
            bytes.truncate(MAX_PAGE_BYTES);
            return Ok((url, kind, bytes));
        }
        Err(PreviewError::Unavailable(format!(
            "the link redirects more than {MAX_REDIRECTS} times"
        )))
    }
}

#[async_trait]
impl LinkPreviews for WebPreviews {
    async fn preview(&self, url: &str) -> Result<Map<String, Value>, PreviewError> {
        let scrape_url = url.to_string();
        let target = normalize(url)?;
        let work = async {
            let (final_url, kind, body) = self.fetch(&target).await?;
            if kind.starts_with("image/") {
                return Ok(image_attachment(&scrape_url, &final_url));
            }
            if !kind.is_empty() && !kind.contains("html") {
                return Err(PreviewError::Unavailable(format!(
                    "links to {kind} files have no preview"
                )));
            }
            let page = String::from_utf8_lossy(&body);
            let mut meta = read_page(&page, &final_url);
            if let Some(oembed) = meta.oembed.take() {
                if let Ok((_, _, body)) = self.fetch(&oembed).await {
                    if let Ok(doc) = serde_json::from_slice::<Value>(&body) {
                        meta.fill_from_oembed(&doc);
                    }
                }
            }
            meta.into_attachment(&scrape_url, &final_url)
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| {
                PreviewError::Unavailable(format!(
                    "the link did not answer within {} s",
                    FETCH_TIMEOUT.as_secs()
                ))
            })?
    }
}

/// The link to fetch for what a message says (`www.` links are web links).
fn normalize(url: &str) -> Result<String, PreviewError> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(PreviewError::Refused(format!(
            "url must be 1 to {MAX_URL_LEN} characters"
        )));
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(url.to_string())
    } else if lower.starts_with("www.") || (!lower.contains("://") && url.contains('.')) {
        Ok(format!("http://{url}"))
    } else {
        Err(PreviewError::Refused("only web links are previewed".into()))
    }
}

/// `reference` read against the page at `base`.
fn join(base: &str, reference: &str) -> String {
    let reference = reference.trim();
    let lower = reference.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return reference.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(r) = reference.strip_prefix("//") {
        return format!("{scheme}://{r}");
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..host_end]);
    if reference.starts_with('/') {
        return format!("{origin}{reference}");
    }
    let path = &rest[host_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    format!("{origin}{dir}{reference}")
}

fn image_attachment(scrape_url: &str, url: &str) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert("type".into(), "image".into());
    a.insert("image_url".into(), url.into());
    a.insert("thumb_url".into(), url.into());
    a.insert("og_scrape_url".into(), scrape_url.into());
    a
}

/// What a page says about itself.
#[derive(Debug, Default, PartialEq)]
struct PageMeta {
    title: Option<String>,
    description: Option<String>,
    image: Option<String>,
    site_name: Option<String>,
    url: Option<String>,
    video: Option<String>,
    audio: Option<String>,
    og_type: Option<String>,
    author: Option<String>,
    oembed: Option<String>,
}

fn read_page(html: &str, page_url: &str) -> PageMeta {
    let doc = scraper::Html::parse_document(html);
    let mut meta = PageMeta::default();
    let pick = |slot: &mut Option<String>, value: &str| {
        let value = value.trim();
        if slot.is_none() && !value.is_empty() {
            *slot = Some(value.chars().take(1024).collect());
        }
    };
    if let Ok(sel) = scraper::Selector::parse("meta") {
        // Open Graph first, then Twitter cards, then plain meta tags.
        for pass in 0..3 {
            for el in doc.select(&sel) {
                let e = el.value();
                let key = e
                    .attr("property")
                    .or_else(|| e.attr("name"))
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let Some(content) = e.attr("content") else {
                    continue;
                };
                match (pass, key.as_str()) {
                    (0, "og:title") => pick(&mut meta.title, content),
                    (0, "og:description") => pick(&mut meta.description, content),
                    (0, "og:image" | "og:image:url" | "og:image:secure_url") => {
                        pick(&mut meta.image, &join(page_url, content))
                    }
                    (0, "og:site_name") => pick(&mut meta.site_name, content),
                    (0, "og:url") => pick(&mut meta.url, &join(page_url, content)),
                    (0, "og:video" | "og:video:url" | "og:video:secure_url") => {
                        pick(&mut meta.video, &join(page_url, content))
                    }
                    (0, "og:audio" | "og:audio:url" | "og:audio:secure_url") => {
                        pick(&mut meta.audio, &join(page_url, content))
                    }
                    (0, "og:type") => pick(&mut meta.og_type, content),
                    (1, "twitter:title") => pick(&mut meta.title, content),
                    (1, "twitter:description") => pick(&mut meta.description, content),
                    (1, "twitter:image" | "twitter:image:src") => {
                        pick(&mut meta.image, &join(page_url, content))
                    }
                    (1, "twitter:site") => pick(&mut meta.site_name, content),
                    (2, "description") => pick(&mut meta.description, content),
                    (2, "author") => pick(&mut meta.author, content),
                    _ => {}
                }
            }
        }
    }
    if meta.title.is_none() {
        if let Ok(sel) = scraper::Selector::parse("title") {
            if let Some(t) = doc.select(&sel).next() {
                pick(&mut meta.title, &t.text().collect::<String>());
            }
        }
    }
    if let Ok(sel) = scraper::Selector::parse("link[rel=alternate]") {
        for el in doc.select(&sel) {
            let e = el.value();
            if e.attr("type")
                .is_some_and(|t| t.eq_ignore_ascii_case("application/json+oembed"))
            {
                if let Some(href) = e.attr("href") {
                    meta.oembed = Some(join(page_url, href));
                    break;
                }
            }
        }
    }
    meta
}

impl PageMeta {
    fn fill_from_oembed(&mut self, doc: &Value) {
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
        self.title = self.title.take().or_else(|| text("title"));
        self.image = self.image.take().or_else(|| text("thumbnail_url"));
        self.site_name = self.site_name.take().or_else(|| text("provider_name"));
        self.author = self.author.take().or_else(|| text("author_name"));
        if self.og_type.is_none() {
            self.og_type = text("type");
        }
    }

    fn into_attachment(
        self,
        scrape_url: &str,
        final_url: &str,
    ) -> Result<Map<String, Value>, PreviewError> {
        if self.title.is_none() && self.description.is_none() && self.image.is_none() {
            return Err(PreviewError::Unavailable(
                "the page has no title, description or image".into(),
            ));
        }
        let kind = if self.video.is_some()
            || self
                .og_type
                .as_deref()
                .is_some_and(|t| t.starts_with("video"))
        {
            "video"
        } else if self.audio.is_some()
            || self
                .og_type
                .as_deref()
                .is_some_and(|t| t.starts_with("music"))
        {
            "audio"
        } else if self.og_type.as_deref() == Some("photo") {
            "image"
        } else {
            "article"
        };
        let mut a = Map::new();
        a.insert("type".into(), kind.into());
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.insert(k.into(), Value::String(v));
            }
        };
        put("author_name", self.site_name.or(self.author));
        put("title", self.title);
        put(
            "title_link",
            Some(self.url.unwrap_or_else(|| final_url.to_string())),
        );
        put("text", self.description);
        put("image_url", self.image.clone());
        put("thumb_url", self.image);
        put("asset_url", self.video.or(self.audio));
        a.insert("og_scrape_url".into(), scrape_url.into());
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn allow_lists_take_addresses_and_ranges() {
        let a = Allowed::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        assert!(a.contains("127.0.0.1".parse().unwrap()));
        assert!(!a.contains("127.0.0.2".parse().unwrap()));
        assert!(a.contains("10.9.9.9".parse().unwrap()));
        assert!(!a.contains("::1".parse().unwrap()));
        assert!(Allowed::parse("nope").is_err());
        assert!(Allowed::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn links_are_joined_to_their_page() {
        let base = "https://ex.com/a/b.html?q=1";
        assert_eq!(join(base, "/img.png"), "https://ex.com/img.png");
        assert_eq!(join(base, "img.png"), "https://ex.com/a/img.png");
        assert_eq!(join(base, "//cdn.ex.com/x"), "https://cdn.ex.com/x");
        assert_eq!(join(base, "http://o.com/y"), "http://o.com/y");
        assert_eq!(join("http://ex.com", "p"), "http://ex.com/p");
        assert_eq!(normalize("www.ex.com").unwrap(), "http://www.ex.com");
        assert!(normalize("ftp://ex.com").is_err());
        assert!(normalize("javascript:alert(1)").is_err());
    }

    #[test]
    fn open_graph_then_twitter_then_plain_tags() {
        let html = r#"<html><head><title>Plain title</title>
            <meta name="description" content="plain description">
            <meta name="twitter:title" content="Twitter title">
            <meta property="og:title" content="OG title">
            <meta name="twitter:image" content="/tw.png">
            <meta property="og:site_name" content="Example">
            <link rel="alternate" type="application/json+oembed" href="/oembed?u=1">
            </head><body></body></html>"#;
        let meta = read_page(html, "https://ex.com/post/1");
        assert_eq!(meta.title.as_deref(), Some("OG title"));
        assert_eq!(meta.description.as_deref(), Some("plain description"));
        assert_eq!(meta.image.as_deref(), Some("https://ex.com/tw.png"));
        assert_eq!(meta.oembed.as_deref(), Some("https://ex.com/oembed?u=1"));
        let a = meta
            .into_attachment("ex.com/post/1", "https://ex.com/post/1")
            .unwrap();
        assert_eq!(a["type"], "article");
        assert_eq!(a["author_name"], "Example");
        assert_eq!(a["title_link"], "https://ex.com/post/1");
        assert_eq!(a["thumb_url"], "https://ex.com/tw.png");
        assert_eq!(a["og_scrape_url"], "ex.com/post/1");

        let bare = read_page("<title> Only </title>", "https://ex.com/");
        assert_eq!(bare.title.as_deref(), Some("Only"));
        assert!(read_page("<p>nothing</p>", "https://ex.com/")
            .into_attachment("u", "u")
            .is_err());
        let video = read_page(
            r#"<meta property="og:title" content="V"><meta property="og:video" content="https://v.ex/v.mp4">"#,
            "https://ex.com/",
        )
        .into_attachment("u", "u")
        .unwrap();
        assert_eq!(video["type"], "video");
        assert_eq!(video["asset_url"], "https://v.ex/v.mp4");
    }

    #[tokio::test]
    async fn internal_hosts_are_refused_before_connecting() {
        let previews = WebPreviews::new(Allowed::default());
        for url in [
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
            "http://169.254.169.254/latest",
        ] {
            assert!(
                matches!(previews.preview(url).await, Err(PreviewError::Refused(_))),
                "{url}"
            );
        }
        // A name that resolves to loopback: the resolver keeps no address.
        assert_eq!(
            previews.preview("http://localhost:9/").await,
            Err(PreviewError::Refused(NOT_PUBLIC.into()))
        );
        assert!(matches!(
            previews.preview("file:///etc/passwd").await,
            Err(PreviewError::Refused(_))
        ));
    }
}
