/** Scenario class `cpu-hog`: a busy loop under a CPU quota shows as throttling of the victim */
import { incidentSuite } from './helpers.js';

incidentSuite('cpu-hog', 'a busy loop under a CPU quota shows as throttling of the victim');
