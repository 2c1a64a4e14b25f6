/** Scenario class `packet-loss`: lost packets on a victim connection are retransmits on the victim */
import { incidentSuite } from './helpers.js';

incidentSuite('packet-loss', 'lost packets on a victim connection are retransmits on the victim');
