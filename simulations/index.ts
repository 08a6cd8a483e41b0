// The scenarios `slapmesh simulate NAME` runs (design.md §9), by name.
import type { Scenario } from './scenario.js';
import { adversaryScenario } from './scenarios/adversary.js';
import { cacheScenario } from './scenarios/cache.js';
import { churn } from './scenarios/churn.js';
import { join } from './scenarios/join.js';
import { placement } from './scenarios/placement.js';

export const SCENARIOS: ReadonlyMap<string, Scenario> = new Map([join, cacheScenario, placement, churn, adversaryScenario].map((scenario) => [scenario.name, scenario]));
