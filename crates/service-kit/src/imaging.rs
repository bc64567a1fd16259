//! Image decoding shared by the ML services.
//!
//! Everything that decides whether an image may be decoded is read from its
//! header first ([`check`]), so nothing large is allocated for a hostile
//! upload:
//!
//! - the side and pixel limits (a 60 KB PNG claiming 60000x60000 pixels);
//! - the decoded-bytes budget, counting the decoder's own buffer at the
//!   image's bit depth and channel count plus the RGB8 copy the models need
//!   (a 301 KB 6300x6300 RGBA16 PNG would cost 437 MB);
//! - for JPEG, that the file is long enough to hold the scan data of an image
//!   of the declared size (a 21 KB JPEG declaring 8000x5000 would otherwise be
//!   decoded as grey padding), and that it ends with its end-of-image marker.
//!
//! `image::Limits` then caps the decoder itself as a second line.

use std::io::Cursor;

use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::error::{Error, Result};

/// What a decodable image may be.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Longest accepted side.
    pub max_side: u32,
    /// Largest accepted width x height.
    pub max_pixels: u64,
    /// Most bytes decoding one image may allocate: the decoder's buffer
    /// (width x height x channels x bytes per channel) plus the RGB8 copy.
    pub max_decoded_bytes: u64,
}

/// Default of [`ImageLimits::max_decoded_bytes`]: 160 MiB, enough for an
/// 8-bit RGB image at the 40-megapixel default (120 MB).
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 160 * 1024 * 1024;

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_side: 8192,
            max_pixels: 40_000_000,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

/// What [`check`] read from an acceptable header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The container format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The decoder's pixel layout (channels and bit depth).
    pub color: ColorType,
    /// Bytes decoding will allocate: decoder buffer plus RGB8 copy.
    pub decoded_bytes: u64,
}

/// The format of `bytes`, from their magic number, if JPEG, PNG or WebP.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => Some(f),
        _ => None,
    }
}

fn format_of(bytes: &[u8]) -> Result<ImageFormat> {
    sniff(bytes).ok_or_else(|| Error::ImageDecode("not a jpeg, png or webp file".into()))
}

/// Width and height from the header, without decoding pixels.
///
/// # Errors
///
/// [`Error::ImageDecode`] when the bytes are not a readable JPEG/PNG/WebP header.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32)> {
    ImageReader::with_format(Cursor::new(bytes), format_of(bytes)?)
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

/// The fewest bytes a complete Huffman-coded JPEG of `width` x `height` can
/// have: its full-resolution component has ceil(w/8) x ceil(h/8) blocks and
/// each needs at least one bit (its DC code) in every mode the decoder
/// supports (arithmetic coding is refused by the decoder).
pub fn jpeg_min_bytes(width: u32, height: u32) -> u64 {
    let blocks = u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8));
    blocks.div_ceil(8)
}

fn bytes_per_pixel(color: ColorType) -> u64 {
    u64::from(color.bytes_per_pixel())
}

/// Checks `bytes` against `limits` from the header alone: format, side and
/// pixel limits, decoded-bytes budget, and for JPEG the end marker and the
/// least scan data an image of the declared size needs.
///
/// This is the function the image-header fuzz target drives: it must never
/// panic nor allocate in proportion to the declared size.
///
/// # Errors
///
/// [`Error::ImageTooLarge`] over the side or pixel limits,
/// [`Error::ImageTooCostly`] over the decoded-bytes budget,
/// [`Error::ImageDecode`] when the header is unreadable or the JPEG is
/// truncated.
pub fn check(bytes: &[u8], limits: ImageLimits) -> Result<Header> {
    let format = format_of(bytes)?;
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
    let decoder = ImageReader::with_format(Cursor::new(bytes), format)
        .into_decoder()
        .map_err(|e| Error::ImageDecode(e.to_string()))?;
    let color = decoder.color_type();
    let pixels = u64::from(width) * u64::from(height);
    let native = pixels.saturating_mul(bytes_per_pixel(color));
    let copy = if color == ColorType::Rgb8 {
        0
    } else {
        pixels * 3
    };
    let decoded_bytes = native.saturating_add(copy);
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(Error::ImageTooCostly {
            width,
            height,
            color: format!("{color:?}"),
            bytes: decoded_bytes,
            max_bytes: limits.max_decoded_bytes,
        });
    }
    if format == ImageFormat::Jpeg {
        if !has_jpeg_end(bytes) {
            return Err(Error::ImageDecode(
                "jpeg is truncated (no end-of-image marker)".into(),
            ));
        }
        let least = jpeg_min_bytes(width, height);
        if (bytes.len() as u64) < least {
            return Err(Error::ImageDecode(format!(
                "jpeg declares {width}x{height} pixels but is {} bytes, fewer than the {least} its scan data needs at the least: it is truncated or forged",
                bytes.len()
            )));
        }
    }
    Ok(Header {
        format,
        width,
        height,
        color,
        decoded_bytes,
    })
}

/// Decodes `bytes` to RGB8 after [`check`]ing the header against `limits`.
///
/// # Errors
///
/// As [`check`]; [`Error::ImageDecode`] when the bytes are not a complete
/// JPEG/PNG/WebP.
pub fn decode(bytes: &[u8], limits: ImageLimits) -> Result<RgbImage> {
    let header = check(bytes, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), header.format);
    let mut caps = image::Limits::default();
    caps.max_image_width = Some(limits.max_side);
    caps.max_image_height = Some(limits.max_side);
    caps.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(caps);
    let decoder = reader
        .into_decoder()
        .map_err(|e| Error::ImageDecode(e.to_string()))?;
    let image =
        DynamicImage::from_decoder(decoder).map_err(|e| Error::ImageDecode(e.to_string()))?;
    Ok(image.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{jpeg_forged_size, png_header, png_header_with};

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
    fn rgba16_within_pixel_limits_is_over_the_byte_budget() {
        // 6300x6300 is under 40 Mpx, but 16-bit RGBA decodes to 8 bytes a
        // pixel (317 MB) plus the RGB8 copy (119 MB).
        let png = png_header_with(6300, 6300, 16, 6);
        let err = decode(&png, ImageLimits::default()).unwrap_err();
        match err {
            Error::ImageTooCostly { bytes, .. } => assert_eq!(bytes, 6300 * 6300 * 11),
            other => panic!("{other}"),
        }
        // The same size at 8-bit RGB is within budget (fails later, on its
        // tiny fake pixel data, as a decode error).
        let png = png_header_with(6300, 6300, 8, 2);
        assert!(matches!(
            check(&png, ImageLimits::default()),
            Ok(Header {
                color: ColorType::Rgb8,
                ..
            })
        ));
    }

    #[test]
    fn jpeg_declaring_more_pixels_than_its_data_can_hold_is_refused() {
        let forged = jpeg_forged_size(8000, 5000);
        assert!(forged.len() < 21_000, "{}", forged.len());
        assert_eq!(dimensions(&forged).unwrap(), (8000, 5000));
        let err = decode(&forged, ImageLimits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::ImageDecode(m) if m.contains("8000x5000")),
            "{err}"
        );
        assert_eq!(jpeg_min_bytes(8000, 5000), 78_125);
    }

    #[test]
    fn real_photo_passes_the_jpeg_bound() {
        let img = RgbImage::from_fn(640, 480, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut jpg = Vec::new();
        img.write_to(&mut Cursor::new(&mut jpg), ImageFormat::Jpeg)
            .unwrap();
        let back = decode(&jpg, ImageLimits::default()).unwrap();
        assert_eq!(back.dimensions(), (640, 480));
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
