//! Decoding under limits, turning, re-encoding, previews.

use crate::MediaError;
use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
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
    let mut previews = previews_jpeg_bytes(bytes, &[max_side])?;
    previews
        .pop()
        .ok_or_else(|| MediaError::Unreadable("no preview".into()))
}

/// [`preview_jpeg`] for each of `max_sides` (in that order), decoding the file once: each
/// preview is made from the next larger one, so a thumbnail costs a pass over the preview,
/// not over a 12-megapixel original.
pub fn previews_jpeg(input: &Path, max_sides: &[u32]) -> Result<Vec<Vec<u8>>, MediaError> {
    let bytes = std::fs::read(input)?;
    previews_jpeg_bytes(&bytes, max_sides)
}

/// [`previews_jpeg`] in memory.
pub fn previews_jpeg_bytes(bytes: &[u8], max_sides: &[u32]) -> Result<Vec<Vec<u8>>, MediaError> {
    let Decoded { image, icc } = decode(bytes, None)?;
    let mut image = Plain::of(image);
    let mut largest_first: Vec<usize> = (0..max_sides.len()).collect();
    largest_first.sort_by_key(|&i| std::cmp::Reverse(max_sides[i]));
    let mut previews = vec![Vec::new(); max_sides.len()];
    for i in largest_first {
        image = image.fit(max_sides[i].max(1))?;
        previews[i] = image.jpeg(icc.clone())?;
    }
    Ok(previews)
}

/// Pixels ready for a preview: 8-bit grey, or RGB with transparent parts on white.
struct Plain {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    grey: bool,
}

impl Plain {
    fn of(image: DynamicImage) -> Self {
        let (width, height) = (image.width(), image.height());
        let (pixels, grey) = match image {
            DynamicImage::ImageLuma8(grey) => (grey.into_raw(), true),
            DynamicImage::ImageRgb8(rgb) => (rgb.into_raw(), false),
            other => (flatten(&other).into_raw(), false),
        };
        Self {
            width,
            height,
            pixels,
            grey,
        }
    }

    fn pixel_type(&self) -> PixelType {
        if self.grey {
            PixelType::U8
        } else {
            PixelType::U8x3
        }
    }

    /// At most `side` on its longest side, never enlarged. Each output pixel averages the
    /// source pixels it covers (a box filter, as `image`'s `thumbnail` does), with SIMD.
    fn fit(self, side: u32) -> Result<Self, MediaError> {
        let longest = self.width.max(self.height);
        if longest <= side {
            return Ok(self);
        }
        // At most `side` by construction (`as` saturates, never wraps).
        let scaled = |n: u32| {
            ((f64::from(n) * f64::from(side) / f64::from(longest)).round() as u32).clamp(1, side)
        };
        let (width, height) = (scaled(self.width), scaled(self.height));
        let pixel_type = self.pixel_type();
        let resize_error =
            |e: &dyn std::fmt::Display| MediaError::Unreadable(format!("resize: {e}"));
        let source = FirImage::from_vec_u8(self.width, self.height, self.pixels, pixel_type)
            .map_err(|e| resize_error(&e))?;
        let mut target = FirImage::new(width, height, pixel_type);
        Resizer::new()
            .resize(
                &source,
                &mut target,
                &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box)),
            )
            .map_err(|e| resize_error(&e))?;
        Ok(Self {
            width,
            height,
            pixels: target.into_vec(),
            grey: self.grey,
        })
    }

    fn jpeg(&self, icc: Option<Vec<u8>>) -> Result<Vec<u8>, MediaError> {
        let side = |n: u32| {
            u16::try_from(n).map_err(|_| MediaError::Unreadable("preview too large".into()))
        };
        let (width, height) = (side(self.width)?, side(self.height)?);
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, PREVIEW_QUALITY);
        if let Some(icc) = icc {
            // A profile that does not fit is left out; the preview is still written.
            let _ = encoder.add_icc_profile(&icc);
        }
        let colour = if self.grey {
            jpeg_encoder::ColorType::Luma
        } else {
            jpeg_encoder::ColorType::Rgb
        };
        encoder
            .encode(&self.pixels, width, height, colour)
            .map_err(|e| MediaError::Unreadable(format!("preview: {e}")))?;
        Ok(out)
    }
}
