// POST /api/web/score: the browser's upload, checked against the scoring
// service's limits, then forwarded to scoring's POST /api/score.
import { maxUploadBytes, scoringUrl, upstreamHeaders, upstreamTimeoutMs } from "./config";
import { apiError, json, logRequest } from "./http";
import { formatBytes, readLimited, sniffImageType, TooLarge, validUserId } from "./limits";
import { log } from "./log";

/** Room for the multipart boundaries and the userId field around the photo. */
const MULTIPART_OVERHEAD = 64 * 1024;

export async function handleScore(req: Request): Promise<Response> {
  const started = performance.now();
  const res = await score(req);
  logRequest(req, res.status, started);
  return res;
}

async function score(req: Request): Promise<Response> {
  const limit = maxUploadBytes();
  const ctype = req.headers.get("content-type") || "";
  if (!ctype.toLowerCase().startsWith("multipart/form-data")) {
    return apiError(req, 415, "unsupported_content_type", "send the photo as multipart/form-data, field \"image\"");
  }
  const declared = Number(req.headers.get("content-length"));
  const tooLarge = () =>
    apiError(req, 413, "payload_too_large", `the photo is larger than ${formatBytes(limit)}; choose a smaller one`);
  if (Number.isFinite(declared) && declared > limit + MULTIPART_OVERHEAD) return tooLarge();

  let form: FormData;
  try {
    const body = await readLimited(req.body, limit + MULTIPART_OVERHEAD);
    form = await new Response(body, { headers: { "content-type": ctype } }).formData();
  } catch (e) {
    if (e instanceof TooLarge) return tooLarge();
    return apiError(req, 400, "invalid_body", "the upload could not be read; try again");
  }

  const image = form.get("image");
  if (!(image instanceof Blob) || image.size === 0) {
    return apiError(req, 400, "missing_image", "no photo in the upload (form field \"image\")");
  }
  if (image.size > limit) return tooLarge();
  const bytes = new Uint8Array(await image.arrayBuffer());
  const type = sniffImageType(bytes);
  if (!type) {
    return apiError(req, 415, "unsupported_content_type", "this file is not a JPEG, PNG or WebP photo");
  }
  const userIdField = form.get("userId");
  const userId = typeof userIdField === "string" ? userIdField.trim() : "";
  if (userId && !validUserId(userId)) {
    return apiError(req, 400, "invalid_user_id", "the user id must be 1 to 128 printable characters");
  }

  const out = new FormData();
  out.append("image", new Blob([bytes], { type }), "photo");
  if (userId) out.append("userId", userId);
  return forward(req, "/api/score", { method: "POST", body: out });
}

/**
 * Calls scoring and hands its JSON answer (success or the services' error
 * shape) back unchanged; an unreachable or non-JSON scoring becomes a 503/502
 * in the same shape.
 */
export async function forward(req: Request, path: string, init: RequestInit): Promise<Response> {
  let headers: Record<string, string>;
  try {
    headers = upstreamHeaders();
  } catch (e) {
    log("error", "service token unreadable", { error: String(e) });
    return apiError(req, 500, "misconfigured", "the frontend is misconfigured; please tell the operators");
  }
  let upstream: Response;
  try {
    upstream = await fetch(scoringUrl() + path, {
      ...init,
      headers: { ...headers, accept: "application/json" },
      signal: AbortSignal.timeout(upstreamTimeoutMs()),
      cache: "no-store",
    });
  } catch (e) {
    log("warn", "scoring unreachable", { path, error: String((e as Error)?.cause ?? e) });
    return apiError(req, 503, "scoring_unavailable", "the scoring service is not reachable right now; try again in a moment");
  }
  const text = await upstream.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    log("warn", "scoring answered non-JSON", { path, status: upstream.status });
    return apiError(req, 502, "upstream_error", "the scoring service gave an unexpected answer; try again");
  }
  return json(req, upstream.status, body);
}
