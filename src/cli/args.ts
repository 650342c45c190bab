// Small helpers shared by CLI verbs.
export function fail(message: string): number {
  console.error(`likeness: ${message}`);
  return 2;
}
