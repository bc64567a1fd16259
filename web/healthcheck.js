// The image's healthcheck (images/frontend.toml): the node binary runs this
// file, so the image needs no shell and no curl. GETs /api/health on the same
// PORT the server listens on (default 3000), 2 s timeout; exit 0 on 200.
"use strict";
const http = require("node:http");
const port = Number(process.env.PORT) || 3000;
const req = http.get({ host: "127.0.0.1", port, path: "/api/health", timeout: 2000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on("timeout", () => req.destroy(new Error("timed out")));
req.on("error", (e) => {
  process.stderr.write(`healthcheck: http://127.0.0.1:${port}/api/health: ${e.message}\n`);
  process.exit(1);
});
