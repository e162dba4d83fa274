//! Upload routes (the messages function): `POST`/`DELETE` `/channels/{type}/{id}/file|image`
//! and `/uploads/file|image` (multipart: `file`, `user` as JSON, `upload_sizes` as JSON);
//! `POST /uploads/presign`, where a client learns where to PUT a file itself (files larger than
//! API Gateway and Lambda take); `GET /files/{*path}`, the signed links to uploads and export
//! files, and `PUT` there, a presigned upload's bytes on chat-local (the link is the credential:
//! no token).

use super::reply::{Body, HttpResult, Params, Reply};
use crate::domain::caller::Session;
use crate::domain::upload::{ImageSize, UploadKind, DEFAULT_MAX_UPLOAD_BYTES};
use crate::domain::ApiError;
use crate::service::uploads::{NewUpload, PresignUpload, Served};
use crate::service::Chat;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use std::collections::HashMap;

/// The address clients reach the API at, when the runtime knows it (API Gateway's domain and
/// stage): set by the Lambda functions on each request.
#[derive(Clone, Debug)]
pub struct PublicBase(pub String);

/// A multipart body may carry the largest file plus its form fields.
const MAX_UPLOAD_BODY_BYTES: usize = DEFAULT_MAX_UPLOAD_BYTES as usize + 64 * 1024;

pub fn routes() -> Router<Chat> {
    let limit = DefaultBodyLimit::max(MAX_UPLOAD_BODY_BYTES);
    let mut router = Router::new();
    for kind in [UploadKind::File, UploadKind::Image] {
        let in_channel = format!("/channels/{{type}}/{{id}}/{}", kind.as_str());
        let standalone = format!("/uploads/{}", kind.as_str());
        router = router
            .route(
                &in_channel,
                post(
                    move |State(chat): State<Chat>,
                          session: Session,
                          Path(channel): Path<(String, String)>,
                          headers: HeaderMap,
                          base: Option<Extension<PublicBase>>,
                          form: Result<Multipart, MultipartRejection>| {
                        upload(chat, session, headers, base, Some(channel), kind, form)
                    },
                )
                .delete(
                    move |State(chat): State<Chat>,
                          session: Session,
                          Path(channel): Path<(String, String)>,
                          Params(params): Params| {
                        delete(chat, session, Some(channel), kind, params)
                    },
                )
                .layer(limit),
            )
            .route(
                &standalone,
                post(
                    move |State(chat): State<Chat>,
                          session: Session,
                          headers: HeaderMap,
                          base: Option<Extension<PublicBase>>,
                          form: Result<Multipart, MultipartRejection>| {
                        upload(chat, session, headers, base, None, kind, form)
                    },
                )
                .delete(
                    move |State(chat): State<Chat>, session: Session, Params(params): Params| {
                        delete(chat, session, None, kind, params)
                    },
                )
                .layer(limit),
            );
    }
    router
        .route("/uploads/presign", post(presign_upload))
        .route(
            "/files/{*path}",
            get(serve_file).put(receive_upload).layer(limit),
        )
}

async fn presign_upload(
    State(chat): State<Chat>,
    session: Session,
    headers: HeaderMap,
    base: Option<Extension<PublicBase>>,
    Body(req): Body<PresignUpload>,
) -> HttpResult {
    let base = base_of(&chat, &headers, base.as_ref().map(|b| &b.0));
    Ok(Reply::json(
        chat.presign_upload(&session, req, &base).await?,
    ))
}

