/**
 * The one error type of the guarded fetcher: a stable code for programs and a message that names
 * the URL (never its secrets) and says what the user can do about it.
 */

export type FetchErrorCode =
  | 'url_invalid'
  | 'url_scheme'
  | 'url_credentials'
  | 'url_blocked_address'
  | 'url_dns'
  | 'url_connect'
  | 'url_tls'
  | 'url_network'
  | 'url_status'
  | 'url_too_large'
  | 'url_timeout'
  | 'url_too_slow'
  | 'url_redirects'
  | 'url_content_type'
  | 'url_aborted'
  | 'download_write';

/** Codes that no retry can fix: the URL itself is unacceptable. */
const PERMANENT: ReadonlySet<FetchErrorCode> = new Set([
  'url_invalid',
  'url_scheme',
  'url_credentials',
  'url_blocked_address',
  'url_redirects',
  'url_content_type',
  'url_too_large',
]);

export class FetchError extends Error {
  /** The URL as shown in `message`: without credentials, query values elided. */
  readonly url: string;
  readonly status: number | undefined;
  readonly address: string | undefined;

  constructor(
    readonly code: FetchErrorCode,
    message: string,
    details: { url: string; status?: number; address?: string; cause?: unknown },
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FetchError';
    this.url = details.url;
    this.status = details.status;
    this.address = details.address;
  }

  get permanent(): boolean {
    return PERMANENT.has(this.code);
  }
}

/**
 * A URL fit for an error message or a log line. Presigned URLs (S3, GCS) carry signatures in the
 * query, and userinfo may hold a password, so both are dropped; long URLs are shortened.
 */
export function displayUrl(url: string | URL): string {
  let shown: string;
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    shown = `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    shown = String(url).replace(/\/\/[^/@]*@/, '//').replace(/\?.*$/, '?…');
  }
  // Valid URLs percent-encode control characters; raw invalid input may not: keep logs one line.
  shown = shown.replace(/[\u0000-\u001f\u007f]/g, '?');
  return shown.length > 200 ? `${shown.slice(0, 199)}…` : shown;
}
