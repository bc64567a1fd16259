// Server-side configuration, read from the environment at request time (so a
// test can change it, and a rotated token file is picked up without restart).
import { readFileSync } from "node:fs";

/** The scoring service's base URL, without a trailing slash. */
export function scoringUrl(): string {
  return (process.env.SCORING_SERVICE_URL || "http://scoring:3000").replace(/\/+$/, "");
}

/** Largest accepted photo, the scoring service's MAX_BODY_BYTES default (10 MiB). */
export function maxUploadBytes(): number {
  const v = Number(process.env.MAX_UPLOAD_BYTES);
  return Number.isFinite(v) && v > 0 ? v : 10 * 1024 * 1024;
}

/** Milliseconds a call to scoring may take before the page is told it is down. */
export function upstreamTimeoutMs(): number {
  const v = Number(process.env.UPSTREAM_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : 30000;
}

/**
 * The shared service token (contract 1): the contents of SERVICE_TOKEN_FILE,
 * surrounding whitespace trimmed; undefined when the variable is unset.
 * An unreadable or empty file is an error (never silently unauthenticated).
 */
export function serviceToken(): string | undefined {
  const file = process.env.SERVICE_TOKEN_FILE;
  if (!file) return undefined;
  const token = readFileSync(file, "utf8").trim();
  if (!token) throw new Error(`SERVICE_TOKEN_FILE ${file} is empty`);
  return token;
}

/** Headers for a request to scoring: the bearer token when configured. */
export function upstreamHeaders(): Record<string, string> {
  const token = serviceToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}
