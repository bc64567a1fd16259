//! Image decoding shared by the ML services.
//!
//! The dimensions are read from the header first and checked, so a 60 KB
//! PNG claiming 60000x60000 pixels is refused before a 10 GiB buffer is
//! allocated; `image::Limits` then caps the decoder itself as a second line.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, RgbImage};

use crate::error::{Error, Result};

/// What a decodable image may be.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Longest accepted side.
    pub max_side: u32,
    /// Largest accepted width x height.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_side: 8192,
            max_pixels: 40_000_000,
        }
    }
}

/// The format of `bytes`, from their magic number, if JPEG, PNG or WebP.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => Some(f),
        _ => None,
    }
}

/// Width and height from the header, without decoding pixels.
///
/// # Errors
///
/// [`Error::ImageDecode`] when the bytes are not a readable JPEG/PNG/WebP header.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32)> {
    let format =
        sniff(bytes).ok_or_else(|| Error::ImageDecode("not a jpeg, png or webp file".into()))?;
    ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| Error::ImageDecode(e.to_string()))
}

/// Whether a JPEG ends with its end-of-image marker (FF D9).
///
/// The JPEG decoder pads a truncated file with grey and succeeds, so a
/// half-uploaded photo would be scored as a different image. A few bytes of
/// padding after the marker (some cameras add them) are tolerated.
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

/// Decodes `bytes` to RGB8 after checking the header against `limits`.
///
/// # Errors
///
/// [`Error::ImageTooLarge`] when the header exceeds `limits`;
/// [`Error::ImageDecode`] when the bytes are not a complete JPEG/PNG/WebP.
pub fn decode(bytes: &[u8], limits: ImageLimits) -> Result<RgbImage> {
    let (width, height) = dimensions(bytes)?;
    if width.max(height) > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(Error::ImageTooLarge {
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    let format =
        sniff(bytes).ok_or_else(|| Error::ImageDecode("not a jpeg, png or webp file".into()))?;
    if format == ImageFormat::Jpeg && !has_jpeg_end(bytes) {
        return Err(Error::ImageDecode(
            "jpeg is truncated (no end-of-image marker)".into(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut caps = image::Limits::default();
    caps.max_image_width = Some(limits.max_side);
    caps.max_image_height = Some(limits.max_side);
    // RGBA16 is the widest buffer these decoders produce: 8 bytes a pixel.
    caps.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(caps);
    let image = reader
        .decode()
        .map_err(|e| Error::ImageDecode(e.to_string()))?;
    Ok(image.to_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::png_header;

    #[test]
    fn huge_png_header_is_refused_before_decoding() {
        let err = decode(&png_header(60000, 60000), ImageLimits::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::ImageTooLarge {
                    width: 60000,
                    height: 60000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn small_png_round_trips() {
        let img = RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3]));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let back = decode(&png, ImageLimits::default()).unwrap();
        assert_eq!(back, img);
    }

    #[test]
    fn garbage_and_truncation_are_decode_errors() {
        assert!(matches!(
            decode(b"hello", ImageLimits::default()),
            Err(Error::ImageDecode(_))
        ));
        let img = RgbImage::from_pixel(64, 64, image::Rgb([9, 9, 9]));
        let mut png = Vec::new();
        img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        png.truncate(png.len() / 2);
        assert!(matches!(
            decode(&png, ImageLimits::default()),
            Err(Error::ImageDecode(_))
        ));
    }
}
