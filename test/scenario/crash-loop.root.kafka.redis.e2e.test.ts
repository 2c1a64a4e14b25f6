/** Scenario class `crash-loop`: a child exiting non-zero over and over is a crash loop of the victim */
import { incidentSuite } from './helpers.js';

incidentSuite('crash-loop', 'a child exiting non-zero over and over is a crash loop of the victim');
