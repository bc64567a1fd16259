import { handleScore } from "../../../../lib/score";

export const dynamic = "force-dynamic";
export const runtime = "nodejs";
export const POST = handleScore;
