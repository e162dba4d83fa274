//! Uploads in AWS: files kept in S3 (moto) with their records on DynamoDB (moto), as the
//! messages function keeps them; links redirect to presigned S3 URLs, resized images come
//! through the API; deletes and hard deletes remove the S3 objects. Also the upload routes
//! through the router (multipart), on the embedded store.

mod support;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shared::domain::upload::UploadKind;
use shared::files::links::FileLinks;
use shared::files::{FilePath, FileStore};
use shared::service::uploads::{NewUpload, Served};
use std::sync::Arc;
use support::chat::{obj, token, TestChat, API_KEY};
use tower::ServiceExt;

/// A `w` × `h` PNG of one colour.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

async fn download(url: &str) -> (u16, Vec<u8>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let res = client.get(url.parse().expect("url")).await.expect("get");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

fn query_of(url: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |k: &str| {
        url.split_once('?')?
            .1
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_string))
    }
}

fn path_of(url: &str) -> String {
    FileLinks::path_of(url)
        .expect("one of our links")
        .as_str()
        .to_string()
}

async fn upload(t: &TestChat, user: &str, name: &str, bytes: Vec<u8>, kind: UploadKind) -> Value {
    let new = NewUpload {
        name: name.into(),
        declared_type: None,
        bytes,
        user_id: None,
        upload_sizes: None,
    };
    t.chat
        .upload(
            &t.user(user).await,
            Some(("messaging", "files")),
            kind,
            new,
            "https://api.example.com/v1",
        )
        .await
        .expect("upload")
}

#[tokio::test]
async fn s3_keeps_gets_and_deletes_files() {
    let moto = support::moto::Moto::shared();
    let files = Arc::new(support::s3::bucket(&moto, "files-basic").await);
    let path = FilePath::parse("uploads/abc/notes.txt").expect("path");
    assert_eq!(files.get(&path).await.expect("get"), None);
    files.put(&path, b"hello".to_vec()).await.expect("put");
    assert_eq!(
        files.get(&path).await.expect("get"),
        Some(b"hello".to_vec())
    );
    files.delete(&path).await.expect("delete");
    assert_eq!(files.get(&path).await.expect("get"), None);
    files
        .delete(&path)
        .await
        .expect("deleting again is no error");
}

