// ESLint: recommended JS rules; typescript-eslint's strict type-aware rules for the
// library, its recommended type-aware rules for the tests.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const typed = { parserOptions: { project: "./tsconfig.test.json", tsconfigRootDir: import.meta.dirname } };

export default tseslint.config(
  { ignores: ["dist/", ".test-build/", "coverage/", "docs/", "node_modules/"] },
  js.configs.recommended,
  {
    files: ["src/**/*.ts"],
    extends: [...tseslint.configs.strictTypeChecked, ...tseslint.configs.stylisticTypeChecked],
    languageOptions: typed,
    rules: { "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }] },
  },
  {
    files: ["test/**/*.ts"],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: typed,
    rules: { "@typescript-eslint/no-floating-promises": "off" },
  },
  { files: ["**/*.mjs"], languageOptions: { globals: { process: "readonly" } } },
);
