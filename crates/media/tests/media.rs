#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real files, built here: photos with GPS positions and comments written into them by hand,
//! decompression bombs, PDFs and text files; the tools (`pdftotext`, `heif-convert`) really run.

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, GenericImageView, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use musubi_media::{
    clean_image, clean_image_bytes, heic_to_jpeg_with, heif_convert, in_background, pdf_text_with,
    pdftotext, plain_text, preview_jpeg, preview_jpeg_bytes, previews_jpeg, ImageFormat,
    MediaError, BACKGROUND_NICE,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Building files

/// The GPS latitude written into the EXIF blocks (35° 41′ 22.10″), as it appears in the file.
const LATITUDE: [u8; 24] = [
    0, 0, 0, 35, 0, 0, 0, 1, 0, 0, 0, 41, 0, 0, 0, 1, 0, 0, 0x08, 0xA2, 0, 0, 0, 100,
];
const COMMENT: &str = "Patient Yamada Hanako, 3-1 Chiyoda";

/// A big-endian TIFF block: IFD0 with Orientation and a GPSInfo pointer, a GPS IFD with
/// latitude and longitude.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0\x2A");
    t.extend_from_slice(&8u32.to_be_bytes());
    let entry = |t: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        t.extend_from_slice(&tag.to_be_bytes());
        t.extend_from_slice(&kind.to_be_bytes());
        t.extend_from_slice(&count.to_be_bytes());
        t.extend_from_slice(&value);
    };
    // IFD0 at 8: 2 entries → 30 bytes; the GPS IFD at 38: 4 entries → 54 bytes; data at 92.
    t.extend_from_slice(&2u16.to_be_bytes());
    let [o0, o1] = orientation.to_be_bytes();
    entry(&mut t, 0x0112, 3, 1, [o0, o1, 0, 0]);
    entry(&mut t, 0x8825, 4, 1, 38u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(t.len(), 38);
    t.extend_from_slice(&4u16.to_be_bytes());
    entry(&mut t, 0x0001, 2, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, 5, 3, 92u32.to_be_bytes());
    entry(&mut t, 0x0003, 2, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, 5, 3, 116u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(t.len(), 92);
    t.extend_from_slice(&LATITUDE);
    for v in [139u32, 1, 41, 1, 3050, 100] {
        t.extend_from_slice(&v.to_be_bytes());
    }
    t
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// 40×20, left half red, right half blue.
fn red_blue() -> RgbImage {
    RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    })
}

fn encode_jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// The red/blue JPEG with an EXIF segment (orientation, GPS) and a comment after SOI.
fn photo_with_exif(orientation: u16) -> Vec<u8> {
    let plain = encode_jpeg(&red_blue());
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend_from_slice(&exif_tiff(orientation));
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&jpeg_segment(0xE1, &exif));
    out.extend_from_slice(&jpeg_segment(0xFE, COMMENT.as_bytes()));
    out.extend_from_slice(&plain[2..]);
    out
}

