//! JPEG: metadata segments dropped without touching the image data.
//!
//! Kept: the JFIF header (APP0, without its thumbnail), ICC profiles (APP2 `ICC_PROFILE`), the
//! Adobe segment (APP14, which says how the colours are stored), and every non-APP segment
//! (tables, frame and scan headers, restart interval) with the entropy-coded data. Dropped: every
//! other APPn (EXIF with GPS and thumbnail, XMP, MPF, IPTC/Photoshop APP13, makers' segments),
//! comments, and anything after the end of the image (phones append further images there).

use crate::pixels::{check_dimensions, reorient};
use crate::reader::{exif_orientation, Reader};
use crate::{Cleaned, MediaError, Orient};
use image::metadata::Orientation;

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP14: u8 = 0xEE;
const COM: u8 = 0xFE;

/// The JFIF APP0 payload before the thumbnail: identifier, version, units, densities.
const JFIF_HEAD: usize = 12;

pub(crate) fn clean(bytes: &[u8], orient: Orient) -> Result<(Vec<u8>, Cleaned), MediaError> {
    let mut r = Reader::new(bytes, "JPEG");
    if r.array::<2>()? != [0xFF, SOI] {
        return Err(r.error("not a JPEG file"));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, SOI]);
    let mut size = None;
    let mut orientation = None;
    let mut scans = 0usize;
    loop {
        if r.u8()? != 0xFF {
            return Err(r.error("expected a marker"));
        }
        // Fill bytes before a marker.
        while r.peek() == Some(0xFF) {
            r.skip(1)?;
        }
        let marker = r.u8()?;
        match marker {
            EOI => break,
            // Stray restart markers and TEM carry nothing.
            0xD0..=0xD7 | 0x01 => continue,
            0x00 | SOI => return Err(r.error("unexpected marker")),
            _ => {}
        }
        let length = usize::from(r.u16_be()?);
        let payload = r.take(
            length
                .checked_sub(2)
                .ok_or_else(|| r.error("bad segment length"))?,
        )?;
        if is_frame_header(marker) {
            let mut f = Reader::new(payload, "JPEG");
            let _precision = f.u8()?;
            let height = f.u16_be()?;
            let width = f.u16_be()?;
            size.get_or_insert((u32::from(width), u32::from(height)));
        }
        if marker == APP1 && orientation.is_none() {
            if let Some(exif) = payload.strip_prefix(b"Exif\0\0") {
                orientation = exif_orientation(exif);
            }
        }
        match kept(marker, payload) {
            Keep::Drop => {}
            Keep::As(payload) => write_segment(&mut out, marker, payload)?,
        }
        if marker == SOS {
            if size.is_none() {
                return Err(r.error("scan before the frame header"));
            }
            let data = entropy_coded(&r);
            r.skip(data.len())?;
            if r.at_end() {
                return Err(r.error("unexpected end of file"));
            }
            out.extend_from_slice(data);
            scans += 1;
        }
    }
    out.extend_from_slice(&[0xFF, EOI]);
    let (width, height) = size.ok_or_else(|| r.error("no frame header"))?;
    if scans == 0 {
        return Err(r.error("no image data"));
    }
    check_dimensions(width, height, "JPEG")?;

    match orientation {
        Some(o) if o != Orientation::NoTransforms && orient == Orient::Apply => {
            let (data, width, height) = reorient(bytes, image::ImageFormat::Jpeg, o)?;
            Ok((
                data,
                Cleaned {
                    width,
                    height,
                    reencoded: true,
                },
            ))
        }
        _ => Ok((
            out,
            Cleaned {
                width,
                height,
                reencoded: false,
            },
        )),
    }
}

/// SOF0–SOF15, which are C0–CF less DHT (C4), JPG (C8) and DAC (CC).
fn is_frame_header(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

enum Keep<'a> {
    Drop,
    As(&'a [u8]),
}

fn kept(marker: u8, payload: &[u8]) -> Keep<'_> {
    match marker {
        // JFIF without its thumbnail (a picture of the picture, possibly before an edit).
        APP0 => match payload.get(..JFIF_HEAD) {
            Some(head) if head.starts_with(b"JFIF\0") => Keep::As(head),
            _ => Keep::Drop,
        },
        APP2 if payload.starts_with(b"ICC_PROFILE\0") => Keep::As(payload),
        APP14 if payload.starts_with(b"Adobe") => Keep::As(payload),
        0xE0..=0xEF | COM => Keep::Drop,
        _ => Keep::As(payload),
    }
}

fn write_segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) -> Result<(), MediaError> {
    out.extend_from_slice(&[0xFF, marker]);
    if marker == APP0 {
        // The JFIF header, its thumbnail size set to 0×0.
        let length = u16::try_from(payload.len() + 4)
            .map_err(|_| MediaError::Unreadable("JPEG: segment too long".into()))?;
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(&[0, 0]);
        return Ok(());
    }
    let length = u16::try_from(payload.len() + 2)
        .map_err(|_| MediaError::Unreadable("JPEG: segment too long".into()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The entropy-coded data from the reader's position: up to the next marker that is neither a
/// stuffed zero (FF 00) nor a restart marker (FF D0–D7).
fn entropy_coded<'a>(r: &Reader<'a>) -> &'a [u8] {
    let rest = r.rest();
    let mut i = 0;
    while let Some(offset) = rest
        .get(i..)
        .and_then(|s| s.iter().position(|&b| b == 0xFF))
    {
        let at = i + offset;
        match rest.get(at + 1) {
            Some(0x00 | 0xD0..=0xD7) => i = at + 2,
            _ => return rest.get(..at).unwrap_or_default(),
        }
    }
    rest
}
