//! Photos as phones send them: a JPEG with EXIF (orientation and GPS position), written here
//! byte by byte, so that tests can check what Musubi keeps of it.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, RgbImage};

/// The latitude the fixtures carry, as the rational bytes EXIF stores (35°41'22.00").
pub const GPS_LATITUDE: [u32; 6] = [35, 1, 41, 1, 2200, 100];

/// A `width`×`height` JPEG, left half red and right half blue, with an EXIF segment holding
/// `orientation` (1–8) and, with `gps`, a GPS position.
pub fn jpeg(width: u32, height: u32, orientation: u16, gps: bool) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, _| {
        if x < width / 2 {
            image::Rgb([220, 20, 20])
        } else {
            image::Rgb([20, 20, 220])
        }
    });
    let mut plain = Vec::new();
    JpegEncoder::new_with_quality(&mut plain, 92)
        .encode(img.as_raw(), width, height, ExtendedColorType::Rgb8)
        .expect("encoding a test JPEG");
    let exif = exif(orientation, gps);
    let mut out = Vec::with_capacity(plain.len() + exif.len() + 4);
    out.extend_from_slice(&plain[..2]); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(exif.len() + 2).expect("small").to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&plain[2..]);
    out
}

/// `Exif\0\0` and a little-endian TIFF: IFD0 with Orientation and a GPS pointer, and a GPS IFD
/// with latitude and longitude.
fn exif(orientation: u16, gps: bool) -> Vec<u8> {
    let mut t: Vec<u8> = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value);
    };
    let ifd0_entries: u16 = if gps { 2 } else { 1 };
    let gps_at = 8 + 2 + 12 * u32::from(ifd0_entries) + 4;
    t.extend_from_slice(&ifd0_entries.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, 3, 1, [o[0], o[1], 0, 0]);
    if gps {
        entry(&mut t, 0x8825, 4, 1, gps_at.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    if gps {
        let data_at = gps_at + 2 + 4 * 12 + 4;
        t.extend_from_slice(&4u16.to_le_bytes());
        entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
        entry(&mut t, 0x0002, 5, 3, data_at.to_le_bytes());
        entry(&mut t, 0x0003, 2, 2, *b"E\0\0\0");
        entry(&mut t, 0x0004, 5, 3, (data_at + 24).to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        for v in GPS_LATITUDE.into_iter().chain([139, 1, 41, 1, 3000, 100]) {
            t.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut out = b"Exif\0\0".to_vec();
    out.extend_from_slice(&t);
    out
}

/// Whether `bytes` still hold EXIF or the fixture's GPS position.
pub fn has_exif_or_gps(bytes: &[u8]) -> bool {
    let lat: Vec<u8> = GPS_LATITUDE.iter().flat_map(|v| v.to_le_bytes()).collect();
    contains(bytes, b"Exif\0\0") || contains(bytes, &lat)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The colour at (x, y) of a decoded image.
pub fn pixel(bytes: &[u8], x: u32, y: u32) -> [u8; 3] {
    let img = image::load_from_memory(bytes)
        .expect("decoding a photo")
        .to_rgb8();
    img.get_pixel(x, y).0
}

/// Width and height of a decoded image.
pub fn size(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).expect("decoding a photo");
    (img.width(), img.height())
}
