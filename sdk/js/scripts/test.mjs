// Compiles src and test to .test-build (with source maps) and runs every test file
// under c8, which maps coverage back to src/*.ts and fails below 80 % of lines.
import { execFileSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
rmSync(".test-build", { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.test.json"], { stdio: "inherit" });
const only = process.argv.slice(2);
const files = readdirSync(".test-build/test")
  .filter((f) => f.endsWith(".test.js") && (only.length === 0 || only.some((o) => f.startsWith(o))))
  .map((f) => join(".test-build/test", f));
const c8 = join("node_modules", "c8", "bin", "c8.js");
try {
  execFileSync(
    process.execPath,
    [c8, "--check-coverage", "--lines", "80", "--reporter", "text", "--reporter", "text-summary",
      "--include", "src/**", "--exclude", "src/types.ts", "--exclude-after-remap",
      process.execPath, "--test", "--test-reporter=spec", "--test-concurrency=1", ...files],
    { stdio: "inherit" },
  );
} catch {
  process.exit(1);
}
