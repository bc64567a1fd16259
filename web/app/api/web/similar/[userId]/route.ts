import { handleSimilar } from "../../../../../lib/similar";

export const dynamic = "force-dynamic";

export async function GET(req: Request, ctx: { params: Promise<{ userId: string }> }): Promise<Response> {
  const { userId } = await ctx.params;
  return handleSimilar(req, userId);
}
