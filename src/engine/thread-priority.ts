// The engine's threads run at a lower CPU priority than the service's event loop, so that a task computing on
// every core never delays answers to Task/Detail or the WebSocket (issue 13: paced Detail at 3,000 req/s, p99
// < 20 ms, while a task computes). On Linux a nice value belongs to a thread, not to the process
// (setpriority(2), "BUGS"), and threads inherit it from the thread that creates them: calling this first thing
// in a worker thread lowers that thread and every thread ONNX Runtime's pools start from it, and nothing else.
// Elsewhere a nice value is the whole process's, so nothing is done.
//
// LIKENESS_ENGINE_NICE: 0–19, default 10 (CFS then gives the event loop about 10× the engine's share when both
// want a core; an idle core is still the engine's in full). 0 turns it off.
import { platform, setPriority } from 'node:os';

export const DEFAULT_ENGINE_NICE = 10;

/** Parses LIKENESS_ENGINE_NICE, naming the accepted range when it is wrong. */
export function engineNice(raw = process.env.LIKENESS_ENGINE_NICE): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_ENGINE_NICE;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 19) throw new Error(`LIKENESS_ENGINE_NICE must be an integer from 0 (off) to 19, got "${raw}"`);
  return n;
}

/**
 * Lowers the calling thread's priority to the engine's nice value (Linux only; call it in a worker thread,
 * before it starts any thread of its own). Returns the nice value now in effect for this thread, or undefined
 * where nothing was changed. Never throws: a priority is a preference, not a requirement.
 */
export function lowerThisThreadForEngine(nice = safeNice()): number | undefined {
  if (platform() !== 'linux' || nice === 0) return undefined;
  try {
    setPriority(0, nice); // pid 0: the calling thread, on Linux
    return nice;
  } catch {
    return undefined; // e.g. a sandbox refusing setpriority; the engine still runs
  }
}

function safeNice(): number {
  try {
    return engineNice();
  } catch {
    return DEFAULT_ENGINE_NICE; // the service validates the setting at start-up and refuses a bad one there
  }
}
