/**
 * `read_more`: the next page behind a cursor of a cut tool result (see
 * budget.ts), for the agent's model and for MCP clients alike.
 */
import { z } from 'zod';
import {
  CursorError,
  DEFAULT_RESULT_TOKENS,
  MAX_RESULT_TOKENS,
  MIN_RESULT_TOKENS,
  readPage,
  type Budgeted,
  type CursorStore,
} from './budget.js';
import { ToolError, type AgentTool } from './tools.js';

export const maxTokensArg = z
  .number()
  .int()
  .min(MIN_RESULT_TOKENS)
  .max(MAX_RESULT_TOKENS)
  .optional()
  .describe(
    `token budget of this result (estimated as characters/4; default ${DEFAULT_RESULT_TOKENS}); a longer result is cut and returns a cursor for read_more`,
  );

export const readMoreSchema = z.strictObject({
  cursor: z
    .string()
    .min(1)
    .max(200)
    .describe('a cursor from a result (truncation.cursor, or drill_down.cursor of top_workloads)'),
  max_tokens: maxTokensArg,
});

export const READ_MORE_DESCRIPTION =
  'The next page behind a cursor (truncation.cursor of a cut result, drill_down.cursor of top_workloads), under the token budget, with a new cursor while more is left.';

/** One page of a cursor; a bad or expired cursor is a ToolError naming what is wrong. */
export function readMore(cursor: string, budgetTokens: number, store: CursorStore): Budgeted {
  try {
    return readPage(cursor, budgetTokens, store);
  } catch (err) {
    if (err instanceof CursorError) throw new ToolError(err.message);
    throw err;
  }
}

/** read_more as an agent tool over `store` (the agent's cursors). */
export function readMoreTool(store: CursorStore): AgentTool<typeof readMoreSchema> {
  return {
    name: 'read_more',
    description: READ_MORE_DESCRIPTION,
    schema: readMoreSchema,
    writes: false,
    async run(a) {
      const page = readMore(a.cursor, a.max_tokens ?? DEFAULT_RESULT_TOKENS, store);
      return { data: JSON.parse(page.text) as unknown, citations: [] };
    },
  };
}
