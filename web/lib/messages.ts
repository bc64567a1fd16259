// Friendly words for every error the API can return (docs/services.md).
import type { ApiError } from "./types";

const MESSAGES: Record<string, string> = {
  no_face: "We couldn't find a face in this photo. Try one where your face is clearly visible, facing the camera, in good light.",
  payload_too_large: "This photo is too large. Please choose one under 10 MB.",
  image_too_large: "This photo has too many pixels. Please choose a smaller one (at most 8192 pixels on a side).",
  unsupported_content_type: "This file type isn't supported. Please choose a JPEG, PNG or WebP photo.",
  invalid_image: "This file couldn't be read as a photo. It may be damaged or incomplete; please try another.",
  missing_image: "Please choose a photo first.",
  invalid_body: "The upload was interrupted. Please try again.",
  invalid_user_id: "The user id must be 1 to 128 printable characters.",
  unknown_user: "No photo has been scored for this user id yet, so there is nobody to compare with.",
  similarity_disabled: "Finding similar users is not enabled on this server.",
  upstream_unavailable: "Part of the scoring system is not available right now. Please try again in a minute.",
  scoring_unavailable: "The scoring service is not reachable right now. Please try again in a minute.",
  upstream_error: "The scoring system had a problem with this photo. Please try again.",
  timeout: "Scoring took too long. Please try again.",
  unauthorized: "The frontend could not sign in to the scoring service. Please tell the operators.",
  misconfigured: "The site is misconfigured. Please tell the operators.",
  network: "Your connection seems to be offline. Check it and try again.",
};

export function friendlyMessage(status: number, body: unknown): string {
  const code = (body as ApiError | undefined)?.error?.code;
  if (code && MESSAGES[code]) return MESSAGES[code];
  if (status === 413) return MESSAGES.payload_too_large;
  if (status === 415) return MESSAGES.unsupported_content_type;
  if (status >= 500 || status === 0) return MESSAGES.scoring_unavailable;
  return "Something went wrong. Please try again.";
}

export { MESSAGES };
