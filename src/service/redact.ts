// No absolute server path in anything a client reads (debugoutput, debugerror, error messages): the data
// folder becomes $LIKENESS_HOME, and any other absolute path is cut to its last two segments.
import { sep } from 'node:path';

/** An absolute POSIX path not inside a URL: preceded by start, space, quote, bracket, = or :, not by "/" or a word. */
const ABSOLUTE = /(^|[\s'"`(\[=,;])(\/(?:[^\s'"`()\[\],;:/]+\/)+[^\s'"`()\[\],;:/]*)/g;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function redactPaths(text: string, home: string): string {
  let out = text;
  const root = home.endsWith(sep) && home.length > 1 ? home.slice(0, -1) : home;
  if (root.length > 1) {
    // Only where a path starts (not inside a URL such as http://host/data/… when home is /data).
    out = out.replace(new RegExp(`(?<![\\w.:/-])${escape(root)}(?=/|$|[\\s'"\`),;:\\]])`, 'g'), '$$LIKENESS_HOME');
  }
  return out.replace(ABSOLUTE, (_m, lead: string, path: string) => {
    const parts = path.split('/').filter(Boolean);
    return `${lead}…/${parts.slice(-2).join('/')}`;
  });
}
