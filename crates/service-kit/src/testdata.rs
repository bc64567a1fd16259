//! Inputs for tests of the services (and their own unit tests): hostile
//! images that are cheap to make. Compiled only for tests (feature `testing`).

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG whose IHDR claims `w`x`h` 8-bit RGB, followed by a tiny IDAT and
/// IEND: a few dozen bytes that would decode to `w * h * 3` bytes of pixels.
pub fn png_header(w: u32, h: u32) -> Vec<u8> {
    png_header_with(w, h, 8, 2)
}

/// Like [`png_header`] with the IHDR's `bit_depth` and `color_type`
/// (2 RGB, 6 RGBA, 0 grey, ...): `png_header_with(6300, 6300, 16, 6)` is the
/// 16-bit RGBA image that decodes to 8 bytes a pixel.
pub fn png_header_with(w: u32, h: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut v, b"IHDR", &ihdr);
    chunk(
        &mut v,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut v, b"IEND", &[]);
    v
}

/// A complete, valid 64x64 grey JPEG whose frame header is rewritten to
/// declare `w`x`h`: about a kilobyte, with its end-of-image marker, that a
/// lenient decoder turns into a `w`x`h` grey canvas.
pub fn jpeg_forged_size(w: u16, h: u16) -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, 128])
    });
    let mut jpg = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut jpg),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    let sof = jpg
        .windows(2)
        .position(|m| m == [0xff, 0xc0])
        .expect("baseline frame header");
    // FF C0, length (2), precision (1), height (2), width (2)
    jpg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpg
}
