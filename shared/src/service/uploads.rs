//! Uploads: `POST /channels/{type}/{id}/file|image` and `/uploads/file|image` keep a file in the
//! file store with a record of who uploaded it where, and answer a signed link to it; `DELETE`
//! with the link removes both (the uploader, the server, or whoever may delete any attachment in
//! the channel); the link route serves the bytes (or redirects to the store), making the image
//! sizes a link asks for. A hard-deleted message takes the uploads it links to with it, a
//! hard-deleted channel every upload made to it.

use super::channel_record::Loaded;
use crate::domain::caller::Session;
use crate::domain::channel::Cid;
use crate::domain::message::Message;
use crate::domain::upload::{self, ImageSize, UploadKind, UploadRecord, THUMBNAIL};
use crate::domain::ApiError;
use crate::files::links::{FileLinks, Refusal};
use crate::files::{FilePath, FileStore};
use crate::service::{decode, Chat};
use crate::store::layout::{channel_uploads_pk, upload_item, upload_key};
use crate::store::{Condition, Index, Query, TableName, Write};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Stream's default life of a CDN link (`cdn_expiration_seconds` 0 or unset).
const DEFAULT_LINK_SECS: i64 = 1_209_600;

/// The attachment fields that may hold links to uploads.
const LINK_FIELDS: &[&str] = &["asset_url", "image_url", "thumb_url"];

/// How long a redirect to the store's own URL is good for.
const REDIRECT_SECS: u64 = 600;

/// A file as the caller sent it.
pub struct NewUpload {
    pub name: String,
    pub declared_type: Option<String>,
    pub bytes: Vec<u8>,
    /// `user` of the form (server-side: on whose behalf).
    pub user_id: Option<String>,
    pub upload_sizes: Option<Vec<ImageSize>>,
}

/// `POST /uploads/presign`: a file the client will PUT itself.
#[derive(Debug, serde::Deserialize)]
pub struct PresignUpload {
    #[serde(default = "file_kind")]
    pub kind: UploadKind,
    pub name: String,
    #[serde(default)]
    pub content_type: Option<String>,
    pub size: u64,
    #[serde(default)]
    pub channel_type: Option<String>,
    #[serde(default)]
    pub channel_id: Option<String>,
    /// Server-side: on whose behalf.
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub user: Option<Map<String, Value>>,
}

fn file_kind() -> UploadKind {
    UploadKind::File
}

/// How long a presigned upload link takes its file.
const PRESIGNED_UPLOAD_SECS: u64 = 3600;

fn record_path(record: &UploadRecord) -> Result<FilePath, ApiError> {
    FilePath::parse(&record.path).map_err(|_| ApiError::input("the file name is not valid"))
}

/// A checked upload link: where its bytes go and how many it takes.
pub struct UploadLink {
    path: FilePath,
    pub size: u64,
}

/// What the link route answers.
pub enum Served {
    /// The store serves it itself (S3): go there.
    Redirect(String),
    Bytes {
        body: Vec<u8>,
        content_type: String,
        name: String,
    },
}

impl Chat {
    fn upload_store(&self) -> Result<&Arc<dyn FileStore>, ApiError> {
        self.files.as_ref().ok_or_else(|| {
            ApiError::input("uploads are not available: no file store is configured")
        })
    }

    /// The channel an upload names, once the caller may upload to it.
    async fn upload_channel(
        &self,
        session: &Session,
        channel_type: &str,
        id: &str,
        action: &str,
        owner: Option<&str>,
    ) -> Result<Loaded, ApiError> {
        let (_, config, loaded) = self.readable_channel(session, channel_type, id).await?;
        if !config.uploads {
            return Err(ApiError::not_allowed(format!(
                "uploads are disabled for channel type {channel_type}"
            )));
        }
        self.check_action_on(
            session,
            &config,
            Some(&loaded),
            &loaded.channel,
            action,
            owner.or(loaded.channel.created_by_id.as_deref()),
        )?;
        Ok(loaded)
    }

