import { lrpRules } from './lrp.js';
import { oursRules } from './ours.js';
import type { RuleSet, RuleSetName } from './types.js';

export const RULE_SETS: Record<RuleSetName, RuleSet> = { ours: oursRules, lrp: lrpRules };
export type { RuleSet, RuleSetName } from './types.js';
