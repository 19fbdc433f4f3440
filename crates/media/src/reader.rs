//! Bounds-checked reading of container formats: every read past the end is an
//! [`MediaError::Unreadable`], never a panic.

use crate::MediaError;

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The format, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader {
            bytes,
            pos: 0,
            what,
        }
    }

    pub(crate) fn error(&self, message: &str) -> MediaError {
        MediaError::Unreadable(format!("{}: {message}", self.what))
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.error("unexpected end of file"))?;
        let out = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.error("unexpected end of file"))?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], MediaError> {
        let slice = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, MediaError> {
        let [b] = self.array()?;
        Ok(b)
    }

    pub(crate) fn u16_be(&mut self) -> Result<u16, MediaError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16_le(&mut self) -> Result<u16, MediaError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32_be(&mut self) -> Result<u32, MediaError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32_le(&mut self) -> Result<u32, MediaError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Everything from the current position on.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        self.take(n).map(|_| ())
    }
}

/// The orientation in an EXIF block (TIFF data, with or without the `Exif\0\0` prefix some
/// writers put in PNG and WebP too); `None` when absent or invalid.
pub(crate) fn exif_orientation(exif: &[u8]) -> Option<image::metadata::Orientation> {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    image::metadata::Orientation::from_exif_chunk(tiff)
}
