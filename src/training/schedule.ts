/** Learning-rate schedules (HF's get_cosine_schedule_with_warmup). */

export interface CosineSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up from 0 to lr. */
  warmupSteps: number;
  /** Total optimizer steps; the cosine reaches minLr at the last. */
  totalSteps: number;
  /** Floor of the decay (default 0). */
  minLr?: number;
}

/**
 * The learning rate of optimizer step `step` (0-based), as HF's lambda: lr * step / warmupSteps during the
 * warm-up (so the first step with warm-up uses 0), then a half cosine from lr down to minLr at totalSteps.
 */
export function cosineWithWarmup(step: number, s: CosineSchedule): number {
  const minLr = s.minLr ?? 0;
  if (step < s.warmupSteps) return (s.lr * step) / Math.max(1, s.warmupSteps);
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  return minLr + (s.lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