/// From the first SOS segment to the end: the scan header and the entropy-coded data.
fn jpeg_scan(jpeg: &[u8]) -> &[u8] {
    let mut pos = 2;
    loop {
        assert_eq!(jpeg[pos], 0xFF);
        let marker = jpeg[pos + 1];
        if marker == 0xDA {
            return &jpeg[pos..];
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        pos += 2 + len;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_metadata(data: &[u8]) {
    assert!(!contains(data, b"Exif\0\0"), "EXIF left");
    assert!(!contains(data, &LATITUDE), "GPS position left");
    assert!(!contains(data, COMMENT.as_bytes()), "comment left");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let crc = crc32(&c[4..]);
    c.extend_from_slice(&crc.to_be_bytes());
    c
}

fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// 8×4 RGBA, each pixel different.
fn small_rgba() -> RgbaImage {
    RgbaImage::from_fn(8, 4, |x, y| {
        Rgba([
            u8::try_from(x * 30).unwrap(),
            u8::try_from(y * 60).unwrap(),
            128,
            200,
        ])
    })
}

/// A PNG of `small_rgba` with `eXIf` (orientation, GPS) and `tEXt` chunks after IHDR.
fn png_with_metadata(orientation: u16) -> Vec<u8> {
    let plain = encode(
        &DynamicImage::ImageRgba8(small_rgba()),
        image::ImageFormat::Png,
    );
    let after_ihdr = 8 + 12 + 13;
    let mut out = plain[..after_ihdr].to_vec();
    out.extend_from_slice(&png_chunk(b"eXIf", &exif_tiff(orientation)));
    let mut text = b"Comment\0".to_vec();
    text.extend_from_slice(COMMENT.as_bytes());
    out.extend_from_slice(&png_chunk(b"tEXt", &text));
    out.extend_from_slice(&plain[after_ihdr..]);
    out
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    c.extend_from_slice(data);
    if data.len() % 2 == 1 {
        c.push(0);
    }
    c
}

/// An extended WebP of `small_rgba` (lossless) with EXIF and XMP chunks, the VP8X flags
/// announcing them.
fn webp_with_metadata(orientation: u16) -> Vec<u8> {
    let simple = encode(
        &DynamicImage::ImageRgba8(small_rgba()),
        image::ImageFormat::WebP,
    );
    assert_eq!(&simple[12..16], b"VP8L");
    let image_chunk = &simple[12..];
    let mut vp8x = vec![0x10 | 0x08 | 0x04, 0, 0, 0];
    vp8x.extend_from_slice(&7u32.to_le_bytes()[..3]);
    vp8x.extend_from_slice(&3u32.to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend_from_slice(&riff_chunk(b"VP8X", &vp8x));
    body.extend_from_slice(image_chunk);
    body.extend_from_slice(&riff_chunk(b"EXIF", &exif_tiff(orientation)));
    body.extend_from_slice(&riff_chunk(
        b"XMP ",
        format!("<x:xmpmeta>{COMMENT}</x:xmpmeta>").as_bytes(),
    ));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn is_red(p: Rgb<u8>) -> bool {
    p.0[0] > 180 && p.0[1] < 80 && p.0[2] < 80
}

fn is_blue(p: Rgb<u8>) -> bool {
    p.0[0] < 80 && p.0[1] < 80 && p.0[2] > 180
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A PDF of `objects` (numbered from 1, the first the catalog) with a correct cross-reference
/// table.
fn pdf(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A one-page PDF showing `text` (a PDF string, with its brackets) in font object 4.
fn one_page_pdf(font: &[String], text: &str) -> Vec<u8> {
    let content = format!("BT /F1 18 Tf 20 40 Td {text} Tj ET");
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_owned(),
        font[0].clone(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
    ];
    objects.extend_from_slice(&font[1..]);
    pdf(&objects)
}

fn require_pdftotext() -> PathBuf {
    pdftotext().expect(
        "pdftotext is not installed: install the Debian packages poppler-utils and poppler-data \
         (`cargo xtask test` does)",
    )
}

fn require_heif_tools() -> (PathBuf, PathBuf) {
    const WHY: &str = "is not installed: install the Debian package libheif-examples \
                       (`cargo xtask test` does)";
    let convert = heif_convert().unwrap_or_else(|| panic!("heif-convert {WHY}"));
    let enc = convert.with_file_name("heif-enc");
    assert!(enc.is_file(), "heif-enc {WHY}");
    (convert, enc)
}

// ---------------------------------------------------------------------------------------------
// Photos

#[test]
fn a_turned_photo_is_turned_upright_and_loses_its_gps_position_and_comment() {
    let files = Files::new();
    let input = files.write("in.jpg", &photo_with_exif(6));
    assert!(contains(&std::fs::read(&input).unwrap(), &LATITUDE));
    let output = files.path("out.jpg");

    let cleaned = clean_image(ImageFormat::Jpeg, &input, &output).unwrap();

    assert!(cleaned.reencoded);
    assert_eq!((cleaned.width, cleaned.height), (20, 40));
    let data = std::fs::read(&output).unwrap();
    assert_no_metadata(&data);
    let image = image::load_from_memory_with_format(&data, image::ImageFormat::Jpeg)
        .unwrap()
        .to_rgb8();
    assert_eq!(image.dimensions(), (20, 40));
    // Orientation 6: the camera was turned a quarter clockwise; the left (red) is the top.
    assert!(
        is_red(*image.get_pixel(10, 5)),
        "{:?}",
        image.get_pixel(10, 5)
    );
    assert!(
        is_blue(*image.get_pixel(10, 35)),
        "{:?}",
        image.get_pixel(10, 35)
    );
}

#[test]
fn an_upright_photo_keeps_its_image_data_byte_for_byte() {
    let mut input = photo_with_exif(1);
    // Phones append further images (with their own EXIF) after the end of the first.
    input.extend_from_slice(b"\xFF\xD8 trailing image");

    let (data, cleaned) = clean_image_bytes(ImageFormat::Jpeg, &input).unwrap();

    assert!(!cleaned.reencoded);
    assert_eq!((cleaned.width, cleaned.height), (40, 20));
    assert_no_metadata(&data);
    assert!(!contains(&data, b"trailing image"));
    assert!(contains(&data, b"JFIF\0"), "the JFIF header is kept");
    assert_eq!(jpeg_scan(&data), jpeg_scan(&encode_jpeg(&red_blue())));
    let image = image::load_from_memory(&data).unwrap();
    assert_eq!(image.dimensions(), (40, 20));
}

#[test]
fn a_png_loses_its_exif_and_text_chunks_and_keeps_its_pixels() {
    let input = png_with_metadata(1);
    assert!(contains(&input, b"eXIf") && contains(&input, b"tEXt"));
    image::load_from_memory(&input).expect("the test PNG is valid");

    let (data, cleaned) = clean_image_bytes(ImageFormat::Png, &input).unwrap();

    assert!(!cleaned.reencoded);
    assert_eq!((cleaned.width, cleaned.height), (8, 4));
    assert!(!contains(&data, b"eXIf"));
    assert!(!contains(&data, b"tEXt"));
    assert_no_metadata(&data);
    let image = image::load_from_memory_with_format(&data, image::ImageFormat::Png).unwrap();
    assert_eq!(image.to_rgba8(), small_rgba());
}

#[test]
fn a_turned_png_is_turned_upright() {
    let (data, cleaned) = clean_image_bytes(ImageFormat::Png, &png_with_metadata(6)).unwrap();
    assert!(cleaned.reencoded);
    assert_eq!((cleaned.width, cleaned.height), (4, 8));
    assert_no_metadata(&data);
    let image = image::load_from_memory_with_format(&data, image::ImageFormat::Png)
        .unwrap()
        .to_rgba8();
    // A quarter clockwise: the bottom-left pixel becomes the top-left.
    assert_eq!(image.get_pixel(0, 0), small_rgba().get_pixel(0, 3));
}

#[test]
fn a_webp_loses_its_exif_and_xmp_chunks_and_says_so_in_its_header() {
    let input = webp_with_metadata(1);
    image::load_from_memory(&input).expect("the test WebP is valid");

    let (data, cleaned) = clean_image_bytes(ImageFormat::Webp, &input).unwrap();

    assert!(!cleaned.reencoded);
    assert_eq!((cleaned.width, cleaned.height), (8, 4));
    assert!(!contains(&data, b"EXIF") && !contains(&data, b"XMP "));
    assert_no_metadata(&data);
    assert_eq!(&data[12..16], b"VP8X");
    assert_eq!(data[20] & 0x0C, 0, "the EXIF and XMP flags are cleared");
    let riff_len = u32::from_le_bytes(data[4..8].try_into().unwrap());
    assert_eq!(usize::try_from(riff_len).unwrap(), data.len() - 8);
    let image = image::load_from_memory_with_format(&data, image::ImageFormat::WebP).unwrap();
    assert_eq!(image.to_rgba8(), small_rgba());
}

#[test]
fn a_turned_webp_is_turned_upright() {
    let (data, cleaned) = clean_image_bytes(ImageFormat::Webp, &webp_with_metadata(8)).unwrap();
    assert!(cleaned.reencoded);
    assert_eq!((cleaned.width, cleaned.height), (4, 8));
    assert_no_metadata(&data);
    let image = image::load_from_memory_with_format(&data, image::ImageFormat::WebP)
        .unwrap()
        .to_rgba8();
    // A quarter anticlockwise: the top-right pixel becomes the top-left.
    assert_eq!(image.get_pixel(0, 0), small_rgba().get_pixel(7, 0));
}

#[test]
fn a_gif_loses_its_comments_and_xmp() {
    let plain = encode(
        &DynamicImage::ImageRgba8(small_rgba()),
        image::ImageFormat::Gif,
    );
    assert_eq!(plain.last(), Some(&0x3B));
    let mut input = plain[..plain.len() - 1].to_vec();
    // A comment extension, and an application extension as XMP is written.
    input.extend_from_slice(&[0x21, 0xFE, u8::try_from(COMMENT.len()).unwrap()]);
    input.extend_from_slice(COMMENT.as_bytes());
    input.extend_from_slice(&[0, 0x21, 0xFF, 11]);
    input.extend_from_slice(b"XMP DataXMP");
    input.extend_from_slice(&[6]);
    input.extend_from_slice(b"<xmp/>");
    input.extend_from_slice(&[0, 0x3B]);
    image::load_from_memory(&input).expect("the test GIF is valid");

    let (data, cleaned) = clean_image_bytes(ImageFormat::Gif, &input).unwrap();

    assert_eq!((cleaned.width, cleaned.height), (8, 4));
    assert!(!contains(&data, COMMENT.as_bytes()));
    assert!(!contains(&data, b"XMP DataXMP"));
    assert_eq!(data, plain);
}

/// A PNG of `width`×`height` RGBA pixels whose data is a few bytes.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&png_chunk(b"IHDR", &ihdr));
    png.extend_from_slice(&png_chunk(b"IDAT", &[0x78, 0x9C, 0x03, 0, 0, 0, 0, 1]));
    png.extend_from_slice(&png_chunk(b"IEND", &[]));
    png
}

#[test]
fn a_decompression_bomb_is_refused_without_decoding() {
    let files = Files::new();
    let input = files.write("bomb.png", &png_claiming(100_000, 100_000));

    let cleaned = clean_image(ImageFormat::Png, &input, &files.path("out.png"));
    assert!(matches!(cleaned, Err(MediaError::TooLarge)), "{cleaned:?}");
    let preview = preview_jpeg(&input, 1280);
    assert!(
        matches!(
            preview,
            Err(MediaError::TooLarge | MediaError::Unreadable(_))
        ),
        "{preview:?}"
    );

    // A JPEG whose frame header claims 60000×60000.
    let mut jpeg = encode_jpeg(&red_blue());
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let cleaned = clean_image_bytes(ImageFormat::Jpeg, &jpeg);
    assert!(matches!(cleaned, Err(MediaError::TooLarge)), "{cleaned:?}");
    let input = files.write("bomb.jpg", &jpeg);
    let preview = preview_jpeg(&input, 1280);
    assert!(
        matches!(
            preview,
            Err(MediaError::TooLarge | MediaError::Unreadable(_))
        ),
        "{preview:?}"
    );
}

#[test]
fn an_image_over_the_memory_limit_is_refused_before_it_is_decoded() {
    // 16000×16000 RGBA is within the side limit but takes 1 GiB decoded.
    let preview = preview_jpeg_bytes(&png_claiming(16_000, 16_000), 1280);
    assert!(matches!(preview, Err(MediaError::TooLarge)), "{preview:?}");
}

#[test]
fn truncated_or_garbage_images_are_unreadable() {
    let jpeg = photo_with_exif(6);
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Webp,
        ImageFormat::Gif,
    ] {
        let garbage = clean_image_bytes(format, b"this is not an image at all");
        assert!(
            matches!(garbage, Err(MediaError::Unreadable(_))),
            "{garbage:?}"
        );
        assert!(matches!(
            clean_image_bytes(format, &[]),
            Err(MediaError::Unreadable(_))
        ));
    }
    for cut in [3, 30, jpeg.len() / 2, jpeg.len() - 2] {
        let truncated = clean_image_bytes(ImageFormat::Jpeg, &jpeg[..cut]);
        assert!(
            matches!(truncated, Err(MediaError::Unreadable(_))),
            "cut at {cut}: {truncated:?}"
        );
    }
    let png = png_with_metadata(6);
    for cut in [10, 40, png.len() - 5] {
        let truncated = clean_image_bytes(ImageFormat::Png, &png[..cut]);
        assert!(
            matches!(truncated, Err(MediaError::Unreadable(_))),
            "cut at {cut}: {truncated:?}"
        );
    }
    let webp = webp_with_metadata(6);
    let truncated = clean_image_bytes(ImageFormat::Webp, &webp[..webp.len() / 2]);
    assert!(
        matches!(truncated, Err(MediaError::Unreadable(_))),
        "{truncated:?}"
    );
    let preview = preview_jpeg_bytes(b"GIF89a garbage", 100);
    assert!(
        matches!(preview, Err(MediaError::Unreadable(_))),
        "{preview:?}"
    );
}

#[test]
fn previews_fit_the_longest_side_and_are_never_enlarged() {
    let files = Files::new();
    let wide = RgbImage::from_fn(3000, 1000, |x, _| {
        Rgb([u8::try_from(x % 256).unwrap(), 0, 0])
    });
    let input = files.write(
        "wide.png",
        &encode(&DynamicImage::ImageRgb8(wide), image::ImageFormat::Png),
    );
    let preview = preview_jpeg(&input, 1280).unwrap();
    let image = image::load_from_memory_with_format(&preview, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(image.width(), 1280);
    assert!((426..=427).contains(&image.height()), "{}", image.height());

    let small = files.write("small.jpg", &encode_jpeg(&red_blue()));
    let preview = preview_jpeg(&small, 1280).unwrap();
    let image = image::load_from_memory_with_format(&preview, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(image.dimensions(), (40, 20));
}

#[test]
fn previews_of_several_sizes_come_from_one_decoding_and_match_those_made_one_by_one() {
    let files = Files::new();
    let photo = RgbImage::from_fn(2048, 1536, |x, y| {
        Rgb([
            u8::try_from(x % 256).unwrap(),
            u8::try_from(y % 256).unwrap(),
            u8::try_from((x / 8 + y / 8) % 256).unwrap(),
        ])
    });
    let input = files.write("photo.jpg", &encode_jpeg(&photo));
    // Asked smallest first: each comes back in the order asked for.
    let both = previews_jpeg(&input, &[320, 1280]).unwrap();
    assert_eq!(both.len(), 2);
    for (bytes, side) in both.iter().zip([320, 1280]) {
        let together = image::load_from_memory(bytes).unwrap().to_rgb8();
        let alone = image::load_from_memory(&preview_jpeg(&input, side).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!(together.dimensions(), alone.dimensions(), "side {side}");
        assert_eq!(together.width(), side);
        // A thumbnail of the preview averages the same pixels as one of the original, and
        // both what `image`'s own thumbnail does: they differ by rounding and JPEG, never by
        // what they show.
        let reference = DynamicImage::ImageRgb8(photo.clone())
            .thumbnail(side, side)
            .to_rgb8();
        for (other, what) in [(&alone, "made alone"), (&reference, "image's thumbnail")] {
            let difference = mean_difference(&together, other);
            assert!(
                difference < 6.0,
                "side {side}, against {what}: {difference}"
            );
        }
    }
    assert!(matches!(
        previews_jpeg(&files.write("bad.jpg", b"\xFF\xD8 garbage"), &[320, 1280]),
        Err(MediaError::Unreadable(_))
    ));
}

#[test]
fn a_preview_keeps_its_photos_colour_profile_and_a_grey_photo_stays_grey() {
    // A wide-gamut phone photo shown without its profile looks washed out.
    let profile: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut photo = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut photo, 95);
    encoder.set_icc_profile(profile.clone()).unwrap();
    let big = RgbImage::from_fn(1600, 1200, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    encoder
        .write_image(big.as_raw(), 1600, 1200, image::ExtendedColorType::Rgb8)
        .unwrap();
    let preview = preview_jpeg_bytes(&photo, 320).unwrap();
    let mut decoder =
        image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&preview)).unwrap();
    use image::ImageDecoder as _;
    assert_eq!(decoder.icc_profile().unwrap(), Some(profile));
    assert_eq!(decoder.dimensions(), (320, 240));

    let grey = image::GrayImage::from_fn(900, 300, |x, _| image::Luma([(x % 256) as u8]));
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 95)
        .write_image(grey.as_raw(), 900, 300, image::ExtendedColorType::L8)
        .unwrap();
    let preview = image::load_from_memory(&preview_jpeg_bytes(&bytes, 300).unwrap()).unwrap();
    assert_eq!(preview.color(), image::ColorType::L8);
    assert_eq!(preview.dimensions(), (300, 100));
}

/// The mean difference of two images' channels (0–255).
fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// The nice value of the calling thread, from `/proc` (field 19 of its `stat`).
fn thread_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The command name may hold spaces; the fields after it are plain.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

#[tokio::test]
async fn photo_work_runs_on_a_thread_less_favoured_than_requests() {
    let ours = thread_nice();
    let theirs = in_background(thread_nice).await.unwrap();
    assert_eq!(theirs, (ours + BACKGROUND_NICE).min(19));
    assert_eq!(
        thread_nice(),
        ours,
        "the caller's own priority is unchanged"
    );
    // Work that panics gives an error, not a hung request.
    let failed = in_background(|| -> u32 { panic!("a decoder bug") }).await;
    assert!(failed.is_err());
}

#[test]
fn a_transparent_image_previews_on_white() {
    let clear = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
    let png = encode(&DynamicImage::ImageRgba8(clear), image::ImageFormat::Png);
    let preview = preview_jpeg_bytes(&png, 100).unwrap();
    let image = image::load_from_memory(&preview).unwrap().to_rgb8();
    assert!(image.get_pixel(5, 5).0.iter().all(|&c| c > 240));
}

// ---------------------------------------------------------------------------------------------
// Text

#[test]
fn shift_jis_text_decodes() {
    let (bytes, _, errors) = encoding_rs::SHIFT_JIS.encode("褥瘡の写真");
    assert!(!errors);
    assert!(std::str::from_utf8(&bytes).is_err());
    assert_eq!(plain_text(&bytes, 100), "褥瘡の写真");
}

#[test]
fn utf8_with_a_bom_decodes_without_it() {
    assert_eq!(
        plain_text("\u{feff}褥瘡の写真".as_bytes(), 100),
        "褥瘡の写真"
    );
}

#[test]
fn half_width_katakana_become_full_width_and_text_is_capped() {
    assert_eq!(plain_text("ｶﾅ ｹｱﾌﾟﾗﾝ".as_bytes(), 100), "カナ ケアプラン");
    assert_eq!(plain_text("ＡＢＣ１２３".as_bytes(), 4), "ABC1");
}

#[test]
fn undecodable_bytes_are_replaced_not_refused() {
    // Not UTF-8, not Shift_JIS (0xFF is never a Shift_JIS lead byte).
    let text = plain_text(b"abc\xFF\xFEdef", 100);
    assert!(text.starts_with("abc") && text.ends_with("def"), "{text}");
}

#[tokio::test]
async fn the_text_of_a_pdf_is_extracted() {
    let tool = require_pdftotext();
    let files = Files::new();
    let font = ["<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned()];
    let input = files.write("ascii.pdf", &one_page_pdf(&font, "(Musubi 123)"));
    let text = pdf_text_with(&tool, &input, Duration::from_secs(30), 1000)
        .await
        .unwrap();
    assert!(text.contains("Musubi 123"), "{text:?}");
    assert!(!text.contains('\u{c}'), "page breaks become newlines");

    let capped = pdf_text_with(&tool, &input, Duration::from_secs(30), 6)
        .await
        .unwrap();
    assert_eq!(capped, "Musubi");
}

#[tokio::test]
async fn japanese_text_in_a_font_that_is_not_embedded_is_extracted() {
    let tool = require_pdftotext();
    let files = Files::new();
    // A Type0 font with a CID font of Adobe-Japan1, not embedded: pdftotext maps the text
    // through poppler-data's CMaps.
    let font = [
        "<< /Type /Font /Subtype /Type0 /BaseFont /KozMinPr6N-Regular \
         /Encoding /UniJIS-UCS2-H /DescendantFonts [6 0 R] >>"
            .to_owned(),
        "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /KozMinPr6N-Regular \
         /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 6 >> \
         /FontDescriptor 7 0 R /DW 1000 >>"
            .to_owned(),
        "<< /Type /FontDescriptor /FontName /KozMinPr6N-Regular /Flags 6 \
         /FontBBox [-437 -340 1147 1317] /ItalicAngle 0 /Ascent 1317 /Descent -349 \
         /CapHeight 742 /StemV 80 >>"
            .to_owned(),
    ];
    // 褥瘡 in UCS-2 big-endian.
    let input = files.write("japanese.pdf", &one_page_pdf(&font, "<89257621>"));
    let text = pdf_text_with(&tool, &input, Duration::from_secs(30), 1000)
        .await
        .unwrap();
    assert!(
        text.contains("褥瘡"),
        "{text:?} (is poppler-data installed? /usr/share/poppler/cMap)"
    );
}

#[tokio::test]
async fn a_damaged_pdf_is_unreadable() {
    let tool = require_pdftotext();
    let files = Files::new();
    let input = files.write("damaged.pdf", b"%PDF-1.4\nnothing here");
    let result = pdf_text_with(&tool, &input, Duration::from_secs(30), 1000).await;
    assert!(
        matches!(result, Err(MediaError::Unreadable(_))),
        "{result:?}"
    );
}

/// Runs `f` again while the freshly written tool is still held open by a process another test
/// thread is starting (ETXTBSY).
async fn retry_busy<T, F, Fut>(mut f: F) -> Result<T, MediaError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, MediaError>>,
{
    for _ in 0..20 {
        match f().await {
            Err(MediaError::Io(e)) if e.raw_os_error() == Some(26) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
    f().await
}

fn script(files: &Files, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = files.write(name, format!("#!/bin/sh\n{body}\n").as_bytes());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn a_tool_that_hangs_is_stopped_at_the_timeout() {
    let files = Files::new();
    let tool = script(&files, "slow-pdftotext", "exec sleep 10");
    let input = files.write("any.pdf", b"%PDF-1.4\n");
    let start = Instant::now();
    let result = retry_busy(|| pdf_text_with(&tool, &input, Duration::from_millis(300), 100)).await;
    assert!(matches!(result, Err(MediaError::Timeout)), "{result:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_tool_that_writes_too_much_is_cut_off() {
    let files = Files::new();
    let tool = script(&files, "chatty-pdftotext", "exec yes 'ｶﾅ'");
    let input = files.write("any.pdf", b"%PDF-1.4\n");
    let text = retry_busy(|| pdf_text_with(&tool, &input, Duration::from_secs(30), 10))
        .await
        .unwrap();
    assert_eq!(text, "カナ\nカナ\nカナ\nカ");
}

#[tokio::test]
async fn a_heic_photo_becomes_a_clean_jpeg() {
    let (convert, enc) = require_heif_tools();
    let files = Files::new();
    // heif-enc keeps the JPEG's EXIF (GPS, orientation 6) in the HEIC; depending on its version
    // it also turns the orientation into a HEIF transform. heif-convert applies the transform and
    // copies the EXIF along, orientation included: that orientation must not be applied again.
    let source = files.write("source.jpg", &photo_with_exif(6));
    let heic = files.path("photo.heic");
    let status = std::process::Command::new(&enc)
        .arg("-o")
        .arg(&heic)
        .arg(&source)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "heif-enc failed: {status}");
    let output = files.path("photo.jpg");

    heic_to_jpeg_with(&convert, &heic, &output, Duration::from_secs(60))
        .await
        .unwrap();

    let data = std::fs::read(&output).unwrap();
    assert_no_metadata(&data);
    let image = image::load_from_memory_with_format(&data, image::ImageFormat::Jpeg)
        .unwrap()
        .to_rgb8();
    // The picture as libheif shows it: heif-convert's own PNG.
    let reference = files.path("reference.png");
    let status = std::process::Command::new(&convert)
        .arg(&heic)
        .arg(&reference)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "heif-convert failed: {status}");
    let expected = image::open(&reference).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), expected.dimensions());
    let (w, h) = image.dimensions();
    for (x, y) in [(2, 2), (w - 3, h - 3)] {
        let (got, want) = (*image.get_pixel(x, y), *expected.get_pixel(x, y));
        assert!(
            (is_red(got) && is_red(want)) || (is_blue(got) && is_blue(want)),
            "at {x},{y}: {got:?}, libheif shows {want:?}"
        );
    }
    // No intermediate file is left next to the output.
    let left: Vec<_> = std::fs::read_dir(files.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".musubi-heic-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_file_heif_convert_cannot_read_is_unreadable() {
    let (convert, _) = require_heif_tools();
    let files = Files::new();
    let input = files.write("broken.heic", b"\0\0\0\x18ftypheic not really");
    let result = heic_to_jpeg_with(
        &convert,
        &input,
        &files.path("out.jpg"),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        matches!(result, Err(MediaError::Unreadable(_))),
        "{result:?}"
    );
}
