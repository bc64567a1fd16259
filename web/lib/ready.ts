// GET /api/health and GET /api/ready, shaped like the Rust services' answers.
import { scoringUrl, upstreamHeaders } from "./config";
import { json } from "./http";

export function handleHealth(req: Request): Response {
  return json(req, 200, { status: "ok" });
}

/** Ready when scoring answers its liveness route within 2 s. */
export async function handleReady(req: Request): Promise<Response> {
  let ok = false;
  let detail = "";
  try {
    let headers: Record<string, string> = {};
    try {
      headers = upstreamHeaders();
    } catch (e) {
      throw new Error(`service token: ${(e as Error).message}`);
    }
    const r = await fetch(scoringUrl() + "/api/health", { headers, signal: AbortSignal.timeout(2000), cache: "no-store" });
    ok = r.status === 200;
    detail = ok ? "" : `scoring: /api/health answered ${r.status}`;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    detail = `scoring: ${err.name === "TimeoutError" ? "timed out" : err.cause?.code || err.message}`;
  }
  const check: Record<string, unknown> = { name: "scoring", ok, required: true };
  if (detail) check.detail = detail;
  return json(req, ok ? 200 : 503, { status: ok ? "ready" : "unavailable", checks: { scoring: check } });
}
