//! WebP: the `EXIF` and `XMP ` chunks (and unknown ones) dropped from the RIFF container, the
//! VP8X flags saying so; the image chunks copied.

use crate::pixels::{check_dimensions, reorient};
use crate::reader::{exif_orientation, Reader};
use crate::{Cleaned, MediaError, Orient};
use image::metadata::Orientation;

const KEPT: &[&[u8; 4]] = &[
    b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L",
];

/// VP8X flags.
const ANIMATION: u8 = 0x02;
const XMP: u8 = 0x04;
const EXIF: u8 = 0x08;

pub(crate) fn clean(bytes: &[u8], orient: Orient) -> Result<(Vec<u8>, Cleaned), MediaError> {
    let mut r = Reader::new(bytes, "WebP");
    if r.array::<4>()? != *b"RIFF" {
        return Err(r.error("not a WebP file"));
    }
    let riff_len = usize::try_from(r.u32_le()?).map_err(|_| r.error("file too long"))?;
    let body = r.take(riff_len)?;
    let mut r = Reader::new(body, "WebP");
    if r.array::<4>()? != *b"WEBP" {
        return Err(r.error("not a WebP file"));
    }
    let mut chunks = Vec::new();
    let mut size = None;
    let mut orientation = None;
    let mut animated = false;
    let mut extended = false;
    let mut first = true;
    let mut has_image = false;
    while !r.at_end() {
        let kind = r.array::<4>()?;
        let length = usize::try_from(r.u32_le()?).map_err(|_| r.error("chunk too long"))?;
        let data = r.take(length)?;
        if length % 2 == 1 && !r.at_end() {
            r.skip(1)?;
        }
        match &kind {
            b"VP8X" if first => {
                extended = true;
                let mut h = Reader::new(data, "WebP");
                let flags = h.u8()?;
                animated = flags & ANIMATION != 0;
                h.skip(3)?;
                let [w0, w1, w2, h0, h1, h2] = h.array()?;
                let width = u32::from_le_bytes([w0, w1, w2, 0]) + 1;
                let height = u32::from_le_bytes([h0, h1, h2, 0]) + 1;
                size = Some((width, height));
            }
            b"VP8 " | b"VP8L" if size.is_none() => size = Some(bitstream_size(&kind, data)?),
            b"EXIF" if orientation.is_none() => orientation = exif_orientation(data),
            b"ANIM" => animated = true,
            _ => {}
        }
        first = false;
        has_image |= matches!(&kind, b"VP8 " | b"VP8L" | b"ANMF");
        if KEPT.contains(&&kind) {
            chunks.push((kind, data));
        }
        // A simple file is one image chunk; whatever follows it is not part of the image.
        if !extended && matches!(&kind, b"VP8 " | b"VP8L") {
            break;
        }
    }
    let (width, height) = size
        .filter(|_| has_image)
        .ok_or_else(|| r.error("no image"))?;
    check_dimensions(width, height, "WebP")?;

    if let Some(o) = orientation {
        if o != Orientation::NoTransforms && orient == Orient::Apply && !animated {
            let (data, width, height) = reorient(bytes, image::ImageFormat::WebP, o)?;
            return Ok((
                data,
                Cleaned {
                    width,
                    height,
                    reencoded: true,
                },
            ));
        }
    }

    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    for (kind, data) in chunks {
        out.extend_from_slice(&kind);
        let length = u32::try_from(data.len()).map_err(|_| r.error("chunk too long"))?;
        out.extend_from_slice(&length.to_le_bytes());
        if &kind == b"VP8X" {
            let (flags, rest) = data.split_first().ok_or_else(|| r.error("bad header"))?;
            out.push(flags & !(EXIF | XMP));
            out.extend_from_slice(rest);
        } else {
            out.extend_from_slice(data);
        }
        if data.len() % 2 == 1 {
            out.push(0);
        }
    }
    let riff_len = u32::try_from(out.len() - 8).map_err(|_| r.error("file too long"))?;
    if let Some(field) = out.get_mut(4..8) {
        field.copy_from_slice(&riff_len.to_le_bytes());
    }
    Ok((
        out,
        Cleaned {
            width,
            height,
            reencoded: false,
        },
    ))
}

/// The size in a VP8 (lossy) or VP8L (lossless) bitstream header.
fn bitstream_size(kind: &[u8; 4], data: &[u8]) -> Result<(u32, u32), MediaError> {
    let mut h = Reader::new(data, "WebP");
    if kind == b"VP8L" {
        if h.u8()? != 0x2F {
            return Err(h.error("bad lossless header"));
        }
        let bits = h.u32_le()?;
        return Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1));
    }
    h.skip(3)?;
    if h.array::<3>()? != [0x9D, 0x01, 0x2A] {
        return Err(h.error("bad lossy header"));
    }
    let width = h.u16_le()? & 0x3FFF;
    let height = h.u16_le()? & 0x3FFF;
    Ok((u32::from(width), u32::from(height)))
}
