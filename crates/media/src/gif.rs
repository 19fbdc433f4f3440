//! GIF: copied block by block without comments and application extensions (which may carry
//! XMP), except the one that makes an animation loop. GIF has no EXIF and no orientation.

use crate::pixels::check_dimensions;
use crate::reader::Reader;
use crate::{Cleaned, MediaError};

const EXTENSION: u8 = 0x21;
const IMAGE: u8 = 0x2C;
const TRAILER: u8 = 0x3B;

const PLAIN_TEXT: u8 = 0x01;
const GRAPHIC_CONTROL: u8 = 0xF9;
const APPLICATION: u8 = 0xFF;

/// Application extensions that only say how often to loop.
const LOOPING: &[&[u8]] = &[b"NETSCAPE2.0", b"ANIMEXTS1.0"];

pub(crate) fn clean(bytes: &[u8]) -> Result<(Vec<u8>, Cleaned), MediaError> {
    let mut r = Reader::new(bytes, "GIF");
    let signature = r.take(6)?;
    if signature != b"GIF87a" && signature != b"GIF89a" {
        return Err(r.error("not a GIF file"));
    }
    let width = u32::from(r.u16_le()?);
    let height = u32::from(r.u16_le()?);
    let packed = r.u8()?;
    r.skip(2)?;
    if packed & 0x80 != 0 {
        r.skip(color_table_len(packed))?;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..r.pos()).unwrap_or_default());
    let mut images = 0usize;
    loop {
        let start = r.pos();
        match r.u8()? {
            TRAILER => {
                out.push(TRAILER);
                break;
            }
            IMAGE => {
                r.skip(8)?;
                let packed = r.u8()?;
                if packed & 0x80 != 0 {
                    r.skip(color_table_len(packed))?;
                }
                let _lzw_code_size = r.u8()?;
                skip_sub_blocks(&mut r)?;
                out.extend_from_slice(bytes.get(start..r.pos()).unwrap_or_default());
                images += 1;
            }
            EXTENSION => {
                let label = r.u8()?;
                let first = skip_sub_blocks(&mut r)?;
                let keep = match label {
                    GRAPHIC_CONTROL | PLAIN_TEXT => true,
                    APPLICATION => LOOPING.contains(&first),
                    _ => false,
                };
                if keep {
                    out.extend_from_slice(bytes.get(start..r.pos()).unwrap_or_default());
                }
            }
            _ => return Err(r.error("unknown block")),
        }
    }
    if images == 0 {
        return Err(r.error("no image"));
    }
    check_dimensions(width, height, "GIF")?;
    Ok((
        out,
        Cleaned {
            width,
            height,
            reencoded: false,
        },
    ))
}

/// 3 × 2^(n+1) bytes for the size field n of a packed byte.
fn color_table_len(packed: u8) -> usize {
    3 << ((packed & 0x07) + 1)
}

/// Skips a chain of data sub-blocks; returns the first one.
fn skip_sub_blocks<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], MediaError> {
    let mut first = None;
    loop {
        let length = usize::from(r.u8()?);
        if length == 0 {
            return Ok(first.unwrap_or_default());
        }
        let block = r.take(length)?;
        first.get_or_insert(block);
    }
}
