//! Decoding under limits, turning, re-encoding, previews.

use crate::MediaError;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::error::ImageError;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// The longest side, in pixels, of an image Musubi decodes.
pub const MAX_SIDE: u32 = 16_384;
/// The most memory, in bytes, a decoded image may take.
pub const MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// JPEG quality of a photo re-encoded to apply its orientation.
const CLEAN_QUALITY: u8 = 88;
/// JPEG quality of previews.
const PREVIEW_QUALITY: u8 = 80;

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

/// Refuses sizes a decoder would refuse, for the paths that copy image data without decoding.
pub(crate) fn check_dimensions(width: u32, height: u32, what: &str) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::Unreadable(format!("{what}: empty image")));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(MediaError::TooLarge);
    }
    Ok(())
}

pub(crate) fn image_error(e: ImageError) -> MediaError {
    match e {
        ImageError::Limits(_) => MediaError::TooLarge,
        other => MediaError::Unreadable(other.to_string()),
    }
}

pub(crate) struct Decoded {
    pub(crate) image: DynamicImage,
    pub(crate) icc: Option<Vec<u8>>,
}

/// Decodes `bytes` (of `format`, or guessed from the content) within the limits.
pub(crate) fn decode(
    bytes: &[u8],
    format: Option<image::ImageFormat>,
) -> Result<Decoded, MediaError> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    match format {
        Some(f) => reader.set_format(f),
        None => reader = reader.with_guessed_format()?,
    }
    reader.limits(limits());
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    // `into_decoder` checks the sides; the output buffer is checked here (as `decode` would).
    limits()
        .reserve(decoder.total_bytes())
        .map_err(image_error)?;
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    Ok(Decoded { image, icc })
}

/// Decodes, applies `orientation`, re-encodes in the same format.
pub(crate) fn reorient(
    bytes: &[u8],
    format: image::ImageFormat,
    orientation: Orientation,
) -> Result<(Vec<u8>, u32, u32), MediaError> {
    let Decoded { mut image, icc } = decode(bytes, Some(format))?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    let mut out = Vec::new();
    match format {
        image::ImageFormat::Png => {
            let mut encoder = PngEncoder::new(&mut out);
            set_icc(&mut encoder, icc);
            image.write_with_encoder(encoder).map_err(image_error)?;
        }
        image::ImageFormat::WebP => {
            let image = match image {
                DynamicImage::ImageLuma8(_)
                | DynamicImage::ImageLumaA8(_)
                | DynamicImage::ImageRgb8(_)
                | DynamicImage::ImageRgba8(_) => image,
                other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
                other => DynamicImage::ImageRgb8(other.to_rgb8()),
            };
            let mut encoder = WebPEncoder::new_lossless(&mut out);
            set_icc(&mut encoder, icc);
            image.write_with_encoder(encoder).map_err(image_error)?;
        }
        _ => {
            let image = match image {
                DynamicImage::ImageLuma8(_) => image,
                other => DynamicImage::ImageRgb8(flatten(&other)),
            };
            let mut encoder = JpegEncoder::new_with_quality(&mut out, CLEAN_QUALITY);
            set_icc(&mut encoder, icc);
            image.write_with_encoder(encoder).map_err(image_error)?;
        }
    }
    Ok((out, width, height))
}

fn set_icc(encoder: &mut impl ImageEncoder, icc: Option<Vec<u8>>) {
    if let Some(icc) = icc {
        // An encoder that cannot carry the profile still writes the image.
        let _ = encoder.set_icc_profile(icc);
    }
}

/// RGB, transparent parts on white (JPEG has no transparency).
fn flatten(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            // (c·a + 255·(255 − a)) / 255, rounded; at most 255.
            u8::try_from((c * a + 255 * (255 - a) + 127) / 255).unwrap_or(u8::MAX)
        };
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

/// A JPEG (quality 80) whose longest side is at most `max_side` (never upscaled), from an
/// already cleaned image file (JPEG, PNG, WebP or GIF — its first frame; the format is read from
/// the content). Transparent parts become white; the ICC profile is kept.
pub fn preview_jpeg(input: &Path, max_side: u32) -> Result<Vec<u8>, MediaError> {
    let bytes = std::fs::read(input)?;
    preview_jpeg_bytes(&bytes, max_side)
}

/// [`preview_jpeg`] in memory.
pub fn preview_jpeg_bytes(bytes: &[u8], max_side: u32) -> Result<Vec<u8>, MediaError> {
    let max_side = max_side.max(1);
    let Decoded { image, icc } = decode(bytes, None)?;
    let image = if image.width() > max_side || image.height() > max_side {
        image.thumbnail(max_side, max_side)
    } else {
        image
    };
    let image = match image {
        DynamicImage::ImageLuma8(_) => image,
        other => DynamicImage::ImageRgb8(flatten(&other)),
    };
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, PREVIEW_QUALITY);
    set_icc(&mut encoder, icc);
    image.write_with_encoder(encoder).map_err(image_error)?;
    Ok(out)
}
