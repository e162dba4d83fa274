//! File and image uploads: which files the app's `file_upload_config` / `image_upload_config`
//! accept, the name a file is kept under, the image sizes callers ask for (`upload_sizes` at
//! upload, `w` / `h` / `resize` / `crop` on a link) and the upload record that says who uploaded
//! a file to which channel (for deletes and clean-up).

use crate::domain::app_settings::{AppSettings, FileUploadConfig};
use crate::domain::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// The largest upload when the config's `size_limit` is 0 (Stream's default maximum).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// The image types Stream accepts on the image endpoints; an app may narrow the list, never
/// widen it.
pub const IMAGE_TYPES: &[&str] = &[
    "image/bmp",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "image/heic-sequence",
    "image/heif",
    "image/heif-sequence",
    "image/svg+xml",
];

/// The largest width or height an image is resized to.
pub const MAX_IMAGE_DIMENSION: u32 = 4096;

/// The longest file name kept (longer names keep their end: the extension).
const MAX_NAME_CHARS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadKind {
    File,
    Image,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::File => "file",
            UploadKind::Image => "image",
        }
    }

    pub fn config(self, settings: &AppSettings) -> &FileUploadConfig {
        match self {
            UploadKind::File => &settings.file_upload_config,
            UploadKind::Image => &settings.image_upload_config,
        }
    }
}

/// One uploaded file, as its record keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: String,
    /// Where the bytes are, in the file store.
    pub path: String,
    pub kind: UploadKind,
    /// The name the uploader gave.
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// The uploader; `None` for a server-side upload on nobody's behalf.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The channel it was uploaded to; `None` for `/uploads/...`.
    #[serde(default)]
    pub cid: Option<String>,
    pub created_at: String,
}

/// The extension of `name`, lower-case with its dot (`.png`), if it has one.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then(|| format!(".{}", ext.to_ascii_lowercase()))
}

/// The media type of an upload: the one the caller declared, else the one its name implies.
pub fn media_type(declared: Option<&str>, name: &str) -> String {
    let declared = declared
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty() && t != "application/octet-stream" && t.contains('/'));
    declared.unwrap_or_else(|| {
        mime_guess::from_path(name)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_string()
    })
}

/// The name a file is kept and linked under: the caller's name with every character outside
/// letters, digits, `.`, `_` and `-` made `_`, no leading dots, at most 128 characters.
pub fn stored_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while clean.starts_with('.') {
        clean.remove(0);
    }
    if clean.len() > MAX_NAME_CHARS {
        clean = clean[clean.len() - MAX_NAME_CHARS..].to_string();
        while clean.starts_with('.') {
            clean.remove(0);
        }
    }
    if clean.is_empty() || clean.chars().all(|c| c == '.' || c == '_') {
        "file".into()
    } else {
        clean
    }
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v.trim().eq_ignore_ascii_case(value))
}

fn normalized_ext(e: &str) -> String {
    let e = e.trim().to_ascii_lowercase();
    if e.starts_with('.') {
        e
    } else {
        format!(".{e}")
    }
}

/// Whether the app accepts this upload: its size under the limit, its extension and media type
/// allowed (and not blocked), and for images one of Stream's image types.
pub fn check(
    config: &FileUploadConfig,
    kind: UploadKind,
    name: &str,
    content_type: &str,
    size: u64,
) -> Result<(), ApiError> {
    let limit = if config.size_limit == 0 {
        DEFAULT_MAX_UPLOAD_BYTES
    } else {
        config.size_limit.min(DEFAULT_MAX_UPLOAD_BYTES)
    };
    if size > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooBig,
            format!("file size {size} bytes is over the limit of {limit} bytes"),
        ));
    }
    if size == 0 {
        return Err(ApiError::input("the file is empty"));
    }
    let ext = extension(name);
    let ext_str = ext.as_deref().unwrap_or("");
    let allowed_exts: Vec<String> = config
        .allowed_file_extensions
        .iter()
        .map(|e| normalized_ext(e))
        .collect();
    let blocked_exts: Vec<String> = config
        .blocked_file_extensions
        .iter()
        .map(|e| normalized_ext(e))
        .collect();
    if (!allowed_exts.is_empty() && !listed(&allowed_exts, ext_str))
        || (!ext_str.is_empty() && listed(&blocked_exts, ext_str))
    {
        return Err(ApiError::input(format!(
            "{} extension {ext_str:?} is not allowed",
            kind.as_str()
        )));
    }
    if (!config.allowed_mime_types.is_empty() && !listed(&config.allowed_mime_types, content_type))
        || listed(&config.blocked_mime_types, content_type)
    {
        return Err(ApiError::input(format!(
            "{} type {content_type:?} is not allowed",
            kind.as_str()
        )));
    }
    if kind == UploadKind::Image && !IMAGE_TYPES.contains(&content_type) {
        return Err(ApiError::input(format!(
            "image type {content_type:?} is not allowed: upload it as a file"
        )));
    }
    Ok(())
}

