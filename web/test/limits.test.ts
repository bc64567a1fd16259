import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes, readLimited, sniffImageType, TooLarge, validUserId } from "../lib/limits";
import { friendlyMessage, MESSAGES } from "../lib/messages";

const bytes = (...b: number[]) => new Uint8Array(b);
const stream = (chunks: Uint8Array[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const x of chunks) c.enqueue(x);
      c.close();
    },
  });

test("types are told from the bytes, not the name", () => {
  assert.equal(sniffImageType(bytes(0xff, 0xd8, 0xff, 0xe0)), "image/jpeg");
  assert.equal(sniffImageType(bytes(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)), "image/png");
  assert.equal(sniffImageType(new TextEncoder().encode("RIFF\0\0\0\0WEBPVP8 ")), "image/webp");
  assert.equal(sniffImageType(new TextEncoder().encode("hello, this is text")), null);
  assert.equal(sniffImageType(new TextEncoder().encode("RIFF\0\0\0\0WAVEfmt ")), null);
  assert.equal(sniffImageType(bytes()), null);
});

test("readLimited returns the whole body under the limit", async () => {
  const got = await readLimited(stream([bytes(1, 2), bytes(3)]), 3);
  assert.deepEqual([...got], [1, 2, 3]);
  assert.equal((await readLimited(null, 3)).length, 0);
});

test("readLimited stops as soon as the limit is passed", async () => {
  await assert.rejects(readLimited(stream([bytes(1, 2), bytes(3, 4)]), 3), TooLarge);
});

test("user ids follow scoring's rule", () => {
  assert.ok(validUserId("ada"));
  assert.ok(validUserId("x".repeat(128)));
  assert.ok(!validUserId(""));
  assert.ok(!validUserId("x".repeat(129)));
  assert.ok(!validUserId("a\nb"));
});

test("sizes read naturally", () => {
  assert.equal(formatBytes(10 * 1024 * 1024), "10 MB");
  assert.equal(formatBytes(20.5 * 1024 * 1024), "20.5 MB");
  assert.equal(formatBytes(2048), "2 KB");
});

test("every error code of the API has its own friendly message", () => {
  for (const code of ["no_face", "payload_too_large", "image_too_large", "unsupported_content_type", "invalid_image",
    "upstream_unavailable", "scoring_unavailable", "timeout", "unknown_user", "similarity_disabled"]) {
    assert.equal(friendlyMessage(400, { error: { code, message: "x" } }), MESSAGES[code], code);
  }
  assert.match(friendlyMessage(0, undefined), /not reachable/);
  assert.match(friendlyMessage(413, "not json"), /too large/);
  assert.match(friendlyMessage(418, {}), /Something went wrong/);
});
