/**
 * Softmax cross-entropy in float64 (torch's cross_entropy, reduction 'mean' over rows whose target is not
 * ignored): the oracle of the cross-entropy kernels.
 */
export function crossEntropyCpu(logits: ArrayLike<number>, V: number, targets: ArrayLike<number>, ignoreIndex = -100): { loss: number; dlogits: Float64Array } {
  const rows = logits.length / V;
  const dlogits = new Float64Array(logits.length);
  let count = 0;
  for (let r = 0; r < rows; r++) if (targets[r] !== ignoreIndex) count++;
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, logits[r * V + j]!);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(logits[r * V + j]! - max);
    const lse = max + Math.log(sum);
    loss += (lse - logits[r * V + t]!) / count;
    for (let j = 0; j < V; j++) dlogits[r * V + j] = (Math.exp(logits[r * V + j]! - lse) - (j === t ? 1 : 0)) / count;
  }
  return { loss, dlogits };
}
