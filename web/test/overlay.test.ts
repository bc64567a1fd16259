import { test } from "node:test";
import assert from "node:assert/strict";
import { boxOnScreen, faceOverlay, LANDMARK_NAMES } from "../lib/overlay";
import type { Face } from "../lib/types";

// yaoming.jpg's face as the detector reports it (docs/services.md).
const face: Face = {
  box: [71.5, 73.3, 177.0, 212.0],
  score: 0.838,
  landmarks: [[104.1, 128.9], [151.7, 130.4], [128.4, 158.6], [106.9, 178.2], [146.3, 179.3]],
};

test("the overlay uses the photo's own pixel coordinates", () => {
  const o = faceOverlay(face, 233, 287);
  assert.equal(o.viewBox, "0 0 233 287");
  assert.deepEqual(o.box, { x: 71.5, y: 73.3, width: 177.0 - 71.5, height: 212.0 - 73.3 });
  assert.equal(o.landmarks.length, 5);
  assert.deepEqual(o.landmarks.map((l) => l.name), [...LANDMARK_NAMES]);
  assert.deepEqual([o.landmarks[2].cx, o.landmarks[2].cy], [128.4, 158.6]);
  assert.equal(o.label, "face 84%");
});

test("a box reaching past the photo is clipped to it", () => {
  const o = faceOverlay({ ...face, box: [-10, -5, 300, 400] }, 233, 287);
  assert.deepEqual(o.box, { x: 0, y: 0, width: 233, height: 287 });
});

test("swapped corners still give a positive box", () => {
  const o = faceOverlay({ ...face, box: [177, 212, 71.5, 73.3] }, 233, 287);
  assert.equal(o.box.x, 71.5);
  assert.ok(o.box.width > 0 && o.box.height > 0);
});

test("strokes follow the photo size so big photos get visible lines", () => {
  assert.equal(faceOverlay(face, 233, 287).stroke, 1.5);
  assert.equal(faceOverlay(face, 4000, 3000).stroke, 16);
});

test("the on-screen box scales with the displayed size", () => {
  const b = boxOnScreen(face, 233, 287, 466, 574);
  assert.deepEqual(b, { x: 143, y: 146.6, width: 211, height: (212.0 - 73.3) * 2 });
});

test("a photo without a size is refused", () => {
  assert.throws(() => faceOverlay(face, 0, 100), /not positive/);
});