#[tokio::test]
async fn uploads_on_dynamodb_live_in_s3_until_deleted() {
    let moto = support::moto::Moto::shared();
    let files = Arc::new(support::s3::bucket(&moto, "files-uploads").await);
    let mut t = TestChat::dynamodb().await;
    t.chat = t.chat.clone().with_files(files.clone());
    t.users(&["up-ann", "up-bob"]).await;
    t.channel("files", &["up-ann", "up-bob"]).await;

    let answer = upload(
        &t,
        "up-ann",
        "red square.png",
        png(40, 20),
        UploadKind::Image,
    )
    .await;
    let url = answer["file"].as_str().expect("file").to_string();
    assert!(
        url.starts_with("https://api.example.com/v1/files/uploads/"),
        "{url}"
    );
    assert!(
        url.contains("/red_square.png?oh=20&ow=40&expires="),
        "{url}"
    );
    assert!(answer["thumb_url"]
        .as_str()
        .is_some_and(|u| u.contains("w=300")));
    let path = FilePath::parse(&path_of(&url)).expect("path");
    assert_eq!(files.get(&path).await.expect("get"), Some(png(40, 20)));

    // The link redirects to a presigned S3 URL that serves the original.
    match t
        .chat
        .serve_file(path.as_str(), query_of(&url))
        .await
        .expect("serve")
    {
        Served::Redirect(to) => {
            assert!(to.contains("X-Amz-Signature="), "{to}");
            assert_eq!(download(&to).await, (200, png(40, 20)));
        }
        Served::Bytes { .. } => panic!("S3 files are served by S3"),
    }
    // A size comes through the API, made from the original in S3.
    let sized = format!("{url}&w=10&h=10&resize=scale");
    match t
        .chat
        .serve_file(path.as_str(), query_of(&sized))
        .await
        .expect("serve")
    {
        Served::Bytes {
            body, content_type, ..
        } => {
            assert_eq!(content_type, "image/png");
            let img = image::load_from_memory(&body).expect("image");
            assert_eq!((img.width(), img.height()), (10, 10));
        }
        Served::Redirect(_) => panic!("sizes are made by the API"),
    }

    // Bob may not delete Ann's upload; Ann may.
    let bob = t
        .chat
        .delete_upload(
            &t.user("up-bob").await,
            Some(("messaging", "files")),
            UploadKind::Image,
            &url,
        )
        .await
        .expect_err("not Bob's");
    assert_eq!(bob.status(), 403);
    t.chat
        .delete_upload(
            &t.user("up-ann").await,
            Some(("messaging", "files")),
            UploadKind::Image,
            &url,
        )
        .await
        .expect("Ann deletes hers");
    assert_eq!(files.get(&path).await.expect("get"), None);
    let again = t
        .chat
        .delete_upload(
            &t.user("up-ann").await,
            Some(("messaging", "files")),
            UploadKind::Image,
            &url,
        )
        .await
        .expect_err("gone");
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn sizes_of_images_the_api_cannot_read_redirect_to_the_original() {
    let moto = support::moto::Moto::shared();
    let files = Arc::new(support::s3::bucket(&moto, "files-svg").await);
    let mut t = TestChat::dynamodb().await;
    t.chat = t.chat.clone().with_files(files);
    t.users(&["svg-ann"]).await;
    t.channel("files", &["svg-ann"]).await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>"#.to_vec();
    let new = NewUpload {
        name: "logo.svg".into(),
        declared_type: Some("image/svg+xml".into()),
        bytes: svg.clone(),
        user_id: None,
        upload_sizes: None,
    };
    let answer = t
        .chat
        .upload(
            &t.user("svg-ann").await,
            Some(("messaging", "files")),
            UploadKind::Image,
            new,
            "https://x",
        )
        .await
        .expect("upload");
    let thumb = answer["thumb_url"].as_str().expect("thumb_url");
    match t
        .chat
        .serve_file(&path_of(thumb), query_of(thumb))
        .await
        .expect("serve")
    {
        Served::Redirect(to) => assert_eq!(download(&to).await, (200, svg)),
        Served::Bytes { .. } => panic!("the original comes from S3"),
    }
}

#[tokio::test]
async fn hard_deletes_take_their_uploads_from_s3() {
    let moto = support::moto::Moto::shared();
    let files = Arc::new(support::s3::bucket(&moto, "files-cleanup").await);
    let mut t = TestChat::dynamodb().await;
    t.chat = t.chat.clone().with_files(files.clone());
    t.users(&["cl-ann"]).await;
    t.channel("files", &["cl-ann"]).await;
    let attached = upload(
        &t,
        "cl-ann",
        "a.txt",
        b"attached".to_vec(),
        UploadKind::File,
    )
    .await;
    let loose = upload(&t, "cl-ann", "b.txt", b"loose".to_vec(), UploadKind::File).await;
    let attached_url = attached["file"].as_str().expect("file");
    let attached_path = FilePath::parse(&path_of(attached_url)).expect("path");
    let loose_path =
        FilePath::parse(&path_of(loose["file"].as_str().expect("file"))).expect("path");

    let server = t.server().await;
    let sent = t
        .chat
        .send_message(
            &server,
            "messaging",
            "files",
            shared::service::messages::SendMessage {
                message: obj(json!({
                    "text": "see attached",
                    "user_id": "cl-ann",
                    "attachments": [{"type": "file", "asset_url": attached_url}],
                })),
                ..Default::default()
            },
        )
        .await
        .expect("send");
    let id = sent["message"]["id"].as_str().expect("id").to_string();
    t.chat
        .delete_message(
            &server,
            &id,
            shared::service::messages::DeleteMessageOptions {
                hard: true,
                delete_for_me: false,
                deleted_by: None,
            },
        )
        .await
        .expect("hard delete");
    assert_eq!(files.get(&attached_path).await.expect("get"), None);
    assert!(files.get(&loose_path).await.expect("get").is_some());

    t.chat
        .delete_channel(&server, "messaging", "files", true)
        .await
        .expect("hard delete channel");
    assert_eq!(files.get(&loose_path).await.expect("get"), None);
}

/// PUT `body` to `url` with these headers: the status.
async fn put(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut req = hyper::Request::put(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .expect("request");
    client.request(req).await.expect("put").status().as_u16()
}

#[tokio::test]
async fn presigned_uploads_go_straight_to_s3() {
    let moto = support::moto::Moto::shared();
    let files = Arc::new(support::s3::bucket(&moto, "files-presigned-put").await);
    let mut t = TestChat::dynamodb().await;
    t.chat = t.chat.clone().with_files(files.clone());
    t.users(&["ps-ann", "ps-eve"]).await;
    t.channel("files", &["ps-ann"]).await;
    let req = |size: u64| -> shared::service::uploads::PresignUpload {
        serde_json::from_value(json!({
            "kind": "file", "name": "big report.pdf", "content_type": "application/pdf",
            "size": size, "channel_type": "messaging", "channel_id": "files"
        }))
        .expect("request")
    };
    let body = vec![7u8; 7 * 1024 * 1024];
    let answer = t
        .chat
        .presign_upload(
            &t.user("ps-ann").await,
            req(body.len() as u64),
            "https://api.example.com/v1",
        )
        .await
        .expect("presign");
    assert_eq!(answer["method"], "PUT");
    let upload_url = answer["upload_url"].as_str().expect("upload_url");
    assert!(upload_url.contains("X-Amz-Signature="), "{upload_url}");
    let link = answer["file"].as_str().expect("file");
    assert!(
        link.contains("/files/uploads/") && link.contains("/big_report.pdf?"),
        "{link}"
    );
    // The size and type are signed headers, so S3 takes no other (moto does not check
    // signatures, so the URL is what shows it).
    let signed = upload_url
        .split("X-Amz-SignedHeaders=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("signed headers");
    assert_eq!(
        signed, "content-length%3Bcontent-type%3Bhost",
        "{upload_url}"
    );
    let headers = [("content-type", "application/pdf")];
    assert_eq!(put(upload_url, &headers, body.clone()).await, 200);
    let path = FilePath::parse(&path_of(link)).expect("path");
    assert_eq!(
        files.get(&path).await.expect("get").map(|b| b.len()),
        Some(body.len())
    );
    // A non-member may not presign into the channel; an oversized file is refused up front.
    let eve = t
        .chat
        .presign_upload(&t.user("ps-eve").await, req(10), "https://x")
        .await
        .expect_err("not a member");
    assert_eq!(eve.status(), 403);
    let big = t
        .chat
        .presign_upload(&t.user("ps-ann").await, req(200 * 1024 * 1024), "https://x")
        .await
        .expect_err("too big");
    assert_eq!(big.status(), 413);
    // The upload is deleted like any other.
    t.chat
        .delete_upload(
            &t.user("ps-ann").await,
            Some(("messaging", "files")),
            UploadKind::File,
            link,
        )
        .await
        .expect("delete");
    assert_eq!(files.get(&path).await.expect("get"), None);
}

/// A multipart body with a `file` part and a `user` field.
fn multipart(name: &str, kind: &str, bytes: &[u8], user: Option<&str>) -> (String, Vec<u8>) {
    let boundary = "x-boundary-7d1";
    let mut body = Vec::new();
    if let Some(user) = user {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n{{\"id\":\"{user}\"}}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {kind}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn call(router: &axum::Router, req: axum::http::Request<Body>) -> (u16, Vec<u8>) {
    let res = router.clone().oneshot(req).await.expect("answer");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}

#[tokio::test]
async fn the_routes_take_multipart_and_serve_the_bytes() {
    let mut t = TestChat::embedded().await;
    t.chat = t
        .chat
        .clone()
        .with_files(Arc::new(shared::files::local::LocalFiles::in_memory(
            "http://unused",
            "test-secret",
        )))
        .with_public_url("http://chat.test");
    t.users(&["rt-ann"]).await;
    t.channel("files", &["rt-ann"]).await;
    let router = t.router();
    let (content_type, body) = multipart("hello world.txt", "text/plain", b"hi there", None);
    let req =
        axum::http::Request::post(format!("/channels/messaging/files/file?api_key={API_KEY}"))
            .header("authorization", token(Some("rt-ann")))
            .header("stream-auth-type", "jwt")
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request");
    let (status, answer) = call(&router, req).await;
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(status, 200, "{answer}");
    let url = answer["file"].as_str().expect("file");
    assert!(url.starts_with("http://chat.test/files/uploads/"), "{url}");
    assert!(url.contains("/hello_world.txt?"), "{url}");

    let local = url.trim_start_matches("http://chat.test");
    let (status, bytes) = call(
        &router,
        axum::http::Request::get(local)
            .body(Body::empty())
            .expect("get"),
    )
    .await;
    assert_eq!((status, bytes.as_slice()), (200, b"hi there".as_slice()));
    // A link signed for another file opens nothing.
    let forged = local.replace("hello_world.txt", "other.txt");
    let (status, _) = call(
        &router,
        axum::http::Request::get(forged)
            .body(Body::empty())
            .expect("get"),
    )
    .await;
    assert_eq!(status, 404);

    // A JSON body is not an upload.
    let req =
        axum::http::Request::post(format!("/channels/messaging/files/file?api_key={API_KEY}"))
            .header("authorization", token(Some("rt-ann")))
            .header("stream-auth-type", "jwt")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .expect("request");
    let (status, body) = call(&router, req).await;
    let body: Value = serde_json::from_slice(&body).expect("envelope");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 4);
}
