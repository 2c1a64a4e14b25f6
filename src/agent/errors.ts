import { TracefeedError, type TracefeedErrorOptions } from '../common/errors.js';

/** The agent failed: the model endpoint, a tool, or the analysis pipeline. */
export class AgentError extends TracefeedError {
  constructor(
    message: string,
    /** What failed: `model`, `tool`, `analysis`, `api`. */
    readonly step: 'model' | 'tool' | 'analysis' | 'api',
    options: TracefeedErrorOptions = {},
  ) {
    super(message, options);
  }
}