/// The bytes of a presigned upload (chat-local's file store; in AWS they go to S3). The link
/// is checked before the body is read, and no more than the size it signs is read.
async fn receive_upload(
    State(chat): State<Chat>,
    Path(path): Path<String>,
    Params(params): Params,
    headers: HeaderMap,
    body: axum::body::Body,
) -> HttpResult {
    use http_body_util::BodyExt;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let link = chat.upload_link(&path, |k| params.get(k).cloned(), content_type)?;
    let limit = usize::try_from(link.size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let bytes = http_body_util::Limited::new(body, limit)
        .collect()
        .await
        .map_err(|_| ApiError::input(format!("the upload must be exactly {} bytes", link.size)))?
        .to_bytes();
    chat.receive_upload(link, bytes.to_vec()).await?;
    Ok(Reply::empty())
}

/// The form of an upload request.
async fn read_form(mut form: Multipart) -> Result<NewUpload, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                crate::domain::ErrorCode::PayloadTooBig,
                format!("the upload is larger than {DEFAULT_MAX_UPLOAD_BYTES} bytes"),
            )
        } else {
            ApiError::input(format!(
                "the multipart form is malformed: {}",
                e.body_text()
            ))
        }
    };
    let mut file = None;
    let mut user_id = None;
    let mut upload_sizes = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or("") {
            "file" => {
                let name = field.file_name().unwrap_or("").to_string();
                let declared = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map_err(bad)?;
                file = Some((name, declared, bytes.to_vec()));
            }
            "user" => {
                let text = field.text().await.map_err(bad)?;
                let user: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|_| ApiError::field("user", "user must be a JSON object"))?;
                user_id = user.get("id").and_then(|v| v.as_str()).map(str::to_string);
            }
            "upload_sizes" => {
                let text = field.text().await.map_err(bad)?;
                upload_sizes = Some(ImageSize::parse_list(&text)?);
            }
            // Other fields are ignored, as Stream does.
            _ => {}
        }
    }
    let (name, declared_type, bytes) =
        file.ok_or_else(|| ApiError::field("file", "the form has no file part"))?;
    Ok(NewUpload {
        name,
        declared_type,
        bytes,
        user_id,
        upload_sizes,
    })
}

/// Where clients reach the API: the configured address, the runtime's, or the request's host.
fn base_of(chat: &Chat, headers: &HeaderMap, given: Option<&PublicBase>) -> String {
    if let Some(url) = &chat.public_url {
        return url.clone();
    }
    if let Some(PublicBase(url)) = given {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

async fn upload(
    chat: Chat,
    session: Session,
    headers: HeaderMap,
    base: Option<Extension<PublicBase>>,
    channel: Option<(String, String)>,
    kind: UploadKind,
    form: Result<Multipart, MultipartRejection>,
) -> HttpResult {
    let form = form.map_err(|e| {
        ApiError::input(format!(
            "the upload must be a multipart form (multipart/form-data): {}",
            e.body_text()
        ))
    })?;
    let new = read_form(form).await?;
    let base = base_of(&chat, &headers, base.as_ref().map(|b| &b.0));
    let channel = channel.as_ref().map(|(t, id)| (t.as_str(), id.as_str()));
    Ok(Reply::json(
        chat.upload(&session, channel, kind, new, &base).await?,
    ))
}

async fn delete(
    chat: Chat,
    session: Session,
    channel: Option<(String, String)>,
    kind: UploadKind,
    params: HashMap<String, String>,
) -> HttpResult {
    let url = params.get("url").map(String::as_str).unwrap_or("");
    let channel = channel.as_ref().map(|(t, id)| (t.as_str(), id.as_str()));
    chat.delete_upload(&session, channel, kind, url).await?;
    Ok(Reply::empty())
}

/// Media types a browser may show in place; everything else downloads.
fn shown_in_place(content_type: &str) -> bool {
    [
        "image/",
        "video/",
        "audio/",
        "text/plain",
        "application/pdf",
    ]
    .iter()
    .any(|p| content_type.starts_with(p))
}

async fn serve_file(
    State(chat): State<Chat>,
    Path(path): Path<String>,
    Params(params): Params,
) -> Result<Response, super::reply::ErrorReply> {
    let served = chat.serve_file(&path, |k| params.get(k).cloned()).await?;
    Ok(match served {
        Served::Redirect(url) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, url),
                (header::CACHE_CONTROL, "private, max-age=300".to_string()),
            ],
        )
            .into_response(),
        Served::Bytes {
            body,
            content_type,
            name,
        } => {
            let disposition = if shown_in_place(&content_type) {
                format!("inline; filename=\"{name}\"")
            } else {
                format!("attachment; filename=\"{name}\"")
            };
            let mut res = (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CONTENT_DISPOSITION, disposition),
                    (header::CACHE_CONTROL, "private, max-age=86400".to_string()),
                ],
                body,
            )
                .into_response();
            // An uploaded page or SVG runs nothing on the API's origin.
            let headers = res.headers_mut();
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"),
            );
            res
        }
    })
}
