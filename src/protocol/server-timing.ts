/**
 * The `Server-Timing` value of an inference answer, whatever the edge: where the request's time
 * went, in ms, and where its outputs came from (`cache;desc=hit|coalesced|miss`, see
 * StageTimings.cache). HTTP sends it as the `Server-Timing` header, gRPC as the `server-timing`
 * trailer of a unary ModelInfer.
 */
import type { StageTimings } from '../serving/inference-service.js';

export function serverTimingValue(timings: StageTimings, totalMs: number): string {
  const ms = (v: number) => v.toFixed(1);
  return (
    `preprocess;dur=${ms(timings.preprocessMs)}, queue;dur=${ms(timings.queueMs)}, infer;dur=${ms(timings.inferMs)}, ` +
    `postprocess;dur=${ms(timings.postprocessMs)}, ${timings.cache === undefined ? '' : `cache;desc=${timings.cache}, `}total;dur=${ms(totalMs)}`
  );
}
