// Re-render a view whenever the controller (or its store) changes.

import { useEffect, useState } from "preact/hooks";

import type { Controller } from "../app/controller";

function useBump(): () => void {
  const [, setTick] = useState(0);
  return () => setTick((n) => n + 1);
}

export function useController(controller: Controller): void {
  const bump = useBump();
  useEffect(() => {
    const stop = controller.subscribe(bump);
    // Whatever changed between the first render and this subscription.
    bump();
    return stop;
  }, [controller]);
  const store = controller.store;
  useEffect(() => (store ? store.subscribe(bump) : undefined), [store]);
}

/** Re-renders every `ms` while `active` (countdowns). */
export function useTicker(ms: number, active: boolean): void {
  const bump = useBump();
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(bump, ms);
    return () => clearInterval(timer);
  }, [ms, active]);
}