    /// Who uploads (the caller, or server-side the form's `user`) and to which channel, once
    /// the caller may upload there.
    async fn upload_target(
        &self,
        session: &Session,
        channel: Option<(&str, &str)>,
        user_id: Option<String>,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let uploader = if session.caller.is_server() {
            user_id
        } else {
            session.caller.user_id().map(str::to_string)
        };
        let cid = match channel {
            Some((channel_type, id)) => {
                let loaded = self
                    .upload_channel(session, channel_type, id, "UploadAttachment", None)
                    .await?;
                Some(loaded.channel.cid)
            }
            None => None,
        };
        Ok((uploader, cid))
    }

    /// A new upload's record, kept before its link is handed out.
    async fn keep_record(&self, record: &UploadRecord) -> Result<(), ApiError> {
        self.store
            .transact(vec![Write::Put {
                table: TableName::Messages,
                item: upload_item(record),
                condition: Condition::NotExists,
            }])
            .await?;
        Ok(())
    }

    /// The answer to an upload: the link to the file, and for images the thumbnail's.
    fn upload_answer(
        &self,
        session: &Session,
        base: &str,
        path: &FilePath,
        image: bool,
        dimensions: Option<(u32, u32)>,
    ) -> Map<String, Value> {
        let expires = self.link_expiry(session);
        let original = match dimensions {
            Some((w, h)) => format!("oh={h}&ow={w}"),
            None => String::new(),
        };
        let mut reply = Map::new();
        reply.insert(
            "file".into(),
            self.links()
                .url_until(base, path, expires, &original)
                .into(),
        );
        if image || dimensions.is_some() {
            let thumb = [original.as_str(), &THUMBNAIL.query()]
                .iter()
                .filter(|q| !q.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("&");
            reply.insert(
                "thumb_url".into(),
                self.links().url_until(base, path, expires, &thumb).into(),
            );
        }
        reply
    }

    /// `POST .../file` and `.../image`: `channel` is `(type, id)` for a channel's upload.
    /// `base` is the address clients reach the API at.
    pub async fn upload(
        &self,
        session: &Session,
        channel: Option<(&str, &str)>,
        kind: UploadKind,
        new: NewUpload,
        base: &str,
    ) -> Result<Value, ApiError> {
        let files = self.upload_store()?.clone();
        let (uploader, cid) = self.upload_target(session, channel, new.user_id).await?;
        let content_type = upload::media_type(new.declared_type.as_deref(), &new.name);
        let size = new.bytes.len() as u64;
        upload::check(
            kind.config(&session.settings),
            kind,
            &new.name,
            &content_type,
            size,
        )?;
        let dimensions = crate::images::dimensions(&new.bytes);
        if kind == UploadKind::Image
            && dimensions.is_none()
            && !matches!(
                content_type.as_str(),
                "image/svg+xml"
                    | "image/heic"
                    | "image/heic-sequence"
                    | "image/heif"
                    | "image/heif-sequence"
            )
        {
            return Err(ApiError::input(format!(
                "the file is not a valid {content_type} image"
            )));
        }
        let record = self.new_record(kind, new.name, content_type, size, uploader, cid)?;
        let path = record_path(&record)?;
        files
            .put(&path, new.bytes)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if let Err(e) = self.keep_record(&record).await {
            let _ = files.delete(&path).await;
            return Err(e);
        }
        let mut reply =
            self.upload_answer(session, base, &path, kind == UploadKind::Image, dimensions);
        if let Some(sizes) = new.upload_sizes {
            reply.insert("upload_sizes".into(), json!(sizes));
        }
        Ok(Value::Object(reply))
    }

    fn new_record(
        &self,
        kind: UploadKind,
        name: String,
        content_type: String,
        size: u64,
        user_id: Option<String>,
        cid: Option<String>,
    ) -> Result<UploadRecord, ApiError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = format!("uploads/{id}/{}", upload::stored_name(&name));
        FilePath::parse(&path).map_err(|_| ApiError::input("the file name is not valid"))?;
        Ok(UploadRecord {
            id,
            path,
            kind,
            name,
            content_type,
            size,
            user_id,
            cid,
            created_at: self.now_str(),
        })
    }

