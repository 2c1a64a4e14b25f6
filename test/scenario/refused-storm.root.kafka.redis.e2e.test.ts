/** Scenario class `refused-storm`: a connection-refused storm is attributed to the victim that connects */
import { incidentSuite } from './helpers.js';

incidentSuite(
  'refused-storm',
  'a connection-refused storm is attributed to the victim that connects',
);
