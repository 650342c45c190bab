/**
 * The engine's one error type: a stable code for programs and a message a user can act on.
 * The service maps these to task errors at its edge; the engine never knows about HTTP.
 */
export class EngineError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'EngineError';
  }
}
