//! Image work for uploads: reading an image's dimensions, and making the sizes links ask for
//! (`w`, `h`, `resize`, `crop`) from the stored original. Decoding is bounded (dimensions and
//! memory), so a hostile file cannot take the process down.

use crate::domain::upload::{CropAnchor, ImageSize, ResizeMode};
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// The largest image (either side) decoded for resizing.
const MAX_DECODED_SIDE: u32 = 12_000;
/// The most memory a decode may take (within a 256 MB Lambda, with the original beside it).
const MAX_DECODE_BYTES: u64 = 96 * 1024 * 1024;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

fn reader(bytes: &[u8]) -> Option<ImageReader<Cursor<&[u8]>>> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    reader.limits(limits());
    reader.format()?;
    Some(reader)
}

/// The format the bytes are in, when it is one this module reads.
pub fn format_of(bytes: &[u8]) -> Option<ImageFormat> {
    reader(bytes)?.format()
}

/// `(width, height)` of an image this module reads.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    reader(bytes)?.into_dimensions().ok()
}

/// The image at `size`, encoded as its original's format (JPEG stays JPEG; the rest become PNG),
/// with its media type; `None` when the bytes are not an image this module reads.
pub fn resized(bytes: &[u8], size: &ImageSize) -> Option<(Vec<u8>, &'static str)> {
    let reader = reader(bytes)?;
    let format = reader.format()?;
    let image = reader.decode().ok()?;
    let out = fit(&image, size);
    let mut encoded = Cursor::new(Vec::new());
    if format == ImageFormat::Jpeg {
        let rgb = DynamicImage::ImageRgb8(out.to_rgb8());
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 85);
        rgb.write_with_encoder(encoder).ok()?;
        Some((encoded.into_inner(), "image/jpeg"))
    } else {
        out.write_to(&mut encoded, ImageFormat::Png).ok()?;
        Some((encoded.into_inner(), "image/png"))
    }
}

/// The target box: both sides asked for, or the missing one from the aspect ratio.
fn target(width: u32, height: u32, size: &ImageSize) -> (u32, u32) {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    match (size.width, size.height) {
        (Some(tw), Some(th)) => (tw, th),
        (Some(tw), None) => (tw, ((tw as f64) * h / w).round().max(1.0) as u32),
        (None, Some(th)) => (((th as f64) * w / h).round().max(1.0) as u32, th),
        (None, None) => (width, height),
    }
}

fn fit(image: &DynamicImage, size: &ImageSize) -> DynamicImage {
    let (width, height) = image.dimensions();
    let (tw, th) = target(width, height, size);
    match size.resize {
        ResizeMode::Scale => image.resize_exact(tw, th, FilterType::Triangle),
        ResizeMode::Clip => {
            if width <= tw && height <= th {
                image.clone()
            } else {
                image.resize(tw, th, FilterType::Triangle)
            }
        }
        ResizeMode::Fill => {
            let inner = image.resize(tw, th, FilterType::Triangle);
            let mut canvas = DynamicImage::new_rgba8(tw, th);
            let x = (tw - inner.width()) / 2;
            let y = (th - inner.height()) / 2;
            image::imageops::overlay(&mut canvas, &inner, x.into(), y.into());
            canvas
        }
        ResizeMode::Crop => image.resize_to_fill_anchor(tw, th, size.crop),
    }
}

trait CropTo {
    fn resize_to_fill_anchor(&self, w: u32, h: u32, anchor: CropAnchor) -> DynamicImage;
}

impl CropTo for DynamicImage {
    /// Scaled to cover `w` × `h`, then cut to it keeping the part `anchor` names.
    fn resize_to_fill_anchor(&self, w: u32, h: u32, anchor: CropAnchor) -> DynamicImage {
        let (width, height) = self.dimensions();
        let scale = f64::max(
            w as f64 / width.max(1) as f64,
            h as f64 / height.max(1) as f64,
        );
        let sw = ((width as f64) * scale).round().max(w as f64) as u32;
        let sh = ((height as f64) * scale).round().max(h as f64) as u32;
        let scaled = self.resize_exact(sw, sh, FilterType::Triangle);
        let (dx, dy) = (sw - w, sh - h);
        let (x, y) = match anchor {
            CropAnchor::Center => (dx / 2, dy / 2),
            CropAnchor::Top => (dx / 2, 0),
            CropAnchor::Bottom => (dx / 2, dy),
            CropAnchor::Left => (0, dy / 2),
            CropAnchor::Right => (dx, dy / 2),
        };
        scaled.crop_imm(x, y, w, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A 200 × 100 PNG: left half red, right half blue.
    fn png() -> Vec<u8> {
        let img = RgbImage::from_fn(200, 100, |x, _| {
            if x < 100 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    fn size(w: Option<u32>, h: Option<u32>, resize: ResizeMode, crop: CropAnchor) -> ImageSize {
        ImageSize {
            width: w,
            height: h,
            resize,
            crop,
        }
    }

    fn decoded(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).unwrap()
    }

    #[test]
    fn dimensions_of_images_and_nothing_else() {
        assert_eq!(dimensions(&png()), Some((200, 100)));
        assert_eq!(dimensions(b"not an image"), None);
        assert_eq!(format_of(&png()), Some(ImageFormat::Png));
    }

    #[test]
    fn each_resize_mode_makes_its_box() {
        let src = png();
        let out = |s: ImageSize| decoded(&resized(&src, &s).unwrap().0);
        // clip: within 50 × 50, aspect kept.
        assert_eq!(
            out(size(
                Some(50),
                Some(50),
                ResizeMode::Clip,
                CropAnchor::Center
            ))
            .dimensions(),
            (50, 25)
        );
        // clip never enlarges.
        assert_eq!(
            out(size(
                Some(400),
                Some(400),
                ResizeMode::Clip,
                CropAnchor::Center
            ))
            .dimensions(),
            (200, 100)
        );
        // one side only: the other from the aspect ratio.
        assert_eq!(
            out(size(None, Some(50), ResizeMode::Scale, CropAnchor::Center)).dimensions(),
            (100, 50)
        );
        assert_eq!(
            out(size(
                Some(30),
                Some(70),
                ResizeMode::Scale,
                CropAnchor::Center
            ))
            .dimensions(),
            (30, 70)
        );
        assert_eq!(
            out(size(
                Some(50),
                Some(50),
                ResizeMode::Fill,
                CropAnchor::Center
            ))
            .dimensions(),
            (50, 50)
        );
        // crop to the left half keeps red, to the right half keeps blue.
        let left = out(size(Some(50), Some(50), ResizeMode::Crop, CropAnchor::Left));
        assert_eq!(left.dimensions(), (50, 50));
        assert_eq!(left.to_rgb8().get_pixel(25, 25), &Rgb([255, 0, 0]));
        let right = out(size(
            Some(50),
            Some(50),
            ResizeMode::Crop,
            CropAnchor::Right,
        ));
        assert_eq!(right.to_rgb8().get_pixel(25, 25), &Rgb([0, 0, 255]));
        assert!(resized(b"nope", &THUMB).is_none());
    }

    const THUMB: ImageSize = crate::domain::upload::THUMBNAIL;

    #[test]
    fn jpeg_stays_jpeg() {
        let mut out = Cursor::new(Vec::new());
        decoded(&png())
            .write_to(&mut out, ImageFormat::Jpeg)
            .unwrap();
        let (bytes, kind) = resized(out.get_ref(), &THUMB).unwrap();
        assert_eq!(kind, "image/jpeg");
        assert_eq!(format_of(&bytes), Some(ImageFormat::Jpeg));
    }
}
