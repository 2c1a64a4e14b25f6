/** Scenario class `sync-write`: a synchronous-write storm shows as IO pressure of the victim */
import { incidentSuite } from './helpers.js';

incidentSuite('sync-write', 'a synchronous-write storm shows as IO pressure of the victim');
