// What is drawn over the photo: the face box and the five landmarks, in the
// photo's own pixel coordinates (the SVG's viewBox is the photo's natural
// size, so the browser scales box and photo together).
import type { Face } from "./types";

export const LANDMARK_NAMES = ["left eye", "right eye", "nose", "left mouth corner", "right mouth corner"] as const;

export interface Overlay {
  viewBox: string;
  box: { x: number; y: number; width: number; height: number };
  landmarks: { cx: number; cy: number; r: number; name: string }[];
  stroke: number;
  label: string;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/**
 * The overlay for `face` on a photo of `width` x `height` pixels. The box is
 * clipped to the photo; stroke and dot sizes follow the photo's size so they
 * look the same on a 200 px and a 4000 px photo.
 */
export function faceOverlay(face: Face, width: number, height: number): Overlay {
  if (!(width > 0 && height > 0)) throw new Error(`photo size ${width}x${height} is not positive`);
  const [x1, y1, x2, y2] = face.box;
  const left = clamp(Math.min(x1, x2), 0, width);
  const top = clamp(Math.min(y1, y2), 0, height);
  const right = clamp(Math.max(x1, x2), 0, width);
  const bottom = clamp(Math.max(y1, y2), 0, height);
  const side = Math.max(width, height);
  const stroke = Math.max(1.5, side / 250);
  return {
    viewBox: `0 0 ${width} ${height}`,
    box: { x: left, y: top, width: right - left, height: bottom - top },
    landmarks: face.landmarks.slice(0, 5).map(([cx, cy], i) => ({ cx, cy, r: stroke * 1.6, name: LANDMARK_NAMES[i] })),
    stroke,
    label: `face ${Math.round(face.score * 100)}%`,
  };
}

/** The box in CSS pixels of a photo displayed at `shownWidth` x `shownHeight`. */
export function boxOnScreen(face: Face, width: number, height: number, shownWidth: number, shownHeight: number) {
  const o = faceOverlay(face, width, height);
  const sx = shownWidth / width;
  const sy = shownHeight / height;
  return { x: o.box.x * sx, y: o.box.y * sy, width: o.box.width * sx, height: o.box.height * sy };
}
