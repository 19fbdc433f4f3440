//! Musubi's photos and texts: images cleaned of every metadata before they are stored (GPS
//! positions, camera serial numbers, names in comments), small JPEG previews, HEIC photos
//! converted to JPEG, and the text of PDFs and plain-text files for search.
//!
//! The image functions are synchronous and CPU-bound: callers run them with [`in_background`],
//! on a thread of their own at a lower CPU priority than requests. The functions that run a
//! tool (`heif-convert`, `pdftotext`) are async: the tool runs as a separate process with a
//! timeout and is killed when it overruns.
//! Decoding is limited ([`MAX_SIDE`], [`MAX_ALLOC`]): a decompression bomb is refused with
//! [`MediaError::TooLarge`]; a malformed file gives [`MediaError::Unreadable`], never a panic.
//!
//! Operators' guide: `docs/files.md`, "Photos and text".

mod background;
mod gif;
mod jpeg;
mod pixels;
mod png;
mod reader;
mod text;
mod tools;
mod webp;

use std::path::Path;

pub use background::{in_background, BACKGROUND_NICE};
pub use pixels::{
    preview_jpeg, preview_jpeg_bytes, previews_jpeg, previews_jpeg_bytes, MAX_ALLOC, MAX_SIDE,
};
pub use text::plain_text;
pub use tools::{
    heic_to_jpeg, heic_to_jpeg_with, heif_convert, pdf_text, pdf_text_with, pdftotext,
    HEIF_CONVERT_ENV, PDFTOTEXT_ENV,
};

/// The image formats Musubi stores as they are (after cleaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
}

/// What [`clean_image`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cleaned {
    /// The width of the written image (after its orientation was applied).
    pub width: u32,
    pub height: u32,
    /// Whether pixels were re-encoded (to apply an EXIF orientation); `false` when only metadata
    /// was removed and the image data was copied unchanged.
    pub reencoded: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not a valid file of the expected kind (truncated, garbage, unsupported variant), or the
    /// tool could not read it.
    #[error("unreadable file: {0}")]
    Unreadable(String),
    /// Larger than the decoding limits allow (a decompression bomb, or simply too big).
    #[error("image too large to process")]
    TooLarge,
    /// The tool did not finish in time and was killed.
    #[error("the conversion took too long and was stopped")]
    Timeout,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whether the EXIF orientation of the input is to be applied to the pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Orient {
    /// Apply it (photos from cameras and phones).
    Apply,
    /// Ignore it: the pixels are already upright (`heif-convert` applied the HEIF transforms,
    /// and a stale EXIF orientation may have been copied along).
    Ignore,
}

/// Writes to `output` the image of `input` with its EXIF orientation applied and every metadata
/// removed: EXIF (with GPS), XMP, IPTC (APP13), JPEG comments, PNG `tEXt`/`zTXt`/`iTXt`/`eXIf`/
/// `tIME` and unknown ancillary chunks, WebP `EXIF`/`XMP ` chunks, GIF comments and application
/// extensions other than looping.
///
/// Without an orientation to apply the image data is copied unchanged (JPEG keeps its JFIF
/// header without thumbnail, ICC profile and Adobe segment; PNG and WebP their colour chunks);
/// with one, the image is decoded, turned and re-encoded in its own format (JPEG quality 88, PNG,
/// lossless WebP), keeping its ICC profile. Animated PNG and WebP are never re-encoded.
pub fn clean_image(
    format: ImageFormat,
    input: &Path,
    output: &Path,
) -> Result<Cleaned, MediaError> {
    let bytes = std::fs::read(input)?;
    let (data, cleaned) = clean_image_bytes(format, &bytes)?;
    std::fs::write(output, data)?;
    Ok(cleaned)
}

/// [`clean_image`] in memory: the cleaned file's bytes.
pub fn clean_image_bytes(
    format: ImageFormat,
    bytes: &[u8],
) -> Result<(Vec<u8>, Cleaned), MediaError> {
    clean(format, bytes, Orient::Apply)
}

pub(crate) fn clean(
    format: ImageFormat,
    bytes: &[u8],
    orient: Orient,
) -> Result<(Vec<u8>, Cleaned), MediaError> {
    match format {
        ImageFormat::Jpeg => jpeg::clean(bytes, orient),
        ImageFormat::Png => png::clean(bytes, orient),
        ImageFormat::Webp => webp::clean(bytes, orient),
        ImageFormat::Gif => gif::clean(bytes),
    }
}
