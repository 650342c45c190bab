// The response envelope every endpoint answers with, and the error that carries a Wiro error code.
export interface WiroErrorItem {
  code: number;
  message: string;
}

/** An error a handler throws to answer `{result: false, errors: [{code, message}]}` with an HTTP status. */
export class ApiError extends Error {
  constructor(readonly code: number, message: string, readonly httpStatus = 200) {
    super(message);
    this.name = 'ApiError';
  }
}

export function failure(errors: WiroErrorItem[]): { result: false; errors: WiroErrorItem[] } {
  return { result: false, errors };
}
