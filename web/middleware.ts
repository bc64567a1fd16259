// A fresh CSP nonce for every page response. Next.js reads the nonce from the
// request's Content-Security-Policy header and puts it on its own <script>
// tags, so scripts need neither 'unsafe-inline' nor 'unsafe-eval'.
// Route handlers (/api/*) set their own, stricter CSP (lib/http.ts).
import { NextResponse, type NextRequest } from "next/server";

export function pageCsp(nonce: string, dev: boolean, tls: boolean): string {
  return [
    "default-src 'self'",
    // 'unsafe-eval' only under `next dev` (React's dev tooling); never in a build.
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${dev ? " 'unsafe-eval'" : ""}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' blob: data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    ...(tls ? ["upgrade-insecure-requests"] : []),
  ].join("; ");
}

export function middleware(req: NextRequest) {
  const nonce = btoa(crypto.randomUUID());
  const proto = req.headers.get("x-forwarded-proto")?.split(",")[0]?.trim() || req.nextUrl.protocol.replace(":", "");
  const tls = proto === "https";
  const csp = pageCsp(nonce, process.env.NODE_ENV === "development", tls);
  const reqHeaders = new Headers(req.headers);
  reqHeaders.set("x-nonce", nonce);
  reqHeaders.set("content-security-policy", csp);
  const res = NextResponse.next({ request: { headers: reqHeaders } });
  res.headers.set("content-security-policy", csp);
  if (tls) res.headers.set("strict-transport-security", "max-age=63072000; includeSubDomains");
  return res;
}

export const config = {
  // Pages only: API routes answer with their own headers, and static assets
  // get the fixed headers from next.config.mjs.
  matcher: [{ source: "/((?!api/|_next/static|_next/image|favicon.ico|icon.svg).*)" }],
};
