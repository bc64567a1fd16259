// GET /api/web/similar/{userId}: forwarded to scoring's GET /api/similar/{userId}.
import { apiError, logRequest } from "./http";
import { validUserId } from "./limits";
import { forward } from "./score";

export async function handleSimilar(req: Request, userId: string): Promise<Response> {
  const started = performance.now();
  let res: Response;
  if (!validUserId(userId)) {
    res = apiError(req, 400, "invalid_user_id", "the user id must be 1 to 128 printable characters");
  } else {
    const limit = Number(new URL(req.url).searchParams.get("limit") || "5");
    const q = Number.isInteger(limit) && limit >= 1 && limit <= 50 ? limit : 5;
    res = await forward(req, `/api/similar/${encodeURIComponent(userId)}?limit=${q}`, { method: "GET" });
  }
  logRequest(req, res.status, started);
  return res;
}
