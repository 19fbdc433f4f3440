//! The files the benchmark attaches and uploads, built from a seed:
//!
//! - photos: real JPEGs with an EXIF segment, as phones write them (the server decodes every
//!   photo to drop its metadata and to make the preview and the thumbnail);
//! - PDF documents: valid, one page of text, with the bulk in a stream no page uses, as a
//!   scan's image would be (the server stores a PDF as it came and reads its text).

use crate::rng::Rng;
use anyhow::Context as _;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{ImageEncoder as _, Rgb, RgbImage};
use std::fmt::Write as _;

pub const JPEG: &str = "image/jpeg";
pub const PDF: &str = "application/pdf";

/// A photo: the file, and the thumbnail the server would make of it.
pub struct Photo {
    pub jpeg: Vec<u8>,
    pub thumb: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// A photo-like picture of `width`×`height`: soft light and a few shapes under sensor noise
/// of `grain` (its amplitude, which decides the file's size), encoded at `quality`.
pub fn photo(width: u32, height: u32, grain: u8, quality: u8, seed: u64) -> anyhow::Result<Photo> {
    let picture = picture(width, height, grain, seed);
    let jpeg = encode(&picture, quality, true)?;
    let (tw, th) = fit(width, height, THUMB_SIDE);
    let small = image::imageops::resize(&picture, tw, th, FilterType::Triangle);
    let thumb = encode(&small, 80, false)?;
    Ok(Photo {
        jpeg,
        thumb,
        width,
        height,
    })
}

/// The longest side of the server's thumbnails (`musubi_domain::files::THUMB_SIDE`).
pub const THUMB_SIDE: u32 = 320;

fn fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    if longest <= side {
        return (width, height);
    }
    let scale = |v: u32| ((u64::from(v) * u64::from(side)) / u64::from(longest)).max(1) as u32;
    (scale(width), scale(height))
}

fn picture(width: u32, height: u32, grain: u8, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    // A lit spot and a darker disc, somewhere in the frame.
    let (lx, ly) = (rng.f64() * w, rng.f64() * h);
    let (dx, dy, dr) = (rng.f64() * w, rng.f64() * h, (0.1 + rng.f64() * 0.2) * w);
    let tint = [
        rng.range(150, 230),
        rng.range(120, 200),
        rng.range(100, 180),
    ];
    let amplitude = u64::from(grain);
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (f64::from(x), f64::from(y));
        let light = 1.0 - ((fx - lx).hypot(fy - ly) / w.hypot(h)).min(1.0) * 0.7;
        let shade = if (fx - dx).hypot(fy - dy) < dr {
            0.55
        } else {
            1.0
        };
        let wave = 1.0 + 0.08 * (fx / 37.0).sin() * (fy / 53.0).cos();
        let mut px = [0u8; 3];
        for (c, t) in px.iter_mut().zip(tint) {
            let base = t as f64 * light * shade * wave;
            let noise = rng.below(2 * amplitude + 1) as f64 - amplitude as f64;
            *c = (base + noise).clamp(0.0, 255.0) as u8;
        }
        Rgb(px)
    })
}

fn encode(picture: &RgbImage, quality: u8, exif: bool) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality);
    if exif {
        encoder
            .set_exif_metadata(exif_upright())
            .context("EXIF for a JPEG")?;
    }
    encoder.encode_image(picture).context("encoding a JPEG")?;
    Ok(out)
}

/// EXIF as a phone writes it, reduced to what matters here: little-endian TIFF, one IFD with
/// Orientation = 1 (upright) and the camera's make.
fn exif_upright() -> Vec<u8> {
    let make = b"Musubi\0";
    let mut t = Vec::new();
    t.extend_from_slice(b"II*\0");
    t.extend_from_slice(&8u32.to_le_bytes());
    // IFD0: two entries, then the offset of the next IFD (none).
    t.extend_from_slice(&2u16.to_le_bytes());
    // Make (0x010F), ASCII, its text after the IFD.
    let make_at = 8 + 2 + 2 * 12 + 4;
    t.extend_from_slice(&0x010Fu16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&(make.len() as u32).to_le_bytes());
    t.extend_from_slice(&(make_at as u32).to_le_bytes());
    // Orientation (0x0112), SHORT, 1.
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(make);
    t
}

/// The photo the driver uploads: about 1 MB, 2048×1536 (a phone photo sent at reduced size).
pub fn upload_photo() -> anyhow::Result<Vec<u8>> {
    Ok(photo(2048, 1536, UPLOAD_GRAIN, 90, 0x9407_0001)?.jpeg)
}

/// Tuned so that [`upload_photo`] comes out at about 1 MB.
const UPLOAD_GRAIN: u8 = 10;

/// A one-page PDF with `filler` bytes of incompressible data in a stream no page uses.
pub fn pdf(title: &str, filler: usize, seed: u64) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(filler + 2048);
    let mut offsets = Vec::new();
    out.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    let text = format!("BT /F1 14 Tf 72 770 Td ({}) Tj ET", pdf_string(title));
    let objects: [String; 5] = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    // The bulk: what a scanned page's picture would weigh.
    offsets.push(out.len());
    out.extend_from_slice(format!("6 0 obj\n<< /Length {filler} >>\nstream\n").as_bytes());
    let mut rng = Rng::new(seed);
    let start = out.len();
    out.resize(start + filler, 0);
    for chunk in out[start..].chunks_mut(8) {
        let bytes = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref = out.len();
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1);
    for o in &offsets {
        // Each entry 20 bytes: the space before the newline is part of it.
        let _ = writeln!(table, "{o:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        offsets.len() + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

/// Text for a PDF literal string: ASCII, with its delimiters escaped.
fn pdf_string(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .flat_map(|c| match c {
            '(' | ')' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn photos_are_jpegs_with_exif_and_a_thumbnail() {
        let p = photo(640, 480, 10, 80, 7).unwrap();
        assert_eq!(&p.jpeg[..2], &[0xFF, 0xD8]);
        assert!(p.jpeg.windows(6).any(|w| w == b"Exif\0\0"));
        let decoded = image::load_from_memory(&p.jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (640, 480));
        let thumb = image::load_from_memory(&p.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
    }

    #[test]
    fn the_uploaded_photo_weighs_about_a_megabyte() {
        let jpeg = upload_photo().unwrap();
        assert!((900_000..1_200_000).contains(&jpeg.len()), "{}", jpeg.len());
    }

    #[test]
    fn pdfs_have_a_consistent_cross_reference_table() {
        let doc = pdf("Referral (scan)", 10_000, 3);
        assert!(doc.starts_with(b"%PDF-1.4\n"));
        assert!(doc.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&doc);
        let startxref: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|s| s.lines().next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(doc[startxref..].starts_with(b"xref\n0 7\n"));
        // Every entry points at its object.
        let table = String::from_utf8_lossy(&doc[startxref..]).into_owned();
        for (i, line) in table.lines().skip(3).take(6).enumerate() {
            let at: usize = line[..10].parse().unwrap();
            assert!(doc[at..].starts_with(format!("{} 0 obj", i + 1).as_bytes()));
        }
        assert!(text.contains("(Referral \\(scan\\)) Tj"));
    }
}
