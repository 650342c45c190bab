// No absolute server path in anything a client reads (debugoutput, debugerror, error messages): the data
// folder becomes $LIKENESS_HOME, and any other absolute path is cut to its last two segments.
import { sep } from 'node:path';

/** An absolute POSIX path not inside a URL: preceded by start, space, quote, bracket, = or :, not by "/" or a word. */
const ABSOLUTE = /(^|[\s'"`(\[=,;])(\/(?:[^\s'"`()\[\],;:/]+\/)+[^\s'"`()\[\],;:/]*)/g;

export function redactPaths(text: string, home: string): string {
  let out = text;
  if (home.length > 1) out = out.split(home.endsWith(sep) ? home : home + sep).join('$LIKENESS_HOME/').split(home).join('$LIKENESS_HOME');
  return out.replace(ABSOLUTE, (_m, lead: string, path: string) => {
    const parts = path.split('/').filter(Boolean);
    return `${lead}…/${parts.slice(-2).join('/')}`;
  });
}
