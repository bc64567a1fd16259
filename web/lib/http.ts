// JSON answers of the route handlers, with the security headers and the
// services' error shape {"error":{"code","message"}}.
import { log } from "./log";

/** CSP for JSON answers: nothing may be loaded or framed. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** True when the request reached us over TLS (directly or through a proxy that says so). */
export function overTls(req: Request): boolean {
  const proto = req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  if (proto) return proto === "https";
  return new URL(req.url).protocol === "https:";
}

export const HSTS = "max-age=63072000; includeSubDomains";

export function securityHeaders(req: Request | undefined, csp: string): Record<string, string> {
  const h: Record<string, string> = {
    "content-security-policy": csp,
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "cache-control": "no-store",
  };
  if (req && overTls(req)) h["strict-transport-security"] = HSTS;
  return h;
}

export function json(req: Request | undefined, status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...securityHeaders(req, API_CSP) },
  });
}

export function apiError(req: Request | undefined, status: number, code: string, message: string): Response {
  return json(req, status, { error: { code, message } });
}

/** Logs one finished request (method, path, status, duration) as a JSON line. */
export function logRequest(req: Request, status: number, started: number, fields: Record<string, unknown> = {}): void {
  const url = new URL(req.url);
  log(status >= 500 ? "error" : "info", "request", {
    method: req.method,
    path: url.pathname,
    status,
    duration_ms: Math.round((performance.now() - started) * 10) / 10,
    ...fields,
  });
}
