// One JSON object per line on stdout, like the Rust services' logs.
export function log(level: "info" | "warn" | "error", message: string, fields: Record<string, unknown> = {}): void {
  const line = { timestamp: new Date().toISOString(), level: level.toUpperCase(), target: "aurum_web", message, ...fields };
  process.stdout.write(JSON.stringify(line) + "\n");
}
