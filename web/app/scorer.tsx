"use client";

import { useCallback, useEffect, useId, useRef, useState } from "react";
import { friendlyMessage } from "../lib/messages";
import { faceOverlay, LANDMARK_NAMES } from "../lib/overlay";
import { ACCEPTED_TYPES, formatBytes } from "../lib/limits";
import type { ScoreResult, SimilarResult } from "../lib/types";
import { uploadPhoto } from "../lib/upload";

const MAX_BYTES = 10 * 1024 * 1024;

const COMPONENTS: { key: string; label: string; hint: string }[] = [
  { key: "detection", label: "Face clarity", hint: "how sure the detector is that this is a face" },
  { key: "size", label: "Face size", hint: "how much of the photo the face fills" },
  { key: "frontality", label: "Facing the camera", hint: "head turned or tilted lowers it" },
  { key: "symmetry", label: "Symmetry", hint: "balance of eyes, nose and mouth" },
  { key: "sharpness", label: "Sharpness", hint: "focus and detail on the face" },
];

type Phase =
  | { kind: "idle" }
  | { kind: "uploading"; progress: number }
  | { kind: "scoring" }
  | { kind: "done"; result: ScoreResult }
  | { kind: "error"; message: string };

type Similar = { kind: "none" } | { kind: "loading" } | { kind: "list"; data: SimilarResult } | { kind: "note"; message: string };

/** Cosine similarity of two face embeddings, in words (below 0.2: different people). */
function similarityText(sim: number): string {
  if (sim < 0.2) return `not alike (${sim.toFixed(2)})`;
  return `${Math.round(sim * 100)}% alike`;
}

function verdict(score: number): string {
  if (score >= 85) return "Outstanding photo";
  if (score >= 70) return "Great photo";
  if (score >= 55) return "Good photo";
  if (score >= 40) return "Fair photo";
  return "This photo could be better";
}

