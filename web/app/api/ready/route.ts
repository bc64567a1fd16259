import { handleReady } from "../../../lib/ready";

export const dynamic = "force-dynamic";
export const GET = handleReady;
