/** The agent evaluation: a recorded run, questions with ground truth, grading and the report. */
export { recordRun, type Recording, type RecordOptions, type LoggedAction } from './recording.js';
export { replayDeps, recordedFeatures, RecordedGateway, type Replay } from './replay.js';
export {
  CATEGORIES,
  buildQuestions,
  type Category,
  type EvalQuestion,
  type Verdict,
} from './questions.js';
export {
  DETERMINISTIC_CLAIMS,
  evaluate,
  markdownReport,
  writeEvalReport,
  type EvalReport,
  type LlmTarget,
  type ModeReport,
  type QuestionResult,
} from './run.js';
