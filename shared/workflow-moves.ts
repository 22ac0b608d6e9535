/**
 * The stages a workflow allows a process to move to from `stage`. Stage names are user-chosen, so
 * only an own key counts: `transitions['toString']` on a plain object is a function.
 */
export function movesFrom(transitions: Record<string, string[]>, stage: string): string[] {
  const to = Object.hasOwn(transitions, stage) ? transitions[stage] : undefined;
  return Array.isArray(to) ? to : [];
}
