// Messages between gemm.ts (main thread, blocking) and gemm-worker.ts.

/** merged [m, n] = up [m, r] @ down [r, n] + base [m, n], all float32 row-major. */
export interface GemmJob {
  m: number;
  r: number;
  n: number;
  up: Float32Array;
  down: Float32Array;
  base: Float32Array;
}

export interface GemmWorkerData {
  /** [0]: the sequence number of the last request answered. */
  flag: Int32Array;
  threads: number;
}

export interface GemmRequest {
  seq: number;
  jobs: GemmJob[];
}

export type GemmReply =
  | { seq: number; ok: true; outputs: Float32Array[] }
  | { seq: number; ok: false; message: string };
