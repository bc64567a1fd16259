import { handleHealth } from "../../../lib/ready";

export const dynamic = "force-dynamic";
export const GET = handleHealth;
