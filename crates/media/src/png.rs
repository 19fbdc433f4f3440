//! PNG: metadata chunks dropped, image chunks copied with their checksums.
//!
//! Kept: the critical chunks, transparency, colour (`cHRM`, `gAMA`, `iCCP`, `sBIT`, `sRGB`,
//! `cICP`, `mDCv`, `cLLI`), `bKGD`, `hIST`, `pHYs`, `sPLT` and the animation chunks. Every other
//! ancillary chunk is dropped (`tEXt`, `zTXt`, `iTXt`, `eXIf`, `tIME`, and private ones, which
//! may carry anything); anything after `IEND` too.

use crate::pixels::{check_dimensions, reorient};
use crate::reader::{exif_orientation, Reader};
use crate::{Cleaned, MediaError, Orient};
use image::metadata::Orientation;

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];

const KEPT: &[&[u8; 4]] = &[
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"mDCv", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"sPLT", b"acTL", b"fcTL", b"fdAT",
];

pub(crate) fn clean(bytes: &[u8], orient: Orient) -> Result<(Vec<u8>, Cleaned), MediaError> {
    let mut r = Reader::new(bytes, "PNG");
    if r.array::<8>()? != SIGNATURE {
        return Err(r.error("not a PNG file"));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&SIGNATURE);
    let mut size = None;
    let mut orientation = None;
    let mut animated = false;
    let mut image_data = false;
    loop {
        let start = r.pos();
        let length = usize::try_from(r.u32_be()?).map_err(|_| r.error("chunk too long"))?;
        let kind = r.array::<4>()?;
        let data = r.take(length)?;
        let _crc = r.take(4)?;
        let chunk = bytes
            .get(start..r.pos())
            .ok_or_else(|| r.error("unexpected end of file"))?;
        if size.is_none() {
            if &kind != b"IHDR" {
                return Err(r.error("missing header"));
            }
            let mut h = Reader::new(data, "PNG");
            size = Some((h.u32_be()?, h.u32_be()?));
        }
        match &kind {
            b"eXIf" if orientation.is_none() => orientation = exif_orientation(data),
            b"acTL" => animated = true,
            b"IDAT" => image_data = true,
            _ => {}
        }
        if KEPT.contains(&&kind) {
            out.extend_from_slice(chunk);
        } else if kind.first().is_some_and(u8::is_ascii_uppercase) {
            // A critical chunk this reader does not know: the image cannot be shown without it.
            return Err(r.error("unknown critical chunk"));
        }
        if &kind == b"IEND" {
            break;
        }
    }
    let (width, height) = size.ok_or_else(|| r.error("missing header"))?;
    if !image_data {
        return Err(r.error("no image data"));
    }
    check_dimensions(width, height, "PNG")?;

    match orientation {
        Some(o) if o != Orientation::NoTransforms && orient == Orient::Apply && !animated => {
            let (data, width, height) = reorient(bytes, image::ImageFormat::Png, o)?;
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
