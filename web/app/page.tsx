import { headers } from "next/headers";
import Scorer from "./scorer";

// Rendered per request: every response carries a fresh CSP nonce (middleware.ts).
export const dynamic = "force-dynamic";

export default async function Page() {
  await headers();
  return (
    <>
      <a className="skip" href="#main">Skip to the scorer</a>
      <header className="top">
        <div className="brand">
          <svg aria-hidden="true" width="28" height="28" viewBox="0 0 32 32"><circle cx="16" cy="16" r="13" fill="none" stroke="currentColor" strokeWidth="3" /><circle cx="16" cy="16" r="5" fill="currentColor" /></svg>
          <span>Aurum Circle</span>
        </div>
      </header>
      <main id="main">
        <section className="intro">
          <h1>How does your photo score?</h1>
          <p>Choose a face photo, or take one with your camera. We find the face, measure five qualities and tell you how it compares with every photo scored so far.</p>
        </section>
        <Scorer />
      </main>
      <footer className="foot">
        <p>Photos are sent to the scoring service only to compute the score; results are cached by the photo&rsquo;s fingerprint for a day. Models: InsightFace SCRFD and ArcFace (non-commercial research licence).</p>
      </footer>
    </>
  );
}
