// What every browser script here shares: required settings from the environment and
// checks that fail the run with a message naming what did not hold.

/** The environment variable `name` (or `fallback`); a missing one stops the run. */
export const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") throw new Error(`set ${name}`);
  return v;
};

/** A check that did not hold (as opposed to an error of the script or the page). */
export class CheckFailed extends Error {}

export const check = (ok, what) => {
  if (!ok) throw new CheckFailed(what);
};