/// How an image is fitted to the size asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Within the box, keeping the aspect ratio (the default).
    #[default]
    Clip,
    /// Covering the box, the overflow cut off where `crop` says.
    Crop,
    /// Exactly the box, stretched.
    Scale,
    /// Within the box, keeping the aspect ratio, padded to the box.
    Fill,
}

/// Which part of an image a `crop` keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CropAnchor {
    Top,
    Bottom,
    Left,
    Right,
    #[default]
    Center,
}

/// A size an image is asked for in (`upload_sizes` entries, a link's query).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default)]
    pub resize: ResizeMode,
    #[serde(default)]
    pub crop: CropAnchor,
}

impl ImageSize {
    /// The size a link's query asks for (`w`, `h`, `resize`, `crop`), or `None` when it asks
    /// for the original. Values out of range are refused.
    pub fn from_query(
        param: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ImageSize>, ApiError> {
        let dim = |k: &str| -> Result<Option<u32>, ApiError> {
            match param(k) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => match v.parse::<f64>() {
                    Ok(n) if n >= 1.0 && n.is_finite() => {
                        Ok(Some((n.round() as u32).min(MAX_IMAGE_DIMENSION)))
                    }
                    _ => Err(ApiError::field(k, format!("{k} must be a positive number"))),
                },
            }
        };
        let width = dim("w")?;
        let height = dim("h")?;
        if width.is_none() && height.is_none() {
            return Ok(None);
        }
        let word = |k: &str| param(k).unwrap_or_default().to_ascii_lowercase();
        let resize = match word("resize").as_str() {
            "" | "clip" => ResizeMode::Clip,
            "crop" => ResizeMode::Crop,
            "scale" => ResizeMode::Scale,
            "fill" => ResizeMode::Fill,
            other => {
                return Err(ApiError::field(
                    "resize",
                    format!("resize {other:?} is not one of clip, crop, scale, fill"),
                ))
            }
        };
        let crop = match word("crop").as_str() {
            "" | "center" => CropAnchor::Center,
            "top" => CropAnchor::Top,
            "bottom" => CropAnchor::Bottom,
            "left" => CropAnchor::Left,
            "right" => CropAnchor::Right,
            other => {
                return Err(ApiError::field(
                    "crop",
                    format!("crop {other:?} is not one of top, bottom, left, right, center"),
                ))
            }
        };
        Ok(Some(ImageSize {
            width,
            height,
            resize,
            crop,
        }))
    }

    /// `upload_sizes` as a multipart field gives it (a JSON array), checked.
    pub fn parse_list(json: &str) -> Result<Vec<ImageSize>, ApiError> {
        let sizes: Vec<ImageSize> = serde_json::from_str(json).map_err(|_| {
            ApiError::field(
                "upload_sizes",
                "upload_sizes must be a JSON array of {width, height, resize, crop}",
            )
        })?;
        if sizes.len() > 10 {
            return Err(ApiError::field(
                "upload_sizes",
                "upload_sizes takes at most 10 sizes",
            ));
        }
        for s in &sizes {
            let ok = |d: Option<u32>| d.is_none_or(|d| (1..=MAX_IMAGE_DIMENSION).contains(&d));
            if (s.width.is_none() && s.height.is_none()) || !ok(s.width) || !ok(s.height) {
                return Err(ApiError::field(
                    "upload_sizes",
                    format!(
                        "each upload size needs a width or height of 1 to {MAX_IMAGE_DIMENSION}"
                    ),
                ));
            }
        }
        Ok(sizes)
    }

    /// The query that asks a link for this size.
    pub fn query(&self) -> String {
        let mut q = Vec::new();
        if let Some(w) = self.width {
            q.push(format!("w={w}"));
        }
        if let Some(h) = self.height {
            q.push(format!("h={h}"));
        }
        let resize = serde_json::to_value(self.resize).unwrap_or_default();
        let crop = serde_json::to_value(self.crop).unwrap_or_default();
        q.push(format!("resize={}", resize.as_str().unwrap_or("clip")));
        q.push(format!("crop={}", crop.as_str().unwrap_or("center")));
        q.join("&")
    }
}