    /// `POST /uploads/presign`: the checks of an upload without its bytes, the record kept, and
    /// where the client PUTs the file itself (a presigned S3 URL in AWS, so files of any
    /// allowed size skip the functions' payload limit; the API's own upload link on
    /// chat-local), with the links the upload answers.
    pub async fn presign_upload(
        &self,
        session: &Session,
        req: PresignUpload,
        base: &str,
    ) -> Result<Value, ApiError> {
        let files = self.upload_store()?.clone();
        let channel = match (&req.channel_type, &req.channel_id) {
            (Some(t), Some(id)) => Some((t.as_str(), id.as_str())),
            (None, None) => None,
            _ => return Err(ApiError::input("channel_type and channel_id go together")),
        };
        let user_id = req.user_id.clone().or_else(|| {
            req.user
                .as_ref()
                .and_then(|u| u.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let (uploader, cid) = self.upload_target(session, channel, user_id).await?;
        if req.name.is_empty() || req.name.len() > 1024 {
            return Err(ApiError::field("name", "name must be 1 to 1024 characters"));
        }
        let content_type = upload::media_type(req.content_type.as_deref(), &req.name);
        upload::check(
            req.kind.config(&session.settings),
            req.kind,
            &req.name,
            &content_type,
            req.size,
        )?;
        let record = self.new_record(
            req.kind,
            req.name,
            content_type.clone(),
            req.size,
            uploader,
            cid,
        )?;
        let path = record_path(&record)?;
        let valid_for = std::time::Duration::from_secs(PRESIGNED_UPLOAD_SECS);
        let upload_url = match files
            .upload_url(&path, &content_type, req.size, valid_for)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
        {
            Some(url) => url,
            None => self.links().upload_url(
                base,
                &path,
                self.now().timestamp() + PRESIGNED_UPLOAD_SECS as i64,
                req.size,
                &content_type,
            ),
        };
        self.keep_record(&record).await?;
        let mut reply =
            self.upload_answer(session, base, &path, req.kind == UploadKind::Image, None);
        reply.insert("upload_url".into(), upload_url.into());
        reply.insert("method".into(), "PUT".into());
        reply.insert(
            "headers".into(),
            json!({ "Content-Type": content_type, "Content-Length": req.size.to_string() }),
        );
        Ok(Value::Object(reply))
    }

    /// `PUT /files/<path>?upload_expires=&size=&type=&upload_signature=`: what the upload link
    /// takes (checked before any of the body is read).
    pub fn upload_link(
        &self,
        path: &str,
        param: impl Fn(&str) -> Option<String>,
        content_type: Option<&str>,
    ) -> Result<UploadLink, ApiError> {
        self.upload_store()?;
        let now =
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.now().timestamp().max(0) as u64);
        let (path, size, kind) =
            self.links()
                .check_upload(path, param, now)
                .map_err(|r| match r {
                    Refusal::NotFound => ApiError::not_found("no such upload"),
                    Refusal::Expired => ApiError::not_allowed("this upload link has expired"),
                })?;
        if content_type.is_some_and(|t| !t.eq_ignore_ascii_case(&kind)) {
            return Err(ApiError::input(format!(
                "the upload must be sent as {kind}"
            )));
        }
        Ok(UploadLink { path, size })
    }

    /// The bytes of a presigned upload, kept by this API's file store (chat-local).
    pub async fn receive_upload(&self, link: UploadLink, body: Vec<u8>) -> Result<(), ApiError> {
        if body.len() as u64 != link.size {
            return Err(ApiError::input(format!(
                "the upload must be exactly {} bytes",
                link.size
            )));
        }
        self.upload_store()?
            .put(&link.path, body)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    pub(crate) fn links(&self) -> FileLinks {
        FileLinks::new(&self.keys.api_secret)
    }

    /// When a link made now expires: `cdn_expiration_seconds` from now (14 days by default).
    fn link_expiry(&self, session: &Session) -> i64 {
        let secs = match session.settings.cdn_expiration_seconds {
            s if s > 0 => s,
            _ => DEFAULT_LINK_SECS,
        };
        self.now().timestamp() + secs
    }

    /// The upload links in `attachments` signed anew, so a message read today opens for another
    /// `cdn_expiration_seconds` (as Stream renews its CDN links on reads). The expiry is counted
    /// from the start of the day, so a link changes once a day and stays cacheable.
    pub(crate) async fn renew_upload_links(
        &self,
        attachments: &mut [Value],
    ) -> Result<(), ApiError> {
        let has_links = attachments.iter().any(|a| {
            LINK_FIELDS.iter().any(|f| {
                a.get(*f)
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.contains("/files/uploads/"))
            })
        });
        if !has_links {
            return Ok(());
        }
        let settings = self.app_settings().await?;
        let secs = match settings.cdn_expiration_seconds {
            s if s > 0 => s,
            _ => DEFAULT_LINK_SECS,
        };
        let today = self.now().timestamp().div_euclid(86_400) * 86_400;
        let expires = today + 86_400 + secs;
        let links = self.links();
        for attachment in attachments.iter_mut() {
            for field in LINK_FIELDS {
                let renewed = attachment
                    .get(*field)
                    .and_then(Value::as_str)
                    .filter(|u| u.contains("/files/uploads/"))
                    .and_then(|u| links.renew(u, expires));
                if let Some(url) = renewed {
                    attachment[*field] = Value::String(url);
                }
            }
        }
        Ok(())
    }

    async fn upload_record(&self, id: &str) -> Result<Option<UploadRecord>, ApiError> {
        let (pk, sk) = upload_key(id);
        match self.store.get(TableName::Messages, &pk, &sk).await? {
            Some(item) => Ok(Some(decode(item.data, "upload")?)),
            None => Ok(None),
        }
    }

    /// The upload a link of ours names (`uploads/<id>/<name>`).
    async fn upload_of_url(&self, url: &str) -> Result<Option<UploadRecord>, ApiError> {
        let Some(path) = FileLinks::path_of(url) else {
            return Ok(None);
        };
        let mut parts = path.as_str().split('/');
        let (Some("uploads"), Some(id), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        Ok(self
            .upload_record(id)
            .await?
            .filter(|r| r.path == path.as_str()))
    }

    /// `DELETE .../file` and `.../image` with `url`.
    pub async fn delete_upload(
        &self,
        session: &Session,
        channel: Option<(&str, &str)>,
        kind: UploadKind,
        url: &str,
    ) -> Result<(), ApiError> {
        self.upload_store()?;
        if url.is_empty() {
            return Err(ApiError::field("url", "url is required"));
        }
        let not_found = || ApiError::not_found(format!("Can't find {} {url:?}", kind.as_str()));
        let record = self.upload_of_url(url).await?.ok_or_else(not_found)?;
        let cid = channel
            .map(|(t, id)| Cid::new(t, id).map(|c| c.to_string()))
            .transpose()?;
        if record.cid != cid || record.kind != kind {
            return Err(not_found());
        }
        let caller = session.caller.user_id();
        let own = record.user_id.is_some() && record.user_id.as_deref() == caller;
        match channel {
            Some((channel_type, id)) => {
                self.upload_channel(
                    session,
                    channel_type,
                    id,
                    "DeleteAttachment",
                    Some(record.user_id.as_deref().unwrap_or("")),
                )
                .await?;
            }
            None if session.caller.is_server() || own => {}
            None => {
                return Err(ApiError::not_allowed(
                    "only the uploader (or the server) may delete this file",
                ))
            }
        }
        self.remove_upload(&record).await
    }

    async fn remove_upload(&self, record: &UploadRecord) -> Result<(), ApiError> {
        let files = self.upload_store()?;
        let path = FilePath::parse(&record.path)
            .map_err(|_| ApiError::internal("stored upload path is unreadable"))?;
        files
            .delete(&path)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let (pk, sk) = upload_key(&record.id);
        self.store
            .transact(vec![Write::Delete {
                table: TableName::Messages,
                pk,
                sk,
                condition: Condition::None,
            }])
            .await?;
        Ok(())
    }

    /// A hard-deleted message's uploads (in its channel) go with it.
    pub(crate) async fn remove_message_uploads(&self, m: &Message) -> Result<(), ApiError> {
        self.remove_linked_uploads(&m.cid, &m.attachments).await
    }

    /// The uploads of channel `cid` that `attachments` link to, removed.
    pub(crate) async fn remove_linked_uploads(
        &self,
        cid: &str,
        attachments: &[Value],
    ) -> Result<(), ApiError> {
        if self.files.is_none() {
            return Ok(());
        }
        for attachment in attachments {
            for field in LINK_FIELDS {
                let Some(url) = attachment.get(field).and_then(Value::as_str) else {
                    continue;
                };
                if let Some(record) = self.upload_of_url(url).await? {
                    if record.cid.as_deref() == Some(cid) {
                        self.remove_upload(&record).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A hard-deleted channel's uploads go with it.
    pub(crate) async fn remove_channel_uploads(&self, cid: &str) -> Result<(), ApiError> {
        if self.files.is_none() {
            return Ok(());
        }
        loop {
            let page = self
                .store
                .query(
                    Query::new(TableName::Messages, channel_uploads_pk(cid))
                        .index(Index::Gsi1)
                        .limit(25),
                )
                .await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for item in page.items {
                let record: UploadRecord = decode(item.data, "upload")?;
                self.remove_upload(&record).await?;
            }
        }
    }

    /// `GET /files/<path>?expires=&signature=` (plus `w`, `h`, `resize`, `crop` for images).
    pub async fn serve_file(
        &self,
        path: &str,
        param: impl Fn(&str) -> Option<String>,
    ) -> Result<Served, ApiError> {
        let files = self
            .files
            .as_ref()
            .ok_or_else(|| ApiError::not_found("no such file"))?;
        let path = self
            .links()
            .check(
                path,
                &param("expires").unwrap_or_default(),
                &param("signature").unwrap_or_default(),
                SystemTime::UNIX_EPOCH + Duration::from_secs(self.now().timestamp().max(0) as u64),
            )
            .map_err(|r| match r {
                Refusal::NotFound => ApiError::not_found("no such file"),
                Refusal::Expired => ApiError::not_allowed("this link has expired"),
            })?;
        let size = ImageSize::from_query(&param)?;
        let content_type = path.content_type();
        let resizable = size.is_some() && content_type.starts_with("image/");
        if !resizable && files.serves_its_urls() {
            let url = files
                .url(&path, Duration::from_secs(REDIRECT_SECS))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            return Ok(Served::Redirect(url));
        }
        let body = files
            .get(&path)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| ApiError::not_found("no such file"))?;
        let name = path.file_name().to_string();
        if let (true, Some(size)) = (resizable, size) {
            let resized = tokio::task::spawn_blocking(move || {
                crate::images::resized(&body, &size).ok_or(body)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
            return Ok(match resized {
                Ok((body, kind)) => Served::Bytes {
                    body,
                    content_type: kind.into(),
                    name,
                },
                // Not an image this server reads (SVG, HEIC), or too large to decode: the
                // original, from the store itself where it serves its URLs.
                Err(_) if files.serves_its_urls() => Served::Redirect(
                    files
                        .url(&path, Duration::from_secs(REDIRECT_SECS))
                        .await
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                ),
                Err(body) => Served::Bytes {
                    body,
                    content_type,
                    name,
                },
            });
        }
        Ok(Served::Bytes {
            body,
            content_type,
            name,
        })
    }
}