export default function Scorer() {
  const [phase, setPhase] = useState<Phase>({ kind: "idle" });
  const [photoUrl, setPhotoUrl] = useState<string | null>(null);
  const [fileName, setFileName] = useState("");
  const [natural, setNatural] = useState<{ w: number; h: number } | null>(null);
  const [userId, setUserId] = useState("");
  const [dragging, setDragging] = useState(false);
  const [similar, setSimilar] = useState<Similar>({ kind: "none" });
  const resultHeading = useRef<HTMLHeadingElement>(null);
  const errorBox = useRef<HTMLDivElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const ids = useId();

  useEffect(() => () => { if (photoUrl) URL.revokeObjectURL(photoUrl); }, [photoUrl]);

  useEffect(() => {
    if (phase.kind === "done") resultHeading.current?.focus();
    if (phase.kind === "error") errorBox.current?.focus();
  }, [phase.kind]);

  // A failed upload shows no photo: the result card goes back to its placeholder.
  const fail = (message: string) => {
    setPhotoUrl((old) => {
      if (old) URL.revokeObjectURL(old);
      return null;
    });
    setPhase({ kind: "error", message });
  };

  const start = useCallback(
    async (file: File) => {
      setSimilar({ kind: "none" });
      setNatural(null);
      setFileName(file.name);
      setPhotoUrl((old) => {
        if (old) URL.revokeObjectURL(old);
        return null;
      });
      if (file.type && !(ACCEPTED_TYPES as readonly string[]).includes(file.type)) {
        return fail(`“${file.name}” is not a photo we can read. Please choose a JPEG, PNG or WebP photo.`);
      }
      if (file.size > MAX_BYTES) {
        return fail(`“${file.name}” is ${formatBytes(file.size)}; photos can be at most ${formatBytes(MAX_BYTES)}. Please choose a smaller one.`);
      }
      setPhotoUrl(URL.createObjectURL(file));
      setPhase({ kind: "uploading", progress: 0 });
      const id = userId.trim();
      const answer = await uploadPhoto(file, id, (p) =>
        setPhase((ph) => (ph.kind === "uploading" ? (p >= 1 ? { kind: "scoring" } : { kind: "uploading", progress: p }) : ph)),
      );
      if (answer.status !== 200) return fail(friendlyMessage(answer.status, answer.body));
      const result = answer.body as ScoreResult;
      setPhase({ kind: "done", result });
      if (id) {
        setSimilar({ kind: "loading" });
        try {
          const r = await fetch(`/api/web/similar/${encodeURIComponent(id)}?limit=5`);
          const body = await r.json().catch(() => undefined);
          if (r.ok) setSimilar({ kind: "list", data: body as SimilarResult });
          else setSimilar({ kind: "note", message: friendlyMessage(r.status, body) });
        } catch {
          setSimilar({ kind: "note", message: friendlyMessage(0, undefined) });
        }
      }
    },
    [userId],
  );

  const onFiles = (files: FileList | null) => {
    const f = files?.[0];
    if (f) void start(f);
  };

  const busy = phase.kind === "uploading" || phase.kind === "scoring";
  const result = phase.kind === "done" ? phase.result : null;
  const overlay = result && natural ? faceOverlay(result.face, natural.w, natural.h) : null;

  return (
    <div className="scorer">
      <section className="card upload" aria-labelledby={`${ids}-up`}>
        <h2 id={`${ids}-up`}>1 · Your photo</h2>
        <div
          className={`drop${dragging ? " over" : ""}${busy ? " busy" : ""}`}
          onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
          onDragLeave={() => setDragging(false)}
          onDrop={(e) => { e.preventDefault(); setDragging(false); if (!busy) onFiles(e.dataTransfer.files); }}
        >
          <svg aria-hidden="true" className="drop-icon" viewBox="0 0 48 48" width="48" height="48"><path d="M24 32V12m0 0-8 8m8-8 8 8" fill="none" stroke="currentColor" strokeWidth="3" strokeLinecap="round" strokeLinejoin="round"/><path d="M10 30v6a4 4 0 0 0 4 4h20a4 4 0 0 0 4-4v-6" fill="none" stroke="currentColor" strokeWidth="3" strokeLinecap="round"/></svg>
          <p className="drop-text">Drop a face photo here</p>
          <div className="buttons">
            <label className="button primary" htmlFor="photo">
              Choose a photo
            </label>
            <input
              id="photo"
              ref={fileInput}
              className="visually-hidden-input"
              type="file"
              accept={ACCEPTED_TYPES.join(",")}
              disabled={busy}
              aria-describedby={`${ids}-limits`}
              onChange={(e) => { onFiles(e.target.files); e.target.value = ""; }}
            />
            <label className="button" htmlFor="camera">
              Take a photo
            </label>
            <input
              id="camera"
              className="visually-hidden-input"
              type="file"
              accept="image/*"
              capture="user"
              disabled={busy}
              aria-describedby={`${ids}-limits`}
              onChange={(e) => { onFiles(e.target.files); e.target.value = ""; }}
            />
          </div>
          <p className="limits" id={`${ids}-limits`}>JPEG, PNG or WebP, up to 10 MB.</p>
        </div>
        <div className="field">
          <label htmlFor="user-id">User id <span className="optional">(optional)</span></label>
          <input
            id="user-id"
            type="text"
            inputMode="text"
            autoComplete="off"
            maxLength={128}
            value={userId}
            onChange={(e) => setUserId(e.target.value)}
            aria-describedby={`${ids}-uid`}
            placeholder="e.g. ada"
          />
          <p className="hint" id={`${ids}-uid`}>With a user id, the photo is remembered and we show the most similar users.</p>
        </div>
        <div className="status" role="status" aria-live="polite">
          {phase.kind === "uploading" && (
            <div className="progress">
              <label htmlFor={`${ids}-prog`}>Uploading {fileName}… {Math.round(phase.progress * 100)}%</label>
              <progress id={`${ids}-prog`} max={1} value={phase.progress} />
            </div>
          )}
          {phase.kind === "scoring" && (
            <div className="progress">
              <span className="spinner" aria-hidden="true" /> Finding the face and scoring it…
            </div>
          )}
        </div>
        {phase.kind === "error" && (
          <div className="error" role="alert" tabIndex={-1} ref={errorBox} data-testid="error">
            <p>
              <strong>That didn&rsquo;t work.</strong> {phase.message}
            </p>
            <button type="button" className="button small" onClick={() => fileInput.current?.click()}>
              Choose another photo
            </button>
          </div>
        )}
      </section>

      <section className="card result" aria-labelledby={`${ids}-res`} aria-busy={busy}>
        <h2 id={`${ids}-res`} ref={resultHeading} tabIndex={-1}>
          2 · {result ? "Your score" : "The result"}
        </h2>
        {!result && !photoUrl && <p className="placeholder">Your score, its five parts and the detected face will appear here.</p>}
        {photoUrl && (
          <figure className="photo">
            <div className="photo-frame" style={natural ? ({ "--w": natural.w, "--h": natural.h } as React.CSSProperties) : undefined}>
              {/* eslint-disable-next-line @next/next/no-img-element */}
              <img
                src={photoUrl}
                alt={result ? `Your photo, ${fileName}, with the detected face marked` : `Your photo, ${fileName}`}
                data-testid="photo"
                onLoad={(e) => setNatural({ w: e.currentTarget.naturalWidth, h: e.currentTarget.naturalHeight })}
              />
              {overlay && (
                <svg className="overlay" viewBox={overlay.viewBox} preserveAspectRatio="none" aria-hidden="true">
                  <rect
                    data-testid="face-box"
                    x={overlay.box.x}
                    y={overlay.box.y}
                    width={overlay.box.width}
                    height={overlay.box.height}
                    rx={overlay.stroke * 2}
                    strokeWidth={overlay.stroke}
                  />
                  {overlay.landmarks.map((l) => (
                    <circle key={l.name} data-testid="landmark" cx={l.cx} cy={l.cy} r={l.r}>
                      <title>{l.name}</title>
                    </circle>
                  ))}
                </svg>
              )}
            </div>
            {result && (
              <figcaption>
                Face box and the five landmarks ({LANDMARK_NAMES.join(", ")}).
                {result.faces_detected > 1 && ` ${result.faces_detected} faces found; the largest, clearest one was scored.`}
              </figcaption>
            )}
          </figure>
        )}
        {result && (
          <div className="numbers">
            <div className="score-block">
              <p className="score" data-testid="score" aria-label={`Score ${result.score.toFixed(1)} out of 100`}>
                {result.score.toFixed(1)}<span className="outof">/100</span>
              </p>
              <p className="verdict">{verdict(result.score)}{result.cached ? " · scored before" : ""}</p>
              <p className="percentile" data-testid="percentile">
                {result.percentile === null
                  ? "Percentile unavailable right now (the score history is offline)."
                  : `Better than ${result.percentile.toFixed(0)}% of the photos scored so far.`}
              </p>
            </div>
            <ul className="bars" aria-label="The five parts of the score">
              {COMPONENTS.map((c) => {
                const v = result.components[c.key] ?? 0;
                const pct = Math.round(v * 100);
                return (
                  <li key={c.key}>
                    <div className="bar-label">
                      <span id={`${ids}-${c.key}`}>{c.label}</span>
                      <span className="bar-value">{pct}</span>
                    </div>
                    <div
                      className="bar"
                      role="meter"
                      aria-labelledby={`${ids}-${c.key}`}
                      aria-valuemin={0}
                      aria-valuemax={100}
                      aria-valuenow={pct}
                      aria-valuetext={`${pct} out of 100: ${c.hint}`}
                    >
                      <div className="bar-fill" style={{ width: `${pct}%` }} />
                    </div>
                    <p className="bar-hint">{c.hint}</p>
                  </li>
                );
              })}
            </ul>
          </div>
        )}
        {similar.kind !== "none" && (
          <div className="similar" aria-live="polite">
            <h3>Most similar users</h3>
            {similar.kind === "loading" && <p>Looking for similar users…</p>}
            {similar.kind === "note" && <p className="note">{similar.message}</p>}
            {similar.kind === "list" &&
              (similar.data.similar.length === 0 ? (
                <p className="note">Nobody else has been scored yet.</p>
              ) : (
                <ol data-testid="similar">
                  {similar.data.similar.map((s) => (
                    <li key={s.userId}>
                      <span>{s.userId}</span>
                      <span className="sim">{similarityText(s.similarity)}</span>
                    </li>
                  ))}
                </ol>
              ))}
          </div>
        )}
      </section>
    </div>
  );
}
