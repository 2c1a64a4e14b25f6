/** Scenario class `memory-oom`: allocations past the memory limit end in OOM kills of the victim */
import { incidentSuite } from './helpers.js';

incidentSuite('memory-oom', 'allocations past the memory limit end in OOM kills of the victim');