/// The size of the thumbnail an image upload's `thumb_url` asks for.
pub const THUMBNAIL: ImageSize = ImageSize {
    width: Some(300),
    height: Some(300),
    resize: ResizeMode::Clip,
    crop: CropAnchor::Center,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> FileUploadConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn names_are_kept_safe_and_recognisable() {
        assert_eq!(stored_name("helloworld.jpg"), "helloworld.jpg");
        assert_eq!(stored_name("my cat (1).png"), "my_cat__1_.png");
        assert_eq!(stored_name("../../etc/passwd"), "passwd");
        assert_eq!(stored_name("C:\\x\\report.pdf"), "report.pdf");
        assert_eq!(stored_name(".htaccess"), "htaccess");
        assert_eq!(stored_name(""), "file");
        assert_eq!(stored_name("..."), "file");
        assert_eq!(stored_name("ünï.txt"), "_n_.txt");
        let long = format!("{}.txt", "a".repeat(300));
        let kept = stored_name(&long);
        assert_eq!(kept.len(), 128);
        assert!(kept.ends_with(".txt"));
        assert!(crate::files::FilePath::parse(&format!("uploads/x/{kept}")).is_ok());
    }

    #[test]
    fn media_types_come_from_the_caller_or_the_name() {
        assert_eq!(media_type(Some("image/JPEG"), "a.png"), "image/jpeg");
        assert_eq!(
            media_type(Some("text/plain; charset=utf-8"), "a"),
            "text/plain"
        );
        assert_eq!(media_type(None, "a.png"), "image/png");
        assert_eq!(
            media_type(Some("application/octet-stream"), "a.pdf"),
            "application/pdf"
        );
        assert_eq!(media_type(None, "noext"), "application/octet-stream");
    }

    #[test]
    fn configs_allow_and_block_by_extension_type_and_size() {
        let any = FileUploadConfig::default();
        assert!(check(
            &any,
            UploadKind::File,
            "a.exe",
            "application/x-msdownload",
            10
        )
        .is_ok());
        assert!(check(&any, UploadKind::File, "a.bin", "x/y", 0).is_err());
        let e = check(
            &any,
            UploadKind::File,
            "a",
            "x/y",
            DEFAULT_MAX_UPLOAD_BYTES + 1,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooBig);
        let csv = config(serde_json::json!({
            "allowed_file_extensions": [".csv"], "allowed_mime_types": ["text/csv"]
        }));
        assert!(check(&csv, UploadKind::File, "a.CSV", "text/csv", 5).is_ok());
        assert!(check(&csv, UploadKind::File, "a.txt", "text/csv", 5).is_err());
        assert!(check(&csv, UploadKind::File, "a.csv", "text/plain", 5).is_err());
        assert!(check(&csv, UploadKind::File, "noext", "text/csv", 5).is_err());
        let blocked = config(serde_json::json!({
            "blocked_file_extensions": ["exe"], "blocked_mime_types": ["text/html"], "size_limit": 100
        }));
        assert!(check(&blocked, UploadKind::File, "a.EXE", "x/y", 5).is_err());
        assert!(check(&blocked, UploadKind::File, "a.htm", "text/html", 5).is_err());
        assert!(check(&blocked, UploadKind::File, "a.txt", "text/plain", 100).is_ok());
        assert!(check(&blocked, UploadKind::File, "a.txt", "text/plain", 101).is_err());
        // Images: only Stream's image types, whatever the config allows.
        assert!(check(&any, UploadKind::Image, "a.jpg", "image/jpeg", 5).is_ok());
        assert!(check(&any, UploadKind::Image, "a.tiff", "image/tiff", 5).is_err());
        assert!(check(&any, UploadKind::Image, "a.pdf", "application/pdf", 5).is_err());
    }

    #[test]
    fn sizes_come_from_link_queries_and_upload_sizes() {
        let q = |pairs: &'static [(&'static str, &'static str)]| {
            ImageSize::from_query(|k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(q(&[]).unwrap(), None);
        assert_eq!(q(&[("resize", "crop")]).unwrap(), None);
        let s = q(&[
            ("w", "200"),
            ("h", "100.4"),
            ("resize", "crop"),
            ("crop", "top"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            s,
            ImageSize {
                width: Some(200),
                height: Some(100),
                resize: ResizeMode::Crop,
                crop: CropAnchor::Top
            }
        );
        assert_eq!(q(&[("w", "99999")]).unwrap().unwrap().width, Some(4096));
        assert!(q(&[("w", "0")]).is_err());
        assert!(q(&[("w", "abc")]).is_err());
        assert!(q(&[("w", "5"), ("resize", "zoom")]).is_err());
        assert!(q(&[("w", "5"), ("crop", "middle")]).is_err());
        assert_eq!(s.query(), "w=200&h=100&resize=crop&crop=top");

        let list = ImageSize::parse_list(r#"[{"width": 100, "resize": "fill"}]"#).unwrap();
        assert_eq!(list[0].resize, ResizeMode::Fill);
        assert!(ImageSize::parse_list(r#"[{"resize": "fill"}]"#).is_err());
        assert!(ImageSize::parse_list(r#"[{"width": 5000}]"#).is_err());
        assert!(ImageSize::parse_list(r#"{"width": 5}"#).is_err());
    }
}
