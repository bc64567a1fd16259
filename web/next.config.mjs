// Next.js configuration. `output: "standalone"` makes `next build` write a
// self-contained server (server.js + the node_modules it needs) to
// .next/standalone, which images/frontend.toml packs.
import { staticSecurityHeaders } from "./lib/headers-static.mjs";

/** @type {import('next').NextConfig} */
const nextConfig = {
  output: "standalone",
  poweredByHeader: false,
  reactStrictMode: true,
  // The image's root file system is read-only: no image optimiser cache, no
  // telemetry state. Photos are shown from blob: URLs anyway.
  images: { unoptimized: true },
  // Build only what is here (no tracing up to the Rust workspace).
  outputFileTracingRoot: import.meta.dirname,
  // Traced by default but never loaded here: sharp and its libvips (the image
  // optimiser, turned off above; 19 MB) and TypeScript (only for a
  // next.config.ts; 9 MB). Keeps them out of .next/standalone and the image.
  outputFileTracingExcludes: {
    "*": ["node_modules/sharp/**", "node_modules/@img/**", "node_modules/typescript/**"],
  },
  async headers() {
    // Every response, static files included. The CSP itself is set per
    // response (middleware for pages, lib/http.ts for route handlers) because
    // pages need a fresh nonce.
    return [{ source: "/:path*", headers: staticSecurityHeaders }];
  },
};

export default nextConfig;
